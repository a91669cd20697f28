"""The hand-built corpus of tricky pairs (``corpus.jsonl``): every verdict must match.

Each row is ``{"gold", "pred", "expected", "category"}``; categories cover the issue's list
(numbers, fractions, percent, radicals, symbolic, tuples, intervals, sets, ±, several answers,
equations, inequalities, matrices, units and text, multiple choice, extraction, negatives).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from reasonrl import math as rmath

with Path(__file__).with_name("corpus.jsonl").open(encoding="utf-8") as _file:
    ROWS = [json.loads(line) for line in _file if line.strip()]


def test_corpus_is_large_and_balanced() -> None:
    verdicts = Counter(row["expected"] for row in ROWS)
    assert len(ROWS) >= 300
    assert verdicts[True] >= 100 and verdicts[False] >= 100
    assert len({row["category"] for row in ROWS}) >= 20


@pytest.mark.parametrize(
    "row", ROWS, ids=[f"{r['category']}-{i}" for i, r in enumerate(ROWS)]
)
def test_pair(row: dict[str, Any]) -> None:
    gold, pred, expected = row["gold"], row["pred"], row["expected"]
    assert rmath.verify(gold, pred) is expected, (gold, pred)


def test_batch_agrees_with_single_calls() -> None:
    golds = [r["gold"] for r in ROWS]
    preds = [r["pred"] for r in ROWS]
    assert rmath.verify_batch(golds, preds, threads=2) == [r["expected"] for r in ROWS]
