"""RewardSpec: every rule-based component through the one batch call, the Python mix-in, and
the errors raised before any work."""

from __future__ import annotations

import json
import math
import re
import sys

import numpy as np
import pytest

import reasonrl
from reasonrl import InvalidInputError
from reasonrl.rewards import Component, RewardSpec

R1 = "<think>{thought}</think><answer>{answer}</answer>"


def test_r1_zero_scores_accuracy_and_format():
    spec = RewardSpec.r1_zero(think_in_prompt=False)
    completions = [
        R1.format(thought="2+2 is 4", answer="4"),
        R1.format(thought="2+2 is 5", answer="5"),
        "The answer is \\boxed{4}",
        "<think>x</think> <answer>\\frac{8}{2}</answer> trailing",
    ]
    scores = spec.score(completions, answers=["4", "4", "4", "4"])
    np.testing.assert_array_equal(scores.components["accuracy"], [1, 0, 1, 1])
    np.testing.assert_array_equal(scores.components["format"], [1, 1, 0, 0])
    np.testing.assert_array_equal(scores.total, [2, 1, 1, 1])
    assert scores.metrics()["reward/accuracy"] == 0.75


def test_answer_tag_grades_only_an_answer_inside_the_template():
    spec = RewardSpec([Component("accuracy", "math_accuracy", params={"answer_tag": True})])
    completions = [
        "2+2 so 4</think><answer>4</answer>",
        "2+2 so 4",  # right, but outside the template
        "The answer is \\boxed{4}",
        "<answer>4",  # never closed
        "<think>4</think><answer>\\frac{8}{2}</answer>",
    ]
    scores = spec.score(completions, answers=["4"] * 5)
    np.testing.assert_array_equal(scores.components["accuracy"], [1, 0, 0, 0, 1])
    with pytest.raises(InvalidInputError, match="answer_tag"):
        RewardSpec([Component("accuracy", "math_accuracy", params={"answer_tag": "yes"})])


def test_lenient_format_and_tag_count():
    spec = RewardSpec([
        Component("lenient", "format", 1.0, {"strict": False}),
        Component("tags", "tag_count", 1.0),
    ])
    scores = spec.score(["ok <think>a</think> then <answer>1</answer> bye", "<think>a</think>", ""])
    np.testing.assert_array_equal(scores.components["lenient"], [1, 0, 0])
    np.testing.assert_array_equal(scores.components["tags"], [1, 0.5, 0])


def test_language_consistency_of_the_chain_of_thought():
    spec = RewardSpec([Component("zh", "language", 1.0, {"target": "zh"})])
    scores = spec.score([
        "<think>我们先计算 $x^2$</think><answer>4</answer>",
        "<think>first we compute</think><answer>4</answer>",
        "<think>我们 compute</think><answer>4</answer>",
    ])
    np.testing.assert_allclose(scores.components["zh"], [1.0, 0.0, 2 / 3])


def test_kimi_length_penalty_per_group_uses_token_lengths():
    spec = RewardSpec.kimi_long2short(think_in_prompt=True)
    completions = [R1.format(thought="t", answer=a) for a in ["4", "4", "5", "7", "7"]]
    scores = spec.score(
        completions, answers=["4", "4", "4", "7", "7"], group_ids=[1, 1, 1, 2, 2], lengths=[100, 300, 200, 50, 50]
    )
    # Group 1: λ = 0.5, −0.5, 0 → right, right, wrong (min(0, 0)); group 2: equal lengths → 0.
    np.testing.assert_allclose(scores.components["length"], [0.5, -0.5, 0.0, 0.0, 0.0])


def test_cosine_overlong_and_repetition():
    spec = RewardSpec([
        Component("acc", "math_accuracy"),
        Component("cos", "cosine_length", 1.0, {"max_len": 100}),
        Component("long", "overlong", 1.0, {"max_len": 100, "cache": 20}),
        Component("rep", "repetition", 1.0, {"n": 2, "max_penalty": -1.0}),
    ])
    scores = spec.score(["\\boxed{1}", "\\boxed{2}", "a b a b a b"], answers=["1", "1", "1"], lengths=[0, 100, 90])
    np.testing.assert_allclose(scores.components["cos"], [1.0, -0.5, -0.5 + 0.5 * (-1.0 + 0.5) * (1 + math.cos(0.9 * math.pi))])
    np.testing.assert_allclose(scores.components["long"], [0.0, -1.0, -0.5])
    np.testing.assert_allclose(scores.components["rep"], [0.0, 0.0, -0.6])


