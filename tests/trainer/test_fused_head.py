"""`algorithm.fused_lm_head`: the loss from hidden states and the head's weight trains exactly
like the loss from logits, and a head it cannot reproduce is refused before training."""

from __future__ import annotations

import copy

import pytest
import torch
from fixed_rollout import FixedRollout
from same_training import assert_trains_alike

from reasonrl.config import ConfigError
from reasonrl.data import get_template
from reasonrl.demo.task import PROMPT_TEMPLATE
from reasonrl.trainer.grpo import GRPOTrainer


def trainer_for(tmp_path, make_stage, model, tokenizer, problems, *, fused, name, **algorithm):
    config = make_stage(
        tmp_path / name,
        algorithm={"fused_lm_head": fused, "micro_batch_size": 3, **algorithm},
        rollout={"prompts_per_step": 2, "group_size": 4, "max_new_tokens": 12},
    )
    train, _ = problems
    rollout = FixedRollout(tokenizer)
    return GRPOTrainer(config, model, tokenizer, train, rollout=rollout, template=get_template(PROMPT_TEMPLATE))


@pytest.mark.parametrize(
    "algorithm",
    [
        {"loss_type": "dapo"},
        # μ = 2 and two mini-batches need old log-probs; beta > 0 needs reference log-probs:
        # both come from the fused `linear_token_logprobs` path.
        {"loss_type": "grpo", "num_iterations": 2, "mini_batches": 2, "beta": 0.05},
    ],
    ids=["dapo", "grpo-mu2-kl"],
)
def test_fused_head_trains_like_the_logits_path(tmp_path, make_stage, tiny_model, tokenizer, problems, algorithm):
    plain_model, fused_model = copy.deepcopy(tiny_model), copy.deepcopy(tiny_model)
    plain = trainer_for(tmp_path, make_stage, plain_model, tokenizer, problems, fused=False, name="plain", **algorithm)
    fused = trainer_for(tmp_path, make_stage, fused_model, tokenizer, problems, fused=True, name="fused", **algorithm)
    assert_trains_alike(plain, fused, plain_model, fused_model, tiny_model)


def test_heads_the_fused_loss_cannot_reproduce_are_refused(tmp_path, make_stage, tiny_model, tokenizer, problems):
    biased = copy.deepcopy(tiny_model)
    biased.lm_head.bias = torch.nn.Parameter(torch.zeros(biased.lm_head.out_features))
    with pytest.raises(ConfigError, match="bias"):
        trainer_for(tmp_path, make_stage, biased, tokenizer, problems, fused=True, name="bias")
    capped = copy.deepcopy(tiny_model)
    capped.config.final_logit_softcapping = 30.0
    with pytest.raises(ConfigError, match="final_logit_softcapping"):
        trainer_for(tmp_path, make_stage, capped, tokenizer, problems, fused=True, name="capped")
