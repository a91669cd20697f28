"""Recall and false positives on real data: MATH (12k train), MATH-500 and GSM8K test.

For every row with a non-empty answer, the row's own solution must verify against its answer
(recall), and the same solution must be rejected against another row's different answer (false
positives). "Different" means the two reference answers are not equal under the verifier itself
(MATH has rows whose answers are written differently but equal, e.g. ``18`` and ``18^\\circ``).

The data lives outside the repository: ``$REASONRL_DATA_DIR`` or ``../shared/data``.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from reasonrl import math as rmath

RECALL_BAR = 0.995
FALSE_POSITIVE_BAR = 0.001
# Each solution is checked against this many other rows' answers.
NEGATIVES_PER_ROW = 3


def _pairs(data_dir: Path, name: str) -> list[tuple[str, str]]:
    """(gold answer, full solution text) for each usable row of data set ``name``."""
    path = data_dir / name
    if not path.exists():
        reason = f"data set not found at {path}; set REASONRL_DATA_DIR to run this test"
        print(reason)
        pytest.skip(reason)
    with path.open(encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    if name.startswith("gsm8k"):
        return [(r["answer"].rsplit("####", 1)[-1].strip().replace(",", ""), r["answer"]) for r in rows]
    return [(r["answer"], r["solution"]) for r in rows if r.get("answer", "").strip()]


@pytest.mark.parametrize("name", ["math/train.jsonl", "math500/test.jsonl", "gsm8k/test.jsonl"])
def test_recall_and_false_positives(data_dir: Path, name: str) -> None:
    pairs = _pairs(data_dir, name)
    golds = [gold for gold, _ in pairs]
    solutions = [solution for _, solution in pairs]

    verdicts = rmath.verify_batch(golds, solutions)
    misses = [i for i, ok in enumerate(verdicts) if not ok]
    recall = 1 - len(misses) / len(pairs)

    rng = random.Random(0)
    other = [rng.randrange(len(pairs)) for _ in range(NEGATIVES_PER_ROW * len(pairs))]
    rows = [i % len(pairs) for i in range(len(other))]
    candidates = [(i, j) for i, j in zip(rows, other) if golds[i].strip() != golds[j].strip()]
    same_answer = rmath.verify_batch([golds[j] for _, j in candidates], [golds[i] for i, _ in candidates])
    negatives = [pair for pair, same in zip(candidates, same_answer) if not same]
    accepted = rmath.verify_batch([golds[j] for _, j in negatives], [solutions[i] for i, _ in negatives])
    false_positives = [pair for pair, ok in zip(negatives, accepted) if ok]
    fp_rate = len(false_positives) / len(negatives)

    print(
        f"\n{name}: recall {recall:.4%} ({len(pairs) - len(misses)}/{len(pairs)}), "
        f"false positives {fp_rate:.4%} ({len(false_positives)}/{len(negatives)})"
    )
    for i in misses[:20]:
        print(f"  miss: gold {golds[i]!r} extracted {rmath.extract_answer(solutions[i])!r}")
    for i, j in false_positives[:20]:
        print(f"  false positive: gold {golds[j]!r} vs own answer {golds[i]!r}")
    assert recall >= RECALL_BAR
    assert fp_rate < FALSE_POSITIVE_BAR
