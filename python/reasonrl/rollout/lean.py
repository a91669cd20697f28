"""A lean decode step for Llama-family models (Llama, Mistral, Qwen2, Qwen3).

A rollout calls the model once per generated token, with one new token per row. Through the
Hugging Face modules that call costs a fixed few milliseconds of Python and small-op overhead
(cache objects, mask building, output classes, hooks, per-layer dispatch) whatever the model
size: on a small model or a small batch it dominates the whole rollout. `LeanDecoder` runs the
same arithmetic straight on the model's own weights, with the KV cache in preallocated buffers,
and with fewer ops per step than the modules use: the RMSNorm weights, the attention scale and
the RoPE half-rotation folded into one q/k/v matrix and one gate/up matrix (copies made per
rollout while all layers' together stay under `FUSED_COPY_LIMIT` bytes; a 7B model's would be
gigabytes, and it keeps its separate linears), residual sums done by the matrix products,
attention on the cache, the head.

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
# Largest folded copy (q/k/v, then gate/up; all layers together) made per rollout.
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


def _normalized(x: torch.Tensor, eps: float) -> torch.Tensor:
    """x / rms(x) over the last dim, in fp32 and cast back, as the Llama RMSNorm computes it
    before its weight. Written out: on CPU `F.rms_norm` decomposes into more, slower ops
    (~50 µs against ~10 µs for a [64, 64] input)."""
    mean_square = torch.linalg.vector_norm(x, dim=-1, keepdim=True, dtype=torch.float32).square_().div_(x.shape[-1])
    return (x * mean_square.add_(eps).rsqrt_()).to(x.dtype)


def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """The Llama RMSNorm: normalised in fp32, cast back, then scaled."""
    return weight * _normalized(x, eps)


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary embedding in the half-split layout: x·cos + rotate_half(x)·sin."""
    half = x.shape[-1] // 2
    return x * cos + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin


def _rotated_rows(weight: torch.Tensor, heads: int) -> torch.Tensor:
    """`weight` ([heads·D] or [heads·D, H]) with each head's rows as rotate_half orders them,
    (−second half, first half): a linear with these rows gives rotate_half of its output."""
    per_head = weight.reshape(heads, -1, *weight.shape[1:])  # [heads, D, ...]
    half = per_head.shape[1] // 2
    return torch.cat((-per_head[:, half:], per_head[:, :half]), dim=1).reshape(weight.shape)


