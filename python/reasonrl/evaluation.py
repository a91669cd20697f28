"""Scoring of generated samples: pass@1, pass@k, maj@k, response length and format rate.

``score_samples`` is pure: it takes examples and the completions already sampled for them (n per
problem) and returns an :class:`EvalResult`. Generation lives with the model code.

- pass@k is the unbiased estimator of Chen et al. (2021): with n samples of which c are correct,
  the chance that k drawn without replacement contain a correct one, 1 − C(n−c, k) / C(n, k).
  pass@1 is then c/n, the sampled accuracy (greedy accuracy when n = 1 and decoding is greedy).
- maj@k (self-consistency, Wang et al. 2022) votes among the final answers of the first k
  samples: answers that ``reasonrl.math.verify`` finds equal share a bucket (``\\frac12``,
  ``0.5`` and ``1/2`` are one vote), the biggest bucket wins (ties: the one seen first), and the
  problem counts as solved when the winning answer is right.
- Math answers are checked with ``reasonrl.math.verify_batch``, multiple-choice answers and the
  format with the same ``RewardSpec`` components training uses, code with
  ``reasonrl.code.run_tests`` when that module is present.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from reasonrl.data.examples import Example
from reasonrl.errors import InvalidInputError
from reasonrl.math import extract_answer, verify_batch
from reasonrl.rewards import Component, RewardSpec, chosen_options

__all__ = [
    "EvalResult",
    "ProblemRecord",
    "code_columns",
    "code_program",
    "majority_answer",
    "majority_vote",
    "running_votes",
    "maj_at_k",
    "pass_at_k",
    "score_samples",
]

# Voting compares short extracted answers, which verify in microseconds; the budget only bounds
# a pathological pair so that k × buckets comparisons can never stall an evaluation.
VOTE_TIMEOUT_S = 0.5


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased pass@k estimate from ``n`` samples of which ``c`` are correct.

    Computed as 1 − ∏_{i=n−c+1}^{n} (1 − k/i), which equals 1 − C(n−c, k)/C(n, k) without the
    huge binomials (Chen et al. 2021).

    Raises:
        InvalidInputError: a non-integer argument, ``k < 1``, ``c`` outside ``[0, n]`` or
            ``n < k``.
    """
    for name, value in (("n", n), ("c", c), ("k", k)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise InvalidInputError(f"invalid `{name}`: expected an integer, got {value!r}")
    if k < 1:
        raise InvalidInputError(f"invalid `k`: must be at least 1, got {k}")
    if n < k:
        raise InvalidInputError(f"invalid `n`: pass@{k} needs at least k = {k} samples, got n = {n}")
    if not 0 <= c <= n:
        raise InvalidInputError(f"invalid `c`: the number correct must be in [0, n = {n}], got {c}")
    if n - c < k:  # every k-subset holds a correct sample
        return 1.0
    if k == 1:
        return c / n
    # C(n−c, k)/C(n, k) as a product of min(c, k) factors: ∏_{i=n−c+1}^{n} (1 − k/i), or
    # ∏_{j<k} (n−c−j)/(n−j). Past a million factors (absurd sample counts), log-gamma instead.
    if min(c, k) > 1_000_000:
        return 1.0 - math.exp(math.lgamma(n - c + 1) - math.lgamma(n - c - k + 1) - math.lgamma(n + 1) + math.lgamma(n - k + 1))
    miss = 1.0
    if c <= k:
        for i in range(n - c + 1, n + 1):
            miss *= 1.0 - k / i
    else:
        for j in range(k):
            miss *= (n - c - j) / (n - j)
    return 1.0 - miss


# A vote's outcome: (winning answer, index of its first completion, number of votes).
Vote = tuple[str | None, int | None, int]


def majority_vote(completions: Sequence[str], *, timeout_s: float = VOTE_TIMEOUT_S) -> Vote:
    """The most common final answer among ``completions``, up to mathematical equivalence.

    Returns:
        ``(answer, index, votes)``: the winning answer as first written, the index of the first
        completion that gave it, and the size of its bucket; ``(None, None, 0)`` when every
        completion is blank. A completion without an answer marker votes with its whole text,
        the answer ``verify`` would read from it.

    Each new answer is compared with one representative per bucket (an exact repeat costs a dict
    lookup), so the work is at most k × buckets ``verify`` calls, one batched call per answer.
    """
    return running_votes(completions, timeout_s=timeout_s)[-1] if completions else (None, None, 0)


def running_votes(completions: Sequence[str], *, timeout_s: float = VOTE_TIMEOUT_S) -> list[Vote]:
    """``majority_vote(completions[:k])`` for every k = 1..n, in one pass over the answers."""
    representatives: list[str] = []
    first_index: list[int] = []
    votes: list[int] = []
    bucket_of: dict[str, int] = {}
    out: list[Vote] = []
    for index, completion in enumerate(completions):
        if not isinstance(completion, str):
            raise InvalidInputError(
                f"invalid `completions`: completions[{index}] is {type(completion).__name__}, expected str"
            )
        # No answer marker: the whole text is the answer, as in ``verify``'s extraction rule 5.
        answer = (extract_answer(completion) or completion).strip()
        if answer:
            bucket = bucket_of.get(answer)
            if bucket is None and representatives:
                same = verify_batch(representatives, [answer] * len(representatives), timeout_s=timeout_s)
                bucket = next((b for b, equal in enumerate(same) if equal), None)
            if bucket is None:
                bucket = len(representatives)
                representatives.append(answer)
                first_index.append(index)
                votes.append(0)
            bucket_of[answer] = bucket
            votes[bucket] += 1
        if votes:
            # max() keeps the first of equal keys, so ties go to the bucket seen first.
            winner = max(range(len(votes)), key=votes.__getitem__)
            out.append((representatives[winner], first_index[winner], votes[winner]))
        else:
            out.append((None, None, 0))
    return out


def running_option_votes(options: Sequence[int | None]) -> list[Vote]:
    """`running_votes` for multiple choice: the votes are the options chosen (0-based, None for
    a sample that chose none, which does not vote); the answer is the option's letter."""
    votes: dict[int, int] = {}
    first_index: dict[int, int] = {}
    out: list[Vote] = []
    for index, option in enumerate(options):
        if option is not None:
            votes[option] = votes.get(option, 0) + 1
            first_index.setdefault(option, index)
        if votes:
            # Ties go to the option chosen first (dicts keep insertion order; max keeps the first).
            winner = max(votes, key=votes.__getitem__)
            out.append((_option_letter(winner), first_index[winner], votes[winner]))
        else:
            out.append((None, None, 0))
    return out


def _option_letter(option: int) -> str:
    return chr(ord("A") + option) if option < 26 else str(option)


def majority_answer(completions: Sequence[str]) -> str | None:
    """The majority final answer of ``completions`` (see :func:`majority_vote`), or ``None``."""
    return majority_vote(completions)[0]


def maj_at_k(completions: Sequence[str], gold: str, k: int | None = None) -> bool:
    """Whether the majority answer of the first ``k`` completions (default: all) equals ``gold``."""
    if k is not None and not 1 <= k <= len(completions):
        raise InvalidInputError(f"invalid `k`: must be in [1, {len(completions)}], got {k}")
    answer = majority_answer(completions[:k] if k is not None else completions)
    return answer is not None and verify_batch([gold], [answer])[0]


@dataclass
class ProblemRecord:
    """The scores of one problem's samples.

    ``correct`` is ``None`` when the problem could not be scored (``note`` says why); ``scores``
    holds this problem's ``pass@k`` and ``maj@k`` values; ``completions`` the samples' texts.
    """

    id: str
    kind: str
    n_samples: int
    n_correct: int | None
    correct: list[bool] | None
    scores: dict[str, float]
    majority: str | None
    tokens: list[int]
    format_ok: list[bool]
    truncated: list[bool] | None
    note: str | None = None
    completions: list[str] = field(default_factory=list)  # the samples as generated


@dataclass
class EvalResult:
    """Per-problem records and the summary over all problems.

    ``summary`` keys: ``pass@1``, ``pass@k`` for every requested k (≤ the samples per problem),
    ``maj@k`` for every requested k ≥ 2, ``mean_tokens``, ``format_rate``, ``truncated_rate``
    (``None`` when truncation was not given), ``n_problems`` (problems scored), ``n_samples``
    and, when some problems could not be scored, ``n_unscored``. ``notes`` explains anything left
    out. ``result["pass@1"]`` reads the summary.
    """

    records: list[ProblemRecord]
    summary: dict[str, float | int | None]
    notes: list[str] = field(default_factory=list)

    def __getitem__(self, key: str) -> float | int | None:
        return self.summary[key]

    def metrics(self, prefix: str = "eval/") -> dict[str, float]:
        """The numeric summary entries with ``prefix``, for the metrics log (``eval/pass@1``)."""
        return {f"{prefix}{key}": float(value) for key, value in self.summary.items() if value is not None}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: ``{"summary": ..., "notes": [...], "problems": [...]}``."""
        return {
            "summary": dict(self.summary),
            "notes": list(self.notes),
            "problems": [asdict(record) for record in self.records],
        }

    def table(self) -> str:
        """The summary as an aligned two-column text table, notes underneath."""
        rows = [(key, _format_value(key, value)) for key, value in self.summary.items()]
        width = max(len("metric"), *(len(key) for key, _ in rows))
        value_width = max(len("value"), *(len(value) for _, value in rows))
        lines = [f"{'metric':<{width}}  {'value':>{value_width}}", f"{'-' * width}  {'-' * value_width}"]
        lines += [f"{key:<{width}}  {value:>{value_width}}" for key, value in rows]
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)


def _format_value(key: str, value: float | int | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return str(value)
    if key == "mean_tokens":
        return f"{value:.1f}"
    return f"{value:.4f}"


def score_samples(
    examples: Sequence[Example],
    completions: Sequence[Sequence[str]],
    token_counts: Sequence[Sequence[int]],
    *,
    ks: Iterable[int] = (1,),
    truncated: Sequence[Sequence[bool]] | None = None,
    think_in_prompt: bool = True,
    answer_tag: bool = False,
    threads: int | None = None,
) -> EvalResult:
    """Scores already generated samples.

    Args:
        examples: P problems.
        completions: for each problem its n ≥ 1 sampled completions (response text only).
        token_counts: the response length in tokens of each completion, same shape.
        ks: the k of pass@k (and of maj@k for k ≥ 2). pass@1 is always reported; a k above the
            samples of some problem is left out, with a note.
        truncated: whether each completion hit the token limit, same shape (optional).
        think_in_prompt: the prompt already opened ``<think>`` (the R1-Zero template), for the
            format check.
        answer_tag: grade only the inside of a closed ``<answer>…</answer>`` block (a sample
            without one is wrong), as the ``answer_tag`` option of the ``math_accuracy``
            reward does; majority votes count those answers too.
        threads: worker threads for the batched checks.

    Returns:
        An :class:`EvalResult`. Math problems are checked in one ``verify_batch`` call,
        multiple-choice ones in one ``RewardSpec`` call; code problems need ``reasonrl.code``
        and are otherwise reported as unscored, with a note.

    Raises:
        InvalidInputError: no examples, mismatched lengths or shapes, a problem with no
            samples, a problem with nothing to score against, or a bad ``ks``.
    """
    problems = len(examples)
    if problems == 0:
        raise InvalidInputError("invalid `examples`: no problems to score")
    for name, value in (("completions", completions), ("token_counts", token_counts), ("truncated", truncated)):
        if value is not None and len(value) != problems:
            raise InvalidInputError(
                f"invalid `{name}`: {len(value)} entries for {problems} examples"
            )
    sizes = []
    for p in range(problems):
        n = len(completions[p])
        if n == 0:
            raise InvalidInputError(f"invalid `completions`: completions[{p}] is empty")
        if isinstance(completions[p], str):
            raise InvalidInputError(
                f"invalid `completions`: completions[{p}] is a string; expected a list of samples"
            )
        if len(token_counts[p]) != n:
            raise InvalidInputError(
                f"invalid `token_counts`: token_counts[{p}] has {len(token_counts[p])} entries for {n} completions"
            )
        if truncated is not None and len(truncated[p]) != n:
            raise InvalidInputError(
                f"invalid `truncated`: truncated[{p}] has {len(truncated[p])} entries for {n} completions"
            )
        if examples[p].kind == "none":
            raise InvalidInputError(
                f"invalid `examples`: examples[{p}] ({examples[p].id!r}) has no answer, choices or "
                "tests to score against"
            )
        sizes.append(n)
    k_values = _check_ks(ks)

    texts = [text for samples in completions for text in samples]
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise InvalidInputError(f"invalid `completions`: sample {i} is {type(text).__name__}, expected str")
    format_texts = texts
    if answer_tag:
        completions = [[answer_block(text) or "" for text in samples] for samples in completions]
        texts = [text for samples in completions for text in samples]
    correct, notes = _correctness(examples, texts, sizes, threads)
    format_spec = RewardSpec([
        Component("format", "format", 1.0, {"strict": False, "think_in_prompt": think_in_prompt})
    ])
    format_ok = (format_spec.score(format_texts, threads=threads).components["format"] >= 1.0).tolist()

    scored = [p for p in range(problems) if correct[p] is not None]
    if scored:
        fewest = min(sizes[p] for p in scored)
        too_big = sorted(k for k in k_values if k > fewest)
        if too_big:
            notes.append(f"left out k = {too_big}: some problems have only {fewest} sample(s)")
            k_values -= set(too_big)
    pass_ks = sorted(k_values | {1})
    maj_ks = sorted(k for k in k_values if k >= 2)

    # The option each multiple-choice sample chose, read as `choice_accuracy` reads it: their
    # majority is over options, not over the math answers the texts hold.
    choice_problems = [p for p, e in enumerate(examples) if e.kind == "choice" and correct[p] is not None]
    flat_options = chosen_options(
        [text for p in choice_problems for text in completions[p]],
        [examples[p].choices or () for p in choice_problems for _ in completions[p]],
        threads=threads,
    ) if choice_problems else []
    options_of: dict[int, list[int | None]] = {}
    for p in choice_problems:
        options_of[p], flat_options = flat_options[: sizes[p]], flat_options[sizes[p] :]

    records = []
    start = 0
    for p, example in enumerate(examples):
        n = sizes[p]
        verdicts = correct[p]
        scores: dict[str, float] = {}
        majority = None
        if verdicts is not None:
            c = sum(verdicts)
            scores = {f"pass@{k}": pass_at_k(n, c, k) for k in pass_ks}
            if example.kind != "code":
                votes = running_option_votes(options_of[p]) if p in options_of else running_votes(completions[p])
                for k in maj_ks:
                    # Members of a bucket are equivalent, so the bucket's first completion
                    # stands for the majority answer: its verdict is the maj@k verdict.
                    index = votes[k - 1][1]
                    scores[f"maj@{k}"] = float(index is not None and verdicts[index])
                majority = votes[-1][0]
        records.append(ProblemRecord(
            id=example.id,
            kind=example.kind,
            n_samples=n,
            n_correct=None if verdicts is None else sum(verdicts),
            correct=verdicts,
            scores=scores,
            majority=majority,
            tokens=[int(t) for t in token_counts[p]],
            format_ok=format_ok[start:start + n],
            truncated=None if truncated is None else [bool(t) for t in truncated[p]],
            note=None if verdicts is not None else "not scored: no code runner (reasonrl.code)",
            completions=format_texts[start:start + n],
        ))
        start += n

    voteless = sum(1 for r in records if r.kind == "code" and r.correct is not None)
    if maj_ks and voteless:
        notes.append(f"maj@k leaves out the {voteless} code problem(s): programs have no final answer to vote on")
    summary: dict[str, float | int | None] = {}
    for key in [f"pass@{k}" for k in pass_ks] + [f"maj@{k}" for k in maj_ks]:
        values = [r.scores[key] for r in records if key in r.scores]
        summary[key] = float(np.mean(values)) if values else None
    all_tokens = [t for r in records for t in r.tokens]
    summary["mean_tokens"] = float(np.mean(all_tokens))
    summary["format_rate"] = float(np.mean(format_ok))
    summary["truncated_rate"] = (
        None if truncated is None else float(np.mean([t for r in records for t in r.truncated or []]))
    )
    summary["n_problems"] = len(scored)
    summary["n_samples"] = len(texts)
    if len(scored) < problems:
        summary["n_unscored"] = problems - len(scored)
    return EvalResult(records=records, summary=summary, notes=notes)


def _check_ks(ks: Iterable[int]) -> set[int]:
    if isinstance(ks, (int, str)):
        raise InvalidInputError(f"invalid `ks`: expected a sequence of integers such as (1, 8), got {ks!r}")
    values = set()
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise InvalidInputError(f"invalid `ks`: every k must be an integer ≥ 1, got {k!r}")
        values.add(int(k))
    return values


def _correctness(
    examples: Sequence[Example], texts: list[str], sizes: list[int], threads: int | None
) -> tuple[list[list[bool] | None], list[str]]:
    """Per problem, the verdict of each sample (``None`` for a problem that cannot be scored)."""
    owner = [p for p, size in enumerate(sizes) for _ in range(size)]
    verdicts: list[bool | None] = [None] * len(texts)
    by_kind: dict[str, list[int]] = {"math": [], "choice": [], "code": []}
    for i, p in enumerate(owner):
        by_kind[examples[p].kind].append(i)
    notes: list[str] = []

    if by_kind["math"]:
        idx = by_kind["math"]
        golds = [examples[owner[i]].answer or "" for i in idx]
        for i, ok in zip(idx, verify_batch(golds, [texts[i] for i in idx], threads=threads)):
            verdicts[i] = ok
    if by_kind["choice"]:
        idx = by_kind["choice"]
        spec = RewardSpec([Component("acc", "choice_accuracy")])
        values = spec.score(
            [texts[i] for i in idx],
            choices=[examples[owner[i]].choices or () for i in idx],
            gold_choices=[examples[owner[i]].gold_choice or 0 for i in idx],
            threads=threads,
        ).components["acc"]
        for i, value in zip(idx, values.tolist()):
            verdicts[i] = value >= 1.0
    if by_kind["code"]:
        idx = by_kind["code"]
        run_tests = _code_runner()
        if run_tests is None:
            notes.append(
                f"{len({owner[i] for i in idx})} code problem(s) not scored: the code runner "
                "(reasonrl.code) is not part of this build"
            )
        else:
            programs = [code_program(examples[owner[i]], texts[i]) for i in idx]
            tests = [_test_code(examples[owner[i]]) for i in idx]
            for i, result in zip(idx, run_tests(programs, tests)):
                verdicts[i] = _passed(result)

    # Group the flat verdicts back per problem; samples of one problem are contiguous.
    out: list[list[bool] | None] = []
    start = 0
    for size in sizes:
        chunk = verdicts[start:start + size]
        out.append(None if any(v is None for v in chunk) else [bool(v) for v in chunk])
        start += size
    return out, notes


def _code_runner() -> Callable[..., Sequence[Any]] | None:
    """``reasonrl.code.run_tests`` if that module exists (it is optional in this build)."""
    if importlib.util.find_spec("reasonrl.code") is None:
        return None
    module = importlib.import_module("reasonrl.code")
    runner = getattr(module, "run_tests", None)
    return runner if callable(runner) else None


def _passed(result: Any) -> bool:
    if isinstance(result, Mapping):
        return bool(result.get("passed", False))
    if isinstance(result, bool):
        return result
    return bool(getattr(result, "passed", False))


def code_program(example: Example, completion: str) -> str:
    """The program a code completion submits for `example`: `reasonrl.code.submitted_program`
    with the problem's prompt, entry point and setup code (MBPP's ``test_setup_code``), the rule
    the ``code_accuracy`` reward applies in training too."""
    from reasonrl.code import submitted_program  # the optional code module (see `_code_runner`)

    return submitted_program(
        completion, prompt=example.prompt, entry_point=example.entry_point, setup_code=_setup_code(example),
    )


def code_columns(examples: Sequence[Example]) -> dict[str, list[str | None]]:
    """The per-row columns the ``code_accuracy`` reward completes programs with (besides the
    prompts), for `RewardSpec.score`: ``entry_point`` and ``test_setup_code``."""
    return {
        "entry_point": [e.entry_point for e in examples],
        "test_setup_code": [_setup_code(e) for e in examples],
    }


def _setup_code(example: Example) -> str | None:
    setup = example.meta.get("test_setup_code")
    return setup if isinstance(setup, str) else None


def _test_code(example: Example) -> str | list[str]:
    tests = example.tests
    return list(tests) if isinstance(tests, tuple) else str(tests)


def answer_block(text: str) -> str | None:
    """The inside of the last closed ``<answer>…</answer>`` block, or None (the rule of the
    Rust rewards' ``answer_tag``)."""
    open_at = text.rfind("<answer>")
    if open_at < 0:
        return None
    body = text[open_at + len("<answer>") :]
    close = body.find("</answer>")
    return body[:close] if close >= 0 else None
