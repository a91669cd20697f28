"""Cutting a mini-batch into micro-batches (gradient accumulation) leaves the update as it was:
rows of similar length are put together and each micro-batch is cut to its own longest row, so
short rows stop paying for the longest row of the step, and the loss, gradient and weights are
those of one pass over the whole mini-batch, for every loss type."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from fixed_rollout import FixedRollout
from same_training import assert_trains_alike

from reasonrl.data import get_template
from reasonrl.demo.task import PROMPT_TEMPLATE
from reasonrl.trainer.grpo import GRPOTrainer, by_length, narrowed

ROWS = 16  # 4 prompts x 4 completions


def one_and_several(tmp_path, make_stage, tiny_model, tokenizer, problems, micro_batch_size, **algorithm):
    train, _ = problems
    models = copy.deepcopy(tiny_model), copy.deepcopy(tiny_model)
    trainers = []
    for name, model, size in zip(("one", "several"), models, (ROWS, micro_batch_size)):
        config = make_stage(
            tmp_path / name, algorithm={**algorithm, "micro_batch_size": size},
            rollout={"prompts_per_step": 4, "group_size": 4, "max_new_tokens": 24},
            optim={"lr": 1e-3, "schedule": "constant"},
        )
        trainers.append(GRPOTrainer(config, model, tokenizer, train, rollout=FixedRollout(tokenizer), template=get_template(PROMPT_TEMPLATE)))
    return trainers, models


@pytest.mark.parametrize(
    ("micro_batch_size", "algorithm"),
    [
        (3, {"loss_type": "dapo"}),
        (5, {"loss_type": "grpo", "num_iterations": 2, "beta": 0.05}),  # old and reference log-probs by micro-batch too
        (4, {"loss_type": "dr_grpo", "share_prompt_forward": False}),
        (6, {"loss_type": "bnpo", "fused_lm_head": True}),
    ],
    ids=["dapo", "grpo-mu2-kl", "dr_grpo-plain-forward", "bnpo-fused-head"],
)
def test_several_micro_batches_train_like_one(tmp_path, make_stage, tiny_model, tokenizer, problems, micro_batch_size, algorithm):
    (one, several), (one_model, several_model) = one_and_several(
        tmp_path, make_stage, tiny_model, tokenizer, problems, micro_batch_size, **algorithm
    )
    narrowest: list[int] = []
    loss = several.policy_loss

    def recording(micro, advantages):
        narrowest.append(micro.completion_ids.shape[1])
        return loss(micro, advantages)

    several.policy_loss = recording
    assert_trains_alike(one, several, one_model, several_model, tiny_model, steps=2,
                        metrics=("loss", "grad_norm", "kl", "clip_ratio/region"))
    # The FixedRollout's completions run from 3 to 24 tokens: some micro-batches were cut.
    assert min(narrowest) < max(narrowest), narrowest


def test_by_length_keeps_units_together_and_puts_long_ones_first():
    from reasonrl.trainer.grpo import PolicyBatch

    lengths = torch.tensor([2, 5, 1, 1, 4, 4])
    T = 6
    mask = (torch.arange(T)[None, :] < lengths[:, None]).float()
    batch = PolicyBatch(torch.zeros(6, 8, dtype=torch.long), torch.ones(6, 8, dtype=torch.long),
                        torch.zeros(6, T, dtype=torch.long), mask, torch.ones(6))
    units = torch.tensor([0, 0, 1, 1, 2, 2])  # unit lengths (longest row): 5, 1, 4
    assert by_length(batch, units).tolist() == [0, 1, 4, 5, 2, 3]
    assert by_length(batch, torch.arange(6)).tolist() == [1, 4, 5, 0, 2, 3]


def test_narrowed_drops_only_columns_that_are_padding_in_every_row():
    from reasonrl.trainer.grpo import PolicyBatch

    # Prompts left-padded to 4 (real lengths 2 and 3), completions right-padded to 5 (lengths 2, 3).
    prompt_mask = torch.tensor([[0, 0, 1, 1], [0, 1, 1, 1]])
    completion_mask = torch.tensor([[1, 1, 0, 0, 0], [1, 1, 1, 0, 0]])
    input_ids = torch.arange(18).view(2, 9)
    old = torch.randn(2, 5)
    batch = PolicyBatch(input_ids, torch.cat([prompt_mask, completion_mask], dim=1), input_ids[:, 4:],
                        completion_mask.float(), torch.tensor([1.0, -1.0]), old_logp=old)
    cut = narrowed(batch)
    assert cut.input_ids.tolist() == input_ids[:, 1:7].tolist()  # prompt columns 1-3, completion 0-2
    assert cut.completion_ids.tolist() == input_ids[:, 4:7].tolist()
    assert torch.equal(cut.old_logp, old[:, :3]) and cut.ref_logp is None
    assert np.array_equal(cut.completion_mask.sum(dim=1).numpy(), [2, 3])
    assert narrowed(cut) is cut  # nothing left to drop
