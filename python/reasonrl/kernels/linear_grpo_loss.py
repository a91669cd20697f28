"""The GRPO loss straight from the last hidden states: lm_head, log-prob and loss fused by chunks.

The unfused path holds ``logits = hidden @ W^T`` for every token ([N, V], 152k wide for Qwen), a
log-softmax of the same size, and its gradient. Here the tokens go through in chunks of C rows:

    logits_c = hidden_c @ W^T                       [C, V], the only vocabulary-wide buffer
    logp_c, lse_c = logprob kernel(logits_c)        online logsumexp, [C] each
    dloss/dlogp_c = GRPO loss kernel(logp_c, ...)   the token weights depend only on the mask
    grad_logits_c = logprob backward kernel         written over logits_c, in place
    grad_hidden_c = grad_logits_c @ W,   grad_W += grad_logits_c^T @ hidden_c

so the loss and both gradients come out of one pass (three matmuls per chunk, like the unfused
forward + backward), and backward only scales the stored gradients by the incoming one. The
vocabulary is covered in blocks inside the kernels rather than by splitting the matmul. Extra
memory beyond the inputs: one chunk of logits (see MIN_CHUNK_TOKENS), grad_hidden [N, H], and
grad_W [V, H] (kept in fp32 while accumulating when W is bf16/fp16).

``linear_token_logprobs`` is the no-grad form for the old-policy and reference log-probs.
``backend="torch"`` runs the same chunked algorithm with torch ops (the CPU path);
``linear_grpo_loss_ref`` is the plain unfused composition, for tests and benchmarks.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal, overload

import torch

from reasonrl.errors import InvalidInputError

from ._backend import check_float, check_targets, check_temperature, resolve_backend
from .grpo_loss import (
    GRPOLossConfig,
    TokenTerms,
    _check_inputs,
    grpo_loss_ref,
    grpo_terms_torch,
    grpo_terms_triton,
    metrics_from_stats,
    token_terms,
)
from .logprobs import (
    logprobs_bwd_torch,
    logprobs_bwd_triton,
    logprobs_fwd_torch,
    logprobs_fwd_triton,
    token_logprobs_ref,
)

__all__ = ["LinearConfig", "linear_grpo_loss", "linear_grpo_loss_ref", "linear_token_logprobs"]

# Chunk size: the logits of a chunk take about as much memory as the hidden states of the whole
# batch (C = N H / V), but at least MIN_CHUNK_TOKENS rows so the matmuls stay efficient, and at
# most CHUNK_BYTES of logits. For 16 x 2048 tokens, H = 1536, V = 151 936: C = 332, 100 MB.
MIN_CHUNK_TOKENS = 256
CHUNK_BYTES = 256 * 2**20


@dataclass(frozen=True)
class LinearConfig:
    """Everything that is not a tensor, in one object."""

    loss: GRPOLossConfig
    temperature: float = 1.0
    with_entropy: bool = False
    chunk_tokens: int | None = None
    backend: str = "torch"  # "triton" or "torch", already resolved

    def chunk_size(self, n_tokens: int, hidden: int, vocab: int, dtype: torch.dtype) -> int:
        if self.chunk_tokens is not None:
            return self.chunk_tokens
        memory_neutral = -(-n_tokens * hidden // vocab)
        largest = max(1, CHUNK_BYTES // (vocab * dtype.itemsize))
        return max(1, min(n_tokens, largest, max(MIN_CHUNK_TOKENS, memory_neutral)))


class _ChunkOps:
    """The three per-chunk steps, by backend; both follow the launcher contracts."""

    def __init__(self, backend: str) -> None:
        self.triton = backend == "triton"

    def logprobs(
        self, logits: torch.Tensor, targets: torch.Tensor, inv_t: float, with_entropy: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        fwd = logprobs_fwd_triton if self.triton else logprobs_fwd_torch
        return fwd(logits, targets, inv_t, with_entropy)

    def loss_terms(
        self,
        logp: torch.Tensor,
        terms: TokenTerms,
        entropy: torch.Tensor | None,
        config: GRPOLossConfig,
        token_offset: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        fn = grpo_terms_triton if self.triton else grpo_terms_torch
        return fn(logp, terms, entropy, config, token_offset)

    def grad_logits(
        self, logits: torch.Tensor, targets: torch.Tensor, lse: torch.Tensor, dlogp: torch.Tensor,
        inv_t: float,
    ) -> torch.Tensor:
        """The gradient of the chunk's logits, written over them where the backend can."""
        if self.triton:
            return logprobs_bwd_triton(logits, targets, lse, None, dlogp, None, inv_t, out=logits)
        return logprobs_bwd_torch(logits, targets, lse, dlogp, inv_t)


