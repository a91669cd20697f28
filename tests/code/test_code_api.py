"""reasonrl.code: test styles, statuses, the reward function, input validation, and the
guarantees of a batch call (GIL released, bounded concurrency, warnings)."""

from __future__ import annotations

import dataclasses
import threading
import time
import warnings

import pytest

import reasonrl.code as code
from reasonrl.code import CodeResult, code_reward, extract_code, run_tests, sandbox_capabilities, submitted_program
from reasonrl.data import Example
from reasonrl.errors import InvalidInputError
from reasonrl.evaluation import code_columns, score_samples
from reasonrl.rewards import Component, RewardSpec

ADD = "def add(a, b):\n    return a + b\n"
ECHO_SUM = "print(sum(map(int, input().split())))\n"


def test_asserts_are_counted_one_by_one():
    [result] = run_tests([ADD], [["assert add(1, 2) == 3", "assert add(1, 1) == 3", "assert add(0, 0) == 0"]])
    assert result.status == "failed"
    assert (result.tests_passed, result.tests_total) == (2, 3)
    assert result.fraction == pytest.approx(2 / 3)
    assert not result.passed
    assert "AssertionError" in result.stderr_tail and "test_1.py" in result.stderr_tail


def test_a_single_snippet_is_one_test_case():
    [result] = run_tests([ADD], ["def check(f):\n    assert f(2, 2) == 4\ncheck(add)"])
    assert result.passed and result.fraction == 1.0 and result.tests_total == 1
    assert result.wall_time_s > 0


def test_stdin_stdout_pairs_compare_tokens():
    cases = [("1 2\n", "3"), ("5 5", "10\n\n"), ("2 2", "  4  ")]
    [result] = run_tests([ECHO_SUM], [cases])
    assert result.passed and result.tests_passed == 3
    [wrong] = run_tests([ECHO_SUM], [[("1 2", "3"), ("1 1", "3")]])
    assert wrong.status == "failed" and wrong.tests_passed == 1
    [dicts] = run_tests([ECHO_SUM], [[{"input": "1 2", "output": "3"}]])
    assert dicts.passed


def test_stdin_program_may_exit_explicitly():
    program = "import sys\nprint(int(input()) * 2)\nsys.exit(0)\n"
    assert run_tests([program], [[("21", "42")]])[0].passed
    failing = "import sys\nprint(int(input()) * 2)\nsys.exit(3)\n"
    assert run_tests([failing], [[("21", "42")]])[0].status == "failed"


@pytest.mark.parametrize(
    ("program", "tests", "status"),
    [
        ("def f(:\n", "assert True", "syntax_error"),
        ("x = 1\x00", "assert True", "syntax_error"),
        ("raise ValueError('boom')", "assert True", "failed"),
        ("while True:\n    pass\n", "assert True", "timeout"),
        ("x = bytearray(1 << 40)", "assert True", "memory"),
        ("import os\nos.abort()", "assert True", "crashed"),
        ("print('x' * (3 << 20))", "assert True", "output_limit"),
        ("x = 1", "assert x == 2", "failed"),
        ("x = 1", "assert x == 1", "passed"),
    ],
)
def test_statuses(program, tests, status):
    [result] = run_tests([program], [tests], timeout_s=2.0, memory_mb=256, max_output_mb=1)
    assert result.status == status, result


def test_syntax_error_of_an_stdin_program_stops_after_the_first_case():
    [result] = run_tests(["print(("], [[("1", "1"), ("2", "2"), ("3", "3")]])
    assert result.status == "syntax_error" and result.tests_passed == 0 and result.tests_total == 3


@pytest.mark.parametrize(
    "hack",
    [
        "import sys\nsys.exit(0)",  # exit before the asserts run
        "import os\nos._exit(0)",
        # Fake verdicts on stdout and on every plausible descriptor.
        "import os\nfor fd in range(3, 64):\n    try:\n        os.write(fd, b'x test_ok 0\\nx done -1\\n')\n"
        "    except OSError:\n        pass\nos._exit(0)",
    ],
)
def test_early_exit_and_fake_verdicts_do_not_pass(hack):
    [result] = run_tests([hack], [["assert False"]])
    assert result.status == "failed" and result.tests_passed == 0, result


