"""Math answer verification: reasonrl vs Hugging Face math-verify, same pairs, one process.

    .venv/bin/pip install math-verify          # bench-only dependency (sympy inside)
    python benches/bench_math.py                # MATH-500 + the test corpus
    python benches/bench_math.py --limit 200    # fewer math-verify calls (it is the slow side)

Pairs: each MATH-500 solution against its own answer and against the next row's answer (half
true, half false; the solution is a whole response, so extraction is timed too), plus the
hand-built corpus in tests/math/corpus.jsonl.

Reported, single thread: checks/second for math-verify (`parse(gold)`, `parse(pred)`, `verify`)
and for reasonrl — one `verify` call per pair from Python, and `verify_batch(threads=1)` — with
the speed-up; then `verify_batch` throughput as threads grow. Also the agreement of each
verifier with the corpus's expected verdicts and with each other, per category.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reasonrl import math as rmath

REPO_ROOT = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    configured = os.environ.get("REASONRL_DATA_DIR")
    return Path(configured) if configured else REPO_ROOT.parent / "shared" / "data"


def load_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def math500_pairs() -> list[tuple[str, str]]:
    path = data_dir() / "math500" / "test.jsonl"
    if not path.exists():
        print(f"(MATH-500 not found at {path}; timing the corpus only)")
        return []
    rows = load_jsonl(path)
    own = [(r["answer"], r["solution"]) for r in rows]
    shifted = [(rows[(i + 1) % len(rows)]["answer"], r["solution"]) for i, r in enumerate(rows)]
    return own + shifted


def math_verify_checker() -> Callable[[str, str], bool] | None:
    """A `(gold, pred) -> bool` using math-verify the way its README shows, or None."""
    try:
        from math_verify import parse, verify  # type: ignore[import-untyped]
    except ImportError:
        return None

    def as_latex(text: str) -> str:
        # math-verify reads LaTeX only inside `$...$` or `\boxed{}`; bare answers get delimiters.
        return text if "$" in text or "\\boxed" in text else f"${text}$"

    def check(gold: str, pred: str) -> bool:
        try:
            return bool(verify(parse(as_latex(gold)), parse(as_latex(pred))))
        except Exception:  # math-verify raises on some inputs; count those as "not equal"
            return False

    return check


def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def time_calls(
    check: Callable[[str, str], bool], pairs: list[tuple[str, str]], repeats: int = 1
) -> tuple[float, list[bool]]:
    """Best-of-`repeats` seconds for checking all pairs one call at a time, and the verdicts."""
    best = float("inf")
    verdicts: list[bool] = []
    for _ in range(repeats):
        start = time.perf_counter()
        verdicts = [check(g, p) for g, p in pairs]
        best = min(best, time.perf_counter() - start)
    return best, verdicts


def time_batch(golds: list[str], preds: list[str], threads: int, repeats: int = 5) -> float:
    """Best-of-`repeats` seconds for one `verify_batch` call (the machine may be shared)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        rmath.verify_batch(golds, preds, threads=threads)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=0, help="pairs given to math-verify (0: all)")
    parser.add_argument("--threads", type=int, nargs="*", default=[1, 2, 4])
    args = parser.parse_args()

    corpus = load_jsonl(REPO_ROOT / "tests" / "math" / "corpus.jsonl")
    corpus_pairs = [(r["gold"], r["pred"]) for r in corpus]
    pairs = math500_pairs() + corpus_pairs
    timed = pairs[: args.limit] if args.limit else pairs
    print(f"{len(pairs)} pairs ({len(pairs) - len(corpus_pairs)} MATH-500, {len(corpus_pairs)} corpus)")

    mv_check = math_verify_checker()
    rr_single, rr_verdicts = time_calls(rmath.verify, timed, repeats=5)
    rr_batch = time_batch([g for g, _ in timed], [p for _, p in timed], threads=1)
    print("\nsingle thread, checks/second")
    print(f"  reasonrl verify() per pair    {rate(len(timed), rr_single):>12,.0f}")
    print(f"  reasonrl verify_batch(1 thr)  {rate(len(timed), rr_batch):>12,.0f}")
    if mv_check is None:
        print("  math-verify                   not installed (pip install math-verify)")
    else:
        mv_time, mv_verdicts = time_calls(mv_check, timed)
        mv_rate = rate(len(timed), mv_time)
        print(f"  math-verify parse+verify      {mv_rate:>12,.1f}")
        print(f"  speed-up, per-pair calls      {rate(len(timed), rr_single) / mv_rate:>12,.0f}x")
        print(f"  speed-up, batch (1 thread)    {rate(len(timed), rr_batch) / mv_rate:>12,.0f}x")
        agree = sum(a == b for a, b in zip(rr_verdicts, mv_verdicts))
        print(f"  verdicts agree on {agree}/{len(timed)} timed pairs")

    golds = [g for g, _ in pairs] * 20
    preds = [p for _, p in pairs] * 20
    print(f"\nverify_batch scaling ({len(golds)} pairs, {os.cpu_count()} CPUs here)")
    base = None
    for threads in args.threads:
        seconds = time_batch(golds, preds, threads)
        base = base or seconds
        print(f"  threads={threads:<3} {rate(len(golds), seconds):>12,.0f} checks/s   x{base / seconds:.2f}")

    print("\ncorpus: agreement with expected verdicts, per category (reasonrl | math-verify)")
    per_category: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for row in corpus:
        counts = per_category[row["category"]]
        counts[0] += 1
        counts[1] += rmath.verify(row["gold"], row["pred"]) == row["expected"]
        if mv_check is not None:
            counts[2] += mv_check(row["gold"], row["pred"]) == row["expected"]
    totals = [sum(c[i] for c in per_category.values()) for i in range(3)]
    for category, (n, rr_ok, mv_ok) in sorted(per_category.items()):
        mv_text = f"{mv_ok:>3}/{n}" if mv_check is not None else "  -"
        print(f"  {category:<18} {rr_ok:>3}/{n} | {mv_text}")
    mv_total = f"{totals[2]}/{totals[0]}" if mv_check is not None else "-"
    print(f"  {'total':<18} {totals[1]}/{totals[0]} | {mv_total}")


if __name__ == "__main__":
    main()
