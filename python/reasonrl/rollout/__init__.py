"""Rollout backends: sample G completions per prompt from the current policy.

`HFRollout` (Hugging Face `generate`) runs everywhere and is the default; a vLLM backend plugs in
through the same `RolloutBackend` interface.
"""

from reasonrl.rollout.base import RolloutBackend, Rollouts, SamplingParams
from reasonrl.rollout.hf import HFRollout

__all__ = ["HFRollout", "RolloutBackend", "Rollouts", "SamplingParams"]
