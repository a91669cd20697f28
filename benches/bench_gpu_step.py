"""Whole GRPO steps with reasonrl's Triton kernels against the same steps on the pure-torch path,
side by side: seconds per step, peak GPU memory, and the loss and gradient of both on one batch.

    python benches/bench_gpu_step.py                      # CUDA: Qwen2.5-0.5B's shape, random bf16 weights
    python benches/bench_gpu_step.py --size tiny          # the demo's tiny model (fast, any GPU)
    TRITON_INTERPRET=1 python benches/bench_gpu_step.py --device cpu --size tiny --steps 2   # a CPU smoke run

bench_kernels.py times the loss alone; this runs the trainer end to end on a GPU — rollouts,
rewards, packing, log-probs and the update — so the kernels meet real shapes, dtypes and strides
(a bf16 model, left-padded prompts, a shared-prompt forward, the fused head). Both sides start
from the same weights and the same seed; the first step is a
warm-up (Triton compiles) and is not timed. Without a GPU (and without TRITON_INTERPRET=1 for
--device cpu) it says so and exits 0.

The weights are random, so a reward on the answers would be 0 everywhere and no advantage would
move the weights: the reward here is the completion's length mod 3 (a stand-in that varies
inside every group). Nothing is downloaded: the model is built from its config and the
tokenizer is the demo's character-level one.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from reasonrl.cli import quiet_transformers
from reasonrl.config import stage_from_dict
from reasonrl.data import get_template
from reasonrl.demo import AdditionTask, DemoSettings, build_char_tokenizer
from reasonrl.demo.run import build_tiny_model
from reasonrl.demo.task import PROMPT_TEMPLATE
from reasonrl.rewards import Component, RewardSpec
from reasonrl.trainer.grpo import GRPOTrainer

BACKENDS = ("torch", "triton")


def length_mod_3(completions: list[str], **_: Any) -> list[float]:
    return [float(len(c) % 3) for c in completions]


def build_model(size: str, tokenizer: Any, device: str, dtype: torch.dtype) -> Any:
    model: Any
    if size == "tiny":
        model = build_tiny_model(len(tokenizer), tokenizer, DemoSettings())
    else:  # Qwen2.5-0.5B's shape: 24 layers, H = 896, 14 query / 2 key-value heads, V = 151 936
        from transformers import Qwen2Config, Qwen2ForCausalLM

        torch.manual_seed(0)
        config = Qwen2Config(
            vocab_size=151_936, hidden_size=896, intermediate_size=4_864, num_hidden_layers=24, num_attention_heads=14,
            num_key_value_heads=2, max_position_embeddings=4_096, tie_word_embeddings=True,
            pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        )
        with torch.device(device):  # initialised where it runs: 0.5 B parameters
            model = Qwen2ForCausalLM(config)
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model.to(device=device, dtype=dtype)


def make_trainer(args: argparse.Namespace, model: Any, tokenizer: Any, backend: str, out: Path) -> GRPOTrainer:
    config = stage_from_dict({
        "kind": "grpo", "name": f"gpu-step-{backend}", "model": {"name_or_path": "bench:model"},
        "data": {"train": "bench:addition", "template": PROMPT_TEMPLATE},
        "rollout": {"prompts_per_step": args.prompts, "group_size": args.group_size, "max_new_tokens": args.max_new_tokens},
        "reward": {"unused": {"kind": "format"}},
        "algorithm": {"loss_type": "dapo", "beta": 0.04, "micro_batch_size": args.micro_batch_size,
                      "kernel_backend": backend, "fused_lm_head": args.fused_lm_head},
        "optim": {"lr": 1e-6, "schedule": "constant"},
        "run": {"output_dir": str(out / backend), "steps": args.steps, "seed": 0, "tensorboard": False, "progress_bar": False},
    })
    train, _ = AdditionTask(seed=0).problems(256, 8)
    reward = RewardSpec([Component("length_mod_3", "python", fn=length_mod_3)])
    return GRPOTrainer(config, model, tokenizer, train, template=get_template(PROMPT_TEMPLATE), reward_spec=reward)


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def time_steps(args: argparse.Namespace, trainer: GRPOTrainer) -> dict[str, float]:
    torch.manual_seed(1)
    trainer.train_step()  # warm-up: Triton compiles its kernels here
    synchronize(args.device)
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(args.device)
    seconds, updates = [], []
    for _ in range(args.steps - 1):
        start = time.perf_counter()
        metrics = trainer.train_step()
        synchronize(args.device)
        seconds.append(time.perf_counter() - start)
        updates.append(metrics["time/logprobs"] + metrics["time/update"])
    peak = torch.cuda.max_memory_allocated(args.device) / 2**20 if args.device.startswith("cuda") else float("nan")
    return {"seconds": statistics.median(seconds), "update": statistics.median(updates), "peak_mib": peak}


def same_batch(args: argparse.Namespace, models: dict[str, Any], trainers: dict[str, GRPOTrainer]) -> dict[str, float]:
    """Both backends' loss and gradient on one batch (the torch side's rollouts), same weights."""
    torch_trainer = trainers["torch"]
    examples = torch_trainer.sampler.next_step()
    rollouts = torch_trainer.rollout_step(examples)
    advantages, keep = torch_trainer.advantages(torch_trainer.score(examples, rollouts), rollouts)
    batch = torch_trainer.pack(rollouts, advantages, keep)
    batch.ref_logp = torch_trainer.reference_logprobs(torch_trainer.ref_model, batch)
    losses, grads = {}, {}
    weights = copy.deepcopy(models["torch"].state_dict())
    for backend, trainer in trainers.items():
        trainer.model.load_state_dict(weights)
        trainer.model.zero_grad(set_to_none=True)
        loss, _ = trainer.policy_loss(batch, batch.advantages)
        loss.backward()
        losses[backend] = loss.item()
        grads[backend] = torch.cat([p.grad.float().flatten() for p in trainer.model.parameters() if p.grad is not None])
    difference = (grads["triton"] - grads["torch"]).norm() / grads["torch"].norm().clamp(min=1e-30)
    return {"rows": float(len(batch)), "torch": losses["torch"], "triton": losses["triton"], "grad_rel_diff": float(difference)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--size", choices=["qwen2.5-0.5b", "tiny"], default="qwen2.5-0.5b")
    parser.add_argument("--dtype", choices=["bfloat16", "float32"], default=None, help="default: bfloat16 on cuda, float32 on cpu")
    parser.add_argument("--steps", type=int, default=4, help="steps per backend; the first is a warm-up")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--micro-batch-size", type=int, default=16)
    parser.add_argument("--fused-lm-head", action=argparse.BooleanOptionalAction, default=True,
                        help="the loss from hidden states and the head's weight (default), or from the logits")
    args = parser.parse_args()
    if args.steps < 2:
        parser.error("--steps must be >= 2 (the first is a warm-up)")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("bench_gpu_step: no CUDA GPU here; this benchmark times the Triton kernels inside GRPO steps. Nothing measured.")
        return 0
    if args.device == "cpu" and os.environ.get("TRITON_INTERPRET") != "1":
        print("bench_gpu_step: on CPU the Triton side needs TRITON_INTERPRET=1 (a smoke run, not a measurement). Nothing measured.")
        return 0
    quiet_transformers()
    dtype = getattr(torch, args.dtype or ("bfloat16" if args.device.startswith("cuda") else "float32"))
    tokenizer = build_char_tokenizer()
    base = build_model(args.size, tokenizer, args.device, dtype)
    models = {backend: copy.deepcopy(base) for backend in BACKENDS}
    with tempfile.TemporaryDirectory() as tmp:
        trainers = {backend: make_trainer(args, models[backend], tokenizer, backend, Path(tmp)) for backend in BACKENDS}
        results = {backend: time_steps(args, trainers[backend]) for backend in BACKENDS}
        check = same_batch(args, models, trainers)
    name = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "CPU (Triton interpreter)"
    parameters = sum(p.numel() for p in base.parameters())
    print(f"# device: {name}; {args.size} ({parameters / 1e6:.1f} M parameters, {str(dtype).removeprefix('torch.')}); "
          f"{args.prompts} prompts x {args.group_size}, <= {args.max_new_tokens} new tokens, beta 0.04, "
          f"fused head {'on' if args.fused_lm_head else 'off'}; median of {args.steps - 1} steps after a warm-up")
    print(f"{'backend':<10}{'s/step':>10}{'log-probs + update s':>22}{'peak MiB':>12}{'speed-up':>10}")
    for backend, r in results.items():
        speedup = results["torch"]["seconds"] / r["seconds"]
        peak = f"{r['peak_mib']:.0f}" if r["peak_mib"] == r["peak_mib"] else "n/a"  # NaN off CUDA
        print(f"{backend:<10}{r['seconds']:>10.3f}{r['update']:>22.3f}{peak:>12}{speedup:>9.2f}x")
    print(f"same batch ({check['rows']:.0f} rows): loss torch {check['torch']:.6g} vs triton {check['triton']:.6g} "
          f"(|diff| {abs(check['torch'] - check['triton']):.1e}); gradient relative difference {check['grad_rel_diff']:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
