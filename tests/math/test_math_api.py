"""The public ``reasonrl.math`` API: arguments, errors, extraction and the reward function."""

from __future__ import annotations

import pytest

from reasonrl import math as rmath
from reasonrl.errors import InvalidInputError


def test_extract_answer_order() -> None:
    assert rmath.extract_answer(r"first \boxed{1}, finally \boxed{\frac{1}{2}}") == r"\frac{1}{2}"
    assert rmath.extract_answer("<answer> 7 </answer>") == "7"
    assert rmath.extract_answer("The final answer is $3$. I hope it is correct.") == "3"
    assert rmath.extract_answer("9 * 2 = 18\n#### 18") == "18"
    assert rmath.extract_answer(r"we have $x$ and then \(y = 2\)") == "y = 2"
    assert rmath.extract_answer("no answer here") is None


def test_verify_options() -> None:
    assert rmath.verify("1/3", "0.3333333")
    assert not rmath.verify("1/3", "0.333")
    assert rmath.verify("1/3", "0.333", rel_tol=1e-2)
    with pytest.raises(InvalidInputError, match="timeout_s"):
        rmath.verify("1", "1", timeout_s=0)
    with pytest.raises(InvalidInputError, match="rel_tol"):
        rmath.verify("1", "1", rel_tol=-1.0)
    with pytest.raises(InvalidInputError, match="gold"):
        rmath.verify(1, "1")  # type: ignore[arg-type]


def test_verify_batch_arguments() -> None:
    assert rmath.verify_batch([], []) == []
    assert rmath.verify_batch(("1", "2"), ["1", "3"], threads=1) == [True, False]
    with pytest.raises(InvalidInputError, match="length"):
        rmath.verify_batch(["1"], ["1", "2"])
    with pytest.raises(InvalidInputError, match="item 1"):
        rmath.verify_batch(["1", None], ["1", "2"])  # type: ignore[list-item]
    with pytest.raises(InvalidInputError, match="sequence of str, got str"):
        rmath.verify_batch("12", ["1", "2"])
    with pytest.raises(InvalidInputError, match="sequence of str, got int"):
        rmath.verify_batch(["1"], 1)  # type: ignore[arg-type]


def test_parse_shows_the_structure() -> None:
    assert rmath.parse(r"$\frac{x+1}{2}$") == "((x + 1) / 2)"
    assert rmath.parse(r"[1, \infty)") == "Interval[1, inf)"
    assert rmath.parse(r"\boxed{\pm 2}") == "List[2, -2]"
    with pytest.raises(InvalidInputError):
        rmath.parse(r"\frac{1}{")


def test_lone_surrogates_do_not_raise() -> None:
    bad = "answer \ud800 is \\boxed{5}"
    assert rmath.verify("5", bad)
    assert rmath.verify_batch(["5", "\udfff"], [bad, "\udfff"]) == [True, True]
    assert rmath.extract_answer(bad) == "5"
    assert not rmath.verify("5", "\ud800")


def test_math_accuracy_accepts_strings_and_chat_messages() -> None:
    completions = [
        r"so it is \boxed{4}",
        [{"role": "assistant", "content": r"The answer is $\boxed{\frac{1}{2}}$"}],
        [{"role": "assistant", "content": "#### 7"}],
        [],
    ]
    answers = ["4", "0.5", "8", "1"]
    rewards = rmath.math_accuracy(completions, answers, prompts=["p"] * 4)
    assert rewards == [1.0, 1.0, 0.0, 0.0]
    with pytest.raises(InvalidInputError, match="answer"):
        rmath.math_accuracy(completions, None)  # type: ignore[arg-type]
