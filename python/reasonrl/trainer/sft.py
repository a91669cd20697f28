"""Supervised fine-tuning: the cold-start stage before RL (DeepSeek-R1 §2.3.1).

The loss is next-token cross-entropy on the response tokens only (the prompt is context, not a
target), averaged over response tokens, with the end-of-sequence token appended so the model
learns to stop.
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from reasonrl.config import StageConfig
from reasonrl.data import Example
from reasonrl.errors import InvalidInputError, TrainingError
from reasonrl.trainer.checkpoint import save_checkpoint
from reasonrl.trainer.distributed import all_reduce, clip_grad_norm, mean_across_ranks, rank, world_size, wrap_policy
from reasonrl.trainer.logging import RunLogger
from reasonrl.trainer.optim import build_optimizer


def sft_pairs(examples: Sequence[Example], template: Any, tokenizer: Any, response_field: str) -> list[tuple[str, str]]:
    """(templated prompt, response) pairs from examples whose `meta` holds the response."""
    pairs = []
    for e in examples:
        response = e.meta.get(response_field)
        if not isinstance(response, str) or not response:
            raise InvalidInputError(
                f"invalid `data.train`: example {e.id!r} has no {response_field!r} column for SFT "
                f"(set sft.response_field to the column holding the target response)"
            )
        pairs.append((template.render(e, tokenizer), response))
    return pairs


class SFTTrainer:
    def __init__(self, config: StageConfig, model: Any, tokenizer: Any, pairs: Sequence[tuple[str, str]]) -> None:
        if not pairs:
            raise InvalidInputError("invalid `pairs`: the SFT set is empty")
        self.config = config
        self.tokenizer = tokenizer
        self.pairs = self._with_room_for_a_response(list(pairs), config.sft.max_length)
        self.device = next(model.parameters()).device
        self.model = wrap_policy(model, config.distributed)  # unchanged in a single process
        per_rank = -(-len(self.pairs) // world_size())
        self.steps_per_epoch = -(-per_rank // config.sft.batch_size)
        self.total_steps = self.steps_per_epoch * config.sft.epochs
        self.optimizer, self.scheduler = build_optimizer(model, config.optim, self.total_steps)
        self.output_dir = Path(config.run.output_dir)

    def _with_room_for_a_response(self, pairs: list[tuple[str, str]], max_length: int) -> list[tuple[str, str]]:
        """`pairs` less those whose prompt alone fills `max_length` tokens: cut there, they have
        no response token to learn from (their loss would be 0 / 0). Dropping some is a
        warning; dropping all is an error, before any step is taken."""
        prompt_lengths = [len(ids) for ids in self.tokenizer([p for p, _ in pairs], add_special_tokens=False)["input_ids"]]
        kept = [pair for pair, length in zip(pairs, prompt_lengths) if length < max_length]
        if not kept:
            raise InvalidInputError(
                f"invalid `sft.max_length`: {max_length} tokens leave no room for a response: every prompt "
                f"is at least that long (the shortest has {min(prompt_lengths)} tokens); raise sft.max_length"
            )
        if len(kept) < len(pairs):
            warnings.warn(
                f"SFT: {len(pairs) - len(kept)} of {len(pairs)} examples are left out: their prompt alone fills "
                f"sft.max_length ({max_length} tokens; the longest prompt has {max(prompt_lengths)})",
                stacklevel=3,
            )
        return kept

    def encode(self, batch: Sequence[tuple[str, str]]) -> dict[str, torch.Tensor]:
        """Right-padded ids, attention mask and labels (-100 on prompt and padding)."""
        eos = self.tokenizer.eos_token_id
        rows, labels = [], []
        for prompt, response in batch:
            p = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
            r = self.tokenizer(response, add_special_tokens=False)["input_ids"] + [eos]
            ids = (p + r)[: self.config.sft.max_length]
            rows.append(ids)
            labels.append(([-100] * len(p) + r)[: self.config.sft.max_length])
        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows], device=self.device)
        label_ids = torch.tensor([lab + [-100] * (width - len(lab)) for lab in labels], device=self.device)
        attention = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], device=self.device)
        return {"input_ids": input_ids, "attention_mask": attention, "labels": label_ids}

    def train(self) -> dict[str, Any]:
        run, sft = self.config.run, self.config.sft
        rng = random.Random(run.seed)
        torch.manual_seed(run.seed + rank())
        self.model.train()
        step = nonfinite_in_a_row = 0
        last: dict[str, float] = {}
        with RunLogger(
            self.output_dir, stage=self.config.name or "sft", total_steps=self.total_steps,
            tensorboard=run.tensorboard, wandb_project=run.wandb_project, progress_bar=run.progress_bar,
            config=self.config.to_dict(),
        ) as logger:
            for _ in range(sft.epochs):
                order = list(range(len(self.pairs)))
                rng.shuffle(order)
                # Every rank takes as many pairs (the last ones wrap around to the start), so all
                # run the same number of steps and meet in the same collectives.
                per_rank = -(-len(order) // world_size())
                mine = [order[(rank() + k * world_size()) % len(order)] for k in range(per_rank)]
                for start in range(0, len(mine), sft.batch_size):
                    batch = self.encode([self.pairs[i] for i in mine[start : start + sft.batch_size]])
                    loss = self.model(**batch, use_cache=False).loss  # mean over this rank's response tokens
                    # The mean over all ranks' tokens: DDP and FSDP average gradients over ranks,
                    # so weight each rank by its share of the tokens, times the number of ranks.
                    tokens = float((batch["labels"][:, 1:] != -100).sum())
                    share = tokens / max(all_reduce([tokens])[0], 1.0) * world_size()
                    self.optimizer.zero_grad(set_to_none=True)
                    (loss * share).backward()
                    grad_norm = clip_grad_norm(self.model.parameters(), self.config.optim.max_grad_norm)
                    # A non-finite loss or gradient skips the update (on every rank alike: the
                    # gradient norm is the same on all of them).
                    finite = bool(torch.isfinite(loss * share)) and bool(torch.isfinite(grad_norm))
                    lr = float(self.scheduler.get_last_lr()[0])  # this step's, before the schedule moves on
                    if finite:  # a skipped step leaves the schedule where it was, as in GRPO
                        self.optimizer.step()
                        self.scheduler.step()
                    step += 1
                    last = mean_across_ranks({
                        "loss": loss.item(), "grad_norm": grad_norm.item(), "lr": lr,
                        "response_tokens": float((batch["labels"] != -100).sum()),
                        "nonfinite_skipped": 0.0 if finite else 1.0,
                    })
                    logger.log(step, last)
                    nonfinite_in_a_row = 0 if last["nonfinite_skipped"] == 0 else nonfinite_in_a_row + 1
                    if nonfinite_in_a_row >= run.max_consecutive_nonfinite:
                        raise TrainingError(
                            f"the SFT loss or gradient was not finite for {nonfinite_in_a_row} steps in a row "
                            f"(step {step}); lower optim.lr or use float32"
                        )
        save_checkpoint(self.output_dir / "final", self.model, self.tokenizer, state={"step": step, "stage": self.config.name})
        return {"train": last, "steps": step}
