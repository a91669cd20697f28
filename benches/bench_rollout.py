"""Rollout throughput of one GRPO step: HF sampling on the policy vs a colocated vLLM engine.

    python benches/bench_rollout.py                          # Qwen2.5-0.5B sizes, 32 prompts × 8, 512 new tokens
    python benches/bench_rollout.py --prompts 64 --max-new-tokens 1024 --markdown

The model is built from a Qwen2Config with Qwen2.5-0.5B's sizes (24 layers, hidden 896, 14 query /
2 KV heads, vocabulary 151 936) and random bf16 weights; the tokenizer is a word-level one over the
same vocabulary, built on the spot — nothing is downloaded. Random weights almost never emit EOS,
so every completion runs to --max-new-tokens: the work is the same for both engines.

Paths, each sampling G completions for every prompt at temperature 1:
  hf-reasonrl   reasonrl.rollout.HFRollout, its decode loop (prefill once per group, KV cache)
  hf-generate   HFRollout(engine="generate"): Hugging Face `generate`
  vllm          reasonrl.rollout.VLLMRollout: vLLM in this process (needs `pip install reasonrl[vllm]`),
                plus the time to push the policy's weights into it (`sync_weights`, once per step)

Reports generated tokens per second (completion tokens only) and the step's wall time. Needs a
CUDA GPU: without one it says so and exits 0.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

QWEN25_05B: dict[str, Any] = {
    "vocab_size": 151_936, "hidden_size": 896, "intermediate_size": 4_864, "num_hidden_layers": 24,
    "num_attention_heads": 14, "num_key_value_heads": 2, "max_position_embeddings": 32_768,
    "rope_theta": 1_000_000.0, "tie_word_embeddings": True, "rms_norm_eps": 1e-6,
}


def build_model_folder(folder: Path, seed: int) -> None:
    """A Qwen2.5-0.5B-sized model with random bf16 weights and a matching tokenizer, saved in
    Hugging Face format (vLLM loads from a folder)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    vocab_size = QWEN25_05B["vocab_size"]
    specials = ["<pad>", "<eos>"]
    vocab = {token: i for i, token in enumerate(specials + [f"w{i}" for i in range(vocab_size - len(specials))])}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", eos_token="<eos>")
    tokenizer.save_pretrained(folder)

    torch.manual_seed(seed)
    config = Qwen2Config(**QWEN25_05B, bos_token_id=1, eos_token_id=1, pad_token_id=0)
    with torch.device("cuda"):
        model: Any = Qwen2ForCausalLM(config)
    model.to(torch.bfloat16)
    model.save_pretrained(folder)


def prompts(count: int, length: int, seed: int) -> list[str]:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(2, QWEN25_05B["vocab_size"], (count, length), generator=generator)
    return [" ".join(f"w{i - 2}" for i in row.tolist()) for row in ids]


def timed_rollout(rollout, batch: list[str], group: int, sampling) -> tuple[float, int]:
    torch.cuda.synchronize()
    start = time.perf_counter()
    out = rollout.generate(batch, group, sampling)
    torch.cuda.synchronize()
    return time.perf_counter() - start, int(out.completion_mask.sum())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=int, default=32, help="prompts per step")
    parser.add_argument("--group-size", type=int, default=8, help="G: completions per prompt")
    parser.add_argument("--prompt-tokens", type=int, default=128)
    parser.add_argument("--max-new-tokens", type=int, default=512)
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.4, help="vLLM's share of the GPU")
    parser.add_argument("--repeats", type=int, default=2, help="timed steps per path (after one warm-up)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["hf-reasonrl", "hf-generate", "vllm"])
    parser.add_argument("--markdown", action="store_true", help="print rows for benches/RESULTS.md")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    if not torch.cuda.is_available():
        print("bench_rollout: no CUDA GPU here; this benchmark compares GPU rollout engines. Nothing measured.")
        return 0
    from transformers import AutoModelForCausalLM

    from reasonrl import load_tokenizer
    from reasonrl.rollout import HFRollout, SamplingParams, VLLMRollout

    device_name = torch.cuda.get_device_name()
    sampling = SamplingParams(temperature=1.0, top_p=1.0, max_new_tokens=args.max_new_tokens)
    batch = prompts(args.prompts, args.prompt_tokens, args.seed)
    results: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "qwen2.5-0.5b-random"
        build_model_folder(folder, args.seed)
        tokenizer = load_tokenizer(str(folder))  # AutoTokenizer would swap in Qwen2's own class
        policy: Any = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16)
        policy.cuda()

        for name, engine in (("hf-reasonrl", "reasonrl"), ("hf-generate", "generate")):
            if name in args.skip:
                continue
            rollout = HFRollout(policy, tokenizer, engine=engine)  # type: ignore[arg-type]
            timed_rollout(rollout, batch[: max(1, args.prompts // 8)], args.group_size, sampling)  # warm-up
            runs = [timed_rollout(rollout, batch, args.group_size, sampling) for _ in range(args.repeats)]
            seconds = min(r[0] for r in runs)
            results.append({"path": name, "seconds": seconds, "tokens": runs[0][1], "sync_seconds": 0.0})

        if "vllm" not in args.skip:
            if importlib.util.find_spec("vllm") is None:
                print("bench_rollout: vLLM is not installed (pip install reasonrl[vllm]); vllm path skipped", file=sys.stderr)
            else:
                import vllm

                llm = vllm.LLM(
                    model=str(folder), dtype="bfloat16", gpu_memory_utilization=args.gpu_memory_utilization,
                    seed=args.seed, logprobs_mode="processed_logprobs",
                )
                rollout_v = VLLMRollout(llm, tokenizer, policy=policy, device="cuda")
                timed_rollout(rollout_v, batch[: max(1, args.prompts // 8)], args.group_size, sampling)  # warm-up
                runs = [timed_rollout(rollout_v, batch, args.group_size, sampling) for _ in range(args.repeats)]
                torch.cuda.synchronize()
                start = time.perf_counter()
                rollout_v.sync_weights()
                torch.cuda.synchronize()
                sync = time.perf_counter() - start
                seconds = min(r[0] for r in runs)
                results.append({"path": "vllm", "seconds": seconds, "tokens": runs[0][1], "sync_seconds": sync})
                del llm, rollout_v
                gc.collect()

    work = f"{args.prompts} prompts × {args.group_size}, {args.prompt_tokens} prompt + ≤ {args.max_new_tokens} new tokens"
    print(f"device: {device_name}; model: Qwen2.5-0.5B sizes, random bf16 weights; {work}")
    baseline = next((r for r in results if r["path"] == "hf-generate"), results[0] if results else None)
    for r in results:
        r["tokens_per_s"] = r["tokens"] / r["seconds"]
        r["speedup"] = r["tokens_per_s"] / baseline["tokens_per_s"] if baseline else float("nan")
    if args.markdown:
        for r in results:
            print(f"| `bench_rollout.py` | {r['path']}, {work}, {device_name} | {r['tokens_per_s']:,.0f} tok/s "
                  f"({r['seconds']:.1f} s, sync {r['sync_seconds']:.2f} s) | hf-generate | {r['speedup']:.1f}× |")
    else:
        print(f"{'path':<12} {'tokens':>8} {'seconds':>8} {'tok/s':>10} {'sync s':>7} {'vs generate':>11}")
        for r in results:
            print(f"{r['path']:<12} {r['tokens']:>8} {r['seconds']:>8.2f} {r['tokens_per_s']:>10,.0f} "
                  f"{r['sync_seconds']:>7.2f} {r['speedup']:>10.1f}×")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
