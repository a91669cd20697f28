"""Rollout backends: sample G completions per prompt from the current policy.

`HFRollout` samples from the training model itself and runs everywhere (the default);
`VLLMRollout` (``rollout.backend: vllm``, ``pip install reasonrl[vllm]``) runs a colocated vLLM
engine on the same GPU and is the fast path. Both implement `RolloutBackend`.
"""

from reasonrl.rollout.base import RolloutBackend, Rollouts, SamplingParams
from reasonrl.rollout.hf import HFRollout
from reasonrl.rollout.vllm import VLLMRollout  # imports vllm only when an engine is built

__all__ = ["HFRollout", "RolloutBackend", "Rollouts", "SamplingParams", "VLLMRollout"]
