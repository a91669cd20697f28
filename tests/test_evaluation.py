"""pass@k, majority voting and score_samples (math, multiple choice, code, format, table)."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

import pytest

from reasonrl import InvalidInputError
from reasonrl import evaluation
from reasonrl.data import Example, load_examples
from reasonrl.evaluation import (
    code_program,
    maj_at_k,
    majority_answer,
    majority_vote,
    pass_at_k,
    running_votes,
    score_samples,
)

# --------------------------------------------------------------------------------------------
# pass@k


def brute_force_pass_at_k(n: int, c: int, k: int) -> float:
    """The share of all k-subsets of n samples (the first c correct) holding a correct one."""
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(i < c for i in subset) for subset in subsets) / len(subsets)


@pytest.mark.parametrize("n", range(1, 8))
def test_pass_at_k_matches_enumerating_subsets(n: int) -> None:
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(brute_force_pass_at_k(n, c, k), abs=1e-12)


def test_pass_at_k_is_stable_for_large_n() -> None:
    # The binomials here have ~60 digits; the product form needs no big numbers.
    for n, c, k in [(200, 3, 10), (200, 0, 100), (1000, 999, 1), (1000, 1, 500)]:
        exact = 1 - math.comb(n - c, k) / math.comb(n, k)
        assert pass_at_k(n, c, k) == pytest.approx(exact, rel=1e-9, abs=1e-12)
    assert pass_at_k(10, 3, 1) == 0.3
    # Huge counts take min(c, k) factors (or log-gamma), never c: these return at once.
    assert pass_at_k(10**18, 10**12, 2) == pytest.approx(2e-6, rel=1e-5)
    assert pass_at_k(10**18, 10**12, 10**9) == pytest.approx(1 - math.exp(-1e3), rel=1e-9)
    assert pass_at_k(4 * 10**7, 2 * 10**7, 2 * 10**6) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("n", "c", "k", "message"),
    [(3, 1, 4, "invalid `n`"), (3, 4, 1, "invalid `c`"), (3, -1, 1, "invalid `c`"),
     (3, 1, 0, "invalid `k`"), (3.0, 1, 1, "invalid `n`"), (3, True, 1, "invalid `c`")],
)
def test_pass_at_k_errors(n: int, c: int, k: int, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        pass_at_k(n, c, k)


# --------------------------------------------------------------------------------------------
# Majority voting

HALVES = ["\\boxed{3}", "<answer>\\frac12</answer>", "The answer is 0.5.", "<answer>1/2</answer>"]


def test_equivalent_answers_share_a_bucket() -> None:
    assert majority_vote(HALVES) == ("\\frac12", 1, 3)
    assert majority_answer(HALVES) == "\\frac12"
    assert maj_at_k(HALVES, "0.5") and not maj_at_k(HALVES, "3")
    assert maj_at_k(HALVES, "3", k=2)  # 3 and 1/2 tie: the first seen wins


def test_ties_go_to_the_first_seen_and_blank_completions_do_not_vote() -> None:
    assert majority_vote(["\\boxed{2}", "\\boxed{3}", "\\boxed{3}", "\\boxed{2}"]) == ("2", 0, 2)
    assert majority_vote(["", "  ", "\\boxed{7}"]) == ("7", 2, 1)
    assert majority_vote([]) == (None, None, 0)
    assert majority_answer(["", " "]) is None


def test_voting_compares_each_answer_with_one_representative_per_bucket(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pairs = []
    real = evaluation.verify_batch

    def counting(golds: list[str], preds: list[str], **kwargs: object) -> list[bool]:
        pairs.append(len(golds))
        return real(golds, preds, **kwargs)

    monkeypatch.setattr(evaluation, "verify_batch", counting)
    answers = [f"\\boxed{{{i % 4}}}" for i in range(40)]  # 4 buckets, each answer repeated
    assert majority_vote(answers) == ("0", 0, 10)
    # Only the first occurrence of each distinct text is compared: 0 + 1 + 2 + 3 pairs.
    assert pairs == [1, 2, 3]
    pairs.clear()
    distinct = ["\\boxed{1/2}", "\\boxed{0.5}", "\\boxed{2/4}", "\\boxed{5}", "\\boxed{10/20}"]
    majority_vote(distinct)
    assert sum(pairs) <= len(distinct) * 2  # k × buckets at most


def test_running_votes_match_voting_on_every_prefix() -> None:
    completions = ["", *HALVES, "\\boxed{3}", "\\boxed{3}", "\\boxed{3.0}"]
    assert running_votes(completions) == [majority_vote(completions[:k]) for k in range(1, 9)]


def test_maj_at_k_checks_k() -> None:
    with pytest.raises(InvalidInputError, match="invalid `k`"):
        maj_at_k(HALVES, "1/2", k=5)


# --------------------------------------------------------------------------------------------
# score_samples


def test_math_scoring_pass_and_maj() -> None:
    examples = [Example("half", "Half of 1?", answer="1/2"), Example("two", "1 + 1?", answer="2")]
    completions = [HALVES, ["\\boxed{2}", "\\boxed{3}", "\\boxed{3}", "\\boxed{2.0}"]]
    tokens = [[10, 20, 30, 40], [5, 5, 5, 5]]
    result = score_samples(examples, completions, tokens, ks=(1, 2, 4))
    half, two = result.records
    assert half.correct == [False, True, True, True] and two.correct == [True, False, False, True]
    assert half.scores["pass@1"] == 0.75 and two.scores["pass@1"] == 0.5
    assert half.scores["pass@2"] == pytest.approx(brute_force_pass_at_k(4, 3, 2))
    assert half.scores["maj@2"] == 0.0  # first two: 3 vs 1/2, a tie won by 3
    assert half.scores["maj@4"] == 1.0  # 1/2 = 0.5 = \frac12: three votes
    assert two.scores["maj@4"] == 1.0  # 2 and 2.0 against 3 and 3: the first seen, 2, wins
    assert half.majority == "\\frac12"
    assert result["pass@1"] == pytest.approx(0.625)
    assert result["pass@4"] == 1.0 and result["maj@4"] == 1.0 and result["maj@2"] == 0.5
    assert result["mean_tokens"] == pytest.approx(15.0)
    assert result["n_problems"] == 2 and result["n_samples"] == 8
    assert result["truncated_rate"] is None and "maj@1" not in result.summary


def test_answer_tag_counts_only_answers_inside_the_template() -> None:
    examples = [Example("sum", "2+2", answer="4")]
    completions = [[
        "2+2 so 4</think><answer>4</answer>",
        "2+2 so 4",  # right, outside the template
        "so 4</think><answer>4",  # block never closed
        "so 5</think><answer>5</answer>",
        "so 4</think><answer>4.0</answer>",
    ]]
    tokens = [[9, 4, 6, 9, 10]]
    lenient = score_samples(examples, completions, tokens, ks=(1, 4))
    strict = score_samples(examples, completions, tokens, ks=(1, 4), answer_tag=True)
    assert lenient.records[0].correct == [True, True, True, False, True]
    assert strict.records[0].correct == [True, False, False, False, True]
    assert strict["pass@1"] == pytest.approx(0.4)
    # Votes count only tagged answers: the first four samples hold 4, 5 (and two blanks).
    assert strict.records[0].scores["maj@4"] == 1.0
    assert strict["format_rate"] == lenient["format_rate"]  # format is judged on the raw text


def test_answer_tag_grades_like_the_rust_reward() -> None:
    """evaluation's answer_tag and math_accuracy's answer_tag are one rule in two languages."""
    from reasonrl.rewards import Component, RewardSpec

    texts = [
        "<answer>4</answer>", "<answer>1</answer> <answer>4</answer>", "<answer>4</answer> <answer>1</answer>",
        "<answer>4", "4</answer>", "<answer><answer>4</answer>", "x <answer> 4 </answer> y", "<answer></answer>",
        "no tags 4", "<ANSWER>4</ANSWER>",
    ]
    examples = [Example(f"p{i}", "2+2", answer="4") for i in range(len(texts))]
    ours = score_samples(examples, [[t] for t in texts], [[1]] * len(texts), answer_tag=True)
    spec = RewardSpec([Component("accuracy", "math_accuracy", params={"answer_tag": True})])
    rust = spec.score(texts, answers=["4"] * len(texts)).components["accuracy"]
    assert [r.correct[0] for r in ours.records] == [bool(v) for v in rust]
    assert any(rust) and not all(rust)


def test_greedy_single_sample_pass_at_1_is_accuracy() -> None:
    examples = [Example(str(i), "q", answer=str(i)) for i in range(4)]
    completions = [["\\boxed{0}"], ["\\boxed{1}"], ["\\boxed{7}"], ["no idea"]]
    result = score_samples(examples, completions, [[3]] * 4)
    assert result["pass@1"] == 0.5 and result.summary["n_samples"] == 4


def test_multiple_choice_uses_the_choice_reward() -> None:
    example = Example("mc", "Which is even?", choices=("3", "4", "5"), gold_choice=1)
    completions = [["<answer>B</answer>", "<answer>A</answer>", "<answer>B</answer>"]]
    result = score_samples([example], completions, [[1, 1, 1]], ks=(3,))
    assert result.records[0].correct == [True, False, True]
    assert result["maj@3"] == 1.0 and result["pass@1"] == pytest.approx(2 / 3)


def test_format_rate_and_truncation() -> None:
    example = Example("x", "q", answer="4")
    completions = [[
        "2 + 2 = 4 </think> <answer>4</answer>",  # the R1-Zero prompt opened <think>
        "<think>2 + 2</think>\n<answer>4</answer>",
        "4",
        "thinking forever",
    ]]
    result = score_samples([example], completions, [[9, 9, 1, 50]], truncated=[[0, 0, 0, 1]])
    assert result.records[0].format_ok == [True, True, False, False]
    assert result["format_rate"] == 0.5 and result["truncated_rate"] == 0.25
    opened_here = score_samples([example], completions, [[9, 9, 1, 50]], think_in_prompt=False)
    assert opened_here["format_rate"] == 0.25  # now the first one lacks its <think>


def test_code_problems_without_a_runner_are_reported_not_scored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(evaluation, "_code_runner", lambda: None)
    examples = [Example("m", "q", answer="1"), Example("c", "def f():\n", tests="assert f() == 1", entry_point="f")]
    result = score_samples(examples, [["\\boxed{1}"], ["    return 1\n"]], [[2], [4]])
    assert result["n_problems"] == 1 and result["n_unscored"] == 1 and result["pass@1"] == 1.0
    assert result.records[1].correct is None and "not scored" in (result.records[1].note or "")
    assert any("code problem(s) not scored" in note for note in result.notes)
    assert "note: 1 code problem(s) not scored" in result.table()


def test_code_problems_go_through_run_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []

    def run_tests(programs: list[str], tests: list[object]) -> list[dict[str, bool]]:
        seen.extend(zip(programs, tests))
        return [{"passed": "return 1" in program} for program in programs]

    monkeypatch.setattr(evaluation, "_code_runner", lambda: run_tests)
    example = Example("c", "def f():\n", tests=("assert f() == 1",), entry_point="f",
                      meta={"test_setup_code": "import math"})
    completions = [["    return 1\n", "```python\ndef f():\n    return 2\n```"]]
    result = score_samples([example], completions, [[3, 9]])
    assert result.records[0].correct == [True, False]
    # MBPP's setup code runs after the program, before the tests: it may use what the program
    # defines (MBPP 367 and 927 build trees of the solution's Node class).
    assert seen[0] == ("def f():\n    return 1\n\nimport math\n", ["assert f() == 1"])
    assert seen[1][0] == "def f():\n    return 2\n\nimport math\n"
    assert "maj@" not in json.dumps(result.records[0].scores)
    with_k = score_samples([example], completions, [[3, 9]], ks=(1, 2))
    assert with_k["maj@2"] is None
    assert "note: maj@k leaves out the 1 code problem(s): programs have no final answer to vote on" in with_k.table()


def test_code_program_reads_the_answer_block() -> None:
    example = Example("c", "Write g.", tests="assert g() == 1", entry_point="g")
    completion = "<think>```python\ndef draft(): pass\n```</think><answer>```py\ndef g():\n    return 1\n```</answer>"
    assert code_program(example, completion) == "def g():\n    return 1\n"


def test_ks_above_the_sample_count_are_left_out_with_a_note() -> None:
    result = score_samples([Example("a", "q", answer="1")], [["\\boxed{1}", "\\boxed{2}"]], [[1, 1]], ks=(1, 2, 8))
    assert "pass@8" not in result.summary and "maj@8" not in result.summary
    assert result.notes == ["left out k = [8]: some problems have only 2 sample(s)"]


def test_result_dict_and_table_shape() -> None:
    examples = [Example("a", "q", answer="1")]
    result = score_samples(examples, [["\\boxed{1}", "\\boxed{2}"]], [[4, 6]], ks=(1, 2), truncated=[[False, True]])
    data = json.loads(json.dumps(result.to_dict()))
    assert set(data) == {"summary", "notes", "problems"}
    assert list(data["summary"]) == [
        "pass@1", "pass@2", "maj@2", "mean_tokens", "format_rate", "truncated_rate", "n_problems", "n_samples",
    ]
    record = data["problems"][0]
    assert record["id"] == "a" and record["tokens"] == [4, 6] and record["truncated"] == [False, True]
    lines = result.table().splitlines()
    assert lines[0].split() == ["metric", "value"] and len(lines) == 2 + len(data["summary"])
    assert "pass@1          0.5000" in result.table() and "mean_tokens        5.0" in result.table()
    metrics = result.metrics()
    assert metrics["eval/pass@1"] == 0.5 and metrics["eval/n_samples"] == 2.0
    assert all(key.startswith("eval/") and isinstance(v, float) for key, v in metrics.items())


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (([], [], []), {}, "no problems to score"),
        (([Example("a", "q", answer="1")], [], []), {}, "invalid `completions`: 0 entries for 1"),
        (([Example("a", "q", answer="1")], [[]], [[]]), {}, r"completions\[0\] is empty"),
        (([Example("a", "q", answer="1")], [["x"]], [[1, 2]]), {}, r"token_counts\[0\] has 2 entries"),
        (([Example("a", "q", answer="1")], [["x"]], [[1]]), {"truncated": [[]]}, r"truncated\[0\] has 0"),
        (([Example("a", "q", answer="1")], [["x"]], [[1]]), {"ks": (0,)}, "invalid `ks`"),
        (([Example("a", "q", answer="1")], [["x"]], [[1]]), {"ks": 4}, "invalid `ks`"),
        (([Example("a", "q")], [["x"]], [[1]]), {}, "no answer, choices or tests"),
        (([Example("a", "q", answer="1")], ["x"], [[1]]), {}, "is a string"),
    ],
)
def test_score_samples_errors(args: tuple[Any, ...], kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        score_samples(*args, **kwargs)


def test_humaneval_and_mbpp_with_the_real_code_runner(data_dir: Path) -> None:
    pytest.importorskip("reasonrl.code", reason="reasonrl.code (the sandboxed runner) is not built")
    humaneval = load_examples(data_dir / "humaneval" / "test.jsonl", format="humaneval", limit=2)
    mbpp = load_examples(data_dir / "mbpp" / "mbpp.jsonl", format="mbpp", split="test", limit=2)
    completions = [[e.meta["canonical_solution"], "    return None\n"] for e in humaneval]
    completions += [[f"```python\n{e.meta['code']}\n```", "```python\ndef other(): pass\n```"] for e in mbpp]
    result = score_samples(humaneval + mbpp, completions, [[1, 1]] * 4, ks=(1, 2))
    assert [r.correct for r in result.records] == [[True, False]] * 4
    assert result["pass@1"] == 0.5 and result["pass@2"] == 1.0


def test_majority_of_multiple_choice_samples_is_over_the_options_chosen() -> None:
    """Three of five samples choose C, in three ways of writing it: maj@5 is C, right; the two
    samples that wrote A are the largest group of equal math answers, which must not win."""
    example = Example("q1", "Colour of the sky?", choices=("red", "green", "blue", "black"), gold_choice=2)
    samples = ["The answer is A.", "The answer is A.", "The answer is blue.", "The answer is C.", "The answer is (C) blue."]
    result = score_samples([example], [samples], [[5] * 5], ks=[1, 3, 5])
    record = result.records[0]
    assert record.correct == [False, False, True, True, True]
    assert record.majority == "C" and record.scores["maj@5"] == 1.0
    assert record.scores["maj@3"] == 0.0  # A, A, blue: A leads
    undecided = score_samples([example], [["no idea", "maybe", "(D)"]], [[2] * 3], ks=[1, 3])
    assert undecided.records[0].majority == "D" and undecided.records[0].scores["maj@3"] == 0.0