def test_multiple_choice_by_letter_index_and_text():
    spec = RewardSpec([Component("mc", "choice_accuracy")])
    choices = [["3", "4", "5", "6"]] * 4
    completions = ["The answer is (B).", "<answer>C</answer>", "\\boxed{4}", "I think A"]
    scores = spec.score(completions, choices=choices, gold_choices=[1, "C", "(B)", 1])
    np.testing.assert_array_equal(scores.components["mc"], [1, 1, 1, 0])


def test_python_reward_functions_mix_in_with_trl_signature():
    seen = {}

    def short_answer(completions, prompts=None, answer=None, **kwargs):
        seen.update(prompts=prompts, answer=answer, extra=kwargs.get("difficulty"))
        return [1.0 if len(c) < 40 else None for c in completions]

    spec = RewardSpec([
        Component("acc", "math_accuracy"),
        Component("short", "python", 0.5, fn=short_answer),
    ])
    completions = ["\\boxed{3}", "a very long answer that goes on and on \\boxed{3}"]
    scores = spec.score(completions, prompts=["p1", "p2"], answers=["3", "3"], difficulty=[1, 2])
    assert seen == {"prompts": ["p1", "p2"], "answer": ["3", "3"], "extra": [1, 2]}
    assert scores.components["short"][0] == 1.0 and math.isnan(scores.components["short"][1])
    assert scores.total[0] == 1.5 and math.isnan(scores.total[1])
    # The NaN total is left out of the advantages and gets 0.
    adv = reasonrl.compute_advantages(np.append(scores.total, 0.5), [0, 0, 0], "dr_grpo")
    np.testing.assert_allclose(adv, [0.5, 0.0, -0.5])


def test_chat_message_completions_and_trl_call_form():
    spec = RewardSpec.r1_zero(think_in_prompt=False)
    chat = [[{"role": "assistant", "content": R1.format(thought="t", answer="12")}]]
    assert spec(chat, solution=["12"]) == [2.0]
    assert spec.__name__ == "reasonrl_reward"


def test_trl_call_form_groups_completions_by_prompt_for_the_length_penalty():
    # TRL passes `prompts` and the data set's columns, never group ids: the completions of
    # one prompt are a group, as in `score(..., group_ids=...)`.
    spec = RewardSpec.kimi_long2short(think_in_prompt=False)
    completions = [R1.format(thought=t, answer=a) for t, a in [("x", "4"), ("x" * 30, "4"), ("y", "5"), ("y" * 9, "7")]]
    prompts = ["2+2?", "2+2?", [{"role": "user", "content": "3+4?"}], [{"role": "user", "content": "3+4?"}]]
    answers = ["4", "4", "7", "7"]
    expected = spec.score(completions, answers=answers, group_ids=[0, 0, 1, 1]).total.tolist()
    assert spec(completions, prompts=prompts, answer=answers) == expected
    # Grouped otherwise, the penalty differs: the grouping is what the call used.
    assert spec.score(completions, answers=answers, group_ids=[0, 1, 2, 3]).total.tolist() != expected
    # Without prompts there are no groups: the error says what to pass.
    with pytest.raises(InvalidInputError, match=r"needs `group_ids`: pass `prompts` \(TRL does\) or `group_ids`"):
        spec(completions, answer=answers)


def test_math_accuracy_takes_open_r1_solution_column():
    from reasonrl.math import math_accuracy

    assert math_accuracy(["\\boxed{4}", "5"], solution=["4", "4"]) == [1.0, 0.0]
    assert math_accuracy(["\\boxed{4}"], answer=["4"], solution=["5"]) == [1.0]  # `answer` wins
    with pytest.raises(InvalidInputError, match="`answer` \\(or `solution`\\) column"):
        math_accuracy(["4"])


