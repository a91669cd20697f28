"""The clipped GRPO loss with the k3 KL penalty, from per-token log-probabilities.

For every completion token (mask != 0):

    r    = exp(logp - old_logp)
    loss = -min(r A, clip(r, 1 - eps_low, 1 + eps_high) A) + beta KL,
    KL   = exp(ref - logp) - (ref - logp) - 1                                  (k3 estimator)

and the scalar loss is a weighted sum of the token losses; the weight depends only on the mask:

    grpo             1 / (B * tokens in the sequence)     mean per sequence, then over sequences
    bnpo, dapo       1 / (tokens in the batch)            token-level mean
    dr_grpo          1 / (B * max_completion_length)      constant normaliser

As in TRL, an all-padding sequence still counts in B for ``grpo`` and ``dr_grpo``. Here the
normaliser is the tokens of the tensors passed, so ``dapo`` equals ``bnpo`` per call; the
trainer weights each micro-batch by its share of the mini-batch's tokens (all ranks), so a
mini-batch's gradient is its token mean however it is split. TRL (1.16) instead divides
``dapo`` by the generation batch's tokens scaled to one optimizer step, and averages ``bnpo``
over its accumulation steps; with one mini-batch and one pass per batch, as in
``benches/bench_trl.py``, the losses agree.

Because the weights are known before any log-prob is, the gradient of each token,

    dloss/dlogp = w (-r A [r A <= clip(r) A] + beta (1 - exp(ref - logp))),

is computed in the same pass as the loss; backward only scales it. Padding tokens are never loaded,
so NaN or inf in padding cannot leak in, and a sequence that is all padding contributes 0.
Only ``logp`` receives a gradient (old, reference log-probs and advantages are constants in GRPO).

Read top to bottom: Triton kernel, launcher, its torch twin (the CPU path of the chunked linear
loss), the autograd.Function, the public function, and the torch reference (autograd, the CPU path
of ``grpo_loss``).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import NamedTuple

import torch

from reasonrl.errors import InvalidInputError

from ._backend import check_float, check_same_shape, resolve_backend, tl, triton

__all__ = ["LOSS_TYPES", "GRPOLossConfig", "grpo_loss", "grpo_loss_ref"]

LOSS_TYPES = ("grpo", "bnpo", "dapo", "dr_grpo")

# Columns of the per-program partial sums (and of the `stats` vector built from them).
_LOSS, _KL, _CLIP_LOW, _CLIP_HIGH, _ENTROPY, _TOKENS = range(6)
_N_STATS = 6

BLOCK_TOKENS = 1024


@triton.jit
def _grpo_loss_fwd_kernel(
    logp_ptr,  # [N] fp32/bf16/fp16: the flat [B, T] tokens from `token_offset` on
    old_logp_ptr,  # [N], read when HAS_OLD (else old = logp: on-policy)
    ref_logp_ptr,  # [N], read when HAS_REF
    adv_ptr,  # [N] fp32, advantages broadcast to tokens
    mask_ptr,  # [N] uint8
    entropy_ptr,  # [N], read when HAS_ENTROPY
    row_weight_ptr,  # [B] fp32, loss weight of every token of a sequence
    dlogp_ptr,  # [N] fp32 out
    partials_ptr,  # [P, 6] fp32 out, P = cdiv(N, BLOCK)
    n_tokens,
    token_offset,
    T,
    eps_low,
    eps_high,
    beta,
    HAS_OLD: tl.constexpr,
    HAS_REF: tl.constexpr,
    HAS_ENTROPY: tl.constexpr,
    BLOCK: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    offs = pid * BLOCK + tl.arange(0, BLOCK)  # [BLOCK]
    live = tl.load(mask_ptr + offs, mask=offs < n_tokens, other=0) != 0

    logp = tl.load(logp_ptr + offs, mask=live, other=0.0).to(tl.float32)
    if HAS_OLD:
        old_logp = tl.load(old_logp_ptr + offs, mask=live, other=0.0).to(tl.float32)
    else:
        old_logp = logp
    adv = tl.load(adv_ptr + offs, mask=live, other=0.0)
    weight = tl.load(row_weight_ptr + (token_offset + offs) // T, mask=live, other=0.0)

    ratio = tl.exp(logp - old_logp)
    clipped = tl.minimum(tl.maximum(ratio, 1.0 - eps_low), 1.0 + eps_high)
    unclipped_obj = ratio * adv
    clipped_obj = clipped * adv
    loss = -tl.minimum(unclipped_obj, clipped_obj)
    dlogp = tl.where(unclipped_obj <= clipped_obj, -unclipped_obj, 0.0)
    if HAS_REF:
        ref_logp = tl.load(ref_logp_ptr + offs, mask=live, other=0.0).to(tl.float32)
        delta = ref_logp - logp
        exp_delta = tl.exp(delta)
        kl = exp_delta - delta - 1.0
        loss += beta * kl
        dlogp += beta * (1.0 - exp_delta)
        tl.store(partials_ptr + pid * 6 + 1, tl.sum(tl.where(live, kl, 0.0), axis=0))
    else:
        tl.store(partials_ptr + pid * 6 + 1, 0.0)
    tl.store(dlogp_ptr + offs, tl.where(live, weight * dlogp, 0.0), mask=offs < n_tokens)

    clip_low = live & (ratio < 1.0 - eps_low) & (adv < 0)
    clip_high = live & (ratio > 1.0 + eps_high) & (adv > 0)
    tl.store(partials_ptr + pid * 6 + 0, tl.sum(tl.where(live, weight * loss, 0.0), axis=0))
    tl.store(partials_ptr + pid * 6 + 2, tl.sum(clip_low.to(tl.float32), axis=0))
    tl.store(partials_ptr + pid * 6 + 3, tl.sum(clip_high.to(tl.float32), axis=0))
    if HAS_ENTROPY:
        entropy = tl.load(entropy_ptr + offs, mask=live, other=0.0).to(tl.float32)
        tl.store(partials_ptr + pid * 6 + 4, tl.sum(entropy, axis=0))
    else:
        tl.store(partials_ptr + pid * 6 + 4, 0.0)
    tl.store(partials_ptr + pid * 6 + 5, tl.sum(live.to(tl.float32), axis=0))


@dataclass(frozen=True)
class GRPOLossConfig:
    """The loss options; one object travels through forward instead of many arguments."""

    eps_low: float = 0.2
    eps_high: float = 0.2
    beta: float = 0.0
    loss_type: str = "grpo"
    max_completion_length: int | None = None


class TokenTerms(NamedTuple):
    """The constant per-token inputs of the loss, flat over tokens ([N] = [B * T])."""

    old_logp: torch.Tensor | None  # [N] or None (on-policy: old = logp)
    ref_logp: torch.Tensor | None  # [N] or None (no KL)
    advantages: torch.Tensor  # [N] fp32
    mask: torch.Tensor  # [N] uint8
    row_weight: torch.Tensor  # [B] fp32
    T: int

    def slice(self, start: int, stop: int) -> TokenTerms:
        return TokenTerms(
            None if self.old_logp is None else self.old_logp[start:stop],
            None if self.ref_logp is None else self.ref_logp[start:stop],
            self.advantages[start:stop],
            self.mask[start:stop],
            self.row_weight,
            self.T,
        )


def grpo_terms_triton(
    logp: torch.Tensor,  # [n] chunk of tokens starting at `token_offset`
    terms: TokenTerms,  # already sliced to the same n tokens
    entropy: torch.Tensor | None,  # [n]
    config: GRPOLossConfig,
    token_offset: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Launch the loss kernel: returns ``(dloss/dlogp [n] fp32, stats [6] fp32)``."""
    n = logp.numel()
    dlogp = torch.empty(n, dtype=torch.float32, device=logp.device)
    n_programs = triton.cdiv(n, BLOCK_TOKENS)
    partials = torch.empty(n_programs, _N_STATS, dtype=torch.float32, device=logp.device)
    if n == 0:
        return dlogp, partials.new_zeros(_N_STATS)
    _grpo_loss_fwd_kernel[(n_programs,)](
        logp,
        logp if terms.old_logp is None else terms.old_logp,
        logp if terms.ref_logp is None else terms.ref_logp,
        terms.advantages,
        terms.mask,
        logp if entropy is None else entropy,
        terms.row_weight,
        dlogp,
        partials,
        n,
        token_offset,
        terms.T,
        config.eps_low,
        config.eps_high,
        config.beta,
        HAS_OLD=terms.old_logp is not None,
        HAS_REF=terms.ref_logp is not None,
        HAS_ENTROPY=entropy is not None,
        BLOCK=BLOCK_TOKENS,
        num_warps=4,
    )
    return dlogp, partials.sum(0)


