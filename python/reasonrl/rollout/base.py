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

    @property
    def prompts(self) -> int:
        """Prompts of the call (B): prompt_index runs over 0 … B − 1."""
        return int(self.prompt_index.max()) + 1 if len(self.texts) else 0

    @staticmethod
    def concat(parts: list[Rollouts], pad_token_id: int) -> Rollouts:
        """The rollouts of several calls as one: prompts re-padded on the left to the longest,
        completions on the right, and each call's prompt_index moved past the prompts of the
        calls before it (so call k's prompts follow call k − 1's, as their examples do)."""
        if len(parts) == 1:
            return parts[0]
        P = max(r.prompt_ids.shape[1] for r in parts)
        T = max(r.completion_ids.shape[1] for r in parts)
        pad = torch.nn.functional.pad
        offsets, total = [], 0
        for r in parts:
            offsets.append(total)
            total += r.prompts
        sampler_logps = [r.sampler_logp for r in parts if r.sampler_logp is not None]
        sampler_logp = None
        if len(sampler_logps) == len(parts):  # one backend: every call reports them, or none does
            sampler_logp = torch.cat([pad(logp, (0, T - logp.shape[1])) for logp in sampler_logps])
        return Rollouts(
            prompt_ids=torch.cat([pad(r.prompt_ids, (P - r.prompt_ids.shape[1], 0), value=pad_token_id) for r in parts]),
            prompt_mask=torch.cat([pad(r.prompt_mask, (P - r.prompt_mask.shape[1], 0)) for r in parts]),
            completion_ids=torch.cat([pad(r.completion_ids, (0, T - r.completion_ids.shape[1]), value=pad_token_id) for r in parts]),
            completion_mask=torch.cat([pad(r.completion_mask, (0, T - r.completion_mask.shape[1])) for r in parts]),
            texts=[text for r in parts for text in r.texts],
            truncated=torch.cat([r.truncated for r in parts]),
            prompt_index=torch.cat([r.prompt_index + offset for r, offset in zip(parts, offsets)]),
            sampler_logp=sampler_logp,
        )


class RolloutBackend(Protocol):
    """Generates completions for prompts with the current policy.

    A backend that holds its own copy of the weights (vLLM) refreshes it in `sync_weights`,
    which the trainer calls after every optimizer step. It may also offer `staying_awake()`, a
    context manager the trainer holds around all of a step's sampling rounds (see `VLLMRollout`).
    """

    def generate(self, prompts: list[str], n: int, sampling: SamplingParams) -> Rollouts: ...

    def sync_weights(self) -> None: ...
