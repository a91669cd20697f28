"""Truncated importance sampling and the sampler/trainer mismatch metric, on CPU with a fake
sampler that reports its own log-probs (as vLLM does)."""

from __future__ import annotations

import math

import pytest
import torch
from fixed_rollout import FixedRollout

from reasonrl.config import ConfigError
from reasonrl.data import get_template
from reasonrl.demo.task import PROMPT_TEMPLATE
from reasonrl.errors import InvalidInputError
from reasonrl.kernels import grpo_loss
from reasonrl.trainer.grpo import GRPOTrainer
from reasonrl.trainer.importance import sampler_mismatch, tis_weights


def test_tis_weights_are_truncated_ratios_and_zero_on_padding():
    trainer = torch.tensor([[-1.0, -2.0, -0.5, 0.0]])
    sampler = torch.tensor([[-1.5, -1.0, -0.5, float("nan")]])  # padding may hold anything
    mask = torch.tensor([[1, 1, 1, 0]])
    w = tis_weights(trainer, sampler, mask, cap=1.5)
    torch.testing.assert_close(w, torch.tensor([[1.5, math.exp(-1.0), 1.0, 0.0]]))  # exp(0.5) = 1.65 → 1.5
    assert not tis_weights(trainer.requires_grad_(), sampler, mask, cap=2.0).requires_grad  # a constant
    with pytest.raises(InvalidInputError, match="cap"):
        tis_weights(trainer, sampler, mask, cap=0.5)
    with pytest.raises(InvalidInputError, match="shapes differ"):
        tis_weights(trainer, sampler[:, :3], mask, cap=2.0)


def test_sampler_mismatch_is_mean_and_max_over_completion_tokens():
    trainer = torch.tensor([[-1.0, -2.0, 0.0], [-3.0, 0.0, 0.0]])
    sampler = torch.tensor([[-1.5, -1.0, 9.0], [-3.25, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    metrics = sampler_mismatch(trainer, sampler, mask)
    assert metrics["rollout/logp_abs_diff"] == pytest.approx((0.5 + 1.0 + 0.25) / 3)
    assert metrics["rollout/logp_abs_diff_max"] == pytest.approx(1.0)  # the 9.0 is padding


@pytest.mark.parametrize("loss_type", ["dapo", "grpo"])
def test_weighting_the_advantage_weights_each_tokens_policy_gradient_term(loss_type):
    """The identity TIS relies on: min(r·wA, clip(r)·wA) = w·min(r·A, clip(r)·A) for w > 0, so
    token-level advantages A·w scale exactly each token's policy-gradient loss and gradient by w,
    clipped tokens included, and leave the KL term alone."""
    torch.manual_seed(0)
    B, T = 3, 5
    old = -torch.rand(B, T) * 3
    logp = (old + torch.randn(B, T) * 0.2).requires_grad_()  # ratios around 1 ± 0.2: some clip
    advantages = torch.tensor([1.0, -0.5, 2.0])
    mask = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 1]])
    w = torch.rand(B, T) * 1.5 + 0.1

    def token_grad(adv, beta=0.0, ref=None):
        loss, _ = grpo_loss(logp, old, ref, adv, mask, loss_type=loss_type, beta=beta, backend="torch")
        (grad,) = torch.autograd.grad(loss, logp)
        return grad  # [B, T]

    plain = token_grad(advantages)
    live = mask.bool()
    assert (plain[live] != 0).sum() >= 4 and (plain[live] == 0).any()  # both clipped and unclipped tokens
    torch.testing.assert_close(token_grad(advantages[:, None] * w), plain * w)
    # With a KL term, only the policy-gradient part is reweighted.
    ref = old - 0.3
    kl_only = token_grad(torch.zeros(B), beta=0.1, ref=ref)
    torch.testing.assert_close(token_grad(advantages[:, None] * w, beta=0.1, ref=ref), plain * w + kl_only)


def make_trainer(tmp_path, tiny_model, tokenizer, problems, make_stage, **algorithm):
    config = make_stage(tmp_path, rollout={"prompts_per_step": 2, "group_size": 4},
                        algorithm={"micro_batch_size": 64, "loss_type": "dapo", **algorithm})
    train, _ = problems
    rollout = FixedRollout(tokenizer, sampler_logp=True)
    return GRPOTrainer(config, tiny_model, tokenizer, train, rollout=rollout, template=get_template(PROMPT_TEMPLATE))