@pytest.mark.parametrize(
    ("completions", "columns", "message"),
    [
        ("12", {"answers": ["1", "2"]}, r"`completions`: expected a list of completions, got a single string"),
        (["1", "2"], {"answers": "12"}, r"`answers`: expected a sequence with one entry per completion, got a str"),
        (["1", "2"], {"answers": {"a": "1", "b": "2"}}, r"`answers`: .* got a dict"),
        (["1", "2"], {"answers": ["1", "2"], "group_ids": [0.5, 1.7]}, r"`group_ids`: expected integers, got fractional"),
        (["1", "2"], {"answers": ["1", "2"], "group_ids": [0, float("nan")]}, r"`group_ids`: expected integers"),
        (["1", "2"], {"answers": ["1", "2"], "group_ids": [-1, 0]}, r"`group_ids`: expected ids in \[0, 2\*\*62\]"),
        (["1", "2"], {"answers": ["1", "2"], "group_ids": ["a", "b"]}, r"`group_ids`: expected a 1-D sequence of integers"),
        (["1"], {"choices": ["xy"], "gold_choices": [0]}, r"`choices`: each entry must be a list of options"),
    ],
)
def test_a_column_in_the_wrong_shape_is_refused_not_reinterpreted(completions, columns, message):
    spec = RewardSpec([Component("acc", "math_accuracy"), Component("choice", "choice_accuracy"), Component("len", "kimi_length")])
    with pytest.raises(InvalidInputError, match=message):
        spec.score(completions, **columns)


def test_integer_valued_float_group_ids_are_accepted():
    spec = RewardSpec.kimi_long2short(think_in_prompt=False)
    completions = [R1.format(thought="x", answer="4"), R1.format(thought="x" * 9, answer="4")]
    as_floats = spec.score(completions, answers=["4", "4"], group_ids=np.array([3.0, 3.0])).total
    np.testing.assert_array_equal(as_floats, spec.score(completions, answers=["4", "4"], group_ids=[3, 3]).total)


def test_a_timeout_no_duration_can_hold_is_an_error_not_a_rust_panic():
    # 1e20 s once overflowed Rust's Duration inside the component's constructor: a panic, which
    # PyO3 raises as a BaseException that `except Exception` does not catch.
    for timeout in (1e20, 1e30, float("inf")):
        with pytest.raises(InvalidInputError, match="timeout_s"):
            RewardSpec([Component("acc", "math_accuracy", 1.0, {"timeout_s": timeout})])
    with pytest.raises(InvalidInputError, match="timeout_s"):
        RewardSpec.from_config({"accuracy": {"kind": "math_accuracy", "timeout_s": 1e30}})


def test_math_accuracy_refuses_a_string_for_a_list():
    from reasonrl.math import math_accuracy

    with pytest.raises(InvalidInputError, match=r"`answer`: expected a list, got a str"):
        math_accuracy(["1", "2"], "12")
    with pytest.raises(InvalidInputError, match=r"`answer`: 1 answers for 2 completions"):
        math_accuracy(["1", "2"], ["1"])


def test_from_config_mapping():
    spec = RewardSpec.from_config({
        "accuracy": {"kind": "math_accuracy", "weight": 2, "timeout_s": 1.0},
        "format": {"strict": False, "weight": 0.5},
    })
    assert [(c.name, c.kind, c.weight) for c in spec.components] == [
        ("accuracy", "math_accuracy", 2.0), ("format", "format", 0.5)
    ]


def test_invalid_text_does_not_crash_the_batch():
    spec = RewardSpec.r1_zero(think_in_prompt=False)
    bad = "<think>\ud800</think><answer>4</answer>"
    scores = spec.score([bad, "x" * 1_000_000], answers=["4", "4"])
    np.testing.assert_array_equal(scores.components["accuracy"], [1, 0])


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: RewardSpec([Component("a", "formatt")]), "unknown kind"),
        (lambda: RewardSpec([Component("a", "format", 1.0, {"strikt": True})]), "strikt"),
        (lambda: RewardSpec([Component("a", "overlong", 1.0, {"max_len": "long"})]), "max_len"),
        (lambda: RewardSpec([Component("a", "language", 1.0, {"target": "klingon"})]), "klingon"),
        (lambda: RewardSpec([Component("l", "kimi_length")]), "accuracy"),
        (lambda: RewardSpec([Component("a", "format"), Component("a", "tag_count")]), "duplicate"),
        (lambda: RewardSpec([Component("p", "python")]), "callable"),
        (lambda: RewardSpec([]), "at least one"),
    ],
)
def test_bad_specs_fail_at_construction(make, message):
    with pytest.raises(InvalidInputError, match=message):
        make()