def _fused_loss_and_grads(
    hidden: torch.Tensor,  # [N, H]
    weight: torch.Tensor,  # [V, H]
    targets: torch.Tensor,  # [N]
    terms: TokenTerms,
    config: LinearConfig,
    need_grad_hidden: bool,
    need_grad_weight: bool,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """One pass over token chunks: ``(stats [6], grad_hidden [N, H], grad_weight [V, H])``."""
    N, V = hidden.shape[0], weight.shape[0]
    ops = _ChunkOps(config.backend)
    inv_t = 1.0 / config.temperature
    chunk = config.chunk_size(N, hidden.shape[-1], V, hidden.dtype)
    stats = torch.zeros(6, dtype=torch.float32, device=hidden.device)
    grad_hidden = torch.empty_like(hidden) if need_grad_hidden else None
    # bf16/fp16 weights: sum the per-chunk products in fp32, round once at the end
    grad_weight_acc = (
        torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if need_grad_weight else None
    )
    for start in range(0, N, chunk):
        stop = min(start + chunk, N)
        hidden_c = hidden[start:stop]  # [C, H]
        targets_c = targets[start:stop]  # [C]
        logits = hidden_c @ weight.T  # [C, V]
        logp, entropy, lse = ops.logprobs(logits, targets_c, inv_t, config.with_entropy)
        dlogp, chunk_stats = ops.loss_terms(logp, terms.slice(start, stop), entropy, config.loss, start)
        stats += chunk_stats
        if not (need_grad_hidden or need_grad_weight):
            continue
        grad_logits = ops.grad_logits(logits, targets_c, lse, dlogp, inv_t)  # [C, V]
        if grad_hidden is not None:
            torch.mm(grad_logits, weight, out=grad_hidden[start:stop])
        if grad_weight_acc is not None:
            _add_weight_grad(grad_weight_acc, grad_logits, hidden_c)
        del logits, grad_logits
    grad_weight = None if grad_weight_acc is None else grad_weight_acc.to(weight.dtype)
    return stats, grad_hidden, grad_weight


def _add_weight_grad(
    acc: torch.Tensor,  # [V, H] fp32
    grad_logits: torch.Tensor,  # [C, V]
    hidden: torch.Tensor,  # [C, H]
) -> None:
    """``acc += grad_logits^T @ hidden``, without a [V, H] temporary where the library allows."""
    if grad_logits.dtype == acc.dtype:
        acc.addmm_(grad_logits.T, hidden)
        return
    if acc.is_cuda:
        try:  # torch >= 2.8: cuBLAS adds bf16/fp16 products straight into the fp32 buffer
            torch.addmm(acc, grad_logits.T, hidden, out_dtype=torch.float32, out=acc)
            return
        except (TypeError, RuntimeError):
            pass
    acc += grad_logits.T @ hidden  # CPU has no mixed-dtype matmul: one [V, H] temporary


class _LinearGRPOLoss(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        hidden: torch.Tensor,  # [N, H]
        weight: torch.Tensor,  # [V, H]
        batch: tuple[torch.Tensor, TokenTerms],  # targets [N] and the constant loss inputs
        config: LinearConfig,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        targets, terms = batch
        need_hidden, need_weight = ctx.needs_input_grad[0], ctx.needs_input_grad[1]  # type: ignore[attr-defined]
        stats, grad_hidden, grad_weight = _fused_loss_and_grads(
            hidden, weight, targets, terms, config, need_hidden, need_weight
        )
        ctx.grad_hidden, ctx.grad_weight = grad_hidden, grad_weight  # type: ignore[attr-defined]
        ctx.consumed = False  # type: ignore[attr-defined]
        ctx.mark_non_differentiable(stats)
        return stats[0].clone(), stats

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad_loss: torch.Tensor, _grad_stats: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, None, None]:
        if ctx.consumed:  # type: ignore[attr-defined]
            raise RuntimeError("linear_grpo_loss: backward can run only once per forward")
        grad_hidden, grad_weight = ctx.grad_hidden, ctx.grad_weight  # type: ignore[attr-defined]
        # scaled in place: a second [V, H] buffer would double the largest allocation left
        ctx.grad_hidden = ctx.grad_weight = None  # type: ignore[attr-defined]
        ctx.consumed = True  # type: ignore[attr-defined]
        if grad_hidden is not None:
            grad_hidden.mul_(grad_loss.to(grad_hidden.dtype))
        if grad_weight is not None:
            grad_weight.mul_(grad_loss.to(grad_weight.dtype))
        return grad_hidden, grad_weight, None, None


def _check_linear(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> None:
    if hidden.dim() < 1 or hidden.shape[-1] == 0:
        raise InvalidInputError(f"invalid `hidden`: expected [..., H] with H >= 1, got {tuple(hidden.shape)}")
    check_float("lm_head_weight", weight, ndim=(2,))
    if weight.shape[0] == 0:
        raise InvalidInputError("invalid `lm_head_weight`: an empty vocabulary (V = 0)")
    if weight.shape[1] != hidden.shape[-1]:
        raise InvalidInputError(
            f"invalid `lm_head_weight`: expected [V, H] with H = {hidden.shape[-1]} (from `hidden`), "
            f"got {tuple(weight.shape)}"
        )
    if weight.dtype != hidden.dtype or weight.device != hidden.device:
        raise InvalidInputError(
            f"invalid `lm_head_weight`: expected {hidden.dtype} on {hidden.device} like `hidden`, "
            f"got {weight.dtype} on {weight.device}"
        )
    check_targets("targets", targets, hidden.shape[:-1], hidden.device)


def linear_grpo_loss(
    hidden: torch.Tensor,
    lm_head_weight: torch.Tensor,
    targets: torch.Tensor,
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
    temperature: float = 1.0,
    with_entropy: bool = False,
    chunk_tokens: int | None = None,
    backend: str = "auto",
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``grpo_loss`` of ``token_logprobs(hidden @ lm_head_weight.T, targets)``, fused by chunks.

    ``hidden``: ``[B, T, H]``; ``lm_head_weight``: ``[V, H]`` (same dtype); ``targets``, ``mask``,
    ``old_logp``, ``ref_logp``: ``[B, T]``; ``advantages``: ``[B]`` or ``[B, T]``. The loss options
    are those of ``grpo_loss``; ``with_entropy`` adds the mean entropy to the metrics;
    ``chunk_tokens`` overrides the chunk size. Gradients flow to ``hidden`` and ``lm_head_weight``.
    """
    check_float("hidden", hidden, ndim=(3,))
    _check_linear(hidden, lm_head_weight, targets)
    loss_config = _check_inputs(hidden[..., 0], old_logp, ref_logp, advantages, mask, None, eps_low,
                                eps_high, beta, loss_type, max_completion_length, logp_name="hidden[..., 0]")
    config = _linear_config(loss_config, temperature, with_entropy, chunk_tokens, backend, hidden)
    H = hidden.shape[-1]
    terms = token_terms(old_logp, ref_logp, advantages, mask, loss_config)
    batch = (targets.reshape(-1).contiguous(), terms)
    loss, stats = _LinearGRPOLoss.apply(hidden.reshape(-1, H).contiguous(), lm_head_weight, batch, config)
    return loss, metrics_from_stats(stats, ref_logp is not None, with_entropy)


@overload
def linear_token_logprobs(
    hidden: torch.Tensor, lm_head_weight: torch.Tensor, targets: torch.Tensor, *,
    temperature: float = ..., with_entropy: Literal[False] = ..., chunk_tokens: int | None = ...,
    backend: str = ...,
) -> torch.Tensor: ...
@overload
def linear_token_logprobs(
    hidden: torch.Tensor, lm_head_weight: torch.Tensor, targets: torch.Tensor, *,
    temperature: float = ..., with_entropy: Literal[True], chunk_tokens: int | None = ...,
    backend: str = ...,
) -> tuple[torch.Tensor, torch.Tensor]: ...
@overload
def linear_token_logprobs(
    hidden: torch.Tensor, lm_head_weight: torch.Tensor, targets: torch.Tensor, *,
    temperature: float = ..., with_entropy: bool, chunk_tokens: int | None = ...,
    backend: str = ...,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]: ...
@torch.no_grad()
def linear_token_logprobs(
    hidden: torch.Tensor,
    lm_head_weight: torch.Tensor,
    targets: torch.Tensor,
    *,
    temperature: float = 1.0,
    with_entropy: bool = False,
    chunk_tokens: int | None = None,
    backend: str = "auto",
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """log p(target) (and entropy) from hidden states ``[..., H]``, chunked; no gradient.

    For the old-policy and reference log-probs: peak memory is one chunk of logits.
    """
    check_float("hidden", hidden)
    _check_linear(hidden, lm_head_weight, targets)
    config = _linear_config(GRPOLossConfig(), temperature, with_entropy, chunk_tokens, backend, hidden)
    ops = _ChunkOps(config.backend)
    H, V = hidden.shape[-1], lm_head_weight.shape[0]
    hidden_2d = hidden.reshape(-1, H)  # [N, H]
    targets_1d = targets.reshape(-1)  # [N]
    N = hidden_2d.shape[0]
    logp = torch.empty(N, dtype=torch.float32, device=hidden.device)
    entropy = torch.empty_like(logp) if with_entropy else None
    chunk = config.chunk_size(N, hidden.shape[-1], V, hidden.dtype)
    for start in range(0, N, chunk):
        stop = min(start + chunk, N)
        logits = hidden_2d[start:stop] @ lm_head_weight.T  # [C, V]
        logp_c, entropy_c, _ = ops.logprobs(
            logits, targets_1d[start:stop].contiguous(), 1.0 / config.temperature, with_entropy
        )
        logp[start:stop] = logp_c
        if entropy is not None and entropy_c is not None:
            entropy[start:stop] = entropy_c
        del logits
    if entropy is not None:
        return logp.view(targets.shape), entropy.view(targets.shape)
    return logp.view(targets.shape)


def _linear_config(
    loss: GRPOLossConfig,
    temperature: float,
    with_entropy: bool,
    chunk_tokens: int | None,
    backend: str,
    hidden: torch.Tensor,
) -> LinearConfig:
    check_temperature(temperature)
    if chunk_tokens is not None and not (isinstance(chunk_tokens, int) and chunk_tokens > 0):
        raise InvalidInputError(f"invalid `chunk_tokens`: expected a positive int, got {chunk_tokens!r}")
    return LinearConfig(loss, float(temperature), with_entropy, chunk_tokens, resolve_backend(backend, hidden))


def linear_grpo_loss_ref(
    hidden: torch.Tensor,
    lm_head_weight: torch.Tensor,
    targets: torch.Tensor,
    old_logp: torch.Tensor | None,
    ref_logp: torch.Tensor | None,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    temperature: float = 1.0,
    with_entropy: bool = False,
    **loss_options: object,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The unfused path: full [N, V] logits, fp32 log-softmax, gather, loss; autograd backward."""
    logits = hidden @ lm_head_weight.T  # [B, T, V]
    entropy: torch.Tensor | None = None
    if with_entropy:
        logp, entropy = token_logprobs_ref(logits, targets, temperature=temperature, with_entropy=True)
    else:
        logp = token_logprobs_ref(logits, targets, temperature=temperature)
    config = replace(GRPOLossConfig(), **loss_options)  # type: ignore[arg-type]
    return grpo_loss_ref(logp, old_logp, ref_logp, advantages, mask, config=config, entropy=entropy)
