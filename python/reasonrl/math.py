"""Math answer verification: is a model's final answer equal to the reference answer?

Everything runs in the Rust core (no sympy, no Python in the loop): ``verify_batch`` checks
thousands of pairs per second per core with the GIL released, and every pair is bounded by its
own time budget, so no input can hang a training run; an undecidable pair scores ``False``.

Extraction (``extract_answer``, and ``pred``/``gold`` in ``verify``), first rule that matches:

1. the last ``\\boxed{...}`` or ``\\fbox{...}`` (nested braces; ``\\boxed 5`` too), joined with boxes
   written right before it with nothing in between (``\\boxed{1}\\boxed{2}`` reads ``1, 2``);
   earlier boxes separated by text are ignored, since solutions box intermediate results too;
2. the last ``<answer>...</answer>`` block (rules 3–4 apply inside it, else it is taken whole);
   a block after the last box wins over it, since a box inside ``<think>`` is a draft;
3. the last answer phrase — "final answer is", "the answer is", "answer:" (any case) — or
   GSM8K's ``####``, whichever comes last: the math span right after it, else the rest of the
   sentence;
4. the last math span ``$...$``, ``$$...$$``, ``\\(...\\)`` or ``\\[...\\]``;
5. otherwise the whole text is the answer (a bare answer such as ``3/4`` or ``x = 2 or x = 3``).

An answer that is prose rather than math ("The volume is 120 cubic units.", ``1,000.99 €``) is
read as its last number; malformed LaTeX (``\\frac{1}{``) is not, and does not verify.

Equivalence policies:

- Formatting never matters: ``\\left``/``\\right``, spacing (``\\,``, ``\\!``), ``\\dfrac`` vs
  ``\\frac``, ``$``, ``\\text{}``/``\\mathrm{}`` wrappers, letter case of word answers.
- Numbers compare exactly as rationals: ``0.5 = 1/2 = \\frac{2}{4}``; thousands separators
  ``1{,}000`` and ``10,\\!000`` anywhere, ``7,425,000`` and ``1 000`` outside brackets (inside,
  the comma separates coordinates), never ``32, 349``; ``2\\frac{1}{2}`` is the mixed number 5/2;
  ``0.\\overline{3} = 1/3``; scientific notation; ``28_9`` (a numeral in base 9) equals only
  itself.
- Float tolerance: when either side contains a decimal literal and the values are not exactly
  equal, they are compared with relative tolerance ``rel_tol`` (default ``1e-6``:
  ``0.333333 = 1/3`` but ``0.33 ≠ 1/3``). Irrational values (``\\sqrt2``, ``\\pi``) are compared in
  floating point with a 1e-9 relative tolerance, so ``3.14 ≠ \\pi``.
- Percent: ``p\\%`` equals both ``p/100`` and ``p`` (``50\\% = 0.5 = 50``), because questions
  that ask "what percent" are answered both ways.
- Expressions with variables are equal when they agree at several pseudo-random points
  (``(x+1)^2 = x^2+2x+1``), a sound test for elementary expressions: two different ones agree at
  random points with probability ~0.
- Structures: lists of answers (``2, 3``; ``x = 2 or x = 3``) and sets (``\\{3, 2\\}``) compare
  as sets, free of order and repetition (``1, 1, 2`` = ``1, 2``); tuples, points, vectors and
  matrices are ordered, and a set is not a tuple; a pair ``(a, b)`` equals the open interval with
  the same ends; interval ends and brackets must match; unions are order-free; ``a \\pm b`` is
  the list ``a + b, a - b``; a one-variable inequality (``x > 3``) equals the interval it
  describes; a one-element set equals its element.
- Equations: ``x = 3`` equals ``3`` and ``y = 2x + 1`` equals ``2x + 1`` (the value of an
  assignment to a name or ``f(x)``), but ``a + 3z = 0`` equals neither side; a worked chain
  ``x = 5 + 6 = 11`` counts by its ends, and ``\\approx`` after an exact result is ignored. Two
  equations are equal when one is a nonzero multiple of the other (``y = 2x + 1`` and
  ``2x - y + 1 = 0``); two inequalities when one is a positive multiple (``x < 1``, ``-x > -1``).
- Units and words after a quantity are dropped (``5\\text{ cm}``, ``12 apples``, ``30^\\circ``,
  ``\\$5``); multiple-choice letters compare as letters (``(B)``, ``\\text{(B)}``, ``B``).
- Never equal: different values, a tuple in another order, a different interval end or
  bracket, a partial answer (``2`` for ``2, 3``), an extra answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from reasonrl import _core
from reasonrl.errors import InvalidInputError
from reasonrl.rewards import completion_text

__all__ = ["extract_answer", "math_accuracy", "parse", "verify", "verify_batch"]

DEFAULT_TIMEOUT_S = 1.0
DEFAULT_REL_TOL = 1e-6


def extract_answer(text: str) -> str | None:
    """The final answer in a model response, or ``None`` if it has no answer marker.

    See the module docstring for the order in which markers are tried.
    """
    return _core.math_extract_answer(text)


def verify(
    gold: str,
    pred: str,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    rel_tol: float = DEFAULT_REL_TOL,
) -> bool:
    """Whether ``pred`` gives the same answer as ``gold``.

    Args:
        gold: the reference answer, bare (``\\frac{1}{2}``) or wrapped (``$...$``, ``\\boxed{}``).
        pred: a bare answer or a whole model response (its final answer is extracted first).
        timeout_s: time budget for this pair; when it runs out the verdict is ``False``.
        rel_tol: relative tolerance when a decimal literal is involved.

    Returns:
        ``True`` if the answers are equal under the policies in the module docstring. Invalid
        text (malformed LaTeX, lone surrogates) is not an error: it just does not verify.

    Raises:
        InvalidInputError: ``gold``/``pred`` not ``str``, ``timeout_s <= 0`` or ``rel_tol < 0``.
    """
    return _core.math_verify(gold, pred, timeout_s=timeout_s, rel_tol=rel_tol)


def verify_batch(
    golds: Sequence[str],
    preds: Sequence[str],
    *,
    threads: int | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    rel_tol: float = DEFAULT_REL_TOL,
) -> list[bool]:
    """``verify(golds[i], preds[i])`` for every i, in parallel with the GIL released.

    Args:
        golds, preds: sequences of ``str`` of equal length.
        threads: worker threads for this call (default: ``reasonrl.get_num_threads()``).
        timeout_s: time budget for *each* pair.
        rel_tol: as in ``verify``.

    Raises:
        InvalidInputError: a single ``str`` instead of a sequence, different lengths, a
            non-``str`` item (the message gives its index), ``timeout_s <= 0`` or ``rel_tol < 0``.
    """
    return _core.math_verify_batch(
        golds, preds, threads=threads, timeout_s=timeout_s, rel_tol=rel_tol
    )


def parse(text: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> str:
    """The canonical form of the answer in ``text``, for seeing why a verdict came out as it did.

    The answer is extracted first (like ``pred`` in ``verify``), then printed fully
    parenthesised: ``parse("$\\frac{x+1}{2}$")`` → ``'((x + 1) / 2)'``; structures print as
    ``Tuple(...)``, ``Set{...}``, ``Interval[a, b)``, ``List[...]``, ``Matrix[...]``.

    Raises:
        InvalidInputError: the answer cannot be parsed (the message says why).
    """
    return _core.math_parse(text, timeout_s=timeout_s)


def math_accuracy(
    completions: Sequence[Any],
    answer: Sequence[str] | None = None,
    *,
    threads: int | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    **kwargs: Any,
) -> list[float]:
    """Reward function for TRL's ``GRPOTrainer`` / open-r1: 1.0 per correct completion, else 0.0.

    Args:
        completions: model outputs, as strings or as chat-message lists
            (``[{"role": "assistant", "content": "..."}]``; the assistant messages are scored).
        answer: the reference answer of each completion's prompt (the data set's ``answer``
            column, passed by the trainer as a keyword argument); open-r1's data sets call
            it ``solution``, which serves when ``answer`` is not given.
        threads, timeout_s: as in ``verify_batch``.
        **kwargs: the other data set columns the trainer passes; ignored.
    """
    if answer is None:
        answer = kwargs.get("solution")
    if answer is None:
        raise InvalidInputError(
            "invalid `answer`: math_accuracy needs the data set's `answer` (or `solution`) column"
        )
    for name, values in (("completions", completions), ("answer", answer)):
        if isinstance(values, (str, bytes, dict)):  # would be read one character / key per completion
            raise InvalidInputError(f"invalid `{name}`: expected a list, got a {type(values).__name__}")
    if len(answer) != len(completions):
        raise InvalidInputError(f"invalid `answer`: {len(answer)} answers for {len(completions)} completions")
    preds = [completion_text(c, i) for i, c in enumerate(completions)]
    verdicts = verify_batch(list(answer), preds, threads=threads, timeout_s=timeout_s)
    return [1.0 if ok else 0.0 for ok in verdicts]
