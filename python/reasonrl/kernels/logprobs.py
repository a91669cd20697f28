"""Per-token log-probabilities (and entropy) straight from logits, without a [N, V] log-softmax.

    log p(y) = x_y - logsumexp(x),    H = logsumexp(x) - sum_j p_j x_j,    x = logits / temperature

The forward kernel streams each row of logits once, in blocks of the vocabulary, keeping an online
logsumexp (running max ``m``, running sum ``s = sum exp(x - m)``, and for the entropy
``t = sum exp(x - m) (x - m)``, so that ``H = log s - t / s``); it writes three fp32 numbers per
row. The backward kernel streams the row once more and writes

    dL/dx_j = g_logp (1[j = y] - p_j) - g_H p_j (log p_j + H),    then divided by the temperature.

Targets outside ``[0, V)`` (e.g. an ignore index of -100) give log p = 0 and no gradient through it.

Read top to bottom: Triton kernels, launchers, torch twins of the launchers (the CPU path of the
chunked linear loss), the autograd.Function, the public function, and the fp32 torch reference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, overload

import torch

from reasonrl.errors import InvalidInputError

from ._backend import check_float, check_targets, check_temperature, resolve_backend, tl, triton

__all__ = ["token_logprobs", "token_logprobs_ref"]

# Widest vocabulary block one program loads at a time; tests lower it to run several blocks.
MAX_BLOCK_V = 4096


@triton.jit
def _logprobs_fwd_kernel(
    logits_ptr,  # [N, V] fp32/bf16/fp16, last dim contiguous
    targets_ptr,  # [N] int
    logp_ptr,  # [N] fp32 out
    entropy_ptr,  # [N] fp32 out, written when WITH_ENTROPY
    lse_ptr,  # [N] fp32 out, logsumexp of the scaled row, kept for backward
    stride_logits_n,
    V,
    inv_temperature,
    WITH_ENTROPY: tl.constexpr,
    BLOCK_V: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    row_logits = logits_ptr + row * stride_logits_n
    offs = tl.arange(0, BLOCK_V)

    m = float("-inf")
    s = 0.0
    t = 0.0
    for start in range(0, V, BLOCK_V):
        cols = start + offs
        x = tl.load(row_logits + cols, mask=cols < V, other=float("-inf")).to(tl.float32)
        x = x * inv_temperature  # [BLOCK_V]
        m_new = tl.maximum(m, tl.max(x, axis=0))
        # shift by 0 while every logit so far is -inf (masked vocabulary): -inf - -inf is NaN
        shift = tl.where(m_new == float("-inf"), 0.0, m_new)
        rescale = tl.exp(m - shift)
        e = tl.exp(x - shift)  # 0 on padded lanes and on -inf logits
        if WITH_ENTROPY:
            # t = sum e (x - m): relative to the max, so H = log s - t / s has no cancellation
            # between two large numbers; the `where`s keep 0 * -inf from giving NaN
            t = rescale * (t + tl.where(s > 0, m - shift, 0.0) * s)
            t += tl.sum(e * tl.where(e > 0, x - shift, 0.0), axis=0)
        s = s * rescale + tl.sum(e, axis=0)
        m = m_new
    lse = m + tl.log(s)

    target = tl.load(targets_ptr + row).to(tl.int64)
    valid = (target >= 0) & (target < V)
    x_target = tl.load(row_logits + target, mask=valid, other=0.0).to(tl.float32) * inv_temperature
    tl.store(logp_ptr + row, tl.where(valid, x_target - lse, 0.0))
    tl.store(lse_ptr + row, lse)
    if WITH_ENTROPY:
        tl.store(entropy_ptr + row, tl.log(s) - t / s)


@triton.jit
def _logprobs_bwd_kernel(
    logits_ptr,  # [N, V] fp32/bf16/fp16
    grad_logits_ptr,  # [N, V] out; may be logits_ptr itself (each element is read, then written)
    targets_ptr,  # [N] int
    lse_ptr,  # [N] fp32
    entropy_ptr,  # [N] fp32, read when WITH_ENTROPY
    grad_logp_ptr,  # [N] fp32
    grad_entropy_ptr,  # [N] fp32, read when WITH_ENTROPY
    stride_logits_n,
    stride_grad_n,
    V,
    inv_temperature,
    WITH_ENTROPY: tl.constexpr,
    BLOCK_V: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    row_logits = logits_ptr + row * stride_logits_n
    row_grad = grad_logits_ptr + row * stride_grad_n
    offs = tl.arange(0, BLOCK_V)

    lse = tl.load(lse_ptr + row)
    target = tl.load(targets_ptr + row).to(tl.int64)
    g_logp = tl.load(grad_logp_ptr + row).to(tl.float32)
    g_logp = tl.where((target >= 0) & (target < V), g_logp, 0.0)
    if WITH_ENTROPY:
        entropy = tl.load(entropy_ptr + row)
        g_entropy = tl.load(grad_entropy_ptr + row).to(tl.float32)

    for start in range(0, V, BLOCK_V):
        cols = start + offs
        in_row = cols < V
        x = tl.load(row_logits + cols, mask=in_row, other=float("-inf")).to(tl.float32)
        x = x * inv_temperature  # [BLOCK_V]
        p = tl.exp(x - lse)
        grad = tl.where(cols == target, g_logp, 0.0) - g_logp * p
        if WITH_ENTROPY:
            grad -= g_entropy * p * tl.where(p > 0, x - lse + entropy, 0.0)
        grad = grad * inv_temperature
        tl.store(row_grad + cols, grad.to(grad_logits_ptr.dtype.element_ty), mask=in_row)


def _block_v(V: int) -> int:
    return min(triton.next_power_of_2(V), MAX_BLOCK_V)


def logprobs_fwd_triton(
    logits: torch.Tensor,  # [N, V]
    targets: torch.Tensor,  # [N]
    inv_temperature: float,
    with_entropy: bool,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Launch the forward kernel: returns ``(logp [N], entropy [N] or None, lse [N])``, fp32."""
    N, V = logits.shape
    logp = torch.empty(N, dtype=torch.float32, device=logits.device)
    lse = torch.empty_like(logp)
    entropy = torch.empty_like(logp) if with_entropy else None
    if N == 0:
        return logp, entropy, lse
    _logprobs_fwd_kernel[(N,)](
        logits,
        targets,
        logp,
        entropy if with_entropy else logp,
        lse,
        logits.stride(0),
        V,
        inv_temperature,
        WITH_ENTROPY=with_entropy,
        BLOCK_V=_block_v(V),
        num_warps=8,
    )
    return logp, entropy, lse