def test_programs_run_as_main_with_a_clean_namespace():
    program = "assert __name__ == '__main__'\nassert sorted(k for k in globals() if not k.startswith('__')) == []\n"
    assert run_tests([program], ["pass"])[0].passed


def test_extract_code_takes_the_last_python_or_bare_block():
    text = "Plan:\n```python\nx = 1\n```\nthen\n```\ny = 2\n```\n```text\nnot code\n```\n"
    assert extract_code(text) == "y = 2\n"
    assert extract_code("```py\nz = 3\n```") == "z = 3\n"
    assert extract_code("```bash\nls\n```") == "ls\n"
    assert extract_code("no code here") == ""


def test_code_reward_accepts_strings_and_chat_messages():
    good = f"Here it is:\n```python\n{ADD}```"
    chat = [{"role": "assistant", "content": good}]
    rewards = code_reward(
        [good, chat, "I cannot do this.", "```python\ndef add(a, b):\n    return a - b\n```"],
        [["assert add(1, 2) == 3", "assert add(2, 2) == 4"]] * 3 + [["assert add(1, 0) == 1", "assert add(1, 1) == 2"]],
        prompts=["ignored"] * 4,  # used only with an entry point the code does not define
        timeout_s=5.0,
    )
    assert rewards == [1.0, 1.0, 0.0, 0.5]


HUMANEVAL_PROMPT = 'def add(a, b):\n    """The sum of a and b."""\n'
BODY = "    return a + b\n"


def test_the_training_reward_reads_a_program_as_evaluation_does():
    """One rule for both: a policy trained on code is measured by the rule it was rewarded by."""
    example = Example("he/0", HUMANEVAL_PROMPT, tests="def check(f):\n    assert f(1, 2) == 3\n\ncheck(add)\n", entry_point="add")
    forms = [
        BODY,  # a base model continuing the prompt
        HUMANEVAL_PROMPT + BODY,
        f"```python\n{HUMANEVAL_PROMPT}{BODY}```",
        f"Here:\n```python\n{BODY}```",
        f"<think>```python\ndef add(a, b): return 0\n```</think><answer>```python\n{HUMANEVAL_PROMPT}{BODY}```</answer>",
        "    return a - b\n",
        "I cannot do this.",
    ]
    expected = [1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0]
    n = len(forms)
    spec = RewardSpec([Component("acc", "code_accuracy")])
    rewarded = spec.score(forms, prompts=[example.prompt] * n, tests=[example.tests] * n, **code_columns([example] * n))
    assert rewarded.components["acc"].tolist() == expected
    assert score_samples([example], [forms], [[1] * n]).records[0].correct == [v == 1.0 for v in expected]


def test_a_prose_prompt_is_never_put_before_the_code():
    """MBPP's prompt is prose: a solution that defines its function another way (a lambda) is
    run as it is, not after a sentence that cannot compile."""
    mbpp = Example("mbpp/1", "Write a function to add two numbers. Your code should pass: assert add(1, 2) == 3",
                   tests=("assert add(1, 2) == 3",), entry_point="add")
    forms = ["```python\nadd = lambda a, b: a + b\n```", "```python\nasync def helper():\n    pass\nadd = lambda a, b: a + b\n```"]
    rewarded = RewardSpec([Component("acc", "code_accuracy")]).score(
        forms, prompts=[mbpp.prompt] * 2, tests=[mbpp.tests] * 2, **code_columns([mbpp] * 2))
    assert rewarded.components["acc"].tolist() == [1.0, 1.0]
    assert submitted_program(BODY, prompt=HUMANEVAL_PROMPT, entry_point="add").startswith(HUMANEVAL_PROMPT)