def grpo_terms_torch(
    logp: torch.Tensor,  # [n]
    terms: TokenTerms,
    entropy: torch.Tensor | None,  # [n]
    config: GRPOLossConfig,
    token_offset: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The launcher's contract in torch ops, with the gradient in closed form."""
    live = terms.mask != 0  # [n]
    logp = torch.where(live, logp.float(), 0.0)
    old_logp = logp if terms.old_logp is None else torch.where(live, terms.old_logp.float(), 0.0)
    adv = torch.where(live, terms.advantages, 0.0)
    rows = torch.arange(token_offset, token_offset + logp.numel(), device=logp.device) // terms.T
    weight = terms.row_weight[rows]  # [n]

    ratio = torch.exp(logp - old_logp)
    clipped = ratio.clamp(1.0 - config.eps_low, 1.0 + config.eps_high)
    unclipped_obj, clipped_obj = ratio * adv, clipped * adv
    loss = -torch.minimum(unclipped_obj, clipped_obj)
    dlogp = torch.where(unclipped_obj <= clipped_obj, -unclipped_obj, 0.0)
    kl_sum = logp.new_zeros(())
    if terms.ref_logp is not None:
        delta = torch.where(live, terms.ref_logp.float(), 0.0) - logp
        kl = delta.exp() - delta - 1.0
        loss = loss + config.beta * kl
        dlogp = dlogp + config.beta * (1.0 - delta.exp())
        kl_sum = torch.where(live, kl, 0.0).sum()
    stats = torch.stack(
        [
            torch.where(live, weight * loss, 0.0).sum(),
            kl_sum,
            (live & (ratio < 1.0 - config.eps_low) & (adv < 0)).sum().float(),
            (live & (ratio > 1.0 + config.eps_high) & (adv > 0)).sum().float(),
            logp.new_zeros(()) if entropy is None else torch.where(live, entropy.float(), 0.0).sum(),
            live.sum().float(),
        ]
    )
    return torch.where(live, weight * dlogp, 0.0), stats


def row_weights(mask: torch.Tensor, config: GRPOLossConfig) -> torch.Tensor:
    """The loss weight of each sequence's tokens, [B] fp32 (see the module docstring)."""
    B, T = mask.shape
    live = mask != 0
    if config.loss_type == "grpo":
        return 1.0 / (B * live.sum(-1).clamp(min=1).float())
    if config.loss_type in ("bnpo", "dapo"):
        return (1.0 / live.sum().clamp(min=1).float()).expand(B).contiguous()
    length = config.max_completion_length if config.max_completion_length is not None else T
    return torch.full((B,), 1.0 / (B * length), device=mask.device)


def metrics_from_stats(stats: torch.Tensor, has_ref: bool, has_entropy: bool) -> dict[str, torch.Tensor]:
    """Means over completion tokens, as 0-d tensors (no device sync)."""
    tokens = stats[_TOKENS].clamp(min=1.0)
    metrics = {
        "clip_ratio/low": stats[_CLIP_LOW] / tokens,
        "clip_ratio/high": stats[_CLIP_HIGH] / tokens,
        "clip_ratio/region": (stats[_CLIP_LOW] + stats[_CLIP_HIGH]) / tokens,
    }
    if has_ref:
        metrics["kl"] = stats[_KL] / tokens
    if has_entropy:
        metrics["entropy"] = stats[_ENTROPY] / tokens
    return metrics


class _GRPOLoss(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        logp: torch.Tensor,  # [N]
        terms: TokenTerms,
        entropy: torch.Tensor | None,  # [N], metrics only
        config: GRPOLossConfig,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        dlogp, stats = grpo_terms_triton(logp, terms, entropy, config)
        ctx.save_for_backward(dlogp)
        ctx.logp_dtype = logp.dtype  # type: ignore[attr-defined]
        ctx.mark_non_differentiable(stats)
        return stats[_LOSS].clone(), stats

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad_loss: torch.Tensor, _grad_stats: torch.Tensor
    ) -> tuple[torch.Tensor, None, None, None]:
        (dlogp,) = ctx.saved_tensors  # type: ignore[attr-defined]
        return (grad_loss * dlogp).to(ctx.logp_dtype), None, None, None  # type: ignore[attr-defined]


def grpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor | None,
    ref_logp: torch.Tensor | None,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    eps_low: float = 0.2,
    eps_high: float = 0.2,
    beta: float = 0.0,
    loss_type: str = "grpo",
    max_completion_length: int | None = None,
    entropy: torch.Tensor | None = None,
    backend: str = "auto",
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The clipped GRPO loss and its metrics.

    ``logp``, ``old_logp``, ``ref_logp``, ``mask``, ``entropy``: ``[B, T]``; ``advantages``:
    ``[B]`` or ``[B, T]``. ``old_logp=None`` means on-policy (old = logp detached);
    ``ref_logp=None`` is allowed when ``beta == 0``. ``loss_type``: ``grpo``, ``bnpo``, ``dapo``
    or ``dr_grpo`` (``max_completion_length`` defaults to ``T``). Returns ``(loss, metrics)``:
    a 0-d fp32 loss differentiable in ``logp``, and 0-d tensors ``clip_ratio/low``,
    ``clip_ratio/high``, ``clip_ratio/region``, plus ``kl`` when ``ref_logp`` is given and
    ``entropy`` when it is given (all means over completion tokens).
    """
    config = _check_inputs(logp, old_logp, ref_logp, advantages, mask, entropy, eps_low, eps_high, beta,
                           loss_type, max_completion_length)
    if resolve_backend(backend, logp) == "torch":
        return grpo_loss_ref(logp, old_logp, ref_logp, advantages, mask, config=config, entropy=entropy)

    terms = token_terms(old_logp, ref_logp, advantages, mask, config)
    flat_entropy = None if entropy is None else entropy.detach().reshape(-1).contiguous()
    loss, stats = _GRPOLoss.apply(logp.reshape(-1).contiguous(), terms, flat_entropy, config)
    return loss, metrics_from_stats(stats, ref_logp is not None, entropy is not None)


def token_terms(
    old_logp: torch.Tensor | None,
    ref_logp: torch.Tensor | None,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    config: GRPOLossConfig,
) -> TokenTerms:
    """Flatten the constant [B, T] inputs to tokens (small copies: [B, T] each, no [N, V])."""
    B, T = mask.shape
    adv = advantages.detach().float()
    adv = (adv[:, None] if adv.dim() == 1 else adv).expand(B, T).reshape(-1).contiguous()
    return TokenTerms(
        old_logp=None if old_logp is None else old_logp.detach().reshape(-1).contiguous(),
        ref_logp=None if ref_logp is None else ref_logp.detach().reshape(-1).contiguous(),
        advantages=adv,
        mask=(mask != 0).to(torch.uint8).reshape(-1),
        row_weight=row_weights(mask, config),
        T=T,
    )


def _check_inputs(
    logp: torch.Tensor,
    old_logp: torch.Tensor | None,
    ref_logp: torch.Tensor | None,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    entropy: torch.Tensor | None,
    eps_low: float,
    eps_high: float,
    beta: float,
    loss_type: str,
    max_completion_length: int | None,
    logp_name: str = "logp",
) -> GRPOLossConfig:
    """Validate the loss inputs (`logp` is [B, T]) and return the config."""
    check_float(logp_name, logp, ndim=(2,))
    if logp.shape[0] == 0 or logp.shape[1] == 0:
        # Every loss type divides by rows or tokens: an empty batch has no loss to average.
        raise InvalidInputError(f"invalid `{logp_name}`: an empty batch (B = {logp.shape[0]}, T = {logp.shape[1]})")
    for name, value in (("old_logp", old_logp), ("ref_logp", ref_logp), ("entropy", entropy)):
        if value is not None:
            check_float(name, value)
            check_same_shape(name, value, logp_name, logp)
    check_float("advantages", advantages, ndim=(1, 2))
    if advantages.shape not in (logp.shape[:1], logp.shape):
        raise InvalidInputError(
            f"invalid `advantages`: expected shape [B] = {tuple(logp.shape[:1])} or [B, T] = "
            f"{tuple(logp.shape)}, got {tuple(advantages.shape)}"
        )
    if advantages.device != logp.device:
        raise InvalidInputError(f"invalid `advantages`: on {advantages.device}, expected {logp.device}")
    if not isinstance(mask, torch.Tensor):
        raise InvalidInputError(f"invalid `mask`: expected a torch.Tensor, got {type(mask).__name__}")
    check_same_shape("mask", mask, logp_name, logp)
    if loss_type not in LOSS_TYPES:
        raise InvalidInputError(f"invalid `loss_type`: expected one of {LOSS_TYPES}, got {loss_type!r}")
    for name, number in (("eps_low", eps_low), ("eps_high", eps_high), ("beta", beta)):
        # numbers.Real: numpy scalars too (a config read through numpy); finite: an infinite
        # clip range or KL weight gives an inf or NaN loss, not a training signal.
        if isinstance(number, bool) or not isinstance(number, numbers.Real) or not 0 <= float(number) < math.inf:
            raise InvalidInputError(f"invalid `{name}`: expected a finite number >= 0, got {number!r}")
    if eps_low >= 1:
        raise InvalidInputError(f"invalid `eps_low`: expected < 1, got {eps_low}")
    if beta != 0 and ref_logp is None:
        raise InvalidInputError("invalid `ref_logp`: required when `beta` != 0")
    if max_completion_length is not None and not (
        isinstance(max_completion_length, numbers.Integral) and not isinstance(max_completion_length, bool)
        and max_completion_length > 0
    ):
        raise InvalidInputError(
            f"invalid `max_completion_length`: expected a positive int, got {max_completion_length!r}"
        )
    return GRPOLossConfig(
        float(eps_low), float(eps_high), float(beta), loss_type,
        None if max_completion_length is None else int(max_completion_length),
    )


def grpo_loss_ref(
    logp: torch.Tensor,
    old_logp: torch.Tensor | None,
    ref_logp: torch.Tensor | None,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    config: GRPOLossConfig = GRPOLossConfig(),
    entropy: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Pure-torch reference (and CPU path): fp32 (fp64 if given), [B, T] tensors, autograd backward."""
    B, T = logp.shape
    dtype = torch.promote_types(logp.dtype, torch.float32)  # fp32, or fp64 if given
    live = mask != 0  # [B, T]
    logp32 = torch.where(live, logp.to(dtype), 0.0)
    old = logp32.detach() if old_logp is None else torch.where(live, old_logp.detach().to(dtype), 0.0)
    adv = advantages.detach().to(dtype)
    adv = torch.where(live, adv[:, None] if adv.dim() == 1 else adv, 0.0)  # [B, T]

    ratio = torch.exp(logp32 - old)
    clipped = ratio.clamp(1.0 - config.eps_low, 1.0 + config.eps_high)
    per_token = -torch.minimum(ratio * adv, clipped * adv)  # [B, T]
    metrics: dict[str, torch.Tensor] = {}
    tokens = live.sum().clamp(min=1).to(dtype)
    if ref_logp is not None:
        delta = torch.where(live, ref_logp.detach().to(dtype), 0.0) - logp32
        kl = delta.exp() - delta - 1.0  # [B, T]
        if config.beta != 0.0:
            per_token = per_token + config.beta * kl
        metrics["kl"] = torch.where(live, kl, 0.0).sum().detach() / tokens
    per_token = torch.where(live, per_token, 0.0)

    if config.loss_type == "grpo":
        loss = (per_token.sum(-1) / live.sum(-1).clamp(min=1)).mean()
    elif config.loss_type in ("bnpo", "dapo"):
        loss = per_token.sum() / tokens
    else:
        length = config.max_completion_length if config.max_completion_length is not None else T
        loss = per_token.sum() / (B * length)

    clip_low = live & (ratio < 1.0 - config.eps_low) & (adv < 0)
    clip_high = live & (ratio > 1.0 + config.eps_high) & (adv > 0)
    metrics["clip_ratio/low"] = clip_low.sum().float() / tokens
    metrics["clip_ratio/high"] = clip_high.sum().float() / tokens
    metrics["clip_ratio/region"] = (clip_low | clip_high).sum().float() / tokens
    if entropy is not None:
        metrics["entropy"] = torch.where(live, entropy.detach().float(), 0.0).sum() / tokens
    return loss, metrics
