"""Programs per second: reasonrl.code.run_tests (sandboxed, one GIL-free call) vs a
``multiprocessing`` pool of the same size where each task writes the program and its tests to a
file and runs ``subprocess.run([python, file], timeout=...)`` — the way open-r1-style reward
functions run code locally (no sandbox beyond the timeout). Same HumanEval programs, same
interpreter, same worker count; both verdicts are checked against each other.

    python benches/bench_code.py [--workers 2] [--rounds 3] [--variant canonical|broken|both] [--limit N]

Needs the HumanEval data ($REASONRL_DATA_DIR or ../shared/data). ``broken`` replaces each body
with ``return None`` (every test fails quickly: the cost is all process start-up and teardown).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from reasonrl.code import run_tests, sandbox_capabilities

REPO = Path(__file__).resolve().parent.parent
TIMEOUT_S = 10.0


def load_humaneval() -> list[dict]:
    configured = os.environ.get("REASONRL_DATA_DIR")
    data = Path(configured) if configured else REPO.parent / "shared" / "data"
    path = data / "humaneval" / "test.jsonl"
    if not path.exists():
        sys.exit(f"HumanEval not found at {path}: set REASONRL_DATA_DIR")
    with path.open(encoding="utf-8") as file:
        return [json.loads(line) for line in file]


def subprocess_passes(task: tuple[str, str]) -> bool:
    """One program + its tests in a fresh interpreter, with a timeout and nothing else."""
    program, test = task
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as file:
        file.write(program + "\n" + test)
    try:
        done = subprocess.run(
            [sys.executable, file.name], capture_output=True, timeout=TIMEOUT_S, check=False
        )
        return done.returncode == 0
    except subprocess.TimeoutExpired:
        return False
    finally:
        os.unlink(file.name)


def alternating_medians(first, second, rounds: int) -> tuple[float, float]:
    """Median seconds of each function, run in alternation so that a shared machine's changing
    load weighs on both alike."""
    samples: tuple[list[float], list[float]] = ([], [])
    for _ in range(rounds):
        for fn, times in ((first, samples[0]), (second, samples[1])):
            started = time.perf_counter()
            fn()
            times.append(time.perf_counter() - started)
    return statistics.median(samples[0]), statistics.median(samples[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--variant", choices=["canonical", "broken", "both"], default="both")
    parser.add_argument("--limit", type=int, default=0, help="the first N programs only (0: all 164)")
    args = parser.parse_args()
    rows = load_humaneval()
    if args.limit > 0:
        rows = rows[: args.limit]
    tests = [row["test"] + f"\ncheck({row['entry_point']})\n" for row in rows]
    variants = {
        "canonical": [row["prompt"] + row["canonical_solution"] for row in rows],
        "broken": [row["prompt"] + "    return None\n" for row in rows],
    }
    if args.variant != "both":
        variants = {args.variant: variants[args.variant]}
    caps = sandbox_capabilities()
    print(f"{len(rows)} HumanEval programs, {args.workers} workers, median of {args.rounds} alternating rounds; "
          f"sandbox missing: {list(caps.missing) or 'nothing'}")
    header = f"{'programs':<11}{'reasonrl':>14}{'mp+subprocess':>16}{'ratio':>8}"
    print(header)
    print("-" * len(header))
    with multiprocessing.get_context("forkserver").Pool(args.workers) as pool:
        for name, programs in variants.items():
            ours = [r.passed for r in run_tests(programs, tests, timeout_s=TIMEOUT_S, threads=args.workers)]
            theirs = pool.map(subprocess_passes, list(zip(programs, tests)), chunksize=1)
            assert ours == theirs, [i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b]
            t_ours, t_theirs = alternating_medians(
                lambda: run_tests(programs, tests, timeout_s=TIMEOUT_S, threads=args.workers),
                lambda: pool.map(subprocess_passes, list(zip(programs, tests)), chunksize=1),
                args.rounds,
            )
            n = len(programs)
            print(f"{name:<11}{n / t_ours:>10.1f}/s{n / t_theirs:>14.1f}/s{t_theirs / t_ours:>7.2f}x"
                  f"   ({sum(ours)} pass)")


if __name__ == "__main__":
    main()