def test_setup_code_runs_after_the_program():
    """MBPP 367 and 927: the setup builds trees of the Node class that the solution defines."""
    solution = "class Node:\n    def __init__(self, v):\n        self.v = v\n"
    setup = "root = Node(1)\r\n"
    program = submitted_program(f"```python\n{solution}```", setup_code=setup)
    assert program == f"{solution}\nroot = Node(1)\n"
    assert code_reward([f"```python\n{solution}```"], [["assert root.v == 1"]], test_setup_code=[setup]) == [1.0]
    with pytest.raises(InvalidInputError, match="invalid `test_setup_code`: length 2 does not match 1"):
        code_reward([solution], [["pass"]], test_setup_code=[setup, setup])


def test_bad_input_is_rejected_before_anything_runs():
    with pytest.raises(InvalidInputError, match="2 test suites for 1 programs"):
        run_tests([ADD], ["pass", "pass"])
    with pytest.raises(InvalidInputError, match="no test cases"):
        run_tests([ADD], [[]])
    with pytest.raises(InvalidInputError, match=r"tests\[0\]"):
        run_tests([ADD], [[1, 2]])
    with pytest.raises(InvalidInputError, match="timeout_s"):
        run_tests([ADD], ["pass"], timeout_s=0)
    with pytest.raises(InvalidInputError, match="memory_mb"):
        run_tests([ADD], ["pass"], memory_mb=1)
    with pytest.raises(InvalidInputError, match="interpreter"):
        run_tests([ADD], ["pass"], interpreter="/nonexistent/python")
    with pytest.raises(InvalidInputError):
        run_tests(ADD, ["pass"])
    with pytest.raises(InvalidInputError, match="completions"):
        code_reward([None], ["pass"])


def test_capabilities_are_a_frozen_record():
    caps = sandbox_capabilities()
    assert caps is sandbox_capabilities()
    assert isinstance(caps.missing, tuple)
    with pytest.raises(dataclasses.FrozenInstanceError):
        caps.landlock = False  # type: ignore[misc]


def test_missing_protections_are_warned_about_once(monkeypatch):
    reduced = dataclasses.replace(sandbox_capabilities(), missing=("no network namespace: ...",))
    monkeypatch.setattr(code, "_capabilities", reduced)
    monkeypatch.setattr(code, "_warned", False)
    with pytest.warns(RuntimeWarning, match="no network namespace"):
        run_tests(["x = 1"], ["pass"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run_tests(["x = 1"], ["pass"])


def test_gil_is_released_and_concurrency_is_bounded():
    """While a batch of sleeping programs runs, Python threads keep running; with 2 workers,
    4 programs of 0.5 s take about 1 s (two waves), not 0.5 s (all at once)."""
    ticks = 0
    done = threading.Event()

    def count():
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            time.sleep(0.001)

    counter = threading.Thread(target=count)
    counter.start()
    started = time.monotonic()
    try:
        results = run_tests(["import time\ntime.sleep(0.5)"] * 4, ["pass"] * 4, threads=2)
    finally:
        done.set()
        counter.join()
    elapsed = time.monotonic() - started
    assert all(isinstance(r, CodeResult) and r.passed for r in results)
    assert elapsed >= 1.0, elapsed
    assert ticks > 100, ticks


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"programs": [None]}, r"`programs`: entry 0 is a NoneType"),
        ({"programs": [b"x = 1"]}, r"`programs`: entry 0 is a bytes"),
        ({"timeout_s": "x"}, r"`timeout_s`: expected a number, got 'x'"),
        ({"timeout_s": float("nan")}, r"`timeout_s`: expected a number > 0"),
        ({"memory_mb": 1.9}, r"`memory_mb`: expected a whole number, got 1.9"),
        ({"memory_mb": -1}, r"`memory_mb`: expected a number > 0"),
        ({"memory_mb": 2**70}, r"`memory_mb`: .*at most 2\*\*40"),
        ({"max_output_mb": 0}, r"`max_output_mb`: expected a number > 0"),
    ],
)
def test_bad_arguments_are_named_before_anything_runs(kwargs, message):
    call = {"programs": ["x = 1"], "tests": ["assert x == 1"], **kwargs}
    with pytest.raises(InvalidInputError, match=message):
        run_tests(call.pop("programs"), call.pop("tests"), **call)
    with pytest.raises(InvalidInputError, match=r"`text`: expected a str"):
        extract_code(None)
