"""The ``reasonrl`` command line.

    reasonrl demo            # offline end-to-end example, nothing downloaded
    reasonrl info            # version, thread count, kernels backend availability
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import numpy as np

import reasonrl


def _demo(args: argparse.Namespace) -> int:
    """Scores a synthetic GRPO batch and turns it into advantages with every estimator.

    A batch of ``prompts`` × ``group_size`` sampled answers: each prompt has a hidden difficulty,
    each answer is right with that probability (reward 1) and well formatted with probability 0.9
    (reward +0.1); some rewards are missing (NaN), as when a verifier times out.
    """
    rng = np.random.default_rng(args.seed)
    n = args.prompts * args.group_size
    solve_rate = rng.beta(0.7, 0.7, size=args.prompts)
    group_ids = np.repeat(rng.permutation(10_000_000)[: args.prompts], args.group_size)
    correct = rng.random(n) < np.repeat(solve_rate, args.group_size)
    rewards = correct.astype(np.float32) + 0.1 * (rng.random(n) < 0.9)
    rewards[rng.random(n) < 0.01] = np.nan

    print(f"reasonrl {reasonrl.__version__}: {args.prompts} prompts x {args.group_size} answers, "
          f"{reasonrl.get_num_threads()} threads")
    keep = reasonrl.filter_groups(rewards, group_ids)
    print(f"groups with a learning signal (DAPO filter): {keep.reshape(args.prompts, -1)[:, 0].mean():.1%}")
    print(f"{'estimator':<14}{'mean |A|':>10}{'A(right)':>10}{'A(wrong)':>10}{'time':>10}")
    for estimator in ("grpo", "dr_grpo", "rloo", "reinforce_pp"):
        start = time.perf_counter()
        adv = reasonrl.compute_advantages(rewards, group_ids, estimator)
        elapsed = time.perf_counter() - start
        print(f"{estimator:<14}{np.abs(adv).mean():>10.3f}{adv[correct].mean():>10.3f}"
              f"{adv[~correct].mean():>10.3f}{elapsed * 1e3:>8.2f}ms")

    lengths = rng.integers(8, 64, size=n)
    mask = np.arange(64)[None, :] < lengths[:, None]
    tokens = reasonrl.token_advantages(reasonrl.compute_advantages(rewards, group_ids), mask)
    print(f"per-token advantages for the loss: shape {tokens.shape}, dtype {tokens.dtype}")
    return 0


def _info(_: argparse.Namespace) -> int:
    print(f"reasonrl {reasonrl.__version__}")
    print(f"threads: {reasonrl.get_num_threads()}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="reasonrl", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="offline end-to-end example")
    demo.add_argument("--prompts", type=int, default=256)
    demo.add_argument("--group-size", type=int, default=16)
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(run=_demo)
    info = commands.add_parser("info", help="version and runtime settings")
    info.set_defaults(run=_info)
    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