def logprobs_bwd_triton(
    logits: torch.Tensor,  # [N, V]
    targets: torch.Tensor,  # [N]
    lse: torch.Tensor,  # [N] fp32
    entropy: torch.Tensor | None,  # [N] fp32
    grad_logp: torch.Tensor,  # [N] fp32
    grad_entropy: torch.Tensor | None,  # [N] fp32
    inv_temperature: float,
    out: torch.Tensor | None = None,  # [N, V]; pass `logits` to overwrite them with the gradient
) -> torch.Tensor:
    N, V = logits.shape
    grad_logits = torch.empty_like(logits) if out is None else out
    if N == 0:
        return grad_logits
    with_entropy = grad_entropy is not None
    _logprobs_bwd_kernel[(N,)](
        logits,
        grad_logits,
        targets,
        lse,
        entropy if with_entropy else lse,
        grad_logp,
        grad_entropy if with_entropy else grad_logp,
        logits.stride(0),
        grad_logits.stride(0),
        V,
        inv_temperature,
        WITH_ENTROPY=with_entropy,
        BLOCK_V=_block_v(V),
        num_warps=8,
    )
    return grad_logits


def logprobs_fwd_torch(
    logits: torch.Tensor,  # [N, V]
    targets: torch.Tensor,  # [N]
    inv_temperature: float,
    with_entropy: bool,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """The forward launcher's contract in torch ops (one fp32 [N, V] temporary at a time)."""
    V = logits.shape[-1]
    x = logits.float()  # [N, V]; `logits` itself when already fp32
    if inv_temperature != 1.0:
        x = x * inv_temperature
    lse = torch.logsumexp(x, dim=-1)  # [N]
    valid = (targets >= 0) & (targets < V)
    x_target = x.gather(-1, targets.clamp(0, V - 1).long().unsqueeze(-1)).squeeze(-1)
    logp = torch.where(valid, x_target - lse, 0.0)
    entropy = None
    if with_entropy:
        log_probs = x - lse.unsqueeze(-1)  # [N, V]
        entropy = -(log_probs.exp() * torch.where(log_probs > float("-inf"), log_probs, 0.0)).sum(-1)
    return logp, entropy, lse


def logprobs_bwd_torch(
    logits: torch.Tensor,  # [N, V]; overwritten with the gradient when fp32
    targets: torch.Tensor,  # [N]
    lse: torch.Tensor,  # [N]
    grad_logp: torch.Tensor,  # [N] fp32
    inv_temperature: float,
) -> torch.Tensor:
    """The backward launcher's contract in torch ops, for the log-prob gradient only.

    Like the Triton path of the chunked loss, it reuses the buffer of ``logits`` when it can.
    """
    V = logits.shape[-1]
    valid = (targets >= 0) & (targets < V)
    g = torch.where(valid, grad_logp, 0.0).unsqueeze(-1)  # [N, 1]
    grad = logits.float()  # [N, V]; `logits` itself when already fp32
    if inv_temperature != 1.0:
        grad.mul_(inv_temperature)
    grad.sub_(lse.unsqueeze(-1)).exp_().mul_(-g)  # -g p
    grad.scatter_add_(-1, targets.clamp(0, V - 1).long().unsqueeze(-1), g)
    if inv_temperature != 1.0:
        grad.mul_(inv_temperature)
    return grad.to(logits.dtype)


@dataclass(frozen=True)
class LogprobOptions:
    temperature: float = 1.0
    with_entropy: bool = False


class _TokenLogprobs(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        logits: torch.Tensor,  # [N, V]
        targets: torch.Tensor,  # [N]
        options: LogprobOptions,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        logp, entropy, lse = logprobs_fwd_triton(
            logits, targets, 1.0 / options.temperature, options.with_entropy
        )
        if entropy is None:
            entropy = logp.new_empty(0)
            ctx.mark_non_differentiable(entropy)
            ctx.save_for_backward(logits, targets, lse)
        else:
            ctx.save_for_backward(logits, targets, lse, entropy)
        ctx.options = options  # type: ignore[attr-defined]
        ctx.set_materialize_grads(False)
        return logp, entropy

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        grad_logp: torch.Tensor | None,
        grad_entropy: torch.Tensor | None,
    ) -> tuple[torch.Tensor | None, None, None]:
        options: LogprobOptions = ctx.options  # type: ignore[attr-defined]
        logits, targets, lse, *saved_entropy = ctx.saved_tensors  # type: ignore[attr-defined]
        if grad_logp is None and grad_entropy is None:
            return None, None, None
        if grad_logp is None:
            grad_logp = torch.zeros_like(lse)
        if not options.with_entropy:
            grad_entropy = None
        grad_logits = logprobs_bwd_triton(
            logits,
            targets,
            lse,
            saved_entropy[0] if saved_entropy else None,
            grad_logp.float().contiguous(),
            None if grad_entropy is None else grad_entropy.float().contiguous(),
            1.0 / options.temperature,
        )
        return grad_logits, None, None


@overload
def token_logprobs(
    logits: torch.Tensor, targets: torch.Tensor, *, temperature: float = ...,
    with_entropy: Literal[False] = ..., backend: str = ...,
) -> torch.Tensor: ...
@overload
def token_logprobs(
    logits: torch.Tensor, targets: torch.Tensor, *, temperature: float = ...,
    with_entropy: Literal[True], backend: str = ...,
) -> tuple[torch.Tensor, torch.Tensor]: ...
@overload
def token_logprobs(
    logits: torch.Tensor, targets: torch.Tensor, *, temperature: float = ...,
    with_entropy: bool, backend: str = ...,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]: ...
def token_logprobs(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    temperature: float = 1.0,
    with_entropy: bool = False,
    backend: str = "auto",
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """log p(target) under ``softmax(logits / temperature)`` for every token, in float32.

    ``logits``: ``[..., V]`` (fp32/bf16/fp16); ``targets``: ``[...]`` integer ids. Returns
    ``logp [...]``, or ``(logp, entropy)`` with ``with_entropy=True``; both differentiable with
    respect to ``logits``. The [N, V] log-softmax is never materialised on the Triton path.
    """
    check_float("logits", logits)
    if logits.dim() < 1 or logits.shape[-1] == 0:
        raise InvalidInputError(f"invalid `logits`: need a vocabulary dimension, got {tuple(logits.shape)}")
    check_targets("targets", targets, logits.shape[:-1], logits.device)
    check_temperature(temperature)
    if resolve_backend(backend, logits) == "torch":
        return token_logprobs_ref(logits, targets, temperature=temperature, with_entropy=with_entropy)

    batch_shape, V = logits.shape[:-1], logits.shape[-1]
    logits_2d = logits.reshape(-1, V)  # [N, V]; a view unless `logits` was sliced
    if logits_2d.stride(-1) != 1:
        logits_2d = logits_2d.contiguous()
    options = LogprobOptions(temperature=float(temperature), with_entropy=with_entropy)
    logp, entropy = _TokenLogprobs.apply(logits_2d, targets.reshape(-1).contiguous(), options)
    if with_entropy:
        return logp.view(batch_shape), entropy.view(batch_shape)
    return logp.view(batch_shape)


@overload
def token_logprobs_ref(
    logits: torch.Tensor, targets: torch.Tensor, *, temperature: float = ...,
    with_entropy: Literal[False] = ...,
) -> torch.Tensor: ...
@overload
def token_logprobs_ref(
    logits: torch.Tensor, targets: torch.Tensor, *, temperature: float = ...,
    with_entropy: Literal[True],
) -> tuple[torch.Tensor, torch.Tensor]: ...
@overload
def token_logprobs_ref(
    logits: torch.Tensor, targets: torch.Tensor, *, temperature: float = ...,
    with_entropy: bool,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]: ...
def token_logprobs_ref(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    temperature: float = 1.0,
    with_entropy: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Pure-torch reference (and CPU path): fp32 log-softmax, gather, entropy; autograd backward.

    float64 inputs stay float64 (tests use them as ground truth).
    """
    V = logits.shape[-1]
    x = logits.to(torch.promote_types(logits.dtype, torch.float32))  # fp32, or fp64 if given
    log_probs = torch.log_softmax(x / temperature, dim=-1)  # [..., V]
    valid = (targets >= 0) & (targets < V)
    picked = log_probs.gather(-1, targets.clamp(0, V - 1).long().unsqueeze(-1)).squeeze(-1)
    logp = torch.where(valid, picked, 0.0)
    if not with_entropy:
        return logp
    # where() inside the product: 0 * -inf for banned (-inf) logits is NaN, in backward too
    entropy = -(log_probs.exp() * torch.where(log_probs > float("-inf"), log_probs, 0.0)).sum(-1)
    return logp, entropy