def _attend(
    q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor | None, scale: float
) -> torch.Tensor:
    """[n, Hq, 1, D] attention of one query per row over its cache (keys/values [n, Hkv, S, D],
    mask [n, 1, 1, S] or None), query heads grouped onto their shared key/value head. `scale`
    1.0: q comes scaled already."""
    n, Hq, _, D = q.shape
    Hkv = keys.shape[1]
    if q.is_cuda:
        return F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, scale=scale, enable_gqa=Hq != Hkv)
    # On CPU the fused kernel is built for long query blocks: for one query, three plain ops
    # are several times faster.
    grouped = q.reshape(n, Hkv, Hq // Hkv, D)  # [n, Hkv, g, D]
    scores = torch.matmul(grouped, keys.transpose(-1, -2))  # [n, Hkv, g, S]
    if scale != 1.0:
        scores.mul_(scale)
    if mask is not None:
        scores.masked_fill_(~mask, float("-inf"))
    if scores.dtype == torch.float32:
        probs = torch.softmax(scores, dim=-1)
    else:  # in fp32, as the modules do
        probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(values.dtype)
    return torch.matmul(probs, values).view(n, Hq, 1, D)


def _linear(module: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """`module(x)` without the module call (hooks are refused up front)."""
    return F.linear(x, module.weight, module.bias)


def _add_linear(residual: torch.Tensor, module: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """residual + module(x) for 2-D [n, ·] tensors, the sum done by the matrix product itself."""
    out = torch.addmm(residual, x, module.weight.t())
    return out if module.bias is None else out.add_(module.bias)


def _stacked_bias(linears: list[tuple[torch.nn.Linear, torch.Tensor | None]]) -> torch.Tensor | None:
    """The biases of stacked linears (each given with its bias as stacked, None where the
    linear has none), zeros for the missing ones; None if none has a bias."""
    if all(bias is None for _, bias in linears):
        return None
    return torch.cat([bias if bias is not None else m.weight.new_zeros(m.out_features) for m, bias in linears])


def folded_copy_bytes(layer: Any, head_dim: int) -> tuple[int, int]:
    """Bytes of one layer's folded copies (see `_Layer`): q/k/v with rotation rows, gate/up."""
    attention, mlp = layer.self_attn, layer.mlp
    q, k, v = attention.q_proj.weight, attention.k_proj.weight, attention.v_proj.weight
    rotation_rows = 0 if hasattr(attention, "q_norm") else q.shape[0] + k.shape[0]
    qkv = (q.shape[0] + k.shape[0] + v.shape[0] + rotation_rows) * q.shape[1] * q.element_size()
    gate_up = mlp.gate_proj.weight.nbytes + mlp.up_proj.weight.nbytes
    return qkv, gate_up


class _Layer:
    """One decoder layer's weights, as references into the model or (`fold_qkv`, `fold_mlp`)
    as copies made per rollout that spare ops at every decode step:

    - `fold_qkv`: q, k and v in one matrix whose columns carry the input RMSNorm's weight (the
      step then only normalises); without q/k norms (all but Qwen3) also the attention scale
      (on q: the rotation is linear, so scaling before it is the same) and rows that give
      rotate_half(q) and rotate_half(k) directly, so that RoPE is one multiply-add.
    - `fold_mlp`: gate and up in one matrix carrying the post-attention RMSNorm's weight.

    The folded products round differently from the model's (w·(x/rms) then the matmul, against
    the matmul with w in it): equal to fp32 rounding, not bit for bit.
    """

    def __init__(self, layer: Any, heads: tuple[int, int, int], hidden_act: str | None, fold_qkv: bool, fold_mlp: bool):
        # `layer` is a Hugging Face decoder layer (Any: torch types every submodule attribute
        # as `Tensor | Module`); `unsupported_reason` has checked the types below.
        attention, mlp = layer.self_attn, layer.mlp
        self.q_heads, self.kv_heads, self.head_dim = heads
        q, k, v = attention.q_proj, attention.k_proj, attention.v_proj
        self.projections: tuple[torch.nn.Linear, torch.nn.Linear, torch.nn.Linear] = (q, k, v)
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
        self.q_norm_weight: torch.Tensor | None = self.q_norm.weight if self.q_norm is not None else None

        Hq, Hkv = self.q_heads, self.kv_heads
        self.qkv_weight: torch.Tensor | None = None  # [(Hq + 2·Hkv)·D (+ (Hq + Hkv)·D rotation rows), H]
        self.qkv_bias: torch.Tensor | None = None
        self.rotation_rows = False
        if fold_qkv:
            with torch.no_grad():
                stacked: list[tuple[torch.nn.Linear, torch.Tensor, torch.Tensor | None]] = [
                    (m, m.weight, m.bias) for m in (q, k, v)
                ]
                if self.q_norm is None:
                    q_weight = q.weight * self.scaling
                    q_bias = q.bias * self.scaling if q.bias is not None else None
                    stacked[0] = (q, q_weight, q_bias)
                    stacked[2:2] = [
                        (q, _rotated_rows(q_weight, Hq), _rotated_rows(q_bias, Hq) if q_bias is not None else None),
                        (k, _rotated_rows(k.weight, Hkv), _rotated_rows(k.bias, Hkv) if k.bias is not None else None),
                    ]
                    self.rotation_rows = True
                    self.scaling = 1.0
                else:  # Qwen3 normalises q per head after the projection: the scale goes on its norm
                    self.q_norm_weight = self.q_norm.weight * self.scaling
                    self.scaling = 1.0
                self.qkv_weight = torch.cat([w for _, w, _ in stacked]) * self.input_norm.weight
                self.qkv_bias = _stacked_bias([(m, b) for m, _, b in stacked])
        self.gate_up_weight: torch.Tensor | None = None  # [2·I, H]
        self.gate_up_bias: torch.Tensor | None = None
        if fold_mlp:
            with torch.no_grad():
                gate, up = self.gate_proj, self.up_proj
                self.gate_up_weight = torch.cat([gate.weight, up.weight]) * self.post_attention_norm.weight
                self.gate_up_bias = _stacked_bias([(gate, gate.bias), (up, up.bias)])

    def attention(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
        t: int, mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """x ([n, H]) plus self-attention of its tokens, written at cache column t, over the
        columns up to t (cos/sin [n, 1, 1, D], mask [n, 1, 1, t+1] or None)."""
        n, Hq, Hkv, D = x.shape[0], self.q_heads, self.kv_heads, self.head_dim
        eps = self.input_norm.variance_epsilon
        if self.qkv_weight is not None:
            qkv = F.linear(_normalized(x, eps), self.qkv_weight, self.qkv_bias)
        else:
            h = _rms_norm(x, self.input_norm.weight, eps)
            qkv = torch.cat([_linear(m, h) for m in self.projections], dim=-1)
        heads = qkv.view(n, -1, 1, D)  # [n, (Hq + Hkv) (+ Hq + Hkv rotation rows) + Hkv, 1, D]
        if self.rotation_rows:
            qk = torch.addcmul(heads[:, : Hq + Hkv] * cos, heads[:, Hq + Hkv : 2 * (Hq + Hkv)], sin)
            q, k = qk[:, :Hq], qk[:, Hq:]
        elif self.q_norm is None:
            qk = _rotate(heads[:, : Hq + Hkv], cos, sin)  # [n, Hq + Hkv, 1, D]
            q, k = qk[:, :Hq], qk[:, Hq:]
        else:  # Qwen3: RMSNorm over each head before the rotation
            assert self.q_norm_weight is not None
            q = _rotate(_rms_norm(heads[:, :Hq], self.q_norm_weight, self.q_norm.variance_epsilon), cos, sin)
            k = _rotate(_rms_norm(heads[:, Hq : Hq + Hkv], self.k_norm.weight, self.k_norm.variance_epsilon), cos, sin)
        keys[:, :, t : t + 1] = k
        values[:, :, t : t + 1] = heads[:, -Hkv:]
        attended = _attend(q, keys[:, :, : t + 1], values[:, :, : t + 1], mask, self.scaling)  # [n, Hq, 1, D]
        return _add_linear(x, self.o_proj, attended.view(n, Hq * D))

    def mlp(self, x: torch.Tensor) -> torch.Tensor:
        """x ([n, H]) plus the MLP of its post-attention norm."""
        eps = self.post_attention_norm.variance_epsilon
        if self.gate_up_weight is not None:
            gate_up = F.linear(_normalized(x, eps), self.gate_up_weight, self.gate_up_bias)  # [n, 2·I]
            gate, up = gate_up.chunk(2, dim=-1)
        else:
            h = _rms_norm(x, self.post_attention_norm.weight, eps)
            gate, up = _linear(self.gate_proj, h), _linear(self.up_proj, h)
        return _add_linear(x, self.down_proj, self.act(gate) * up)


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
        self.q_heads = config.num_attention_heads
        self.kv_heads = getattr(config, "num_key_value_heads", None) or self.q_heads
        self.head_dim = base.layers[0].self_attn.head_dim
        # Folded copies while all layers' together stay under FUSED_COPY_LIMIT: q/k/v first
        # (two ops fewer per layer and step), then gate/up too.
        qkv_bytes, mlp_bytes = (sum(part) for part in zip(*(folded_copy_bytes(l, self.head_dim) for l in base.layers)))
        self.fused = qkv_bytes <= FUSED_COPY_LIMIT  # q/k/v folded into one matrix
        self.fused_mlp = self.fused and qkv_bytes + mlp_bytes <= FUSED_COPY_LIMIT  # gate/up too
        heads = (self.q_heads, self.kv_heads, self.head_dim)
        hidden_act = getattr(config, "hidden_act", None)
        self.layers = [_Layer(layer, heads, hidden_act, self.fused, self.fused_mlp) for layer in base.layers]

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
        n, t, D = tokens.shape[0], self.length, self.head_dim
        x = F.embedding(tokens, self.embed)  # [n, H]
        if self.rope_table is not None:
            cos, sin = self.rope_table[0][positions], self.rope_table[1][positions]  # [n, D]
        else:
            cos, sin = self.rotary(x, positions[:, None])  # [n, 1, D]
        cos, sin = cos.view(n, 1, 1, D), sin.view(n, 1, 1, D)  # broadcast over heads
        mask = None if self.key_mask is None else self.key_mask[:, None, None, : t + 1]  # [n, 1, 1, t+1]
        for layer, keys, values in zip(self.layers, self.keys, self.values):
            x = layer.mlp(layer.attention(x, cos, sin, keys, values, t, mask))  # [n, H]
        self.length = t + 1
        x = _rms_norm(x, self.final_norm.weight, self.final_norm.variance_epsilon)  # [n, H]
        return _linear(self.lm_head, x)  # [n, V]
