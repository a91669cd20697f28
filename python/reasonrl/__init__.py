"""reasonrl: reinforcement learning with verifiable rewards for reasoning language models.

The compiled core (``reasonrl._core``, Rust) verifies answers, scores rewards and computes group
advantages in one GIL-free parallel call; ``reasonrl.kernels`` (Triton) computes per-token
log-probs, KL and the clipped loss; the rest is a thin Python GRPO loop.
"""

from __future__ import annotations

from reasonrl._core import __version__, get_num_threads, set_num_threads
from reasonrl.advantages import Estimator, compute_advantages, filter_groups, token_advantages
from reasonrl.errors import InvalidInputError, ReasonRLError, RustPanicError, ThreadPoolError

__all__ = [
    "__version__",
    "Estimator",
    "InvalidInputError",
    "ReasonRLError",
    "RustPanicError",
    "ThreadPoolError",
    "compute_advantages",
    "filter_groups",
    "get_num_threads",
    "set_num_threads",
    "token_advantages",
]
