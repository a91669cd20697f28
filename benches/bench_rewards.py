"""The full R1 reward set on a 4 096-completion batch: reasonrl's one Rust call vs the same
rewards computed in plain Python the way open-r1 / TRL reward functions do (math-verify for
accuracy, `re` for the template, a per-character loop for language consistency).

    pip install math-verify   # bench-only dependency (the peer)
    python benches/bench_rewards.py [--batch 4096] [--group-size 16] [--threads N]

Completions follow the R1 template around MATH-500 gold answers (from $REASONRL_DATA_DIR or
../shared/data when present, else a built-in list); half are right, some break the format, some
mix languages. Both sides score the same batch; their accuracy verdicts are compared.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import time
from pathlib import Path

import numpy as np

import reasonrl
from reasonrl.rewards import Component, RewardSpec

FALLBACK_ANSWERS = ["4", "\\frac{1}{2}", "3\\sqrt{2}", "(2, 3)", "x^2+1", "12", "\\pi", "0.75", "[1, 5)", "-7"]
WRONG = ["5", "\\frac{1}{3}", "2\\sqrt{3}", "(3, 2)", "x^2-1", "13", "2\\pi", "0.7", "(1, 5]", "7"]


def gold_answers() -> list[str]:
    root = Path(os.environ.get("REASONRL_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))
    path = root / "math500" / "test.jsonl"
    if path.exists():
        return [json.loads(line)["answer"] for line in path.read_text().splitlines() if line.strip()]
    print(f"(no {path}: using {len(FALLBACK_ANSWERS)} built-in answers)")
    return FALLBACK_ANSWERS


def make_batch(n: int, group_size: int, seed: int = 0) -> tuple[list[str], list[str], list[int]]:
    rng = random.Random(seed)
    answers = gold_answers()
    completions, golds, groups = [], [], []
    for g in range(n // group_size):
        gold = rng.choice(answers)
        for _ in range(group_size):
            answer = gold if rng.random() < 0.5 else rng.choice(WRONG)
            thought = " ".join(rng.choice(["First", "we", "compute", "the", "sum", "then", "check"]) for _ in range(rng.randint(20, 200)))
            if rng.random() < 0.1:
                thought += " 然后我们检查答案"
            text = f"<think>\n{thought}\n</think>\n<answer>\nThe answer is $\\boxed{{{answer}}}$\n</answer>"
            if rng.random() < 0.15:
                text = text.replace("</think>\n", "")
            completions.append(text)
            golds.append(gold)
            groups.append(g)
    return completions, golds, groups


# ---- the peer: plain-Python reward functions as open-r1 / TRL write them ---------------------

FORMAT = re.compile(r"^<think>\n.*?\n</think>\n<answer>\n.*?\n</answer>$", re.DOTALL | re.MULTILINE)


def python_accuracy(completions: list[str], golds: list[str]) -> list[float]:
    from math_verify import parse, verify

    out = []
    for completion, gold in zip(completions, golds):
        gold_parsed = parse(f"${gold}$")
        out.append(float(verify(gold_parsed, parse(completion))) if gold_parsed else 0.0)
    return out


def python_format(completions: list[str]) -> list[float]:
    return [1.0 if FORMAT.match(c) else 0.0 for c in completions]


def python_tag_count(completions: list[str]) -> list[float]:
    return [sum(0.25 for tag in ("<think>", "</think>", "<answer>", "</answer>") if c.count(tag) == 1) for c in completions]


def python_language(completions: list[str]) -> list[float]:
    out = []
    for c in completions:
        thought = c.split("<think>", 1)[-1].split("</think>", 1)[0]
        words = re.findall(r"[A-Za-z]+|[\u4e00-\u9fff]", thought)
        out.append(sum(1 for w in words if w.isascii()) / len(words) if words else 1.0)
    return out


def python_rewards(completions: list[str], golds: list[str]) -> tuple[np.ndarray, np.ndarray]:
    accuracy = python_accuracy(completions, golds)
    total = np.array(accuracy) + np.array(python_format(completions)) + 0.25 * np.array(python_tag_count(completions)) + 0.2 * np.array(python_language(completions))
    return total, np.array(accuracy)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--group-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    completions, golds, groups = make_batch(args.batch, args.group_size)
    spec = RewardSpec([
        Component("accuracy", "math_accuracy"),
        Component("format", "format"),
        Component("tags", "tag_count", 0.25),
        Component("language", "language", 0.2, {"target": "en"}),
    ])
    threads = args.threads or reasonrl.get_num_threads()

    start = time.perf_counter()
    ours_single = spec.score(completions, answers=golds, group_ids=groups, threads=1)
    t_single = time.perf_counter() - start
    start = time.perf_counter()
    ours = spec.score(completions, answers=golds, group_ids=groups, threads=threads)
    t_ours = time.perf_counter() - start
    assert np.array_equal(ours.total, ours_single.total)

    try:
        start = time.perf_counter()
        _, peer_accuracy = python_rewards(completions, golds)
        t_peer = time.perf_counter() - start
    except ImportError:
        print("math-verify is not installed (pip install math-verify): showing reasonrl alone")
        t_peer, peer_accuracy = float("nan"), None

    print(f"R1 reward set (accuracy + format + tag count + language) on {len(completions)} completions")
    print(f"{'':<28}{'seconds':>10}{'completions/s':>16}{'speed-up':>10}")
    print(f"{'python (math-verify, re)':<28}{t_peer:>10.3f}{len(completions) / t_peer:>16,.0f}{1.0:>9.1f}x")
    print(f"{'reasonrl, 1 thread':<28}{t_single:>10.3f}{len(completions) / t_single:>16,.0f}{t_peer / t_single:>9.1f}x")
    print(f"{f'reasonrl, {threads} threads':<28}{t_ours:>10.3f}{len(completions) / t_ours:>16,.0f}{t_peer / t_ours:>9.1f}x")
    if peer_accuracy is not None:
        agree = float(np.mean(peer_accuracy == ours.components["accuracy"]))
        print(f"accuracy verdicts agree on {agree:.1%} of completions "
              f"(reasonrl {ours.components['accuracy'].mean():.3f}, math-verify {peer_accuracy.mean():.3f})")


if __name__ == "__main__":
    main()
