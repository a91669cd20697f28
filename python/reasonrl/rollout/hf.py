"""Rollouts with Hugging Face `generate`: batched sampling with a KV cache on the policy itself."""

from __future__ import annotations

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from reasonrl.rollout.base import Rollouts, SamplingParams


class HFRollout:
    """Samples from the training model in place (no weight copy, so `sync_weights` is free).

    Args:
        model: the policy.
        tokenizer: its tokenizer; must have a pad token (the EOS token is used if it has none).
        batch_size: sequences per `generate` call (None: all at once) — caps activation memory.
    """

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, batch_size: int | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.eos_ids = self._eos_ids()

    def _eos_ids(self) -> list[int]:
        eos = self.model.generation_config.eos_token_id
        ids = eos if isinstance(eos, list) else [eos] if eos is not None else []
        if self.tokenizer.eos_token_id is not None and self.tokenizer.eos_token_id not in ids:
            ids.append(self.tokenizer.eos_token_id)
        return ids

    def sync_weights(self) -> None:
        """Nothing to do: generation uses the training weights directly."""

    @torch.no_grad()
    def generate(self, prompts: list[str], n: int, sampling: SamplingParams) -> Rollouts:
        device = next(self.model.parameters()).device
        # Left padding: every prompt ends at the same column, where generation starts.
        self.tokenizer.padding_side = "left"
        encoded = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        prompt_ids = encoded["input_ids"].repeat_interleave(n, dim=0).to(device)  # [N, P]
        prompt_mask = encoded["attention_mask"].repeat_interleave(n, dim=0).to(device)  # [N, P]
        prompt_index = torch.arange(len(prompts), device=device).repeat_interleave(n)  # [N]

        was_training = self.model.training
        self.model.eval()
        chunks = []
        step = self.batch_size or prompt_ids.shape[0]
        for start in range(0, prompt_ids.shape[0], step):
            out = self.model.generate(
                input_ids=prompt_ids[start : start + step],
                attention_mask=prompt_mask[start : start + step],
                do_sample=not sampling.greedy,
                temperature=sampling.temperature if not sampling.greedy else None,
                top_p=sampling.top_p if not sampling.greedy else None,
                top_k=0 if not sampling.greedy else None,
                max_new_tokens=sampling.max_new_tokens,
                stop_strings=list(sampling.stop) or None,
                tokenizer=self.tokenizer if sampling.stop else None,
                pad_token_id=self.tokenizer.pad_token_id,
                eos_token_id=self.eos_ids,
            )
            chunks.append(out[:, prompt_ids.shape[1] :])
        self.model.train(was_training)
        width = max(c.shape[1] for c in chunks)
        completion_ids = torch.cat(
            [torch.nn.functional.pad(c, (0, width - c.shape[1]), value=self.tokenizer.pad_token_id) for c in chunks]
        )  # [N, T]
        completion_mask, truncated = self._completion_mask(completion_ids, sampling)
        texts = self.tokenizer.batch_decode(completion_ids * completion_mask + self.tokenizer.pad_token_id * (1 - completion_mask), skip_special_tokens=True)
        return Rollouts(prompt_ids, prompt_mask, completion_ids, completion_mask, texts, truncated, prompt_index)

    def _completion_mask(self, completion_ids: torch.Tensor, sampling: SamplingParams) -> tuple[torch.Tensor, torch.Tensor]:
        """[N, T] mask up to and including the first EOS, and [N] whether there was none.

        Generation pads a row after its EOS, so the first EOS ends the completion; a row without
        one ran out of `max_new_tokens` (or stopped on a stop string, which counts as finished
        when the decoded text ends with it). Such a row is exactly as wide as the longest one.
        """
        is_eos = torch.isin(completion_ids, torch.tensor(self.eos_ids, device=completion_ids.device))
        N, T = completion_ids.shape
        no_eos = torch.full((N,), T, device=completion_ids.device)
        first_eos = torch.where(is_eos.any(dim=1), is_eos.int().argmax(dim=1), no_eos)  # [N]
        positions = torch.arange(T, device=completion_ids.device).expand(N, T)
        mask = (positions <= first_eos[:, None]).long()  # [N, T]
        truncated = first_eos == T
        if sampling.stop:
            texts = self.tokenizer.batch_decode(completion_ids * mask, skip_special_tokens=True)
            stopped = torch.tensor([t.rstrip().endswith(tuple(sampling.stop)) for t in texts], device=mask.device)
            truncated &= ~stopped
        return mask, truncated
