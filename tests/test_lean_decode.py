"""The lean decode step against the model's own forward, per supported architecture, and the
cases where it must step aside."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, DynamicCache

from reasonrl.demo import build_char_tokenizer
from reasonrl.rollout import HFRollout, SamplingParams
from reasonrl.rollout.lean import LeanDecoder, folded_copy_bytes, unsupported_reason

SMALL = dict(vocab_size=61, hidden_size=48, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
             intermediate_size=80, max_position_embeddings=128)
LLAMA3_ROPE = {"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0, "low_freq_factor": 1.0,
               "high_freq_factor": 4.0, "original_max_position_embeddings": 8}
DYNAMIC_ROPE = {"rope_type": "dynamic", "rope_theta": 10000.0, "factor": 2.0}

ARCHITECTURES = {
    "qwen2-gqa": ("qwen2", {}),
    "llama-bias-llama3-rope": ("llama", {"attention_bias": True, "mlp_bias": True, "rope_parameters": LLAMA3_ROPE}),
    # "dynamic" angles depend on the longest position seen: computed at every step, not tabulated.
    "llama-dynamic-rope": ("llama", {"num_key_value_heads": 4, "rope_parameters": DYNAMIC_ROPE, "max_position_embeddings": 12}),
    "qwen3-qk-norm": ("qwen3", {"head_dim": 20}),
    "mistral-no-window": ("mistral", {"sliding_window": None, "num_key_value_heads": 1}),
}


def build(model_type: str, dtype: torch.dtype = torch.float32, **overrides) -> torch.nn.Module:
    torch.manual_seed(0)
    config = AutoConfig.for_model(model_type, **{**SMALL, **overrides})
    model = AutoModelForCausalLM.from_config(config)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.3)  # a large spread: differences in any op show in the logits
    return model.to(dtype).eval()


def lean_and_forward_logits(model, drops: dict[int, list[int]] | None = None):
    """Logits of 6 new tokens after 2 prompts (one left-padded) × 3 rows each: from the lean
    decoder, and from the model's own forward stepping through the same tokens with its cache
    (what the lean step replaces). `drops`: {step: rows} leaving the lean batch before that
    step (the reference keeps all rows; compared on the rest)."""
    torch.manual_seed(1)
    B, G, P, T = 2, 3, 7, 6
    prompt = torch.randint(1, 61, (B, P))
    prompt_mask = torch.ones(B, P, dtype=torch.long)
    prompt_mask[0, :3] = 0
    positions = (prompt_mask.cumsum(1) - 1).clamp(min=0)
    next_position = positions[:, -1].repeat_interleave(G) + 1  # [B·G]
    new = torch.randint(1, 61, (B * G, T))

    def prefill() -> DynamicCache:
        cache = DynamicCache(config=model.config)
        with torch.no_grad():
            model(input_ids=prompt, attention_mask=prompt_mask, position_ids=positions, cache=cache, use_cache=True)
        return cache

    cache = prefill()
    cache.batch_repeat_interleave(G)
    mask = prompt_mask.repeat_interleave(G, 0)
    steps = []
    with torch.no_grad():
        for t in range(T):
            mask = torch.cat([mask, mask.new_ones(B * G, 1)], 1)
            steps.append(model(input_ids=new[:, t : t + 1], attention_mask=mask, position_ids=(next_position + t)[:, None],
                               cache=cache, use_cache=True).logits[:, -1].float())
    reference = torch.stack(steps, 1)  # [B·G, T, V]

    decoder = LeanDecoder(model, prefill(), G, prompt_mask.repeat_interleave(G, 0), T)
    rows = torch.arange(B * G)
    lean = torch.full_like(reference, float("nan"))
    for t in range(T):
        if t in (drops or {}):
            keep = torch.tensor([i for i, row in enumerate(rows.tolist()) if row not in drops[t]])
            decoder.keep_rows(keep)
            rows, next_position = rows[keep], next_position[keep]
        lean[rows, t] = decoder.step(new[rows, t], next_position + t).float()
    return lean, reference, rows


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_lean_steps_give_the_forward_logits(arch):
    model_type, overrides = ARCHITECTURES[arch]
    model = build(model_type, **overrides)
    assert unsupported_reason(model, 13) is None
    lean, reference, _ = lean_and_forward_logits(model)
    assert reference.abs().max() > 1.0
    torch.testing.assert_close(lean, reference, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "drops",
    [{2: [1, 4]}, {1: [3]}, {1: [3], 3: [0], 4: [5, 2]}],
    ids=["compacted-at-once", "finished-row-rides-along", "both-in-turn"],
)
def test_rows_leaving_the_batch_keep_the_other_rows_exact(drops):
    lean, reference, rows = lean_and_forward_logits(build("qwen2"), drops)
    left = sorted(set(range(6)) - {row for dropped in drops.values() for row in dropped})
    assert rows.tolist() == left
    # Every step of every row while it was in the batch, dropped rows' early steps included.
    computed = ~lean[:, :, 0].isnan()  # [rows, T]
    assert computed.sum() == 6 * 6 - sum(len(d) * (6 - step) for step, d in drops.items())
    torch.testing.assert_close(lean[computed], reference[computed], rtol=1e-5, atol=1e-5)


def decoder_for(model) -> LeanDecoder:
    """A decoder for one 3-token prompt, one row, 2 new tokens (to look at its weights)."""
    cache = DynamicCache(config=model.config)
    with torch.no_grad():
        model(input_ids=torch.ones(1, 3, dtype=torch.long), cache=cache, use_cache=True)
    return LeanDecoder(model, cache, 1, None, 2)


@pytest.mark.parametrize("arch", ["qwen2-gqa", "qwen3-qk-norm"])
@pytest.mark.parametrize("room", ["none", "qkv-only"])
def test_a_model_too_big_for_the_folded_copies_keeps_its_own_linears(monkeypatch, arch, room):
    model_type, overrides = ARCHITECTURES[arch]
    model = build(model_type, **overrides)
    head_dim = model.model.layers[0].self_attn.head_dim
    qkv_bytes = sum(folded_copy_bytes(layer, head_dim)[0] for layer in model.model.layers)
    monkeypatch.setattr("reasonrl.rollout.lean.FUSED_COPY_LIMIT", 0 if room == "none" else qkv_bytes)
    lean, reference, _ = lean_and_forward_logits(model)
    torch.testing.assert_close(lean, reference, rtol=1e-5, atol=1e-5)
    decoder = decoder_for(model)
    assert (decoder.fused, decoder.fused_mlp) == (room == "qkv-only", False)
    assert all(layer.gate_up_weight is None for layer in decoder.layers)
    assert all((layer.qkv_weight is not None) == (room == "qkv-only") for layer in decoder.layers)


def test_folded_copies_leave_the_model_as_it_was():
    model = build("qwen2")
    before = {name: p.clone() for name, p in model.state_dict().items()}
    lean, reference, _ = lean_and_forward_logits(model)
    torch.testing.assert_close(lean, reference, rtol=1e-5, atol=1e-5)
    decoder = decoder_for(model)
    assert decoder.fused and decoder.fused_mlp
    # q, k, their rotation rows, v: (4 + 2 + 4 + 2 + 2) heads of 12.
    assert decoder.layers[0].qkv_weight.shape == (14 * 12, 48)
    for name, p in model.state_dict().items():
        assert torch.equal(p, before[name]), name


def test_bf16_steps_stay_close_to_the_bf16_forward():
    lean, reference, _ = lean_and_forward_logits(build("qwen2", torch.bfloat16))
    assert reference.abs().max() > 1.0
    # Both round to bf16 at every layer, in different places (fused vs separate q/k/v, the
    # attention kernel): close, not bit-equal.
    assert (lean - reference).abs().max() < 0.05 * reference.abs().max()


class LoRALinear(torch.nn.Linear):
    """Stands for any wrapper around a projection (PEFT LoRA, a quantized linear)."""


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda m: m.config.__setattr__("model_type", "gpt2"), "model type 'gpt2'"),
        (lambda m: m.model.layers[1].self_attn.__setattr__("sliding_window", 8), "sliding window of 8 < 13"),
        (lambda m: m.lm_head.register_forward_pre_hook(lambda *_: None), "module lm_head has forward hooks"),
        (lambda m: m.model.layers[0].self_attn.__setattr__("q_proj", LoRALinear(48, 48)), "layer 0 has projections"),
        (lambda m: m.config.__setattr__("final_logit_softcapping", 30.0), "final_logit_softcapping"),
        (lambda m: m.model.layers[0].mlp.__setattr__("up_proj", torch.nn.Sequential()), "layer 0 has projections"),
    ],
    ids=["architecture", "sliding-window", "hook", "lora", "softcap", "odd-mlp"],
)
def test_what_the_lean_step_cannot_reproduce_is_named(change, named):
    model = build("qwen2")
    change(model)
    reason = unsupported_reason(model, 13)
    assert reason is not None and named in reason


def test_the_rollout_uses_the_lean_step_and_falls_back_with_the_reason():
    tokenizer = build_char_tokenizer()
    prompts, greedy = ["12+34=?<think>", "5+6=?"], SamplingParams(max_new_tokens=10, greedy=True)
    model = build("llama", vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                  eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id)
    lean = HFRollout(model, tokenizer)
    fast = lean.generate(prompts, 2, greedy)
    assert lean.decode_path == "lean"
    model.model.layers[0].register_forward_hook(lambda *_: None)  # now the lean step must step aside
    slow = lean.generate(prompts, 2, greedy)
    assert lean.decode_path == "forward (module model.layers.0 has forward hooks, which the lean step would skip)"
    assert fast.texts == slow.texts and torch.equal(fast.completion_ids, slow.completion_ids)
    off = HFRollout(model, tokenizer, lean_decode=False)
    off.generate(prompts, 1, greedy)
    assert off.decode_path == "forward (lean_decode=False)"
