"""When the sampler is not the trainer: truncated importance sampling (TIS).

A fast inference engine (vLLM) samples with its own kernels and precision, so the probability
it gave a token, p_sampler, differs from the one the trainer computes for the same weights,
p_trainer. The rollouts are then slightly off-policy, and the plain policy gradient is biased
("Your efficient RL framework secretly brings you off-policy RL training", Yao et al., 2025).
TIS reweights each token's policy-gradient term by the importance ratio, truncated so that a
token the sampler found unlikely cannot blow the gradient up:

    w_t = min(p_trainer(y_t) / p_sampler(y_t), C) = min(exp(old_logp_t − sampler_logp_t), C)

with old_logp the trainer's log-probs before the update (a constant: no gradient flows into w).

The clipped surrogate is positively homogeneous in the advantage — for w > 0,
min(r·wA, clip(r)·wA) = w·min(r·A, clip(r)·A) — so multiplying token t's advantage by w_t
multiplies exactly its policy-gradient loss by w_t and leaves the KL term alone; the loss
kernels need no change.
"""

from __future__ import annotations

import torch

from reasonrl.errors import InvalidInputError

__all__ = ["sampler_mismatch", "tis_weights"]


def _check(trainer_logp: torch.Tensor, sampler_logp: torch.Tensor, mask: torch.Tensor) -> None:
    if trainer_logp.shape != sampler_logp.shape or trainer_logp.shape != mask.shape:
        raise InvalidInputError(
            f"invalid `sampler_logp`: shapes differ: trainer {tuple(trainer_logp.shape)}, "
            f"sampler {tuple(sampler_logp.shape)}, mask {tuple(mask.shape)}"
        )


def tis_weights(trainer_logp: torch.Tensor, sampler_logp: torch.Tensor, mask: torch.Tensor, cap: float) -> torch.Tensor:
    """[N, T] truncated importance weights min(exp(trainer − sampler), cap), 0 on padding.

    trainer_logp, sampler_logp: [N, T] log-probs of the sampled tokens; mask: [N, T].
    """
    _check(trainer_logp, sampler_logp, mask)
    if not cap >= 1:
        raise InvalidInputError(f"invalid `cap`: must be >= 1, got {cap}")
    live = mask != 0
    # Padding may hold anything (inf, NaN): zero the difference there before exponentiating.
    delta = torch.where(live, trainer_logp.detach().float() - sampler_logp.detach().float(), 0.0)  # [N, T]
    return torch.where(live, delta.exp().clamp(max=cap), 0.0)


def sampler_mismatch(trainer_logp: torch.Tensor, sampler_logp: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
    """How far the sampler's log-probs are from the trainer's, over completion tokens:
    the mean and max of |Δ log p| (0 for a sampler that is the trainer). One device sync."""
    _check(trainer_logp, sampler_logp, mask)
    live = mask != 0
    diff = torch.where(live, (trainer_logp.detach().float() - sampler_logp.detach().float()).abs(), 0.0)  # [N, T]
    tokens = live.sum().clamp(min=1)
    mean, peak = (diff.sum() / tokens).item(), diff.max().item() if diff.numel() else 0.0
    return {"rollout/logp_abs_diff": mean, "rollout/logp_abs_diff_max": peak}
