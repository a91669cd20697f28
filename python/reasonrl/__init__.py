"""reasonrl: reinforcement learning with verifiable rewards for reasoning language models.

The compiled core (``reasonrl._core``, Rust) verifies answers, scores rewards and computes group
advantages in one GIL-free parallel call; ``reasonrl.kernels`` (Triton) computes per-token
log-probs, KL and the clipped loss; the rest is a thin Python GRPO loop.

``import reasonrl`` needs only numpy: the trainer names below (``GRPOTrainer``, ``SFTTrainer``,
``load_config``, ``load_stage_config``, ``load_tokenizer``, ``run_stage``, ``run_pipeline``,
``run_demo``) load torch and transformers on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reasonrl import code, math
from reasonrl._core import __version__, get_num_threads, set_num_threads
from reasonrl.code import CodeResult, code_reward, run_tests, sandbox_capabilities
from reasonrl.advantages import Estimator, compute_advantages, filter_groups, token_advantages
from reasonrl.data import Example, PromptTemplate, get_template, load_examples
from reasonrl.errors import (
    ConfigError,
    InvalidInputError,
    ReasonRLError,
    RustPanicError,
    ThreadPoolError,
    TrainingError,
)
from reasonrl.evaluation import EvalResult, pass_at_k, score_samples
from reasonrl.math import math_accuracy
from reasonrl.rewards import Component, RewardScores, RewardSpec

if TYPE_CHECKING:
    from reasonrl.config import load_config, load_stage_config
    from reasonrl.demo import run_demo
    from reasonrl.pipeline import run_pipeline, run_stage
    from reasonrl.trainer.grpo import GRPOTrainer
    from reasonrl.trainer.models import load_tokenizer
    from reasonrl.trainer.sft import SFTTrainer

_LAZY = {
    "GRPOTrainer": "reasonrl.trainer.grpo",
    "SFTTrainer": "reasonrl.trainer.sft",
    "load_config": "reasonrl.config",
    "load_stage_config": "reasonrl.config",
    "load_tokenizer": "reasonrl.trainer.models",
    "run_demo": "reasonrl.demo",
    "run_pipeline": "reasonrl.pipeline",
    "run_stage": "reasonrl.pipeline",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'reasonrl' has no attribute {name!r}")


def __dir__() -> list[str]:
    # The lazy names too (help(), tab completion), not the module's own machinery.
    return sorted(__all__)


__all__ = [
    "CodeResult",
    "Component",
    "ConfigError",
    "Estimator",
    "EvalResult",
    "Example",
    "GRPOTrainer",
    "InvalidInputError",
    "PromptTemplate",
    "ReasonRLError",
    "RewardScores",
    "RewardSpec",
    "RustPanicError",
    "SFTTrainer",
    "ThreadPoolError",
    "TrainingError",
    "__version__",
    "code",
    "code_reward",
    "compute_advantages",
    "filter_groups",
    "get_num_threads",
    "get_template",
    "load_config",
    "load_examples",
    "load_stage_config",
    "load_tokenizer",
    "math",
    "math_accuracy",
    "pass_at_k",
    "run_demo",
    "run_pipeline",
    "run_stage",
    "run_tests",
    "sandbox_capabilities",
    "score_samples",
    "set_num_threads",
    "token_advantages",
]
