"""Fused kernels for the GRPO loss: per-token log-probs, entropy, k3 KL and the clipped loss.

Ships inside the wheel as ``reasonrl.kernels``: ``python/reasonrl/kernels`` is a symlink to this
folder, and maturin copies the files it points to.

Every function takes ``backend="auto" | "triton" | "torch"``: ``auto`` runs the Triton kernels on
CUDA tensors and the pure-torch reference elsewhere (set ``TRITON_INTERPRET=1`` before the first
import to run the Triton kernels on CPU tensors, as the tests do).

- ``token_logprobs(logits, targets)``: log p(target) (+ entropy) without a [N, V] log-softmax.
- ``grpo_loss(logp, old_logp, ref_logp, advantages, mask)``: the clipped loss and its metrics.
- ``linear_grpo_loss(hidden, lm_head_weight, targets, ...)``: the same loss from hidden states,
  chunked so the [N, V] logits never exist at once; ``linear_token_logprobs`` for old/ref log-probs.
"""

from .grpo_loss import LOSS_TYPES, GRPOLossConfig, grpo_loss, grpo_loss_ref
from .linear_grpo_loss import linear_grpo_loss, linear_grpo_loss_ref, linear_token_logprobs
from .logprobs import token_logprobs, token_logprobs_ref

__all__ = [
    "LOSS_TYPES",
    "GRPOLossConfig",
    "grpo_loss",
    "grpo_loss_ref",
    "linear_grpo_loss",
    "linear_grpo_loss_ref",
    "linear_token_logprobs",
    "token_logprobs",
    "token_logprobs_ref",
]
