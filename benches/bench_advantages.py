"""compute_advantages (Rust, one GIL-free parallel call) vs the numpy and torch code a GRPO
trainer would otherwise run, for N = 1k … 1M rewards. Prints a side-by-side table with ratios.

    python benches/bench_advantages.py [--group-size 16] [--layout contiguous|shuffled|both]

- numpy: np.unique(return_inverse) + bincount (handles ragged, unordered groups like reasonrl).
- torch (TRL-style): rewards.view(-1, G) mean/std, repeat_interleave — the vectorised code
  GRPO trainers use; it needs equal, contiguous groups, so it only runs on that layout.
- torch scatter: index_add-based group statistics for arbitrary layouts.
All compute the GRPO estimator (std with Bessel's correction) and are checked against each other.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

import reasonrl

EPS = 1e-6


def numpy_grpo(rewards: np.ndarray, group_ids: np.ndarray) -> np.ndarray:
    _, inverse, counts = np.unique(group_ids, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=rewards)
    mean = sums / counts
    centred = rewards - mean[inverse]
    var = np.bincount(inverse, weights=centred * centred) / np.maximum(counts - 1, 1)
    adv = centred / (np.sqrt(var)[inverse] + EPS)
    adv[counts[inverse] < 2] = 0.0
    return adv.astype(np.float32)


def torch_trl_style(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    grouped = rewards.view(-1, group_size)
    mean = grouped.mean(dim=1).repeat_interleave(group_size)
    std = grouped.std(dim=1).repeat_interleave(group_size)
    return ((rewards - mean) / (std + EPS)).float()


def torch_scatter(rewards: torch.Tensor, group_ids: torch.Tensor) -> torch.Tensor:
    _, inverse = torch.unique(group_ids, return_inverse=True)
    n_groups = int(inverse.max()) + 1
    counts = torch.zeros(n_groups, dtype=rewards.dtype).index_add_(0, inverse, torch.ones_like(rewards))
    mean = torch.zeros(n_groups, dtype=rewards.dtype).index_add_(0, inverse, rewards) / counts
    centred = rewards - mean[inverse]
    var = torch.zeros(n_groups, dtype=rewards.dtype).index_add_(0, inverse, centred * centred)
    std = (var / (counts - 1).clamp(min=1)).sqrt()
    return (centred / (std[inverse] + EPS)).float()


def best_time(fn: Callable[[], object], budget_s: float = 0.5) -> float:
    """Median of repeated runs (at least 3, about `budget_s` in total), in seconds."""
    fn()  # warm-up: thread pool, allocator, caches
    samples: list[float] = []
    start = time.perf_counter()
    while len(samples) < 3 or (time.perf_counter() - start < budget_s and len(samples) < 200):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--group-size", type=int, default=16)
    parser.add_argument("--layout", choices=["contiguous", "shuffled", "both"], default="both")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000, 1_000_000])
    args = parser.parse_args()
    torch.set_num_threads(reasonrl.get_num_threads())
    layouts = ["contiguous", "shuffled"] if args.layout == "both" else [args.layout]
    print(f"threads: reasonrl {reasonrl.get_num_threads()}, torch {torch.get_num_threads()}; "
          f"group size {args.group_size}; estimator grpo; times are medians")
    header = f"{'layout':<11}{'N':>10}{'reasonrl':>11}{'numpy':>11}{'torch':>11}{'vs numpy':>10}{'vs torch':>10}"
    print(header)
    print("-" * len(header))
    rng = np.random.default_rng(0)
    for layout in layouts:
        for n in args.sizes:
            n -= n % args.group_size
            group_ids = np.repeat(np.arange(n // args.group_size, dtype=np.int64), args.group_size)
            if layout == "shuffled":
                rng.shuffle(group_ids)
            rewards = rng.integers(0, 2, size=n).astype(np.float32) + rng.random(n).astype(np.float32) * 0.1
            rewards_t, ids_t = torch.from_numpy(rewards), torch.from_numpy(group_ids)

            ours = reasonrl.compute_advantages(rewards, group_ids)
            np.testing.assert_allclose(ours, numpy_grpo(rewards.astype(np.float64), group_ids), rtol=1e-4, atol=1e-4)
            t_ours = best_time(lambda: reasonrl.compute_advantages(rewards, group_ids))
            t_numpy = best_time(lambda: numpy_grpo(rewards, group_ids))
            if layout == "contiguous":
                torch_fn = lambda: torch_trl_style(rewards_t, args.group_size)  # noqa: E731
            else:
                torch_fn = lambda: torch_scatter(rewards_t, ids_t)  # noqa: E731
            np.testing.assert_allclose(torch_fn().numpy(), ours, rtol=1e-3, atol=1e-3)
            t_torch = best_time(torch_fn)
            print(f"{layout:<11}{n:>10,}{t_ours * 1e3:>9.3f}ms{t_numpy * 1e3:>9.3f}ms{t_torch * 1e3:>9.3f}ms"
                  f"{t_numpy / t_ours:>9.1f}x{t_torch / t_ours:>9.1f}x")


if __name__ == "__main__":
    main()
