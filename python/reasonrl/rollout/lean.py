"""A lean decode step for Llama-family models (Llama, Mistral, Qwen2, Qwen3).

A rollout calls the model once per generated token, with one new token per row. Through the
Hugging Face modules that call costs a fixed few milliseconds of Python and small-op overhead
(cache objects, mask building, output classes, hooks, per-layer dispatch) whatever the model
size: on a small model or a small batch it dominates the whole rollout. `LeanDecoder` runs the
same arithmetic straight on the model's own weights, with the KV cache in preallocated buffers:
one linear for q, k and v (a fused copy of the three matrices, made per rollout while it stays
under `FUSED_COPY_LIMIT` bytes; a 7B model's would be gigabytes, and it gets three linears),
rotary embedding of q and k together, attention on the cache, the MLP, the head.

The prompt is still encoded by the model's own forward (once per prompt, see `HFRollout`);
only the decode steps go through here. Anything this module does not reproduce exactly (other
architectures, sliding windows shorter than the rollout, logit soft-capping, quantized or
sharded weights, LoRA-wrapped layers, forward hooks) makes `unsupported_reason` say why, and the
rollout keeps the Hugging Face forward.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from transformers import DynamicCache, PreTrainedModel

SUPPORTED_MODEL_TYPES = ("llama", "mistral", "qwen2", "qwen3")
# RoPE variants whose angles depend on the position only (not on the longest position seen so
# far, as "dynamic" and "longrope" do): their cos/sin are tabulated once per rollout.
_STATIC_ROPE_TYPES = ("default", "linear", "llama3", "yarn")
# Largest fused q/k/v copy (all layers together) made per rollout.
FUSED_COPY_LIMIT = 256 << 20
# RMSNorm classes computing weight * (x / rms(x)) in fp32, the way this module does.
_RMS_NORMS = ("LlamaRMSNorm", "MistralRMSNorm", "Qwen2RMSNorm", "Qwen3RMSNorm")


def unsupported_reason(model: PreTrainedModel, total_length: int) -> str | None:
    """Why `LeanDecoder` cannot run `model` for sequences of `total_length` tokens, or None."""
    config = model.config
    if config.model_type not in SUPPORTED_MODEL_TYPES:
        return f"model type {config.model_type!r} is not one of {SUPPORTED_MODEL_TYPES}"
    base: Any = getattr(model, "model", None)
    layers = getattr(base, "layers", None)
    if layers is None or not hasattr(base, "rotary_emb") or not isinstance(getattr(model, "lm_head", None), torch.nn.Linear):
        return "the module layout is not the usual model.layers / model.rotary_emb / lm_head"
    for name in ("final_logit_softcapping", "attn_logit_softcapping", "logit_scale"):
        if getattr(config, name, None):
            return f"config.{name} is set"
    for name, param in model.named_parameters():
        if type(param) is not torch.nn.Parameter or type(param.data) is not torch.Tensor:
            return f"parameter {name} is a {type(param).__name__} (sharded or quantized weights)"
    for name, module in model.named_modules():
        if module._forward_hooks or module._forward_pre_hooks:
            return f"module {name or 'model'} has forward hooks, which the lean step would skip"
    for index, layer in enumerate(layers):
        attention, mlp = getattr(layer, "self_attn", None), getattr(layer, "mlp", None)
        linears = [getattr(attention, n, None) for n in ("q_proj", "k_proj", "v_proj", "o_proj")]
        linears += [getattr(mlp, n, None) for n in ("gate_proj", "up_proj", "down_proj")]
        if not all(type(linear) is torch.nn.Linear for linear in linears):
            return f"layer {index} has projections that are not plain nn.Linear (LoRA or quantized?)"
        norms = [layer.input_layernorm, layer.post_attention_layernorm]
        norms += [getattr(attention, n) for n in ("q_norm", "k_norm") if hasattr(attention, n)]
        if not all(type(norm).__name__ in _RMS_NORMS for norm in norms):
            return f"layer {index} has a norm that is not one of {_RMS_NORMS}"
        window = getattr(attention, "sliding_window", None)
        if window is not None and window < total_length:
            return f"layer {index} uses a sliding window of {window} < {total_length} tokens"
    if type(base.norm).__name__ not in _RMS_NORMS:
        return "the final norm is not an RMSNorm"
    return None


def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """The Llama RMSNorm: normalised in fp32, cast back, then scaled."""
    if x.dtype == torch.float32:
        return F.rms_norm(x, weight.shape, weight, eps)
    return weight * F.rms_norm(x.float(), weight.shape, None, eps).to(x.dtype)


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary embedding in the half-split layout: x·cos + rotate_half(x)·sin."""
    half = x.shape[-1] // 2
    return x * cos + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin


