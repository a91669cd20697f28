"""Supervised fine-tuning: the cold-start stage before RL (DeepSeek-R1 §2.3.1).

The loss is next-token cross-entropy on the response tokens only (the prompt is context, not a
target), averaged over response tokens, with the end-of-sequence token appended so the model
learns to stop. Checkpoints, --resume and Ctrl-C work as in the GRPO trainer: a resumed run
takes the same batches in the same order and ends with the same weights.
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from reasonrl.config import StageConfig, expect_stage
from reasonrl.data import Example
from reasonrl.errors import InvalidInputError, TrainingError
from reasonrl.trainer.checkpoint import (
    drop_logged_after,
    latest_checkpoint,
    load_model_weights,
    load_trainer_state,
    resume_or_start_fresh,
    save_checkpoint,
    save_then_stop,
    stop_after_the_step_on_interrupt,
)
from reasonrl.trainer.distributed import (
    all_reduce,
    clip_grad_norm,
    gradient_sync,
    mean_across_ranks,
    rank,
    world_size,
    wrap_policy,
)
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
        self.config = expect_stage(config, "sft", "SFTTrainer")
        if not pairs:
            raise InvalidInputError("invalid `pairs`: the SFT set is empty")
        self.tokenizer = tokenizer
        self.pairs = self._with_room_for_a_response(list(pairs), config.sft.max_length)
        self.device = next(model.parameters()).device
        self.model = wrap_policy(model, config.distributed)  # unchanged in a single process
        per_rank = -(-len(self.pairs) // world_size())
        self.steps_per_epoch = -(-per_rank // config.sft.batch_size)
        # The stage's length: `sft.epochs` over the data, or `sft.max_steps` if fewer (`run.steps`
        # is GRPO's).
        self.total_steps = self.steps_per_epoch * config.sft.epochs
        if config.sft.max_steps is not None:
            self.total_steps = min(self.total_steps, config.sft.max_steps)
        self.optimizer, self.scheduler = build_optimizer(model, config.optim, self.total_steps)
        self.output_dir = Path(config.run.output_dir)
        self.step = 0  # optimizer steps taken (skipped non-finite ones included)

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

    def epoch_batches(self, epoch_order: list[int]) -> list[list[int]]:
        """This rank's batches of one epoch, given the epoch's order of all pairs. Every rank
        takes as many pairs (the last ones wrap around to the start), so all run the same number
        of steps and meet in the same collectives: step j takes positions [j·B·W, (j+1)·B·W) of
        the order, rank r every W-th of them."""
        W, B = world_size(), self.config.sft.batch_size
        per_rank = -(-len(epoch_order) // W)
        mine = [epoch_order[(rank() + k * W) % len(epoch_order)] for k in range(per_rank)]
        return [mine[start : start + B] for start in range(0, len(mine), B)]

    def train_step(self, batch: Sequence[tuple[str, str]]) -> dict[str, float]:
        """One optimizer step on this rank's `batch`, in micro-batches of `sft.micro_batch_size`
        whose gradients add up to the whole batch's: each micro-batch's mean loss is weighted by
        its share of the response tokens of all ranks' batches."""
        size = self.config.sft.micro_batch_size or len(batch)
        micro_batches = [self.encode(batch[start : start + size]) for start in range(0, len(batch), size)]
        # Response tokens the loss averages over (labels shift by one inside the model).
        tokens = [float((m["labels"][:, 1:] != -100).sum()) for m in micro_batches]
        total = max(all_reduce([sum(tokens)])[0], 1.0)
        self.optimizer.zero_grad(set_to_none=True)
        loss_sum, finite = 0.0, True
        for index, (micro, count) in enumerate(zip(micro_batches, tokens)):
            with gradient_sync(self.model, enabled=index == len(micro_batches) - 1):
                loss = self.model(**micro, use_cache=False).loss  # mean over this micro-batch's response tokens
                # DDP and FSDP average gradients over ranks: times the number of ranks.
                weighted = loss * (count / total * world_size())
                finite = finite and bool(torch.isfinite(weighted))
                weighted.backward()
            loss_sum += loss.item() * count
        grad_norm = clip_grad_norm(self.model.parameters(), self.config.optim.max_grad_norm)
        # A non-finite loss or gradient skips the update (on every rank alike: the gradient
        # norm is the same on all of them).
        finite = finite and bool(torch.isfinite(grad_norm))
        lr = float(self.scheduler.get_last_lr()[0])  # this step's, before the schedule moves on
        if finite:  # a skipped step leaves the schedule where it was, as in GRPO
            self.optimizer.step()
            self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return mean_across_ranks({
            "loss": loss_sum / max(sum(tokens), 1.0), "grad_norm": grad_norm.item(), "lr": lr,
            "response_tokens": float(sum(int((m["labels"] != -100).sum()) for m in micro_batches)),
            "nonfinite_skipped": 0.0 if finite else 1.0,
        })

    def save(self, directory: Path) -> Path | None:
        """A checkpoint of the model, optimizer, scheduler, RNG and data position (the step)."""
        state = {"step": self.step, "stage": self.config.name, "world_size": world_size()}
        return save_checkpoint(directory, self.model, self.tokenizer, optimizer=self.optimizer, scheduler=self.scheduler, state=state)

    def resume(self, checkpoint: Path | None = None) -> bool:
        """Continues from `checkpoint` (default: the latest in the output folder, `final`
        included); the metrics logged after its step are dropped (they are logged again).
        False when there is nothing to resume from. The step fixes the data position, and
        what a step holds depends on the number of ranks, so it must be the one that saved."""
        checkpoint = checkpoint or latest_checkpoint(self.output_dir)
        if checkpoint is None:
            return False
        load_model_weights(checkpoint, self.model)
        state = load_trainer_state(checkpoint, model=self.model, optimizer=self.optimizer, scheduler=self.scheduler)
        saved_ranks = int(state.get("world_size", 1))
        if saved_ranks != world_size():
            raise TrainingError(
                f"cannot resume SFT from {checkpoint}: it was saved by {saved_ranks} rank(s) and this run has "
                f"{world_size()}; a step's batch spans sft.batch_size x ranks pairs, so the data position "
                "and learning-rate schedule hold only at the same number of ranks"
            )
        self.step = int(state["step"])
        drop_logged_after(self.output_dir, self.step)
        return True

    def train(self, *, resume: bool = False) -> dict[str, Any]:
        run, sft = self.config.run, self.config.sft
        torch.manual_seed(run.seed + rank())
        resume_or_start_fresh(self, resume=resume, overwrite=run.overwrite)
        self.model.train()
        nonfinite_in_a_row = 0
        last: dict[str, float] = {}
        # Each epoch's order comes from one seeded stream, shuffle after shuffle: a resumed run
        # replays the shuffles of the epochs it skips, so it takes the same batches.
        rng = random.Random(run.seed)
        first_epoch, first_batch = divmod(self.step, self.steps_per_epoch)
        with RunLogger(
            self.output_dir, stage=self.config.name or "sft", total_steps=self.total_steps,
            tensorboard=run.tensorboard, wandb_project=run.wandb_project, progress_bar=run.progress_bar,
            config=self.config.to_dict(),
        ) as logger, stop_after_the_step_on_interrupt() as interrupted:
            for epoch in range(sft.epochs):
                order = list(range(len(self.pairs)))
                rng.shuffle(order)
                if epoch < first_epoch:
                    continue
                batches = self.epoch_batches(order)[first_batch if epoch == first_epoch else 0 :]
                for indices in batches[: max(0, self.total_steps - self.step)]:
                    last = self.train_step([self.pairs[i] for i in indices])
                    self.step += 1
                    logger.log(self.step, last)
                    nonfinite_in_a_row = 0 if last["nonfinite_skipped"] == 0 else nonfinite_in_a_row + 1
                    if nonfinite_in_a_row >= run.max_consecutive_nonfinite:
                        raise TrainingError(
                            f"the SFT loss or gradient was not finite for {nonfinite_in_a_row} steps in a row "
                            f"(step {self.step}); lower optim.lr or use float32"
                        )
                    saved = None
                    if run.save_every and self.step % run.save_every == 0:
                        saved = self.save(self.output_dir / f"checkpoint-{self.step}")
                    if interrupted():
                        save_then_stop(saved, lambda: self.save(self.output_dir / f"checkpoint-{self.step}"))
        self.save(self.output_dir / "final")
        return {"train": last, "steps": self.step}
