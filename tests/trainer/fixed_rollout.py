"""A rollout backend whose completions depend only on the prompt text.

A 1-process run and an N-process run then train on exactly the same completions — each rank
asks for its own slice of the prompts and gets the same rows the single process got for them —
so any difference between the two runs is the trainer's, never the sampler's.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Iterable

import torch

from reasonrl.rollout import Rollouts, SamplingParams


class FixedRollout:
    """G completions per prompt from a generator seeded by the prompt's text.

    A completion is "<n> so <n>.</think><answer><n></answer>" (the R1 template), or just "<n>",
    with n right for the addition in the prompt half the time; some run past `max_new_tokens`
    (truncated, no EOS). Prompts in `uniform` get G identical completions (equal rewards: DAPO's
    dynamic sampling drops the group). With `sampler_logp`, rows carry deterministic "sampler"
    log-probs, as a vLLM engine would report them.
    """

    def __init__(self, tokenizer, *, uniform: Iterable[str] = (), sampler_logp: bool = False) -> None:
        self.tokenizer = tokenizer
        self.uniform = set(uniform)
        self.with_sampler_logp = sampler_logp
        self.calls: list[list[str]] = []

    def sync_weights(self) -> None:
        """The completions never depend on the weights."""

    def _completion(self, prompt: str, rng: random.Random) -> str:
        a, b = (int(x) for x in prompt.split("=")[0].split("+"))
        n = a + b if rng.random() < 0.5 else rng.randint(0, 199)
        return f"{n} so {n}.</think><answer>{n}</answer>" if rng.random() < 0.6 else f"{n}"

    @torch.no_grad()
    def generate(self, prompts: list[str], n: int, sampling: SamplingParams) -> Rollouts:
        self.calls.append(list(prompts))
        pad, eos = self.tokenizer.pad_token_id, self.tokenizer.eos_token_id
        prompt_rows, completion_rows, truncated = [], [], []
        for prompt in prompts:
            rng = random.Random(zlib.crc32(prompt.encode()))
            texts = [self._completion(prompt, rng) for _ in range(n)]
            if prompt in self.uniform:
                texts = [texts[0]] * n
            ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
            for text in texts:
                tokens = self.tokenizer(text, add_special_tokens=False)["input_ids"] + [eos]
                prompt_rows.append(ids)
                completion_rows.append(tokens[: sampling.max_new_tokens])
                truncated.append(len(tokens) > sampling.max_new_tokens)
        N = len(completion_rows)
        P, T = max(map(len, prompt_rows)), max(map(len, completion_rows))
        prompt_ids = torch.tensor([[pad] * (P - len(r)) + r for r in prompt_rows])  # [N, P] left-padded
        prompt_mask = torch.tensor([[0] * (P - len(r)) + [1] * len(r) for r in prompt_rows])
        completion_ids = torch.tensor([r + [pad] * (T - len(r)) for r in completion_rows])  # [N, T] right-padded
        completion_mask = torch.tensor([[1] * len(r) + [0] * (T - len(r)) for r in completion_rows])
        sampler_logp = None
        if self.with_sampler_logp:
            # Near what a random tiny model gives (log 1/86 ≈ −4.45), ±0.5 by token and position:
            # importance weights from about 0.6 to 1.7, so a cap of 1.2 truncates some.
            position = torch.arange(T)[None, :]
            sampler_logp = (-4.45 + ((completion_ids * 7 + position) % 11 - 5) / 10.0) * completion_mask  # [N, T]
        texts = self.tokenizer.batch_decode(completion_ids * completion_mask + pad * (1 - completion_mask), skip_special_tokens=True)
        return Rollouts(
            prompt_ids, prompt_mask, completion_ids, completion_mask, texts, torch.tensor(truncated),
            torch.arange(len(prompts)).repeat_interleave(n), sampler_logp.float() if sampler_logp is not None else None,
        )
