"""Rows whose advantage is exactly 0 skip the forward and backward passes (beta = 0, one
process): the loss keeps counting them, so training is exactly what it was without the skip."""

from __future__ import annotations

import copy

import pytest
import torch
from fixed_rollout import FixedRollout
from same_training import assert_trains_alike

from reasonrl.data import get_template
from reasonrl.demo.task import PROMPT_TEMPLATE
from reasonrl.trainer.grpo import GRPOTrainer

# Entropy and clip fractions are means over the tokens of the rows in the loss: they differ.
SAME_METRICS = ("loss", "grad_norm", "kl")


def skipping_and_plain(tmp_path, make_stage, tiny_model, tokenizer, problems, *, uniform_every: int, **algorithm):
    """Two trainers on copies of `tiny_model`: the second runs every row through the passes.
    Every `uniform_every`-th training prompt gets G identical completions (all rewards equal)."""
    train, _ = problems
    template = get_template(PROMPT_TEMPLATE)
    uniform = {template.render(e, tokenizer) for e in train[::uniform_every]}
    models = copy.deepcopy(tiny_model), copy.deepcopy(tiny_model)
    trainers = []
    for name, model in zip(("skipping", "plain"), models):
        config = make_stage(
            tmp_path / name, algorithm=algorithm, rollout={"prompts_per_step": 4, "group_size": 4, "max_new_tokens": 12},
            optim={"lr": 1e-3, "weight_decay": 0.1, "schedule": "constant"},
        )
        trainers.append(GRPOTrainer(config, model, tokenizer, train, rollout=FixedRollout(tokenizer, uniform=uniform), template=template))
    trainers[1].rows_in_gradient = lambda mini: torch.ones(len(mini), dtype=torch.bool)  # the plain path: every row
    return trainers, models


@pytest.mark.parametrize(
    "algorithm",
    [
        {"loss_type": "dapo", "micro_batch_size": 3},
        {"loss_type": "grpo", "micro_batch_size": 5, "num_iterations": 2, "mini_batches": 2},
        {"loss_type": "dr_grpo", "micro_batch_size": 16, "share_prompt_forward": False},
        {"loss_type": "bnpo", "micro_batch_size": 4, "fused_lm_head": True},
    ],
    ids=["dapo", "grpo-mu2-two-mini-batches", "dr_grpo-plain-forward", "bnpo-fused-head"],
)
def test_skipping_zero_advantage_rows_trains_exactly_alike(tmp_path, make_stage, tiny_model, tokenizer, problems, algorithm):
    (skipping, plain), (skip_model, plain_model) = skipping_and_plain(
        tmp_path, make_stage, tiny_model, tokenizer, problems, uniform_every=2, **algorithm
    )
    skipped = []
    step = skipping.train_step
    skipping.train_step = lambda: (metrics := step(), skipped.append(metrics["zero_advantage_rows"]))[0]
    assert_trains_alike(plain, skipping, plain_model, skip_model, tiny_model, steps=3, metrics=SAME_METRICS)
    assert sum(skipped) >= 4  # uniform groups were left out of the passes


def test_a_mini_batch_of_zero_advantages_still_takes_the_optimizer_step(tmp_path, make_stage, tiny_model, tokenizer, problems):
    """No row runs, but AdamW still moves the weights (momentum, weight decay) as it does after a
    backward pass that left zero gradients."""
    (skipping, plain), (skip_model, plain_model) = skipping_and_plain(
        tmp_path, make_stage, tiny_model, tokenizer, problems, uniform_every=2, loss_type="dapo", micro_batch_size=8
    )
    for trainer in (plain, skipping):  # a first step with a gradient: Adam has momentum
        torch.manual_seed(0)
        trainer.train_step()
    after_first = copy.deepcopy(skip_model)
    for trainer in (plain, skipping):
        trainer.rollout.uniform = {trainer.template.render(e, trainer.tokenizer) for e in problems[0]}
    last = assert_trains_alike(plain, skipping, plain_model, skip_model, tiny_model, steps=1, metrics=SAME_METRICS)
    assert last["zero_advantage_rows"] == 16 and last["optimizer_steps"] == 1
    assert all(p.grad is not None and not p.grad.any() for p in skip_model.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(skip_model.parameters(), after_first.parameters()))


def test_with_the_kl_term_every_row_runs(tmp_path, make_stage, tiny_model, tokenizer, problems):
    (skipping, _), _ = skipping_and_plain(
        tmp_path, make_stage, tiny_model, tokenizer, problems, uniform_every=1, beta=0.05, micro_batch_size=8
    )
    metrics = skipping.train_step()
    assert metrics["zero_advantage_rows"] == 0 and metrics["optimizer_steps"] == 1