def test_bad_batches_fail_before_any_work():
    calls = []

    def counting(completions, **kwargs):
        calls.append(1)
        return [0.0] * len(completions)

    spec = RewardSpec.r1_zero()
    with pytest.raises(InvalidInputError, match=r"completions\[1\]"):
        spec.score(["a", None], answers=["1", "2"])
    with pytest.raises(InvalidInputError, match="`answers`"):
        spec.score(["a", "b"])
    with pytest.raises(InvalidInputError, match="`answers`.*length"):
        spec.score(["a", "b"], answers=["1"])
    kimi = RewardSpec.kimi_long2short()
    with pytest.raises(InvalidInputError, match="`group_ids`"):
        kimi.score(["a"], answers=["1"])
    mc = RewardSpec([Component("mc", "choice_accuracy")])
    with pytest.raises(InvalidInputError, match="gold_choices"):
        mc.score(["(A)"], choices=[["x", "y"]], gold_choices=[5])
    with pytest.raises(InvalidInputError, match="gold_choices"):
        mc.score(["(A)"], choices=[["x", "y"]], gold_choices=[None])
    counted = RewardSpec([Component("c", "python", fn=counting), Component("f", "format")])
    with pytest.raises(InvalidInputError, match="`lengths`"):
        counted.score(["a"], lengths=[1.0, 2.0])
    assert calls == []
    broken = RewardSpec([Component("b", "python", fn=lambda completions, **_: [1.0])])
    with pytest.raises(InvalidInputError, match="returned 1 values for 2"):
        broken.score(["a", "b"])


def test_mmlu_letters_round_trip(data_dir):
    rows = [json.loads(line) for line in (data_dir / "mmlu_stem" / "test.jsonl").read_text().splitlines()[:500]]
    letters = "ABCD"
    choices = [r["choices"] for r in rows]
    gold = [r["answer"] for r in rows]
    right = [f"<think>...</think><answer>({letters[g]})</answer>" for g in gold]
    wrong = [f"The answer is {letters[(g + 1) % 4]}." for g in gold]
    by_text = [f"<answer>{r['choices'][r['answer']]}</answer>" for r in rows]
    spec = RewardSpec([Component("mc", "choice_accuracy")])
    assert spec.score(right, choices=choices, gold_choices=gold).components["mc"].mean() == 1.0
    assert spec.score(wrong, choices=choices, gold_choices=gold).components["mc"].mean() == 0.0
    # Options whose text is itself a lone letter or repeated can be ambiguous; the rest must match.
    text_scores = spec.score(by_text, choices=choices, gold_choices=gold).components["mc"]
    assert text_scores.mean() > 0.97, text_scores.mean()


def test_code_accuracy_runs_the_tests_in_the_sandbox():
    spec = RewardSpec([Component("code", "code_accuracy", 1.0, {"timeout_s": 5})])
    good = "```python\ndef add(a, b):\n    return a + b\n```"
    half = "```python\ndef add(a, b):\n    return a + b if a else 0\n```"
    tests = [["assert add(1, 2) == 3", "assert add(0, 2) == 2"]] * 3
    scores = spec.score([good, half, "no code here"], tests=tests)
    np.testing.assert_allclose(scores.components["code"], [1.0, 0.5, 0.0])
    with pytest.raises(InvalidInputError, match="`tests`"):
        spec.score([good])
    with pytest.raises(InvalidInputError, match="unknown parameter"):
        RewardSpec([Component("code", "code_accuracy", 1.0, {"timeout": 5})])


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Component("a", "format", "x"), r"weight must be a finite number, got 'x'"),
        (lambda: Component("a", "format", float("inf")), r"weight must be a finite number"),
        (lambda: Component("a", "format", 1.0, None), r"params must be a mapping"),
        (lambda: Component("a", ["format"]), r"name and kind must be strings"),
        (lambda: RewardSpec.from_config([1, 2]), r"`config`: expected a mapping of components, got list"),
        (lambda: RewardSpec.from_config({"format": None}), r"component 'format': expected a mapping"),
        (lambda: RewardSpec.from_config({"format": {"weight": "heavy"}}), r"weight must be a number, got 'heavy'"),
    ],
)
def test_a_malformed_component_is_a_named_error(build, message):
    with pytest.raises(InvalidInputError, match=message):
        build()