def capture_update_inputs(trainer, monkeypatch):
    """Records the packed batch `update` receives and the advantages the loss receives."""
    import reasonrl.trainer.grpo as grpo_module

    seen: dict = {"advantages": [], "old_logp": []}
    real_loss, real_update = grpo_module.grpo_loss, trainer.update

    def loss(logp, old_logp, ref_logp, advantages, mask, **kwargs):
        seen["advantages"].append(advantages.detach().clone())
        seen["old_logp"].append(old_logp.detach().clone())
        return real_loss(logp, old_logp, ref_logp, advantages, mask, **kwargs)

    def update(batch):
        seen["batch"] = batch
        return real_update(batch)

    monkeypatch.setattr(grpo_module, "grpo_loss", loss)
    monkeypatch.setattr(trainer, "update", update)
    return seen


def test_trainer_applies_tis_weights_from_its_own_old_logprobs(tmp_path, tiny_model, tokenizer, problems, make_stage, monkeypatch):
    trainer = make_trainer(tmp_path, tiny_model, tokenizer, problems, make_stage, tis_cap=1.2)
    seen = capture_update_inputs(trainer, monkeypatch)
    metrics = trainer.train_step()

    batch = seen["batch"]
    # μ = 1, one mini-batch: old log-probs exist only because the sampler reported its own.
    assert batch.old_logp is not None and batch.sampler_logp is not None
    mask = batch.completion_mask
    expected_w = torch.clamp(torch.exp(batch.old_logp - batch.sampler_logp), max=1.2) * mask
    torch.testing.assert_close(batch.tis_weight, expected_w)
    assert (expected_w[mask.bool()] == 1.2).any() and (expected_w[mask.bool()] < 1.0).any()  # both sides of 1, some capped

    # The loss got advantage × weight per token for every row with a nonzero advantage (the
    # others skip the passes); micro-batch rows are shuffled: match them by their old log-probs.
    (advantages,), (old,) = seen["advantages"], seen["old_logp"]
    in_loss = torch.nonzero(batch.advantages != 0).squeeze(1).tolist()
    assert advantages.shape == (len(in_loss), mask.shape[1]) and len(in_loss) >= 2
    for row in in_loss:
        match = [i for i in range(len(old)) if torch.equal(old[i], batch.old_logp[row])]
        assert match, row
        torch.testing.assert_close(advantages[match[0]], batch.advantages[row] * expected_w[row])

    reference = sampler_mismatch(batch.old_logp, batch.sampler_logp, mask)
    assert metrics["rollout/logp_abs_diff"] == pytest.approx(reference["rollout/logp_abs_diff"])
    assert metrics["rollout/logp_abs_diff_max"] == pytest.approx(reference["rollout/logp_abs_diff_max"])
    assert metrics["rollout/tis_weight_mean"] == pytest.approx(float(expected_w.sum() / mask.sum()))


def test_without_tis_cap_the_mismatch_is_reported_and_the_loss_is_unweighted(tmp_path, tiny_model, tokenizer, problems, make_stage, monkeypatch):
    trainer = make_trainer(tmp_path, tiny_model, tokenizer, problems, make_stage)
    seen = capture_update_inputs(trainer, monkeypatch)
    metrics = trainer.train_step()
    assert seen["batch"].tis_weight is None
    assert all(a.dim() == 1 for a in seen["advantages"])
    assert metrics["rollout/logp_abs_diff"] > 0 and "rollout/tis_weight_mean" not in metrics


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        ({"algorithm": {"tis_cap": 0.5}}, r"algorithm\.tis_cap: must be >= 1"),
        ({"rollout": {"gpu_memory_utilization": 1.5}}, r"rollout\.gpu_memory_utilization: must be in \(0, 1\]"),
        ({"distributed": {"strategy": "zero3"}}, r"distributed\.strategy: 'zero3' is not one of"),
        ({"distributed": {"strategy": "ddp", "cpu_offload": True}}, r"distributed\.cpu_offload: only FSDP"),
        ({"distributed": {"mixed_precision": "fp8"}}, r"distributed\.mixed_precision"),
    ],
)
def test_scaling_settings_are_checked(tmp_path, make_stage, sections, message):
    with pytest.raises(ConfigError, match=message):
        make_stage(tmp_path, **sections)
