"""Inputs built to hang, overflow or crash a verifier: each returns ``False`` within its budget."""

from __future__ import annotations

import time

import pytest

from reasonrl import math as rmath

BUDGET_S = 0.5
# The budget bounds the work; the margin covers process noise on a shared CI machine.
WALL_LIMIT_S = 2.0

ADVERSARIAL = {
    "tower": r"9^{9^{9^9}}",
    "factorial": "100000!",
    "binomial": r"\binom{100000}{50000}",
    "nested_parens": "(" * 10_000 + "1" + ")" * 10_000,
    "nested_braces": "{" * 10_000 + "1" + "}" * 10_000,
    "nested_fracs": r"\frac{1}{" * 5_000 + "1" + "}" * 5_000,
    "signs": "-" * 100_000 + "1",
    "long_number": "9" * 200_000,
    "megabyte_prose": "Let us think step by step. " * 40_000,
    "megabyte_boxes": r"\boxed{" * 150_000,
    "megabyte_dollars": "$" * 1_000_000,
    "malformed_frac": r"\frac{1}{",
    "malformed_env": r"\begin{pmatrix} 1 & 2",
    "malformed_left": r"\left( 1, 2",
    "unclosed_text": r"\text{abc",
    "lone_surrogate": "\ud800\udfff",
    "control_chars": "\x00\x01\x02",
    "long_sum": "+".join(f"x^{{{i}}}" for i in range(3_000)),
}


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_returns_false_within_budget(name: str) -> None:
    text = ADVERSARIAL[name]
    start = time.perf_counter()
    assert rmath.verify("42", text, timeout_s=BUDGET_S) is False
    assert rmath.verify(text, "42", timeout_s=BUDGET_S) is False
    assert time.perf_counter() - start < 2 * WALL_LIMIT_S


def test_identical_huge_expressions_still_verify_cheaply() -> None:
    start = time.perf_counter()
    assert rmath.verify(r"9^{9^{9^9}}", r"9^{9^{9^9}}", timeout_s=BUDGET_S)
    assert not rmath.verify(r"9^{9^{9^9}}", r"9^{9^{9^8}}", timeout_s=BUDGET_S)
    assert time.perf_counter() - start < WALL_LIMIT_S


def test_megabyte_response_with_an_answer() -> None:
    response = "Let us think step by step. " * 40_000 + r"So the answer is $\boxed{42}$."
    assert len(response) > 1_000_000
    start = time.perf_counter()
    assert rmath.verify("42", response, timeout_s=BUDGET_S)
    assert time.perf_counter() - start < WALL_LIMIT_S


def test_batch_of_adversarial_inputs_is_bounded_per_item() -> None:
    preds = list(ADVERSARIAL.values())
    start = time.perf_counter()
    verdicts = rmath.verify_batch(["42"] * len(preds), preds, threads=2, timeout_s=BUDGET_S)
    assert verdicts == [False] * len(preds)
    assert time.perf_counter() - start < len(preds) * BUDGET_S
