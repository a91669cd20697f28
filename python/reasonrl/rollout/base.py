"""What a rollout backend returns, and the interface a backend implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 256
    stop: tuple[str, ...] = ()
    greedy: bool = False


@dataclass
class Rollouts:
    """N = prompts × n completions, grouped: completions of prompt p are rows p·n … p·n + n − 1.

    Token tensors live on the policy's device. ``prompt_ids`` is left-padded, ``completion_ids``
    right-padded; the masks mark real tokens. A completion's mask covers its tokens up to and
    including the end-of-sequence token (or the stop string's last token).
    """

    prompt_ids: torch.Tensor  # [N, P] left-padded
    prompt_mask: torch.Tensor  # [N, P]
    completion_ids: torch.Tensor  # [N, T] right-padded
    completion_mask: torch.Tensor  # [N, T]
    texts: list[str]  # N decoded completions (special tokens removed)
    truncated: torch.Tensor  # [N] bool: hit max_new_tokens without ending
    prompt_index: torch.Tensor  # [N] which prompt of the call each row answers
    # [N, T] log-probs the sampler gave the tokens it picked (0 on padding), from a backend
    # with its own inference engine (vLLM); the trainer compares them with its own and can
    # correct for the difference (algorithm.tis_cap). None: the sampler is the trainer.
    sampler_logp: torch.Tensor | None = None

    @property
    def lengths(self) -> torch.Tensor:
        """[N] completion lengths in tokens."""
        return self.completion_mask.sum(dim=1)


class RolloutBackend(Protocol):
    """Generates completions for prompts with the current policy.

    A backend that holds its own copy of the weights (vLLM) refreshes it in `sync_weights`,
    which the trainer calls after every optimizer step.
    """

    def generate(self, prompts: list[str], n: int, sampling: SamplingParams) -> Rollouts: ...

    def sync_weights(self) -> None: ...