def _attend(
    q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor | None, scale: float
) -> torch.Tensor:
    """[n, Hq, 1, D] attention of one query per row over its cache (keys/values [n, Hkv, S, D],
    mask [n, 1, 1, S] or None), query heads grouped onto their shared key/value head."""
    n, Hq, _, D = q.shape
    Hkv = keys.shape[1]
    if q.is_cuda:
        return F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, scale=scale, enable_gqa=Hq != Hkv)
    # On CPU the fused kernel is built for long query blocks: for one query, three plain ops
    # are several times faster.
    grouped = q.view(n, Hkv, Hq // Hkv, D)  # [n, Hkv, g, D]
    scores = torch.matmul(grouped, keys.transpose(-1, -2)).mul_(scale)  # [n, Hkv, g, S]
    if mask is not None:
        scores.masked_fill_(~mask, float("-inf"))
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(values.dtype)
    return torch.matmul(probs, values).view(n, Hq, 1, D)


def _linear(module: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """`module(x)` without the module call (hooks are refused up front)."""
    return F.linear(x, module.weight, module.bias)


class _Layer:
    """One decoder layer's weights: references into the model, and (`fuse`) q/k/v in one matrix."""

    def __init__(self, layer: Any, hidden_act: str | None, fuse: bool):
        # `layer` is a Hugging Face decoder layer (Any: torch types every submodule attribute
        # as `Tensor | Module`); `unsupported_reason` has checked the types below.
        attention, mlp = layer.self_attn, layer.mlp
        q, k, v = attention.q_proj, attention.k_proj, attention.v_proj
        self.projections: tuple[torch.nn.Linear, torch.nn.Linear, torch.nn.Linear] = (q, k, v)
        self.qkv_weight: torch.Tensor | None = None
        self.qkv_bias: torch.Tensor | None = None
        if fuse:
            self.qkv_weight = torch.cat([q.weight, k.weight, v.weight]).detach()  # [(Hq+2Hkv)·D, H]
            biases = [p.bias for p in (q, k, v)]
            self.qkv_bias = None if all(b is None for b in biases) else torch.cat(
                [b if b is not None else q.weight.new_zeros(p.out_features) for b, p in zip(biases, (q, k, v))]
            ).detach()
        self.o_proj: torch.nn.Linear = attention.o_proj
        self.gate_proj: torch.nn.Linear = mlp.gate_proj
        self.up_proj: torch.nn.Linear = mlp.up_proj
        self.down_proj: torch.nn.Linear = mlp.down_proj
        # F.silu itself where the model's activation is SiLU: a module call costs more than the op.
        self.act: Any = F.silu if hidden_act in ("silu", "swish") else mlp.act_fn
        # RMSNorm modules (`weight`, `variance_epsilon`); q_norm / k_norm only in Qwen3.
        self.input_norm: Any = layer.input_layernorm
        self.post_attention_norm: Any = layer.post_attention_layernorm
        self.q_norm: Any = getattr(attention, "q_norm", None)
        self.k_norm: Any = getattr(attention, "k_norm", None)
        self.scaling: float = attention.scaling

    def qkv(self, h: torch.Tensor) -> torch.Tensor:
        """[n, 1, (Hq + 2·Hkv)·D] q, k and v of the normed hidden states h ([n, 1, H])."""
        if self.qkv_weight is not None:
            return F.linear(h, self.qkv_weight, self.qkv_bias)
        return torch.cat([_linear(m, h) for m in self.projections], dim=-1)


class LeanDecoder:
    """Decode steps of a supported model (see `unsupported_reason`) over a preallocated cache.

    Args:
        model: the policy (eval mode, no grad).
        prompt_cache: the model's cache after encoding the distinct prompts: [B, Hkv, P, D] keys
            and values per layer.
        repeats: rows per prompt (the group size G): row r continues prompt r // repeats.
        key_mask: [B·repeats, P] 1 for real prompt tokens, 0 for left padding; None if unpadded.
        max_new_tokens: decode steps the buffers must hold.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        prompt_cache: DynamicCache,
        repeats: int,
        key_mask: torch.Tensor | None,
        max_new_tokens: int,
    ):
        config, base = model.config, model.model
        self.embed = base.embed_tokens.weight
        self.rotary = base.rotary_emb
        self.final_norm = base.norm
        self.lm_head = model.lm_head
        attention = [layer.self_attn for layer in base.layers]
        fused_bytes = sum(m.weight.nbytes for a in attention for m in (a.q_proj, a.k_proj, a.v_proj))
        self.fused = fused_bytes <= FUSED_COPY_LIMIT
        self.layers = [_Layer(layer, getattr(config, "hidden_act", None), self.fused) for layer in base.layers]
        self.q_heads = config.num_attention_heads
        self.kv_heads = getattr(config, "num_key_value_heads", None) or self.q_heads
        self.head_dim = base.layers[0].self_attn.head_dim

        # Full-attention cache layers, each with [B, Hkv, P, D] `keys` and `values` (Any: the
        # cache's layer type is a union that includes layers without them).
        cached_layers: list[Any] = list(prompt_cache.layers)
        first: torch.Tensor = cached_layers[0].keys
        rows, P = first.shape[0] * repeats, first.shape[2]
        self.length = P  # cache columns filled
        self.rope_table = None  # ([P + T + 1, D] cos, same sin) when the angles are static
        if getattr(self.rotary, "rope_type", None) in _STATIC_ROPE_TYPES:
            positions = torch.arange(P + max_new_tokens + 1, device=first.device)[None]
            cos, sin = self.rotary(first, positions)  # [1, P + T + 1, D], in the cache's dtype
            self.rope_table = cos[0], sin[0]
        shape = (rows, self.kv_heads, P + max_new_tokens, self.head_dim)
        self.keys, self.values = [], []  # per layer [n, Hkv, P + T, D]
        for cached in cached_layers:
            keys, values = first.new_empty(shape), first.new_empty(shape)
            keys[:, :, :P] = cached.keys.repeat_interleave(repeats, dim=0)
            values[:, :, :P] = cached.values.repeat_interleave(repeats, dim=0)
            self.keys.append(keys)
            self.values.append(values)
        self.active = torch.arange(rows, device=first.device)  # buffer row of each current row
        self.key_mask = None  # [n, P + T] bool, only when the prompts are padded
        if key_mask is not None:
            self.key_mask = torch.ones(rows, P + max_new_tokens, dtype=torch.bool, device=first.device)
            self.key_mask[:, :P] = key_mask.bool()

    def keep_rows(self, keep: torch.Tensor) -> None:
        """Only the rows at indices `keep` ([n']) of the current rows go on decoding.

        The buffers are compacted only once a quarter of their rows has finished: compacting
        copies the whole cache, and rows finish at nearly every step of a large batch. Until
        then finished rows ride along with a dummy token (their results are dropped)."""
        self.active = self.active[keep]
        if self.active.numel() <= 3 * self.keys[0].shape[0] // 4:
            self.keys = [k[self.active] for k in self.keys]
            self.values = [v[self.active] for v in self.values]
            if self.key_mask is not None:
                self.key_mask = self.key_mask[self.active]
            self.active = torch.arange(self.active.numel(), device=self.active.device)

    @torch.no_grad()
    def step(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """[n, V] next-token logits after feeding `tokens` ([n]) at `positions` ([n]), one per
        current row."""
        rows = self.keys[0].shape[0]
        if tokens.shape[0] != rows:  # finished rows still in the buffers: give them any token
            tokens = tokens.new_zeros(rows).index_copy_(0, self.active, tokens)
            positions = positions.new_zeros(rows).index_copy_(0, self.active, positions)
            return self._step(tokens, positions)[self.active]
        return self._step(tokens, positions)

    def _step(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """[n, V] logits for every buffer row ([n] tokens and positions)."""
        n, t = tokens.shape[0], self.length
        Hq, Hkv, D = self.q_heads, self.kv_heads, self.head_dim
        x = F.embedding(tokens, self.embed)[:, None]  # [n, 1, H]
        if self.rope_table is not None:
            cos, sin = self.rope_table[0][positions], self.rope_table[1][positions]  # [n, D]
        else:
            cos, sin = self.rotary(x, positions[:, None])  # [n, 1, D]
        cos, sin = cos.view(n, 1, 1, D), sin.view(n, 1, 1, D)  # broadcast over heads
        mask = None if self.key_mask is None else self.key_mask[:, None, None, : t + 1]  # [n, 1, 1, t+1]
        for layer, keys, values in zip(self.layers, self.keys, self.values):
            h = _rms_norm(x, layer.input_norm.weight, layer.input_norm.variance_epsilon)
            qkv = layer.qkv(h).view(n, Hq + 2 * Hkv, 1, D)
            if layer.q_norm is None:
                qk = _rotate(qkv[:, : Hq + Hkv], cos, sin)  # [n, Hq + Hkv, 1, D]
                q, k = qk[:, :Hq], qk[:, Hq:]
            else:  # Qwen3: RMSNorm over each head before the rotation
                q = _rotate(_rms_norm(qkv[:, :Hq], layer.q_norm.weight, layer.q_norm.variance_epsilon), cos, sin)
                k = _rotate(_rms_norm(qkv[:, Hq : Hq + Hkv], layer.k_norm.weight, layer.k_norm.variance_epsilon), cos, sin)
            keys[:, :, t : t + 1] = k
            values[:, :, t : t + 1] = qkv[:, Hq + Hkv :]
            attended = _attend(q, keys[:, :, : t + 1], values[:, :, : t + 1], mask, layer.scaling)  # [n, Hq, 1, D]
            x = x + _linear(layer.o_proj, attended.reshape(n, 1, Hq * D))
            h = _rms_norm(x, layer.post_attention_norm.weight, layer.post_attention_norm.variance_epsilon)
            x = x + _linear(layer.down_proj, layer.act(_linear(layer.gate_proj, h)) * _linear(layer.up_proj, h))
        self.length = t + 1
        x = _rms_norm(x[:, 0], self.final_norm.weight, self.final_norm.variance_epsilon)  # [n, H]
        return _linear(self.lm_head, x)  # [n, V]