@pytest.mark.parametrize(
    ("returned", "message"),
    [("11", "returned a string"), ([float("inf"), 0.0], "returned an infinite reward"), ([10**400, 0], "returned a non-number")],
)
def test_a_python_reward_returning_junk_is_refused(returned, message):
    spec = RewardSpec([Component("mine", "python", fn=lambda completions, **_: returned)])
    with pytest.raises(InvalidInputError, match=message):
        spec.score(["a", "b"])


def test_code_reward_refuses_a_string_for_its_tests():
    from reasonrl.code import code_reward

    with pytest.raises(InvalidInputError, match=r"`tests`: expected a list with one entry per completion, got a string"):
        code_reward(["```python\nx = 1\n```"], "assert 1")


def test_chosen_options_reads_each_completion_against_its_own_options():
    from reasonrl.rewards import chosen_options

    options = [["4", "5"], ["A triangle", "A square"], ["x", "y"]]
    chat = [{"role": "assistant", "content": "<answer>A square</answer>"}]
    assert chosen_options(["The answer is B.", chat, "no idea"], options) == [1, 1, None]
    with pytest.raises(InvalidInputError, match="2 option lists for 3 completions"):
        chosen_options(["B", "A", "A"], options[:2])
    with pytest.raises(InvalidInputError, match="each entry must be a list of options"):
        chosen_options(["B"], ["AB"])


def test_a_python_reward_is_named_in_a_config_by_module_or_file(tmp_path, monkeypatch):
    from reasonrl.config import ConfigError, stage_from_dict

    (tmp_path / "my_rewards.py").write_text(
        "from __future__ import annotations\nimport dataclasses\n\n"
        "@dataclasses.dataclass\nclass Scale:\n    k: float = 1.0\n\n"  # a dataclass needs the module registered
        "LOADS = []\nLOADS.append(1)\n\n"
        "def brevity(completions, **kwargs):\n    return [Scale().k / (1 + len(c)) for c in completions]\n"
    )
    monkeypatch.chdir(tmp_path)
    by_file = RewardSpec.from_config({"short": {"kind": "python", "function": "my_rewards.py:brevity", "weight": 2.0}})
    assert by_file.score(["a", "abc"]).total.tolist() == [1.0, 0.5]
    again = RewardSpec.from_config({"short": {"kind": "python", "function": "my_rewards.py:brevity"}})
    assert again.components[0].fn is by_file.components[0].fn  # the file ran once
    assert sys.modules[by_file.components[0].fn.__module__].LOADS == [1]
    by_module = RewardSpec.from_config({"sq": {"kind": "python", "function": "math:sqrt"}})
    assert by_module.components[0].fn is math.sqrt
    stage = {"kind": "grpo", "model": {"name_or_path": "test:tiny"}, "data": {"train": "test:x"}}
    for function, message in [
        (None, "reward.short: kind 'python' needs `function`"),
        ("my_rewards.py", "reward.short: function: expected `module:name`"),
        ("missing.py:f", "reward.short: function: file not found"),
        ("no_such_module:f", "reward.short: function: cannot import 'no_such_module'"),
        ("my_rewards.py:nothing", "reward.short: function: 'my_rewards.py' has no function 'nothing'"),
    ]:
        entry = {"kind": "python"} if function is None else {"kind": "python", "function": function}
        with pytest.raises(ConfigError, match=re.escape(message)):
            stage_from_dict({**stage, "reward": {"short": entry}})


def test_trl_call_form_counts_lengths_in_the_tokens_trl_passes():
    """TRL passes `completion_ids`: the length components count tokens, as the trainer does."""
    spec = RewardSpec([Component("over", "overlong", 1.0, {"max_len": 20, "cache": 10})])
    completions = ["short", "a completion of thirty characters"[:30]]
    by_tokens = spec(completions=completions, prompts=["p", "p"], completion_ids=[[0] * 8, [0] * 8])
    assert by_tokens == [0.0, 0.0]  # 8 tokens each: inside the budget
    assert spec(completions=completions, prompts=["p", "p"])[1] < 0  # 30 characters: past it
