"""One GRPO setup run through TRL's `GRPOTrainer` and through reasonrl: seconds per step and
peak memory side by side, and the loss of both on one batch.

    pip install trl   # the peer (pip install reasonrl[bench])
    python benches/bench_trl.py [--steps 6] [--rounds 3] [--prompts 8] [--group-size 8] [--max-new-tokens 48] [--warm-start-steps 200]

Same tiny model (the demo's char-level Qwen2, fp32 on both sides: TRL's default bf16 autocast
is turned off), same prompts, group size, completion length, loss type (dapo), beta = 0,
learning rate and reward (the R1 format reward plus math accuracy). The model is not left
random: a random model earns no reward, so every advantage would be 0, neither trainer would
have a gradient, and every completion would run to the token limit. Before the runs it gets a
short SFT on the demo's cold-start chains of thought (`--warm-start-steps`, same weights for
both sides), after which it writes the R1 template, ends its answers at varied lengths and is
sometimes right, as a policy early in GRPO is. TRL
runs twice: with reasonrl's `RewardSpec` as its reward function, which isolates the training
loop, and with the plain-Python rewards TRL / open-r1 users write (math-verify and a regex),
which is what a TRL run costs. Each side trains the same number of steps on CPU, in its own child
process so neither inherits the other's allocations; the first step is a warm-up and not timed.
The sides take turns for `--rounds` rounds and each side's median is reported (with its range):
on a small shared machine one side run at a time swings by ±30% with whatever else is running.
Memory is the process's peak RSS (Linux `VmHWM`): over the whole run (imports included), and
its rise during the timed steps.

Then, in this process, both compute the loss and gradient on one and the same batch (reasonrl's
rollouts of a fresh copy of the model, fed to TRL's own `GRPOTrainer._compute_loss`), to show
they optimise the same objective.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import bench_rewards  # the plain-Python peer rewards, beside this file
import torch

from reasonrl.cli import quiet_transformers
from reasonrl.config import stage_from_dict
from reasonrl.data import get_template
from reasonrl.demo import AdditionTask, DemoSettings, build_char_tokenizer
from reasonrl.demo.run import build_tiny_model
from reasonrl.demo.task import PROMPT_TEMPLATE
from reasonrl.kernels import grpo_loss
from reasonrl.rewards import RewardSpec
from reasonrl.trainer.grpo import GRPOTrainer

# trl: TRL with reasonrl's RewardSpec as its reward function (isolates the training loop);
# trl-python: TRL with the plain-Python rewards TRL / open-r1 users write (math-verify + a regex).
SIDES = ("reasonrl", "trl", "trl-python")
FORMAT = re.compile(r"^.*?</think><answer>.*?</answer>$", re.DOTALL)  # the prompt opened <think>


def python_accuracy(completions: list[str], answer: list[str], **_: object) -> list[float]:
    """open-r1's accuracy reward (math-verify), as bench_rewards.py times it, in TRL's signature."""
    return bench_rewards.python_accuracy(completions, answer)


def python_format(completions: list[str], **_: object) -> list[float]:
    return [1.0 if FORMAT.match(c) else 0.0 for c in completions]


def reset_peak_rss() -> None:
    Path("/proc/self/clear_refs").write_text("5")


def peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reasonrl_trainer(args: argparse.Namespace, model, tokenizer, train, reward: RewardSpec, out: Path) -> GRPOTrainer:
    config = stage_from_dict({
        "kind": "grpo", "name": "bench", "model": {"name_or_path": "bench:tiny"},
        "data": {"train": "bench:addition", "template": PROMPT_TEMPLATE},
        "rollout": {"prompts_per_step": args.prompts, "group_size": args.group_size, "max_new_tokens": args.max_new_tokens},
        "reward": {"unused": {"kind": "format"}},
        "algorithm": {"loss_type": "dapo", "micro_batch_size": args.prompts * args.group_size},
        "optim": {"lr": 1e-5, "schedule": "constant"},
        "run": {"output_dir": str(out), "steps": args.steps, "tensorboard": False, "progress_bar": False},
    })
    return GRPOTrainer(config, model, tokenizer, train, template=get_template(PROMPT_TEMPLATE), reward_spec=reward)


def run_reasonrl(args: argparse.Namespace, model, tokenizer, train, reward: RewardSpec, out: Path) -> tuple[float, float]:
    trainer = reasonrl_trainer(args, model, tokenizer, train, reward, out)
    trainer.train_step()  # warm-up
    reset_peak_rss()
    start_rss = peak_rss_mib()
    start = time.perf_counter()
    for _ in range(args.steps - 1):
        trainer.train_step()
    return (time.perf_counter() - start) / (args.steps - 1), peak_rss_mib() - start_rss


def trl_trainer(args: argparse.Namespace, model, tokenizer, train, reward: RewardSpec, out: Path, callbacks=(), python_rewards=False):
    from datasets import Dataset
    from trl import GRPOConfig
    from trl import GRPOTrainer as TRLGRPOTrainer

    dataset = Dataset.from_list([{"prompt": PROMPT_TEMPLATE.format(prompt=e.prompt), "answer": e.answer} for e in train])
    config = GRPOConfig(
        output_dir=str(out), per_device_train_batch_size=args.prompts * args.group_size, num_generations=args.group_size,
        max_completion_length=args.max_new_tokens, max_steps=args.steps, learning_rate=1e-5, lr_scheduler_type="constant",
        loss_type="dapo", beta=0.0, temperature=1.0, use_cpu=True, bf16=False, report_to="none", save_strategy="no",
        logging_steps=args.steps + 1, seed=0, disable_tqdm=True,
        reward_weights=[1.0, 0.5] if python_rewards else None,
    )
    reward_funcs: list[Any] = [python_accuracy, python_format] if python_rewards else [reward]
    return TRLGRPOTrainer(
        model=model, reward_funcs=reward_funcs, args=config, train_dataset=dataset, processing_class=tokenizer,
        callbacks=list(callbacks),
    )


def run_trl(args: argparse.Namespace, model, tokenizer, train, reward: RewardSpec, out: Path, python_rewards=False) -> tuple[float, float]:
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.starts: list[float] = []
            self.start_rss = 0.0

        def on_step_begin(self, *_: object, **__: object) -> None:
            if len(self.starts) == 1:  # after the warm-up step
                reset_peak_rss()
                self.start_rss = peak_rss_mib()
            self.starts.append(time.perf_counter())

    timer = StepTimer()
    trainer = trl_trainer(args, model, tokenizer, train, reward, out, callbacks=[timer], python_rewards=python_rewards)
    trainer.train()
    end = time.perf_counter()
    return (end - timer.starts[1]) / (len(timer.starts) - 1), peak_rss_mib() - timer.start_rss


def warm_start(tokenizer, directory: Path, steps: int) -> Path:
    """The tiny model after `steps` SFT steps (batch 16) on the demo's cold-start chains of
    thought, saved to `directory` for both sides to load."""
    from reasonrl.trainer.sft import SFTTrainer

    task = AdditionTask(seed=0)
    _, heldout = task.problems(512, 8)
    torch.manual_seed(0)
    model = build_tiny_model(len(tokenizer), tokenizer, DemoSettings())
    if steps > 0:
        config = stage_from_dict({
            "kind": "sft", "name": "warm-start", "model": {"name_or_path": "bench:tiny"},
            "data": {"train": "bench:cold-start", "template": PROMPT_TEMPLATE},
            "sft": {"epochs": 1, "batch_size": 16, "max_length": 128},
            "optim": {"lr": 3e-3, "warmup_steps": 20},
            "run": {"output_dir": str(directory / "sft"), "seed": 0, "tensorboard": False, "progress_bar": False},
        })
        SFTTrainer(config, model, tokenizer, task.cold_start_examples(16 * steps, heldout)).train()
    model.save_pretrained(directory / "model")
    return directory / "model"


def load_model(path: str):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)


def setup() -> tuple:
    quiet_transformers()
    tokenizer = build_char_tokenizer()
    train, _ = AdditionTask(seed=0).problems(512, 8)
    reward = RewardSpec.from_config({
        "accuracy": {"kind": "math_accuracy"},
        "format": {"kind": "format", "weight": 0.5, "think_in_prompt": True},
    })
    return tokenizer, train, reward


def run_side(args: argparse.Namespace) -> None:
    """One side's timing, in this (child) process; prints one JSON line."""
    tokenizer, train, reward = setup()
    with tempfile.TemporaryDirectory() as tmp:
        model, out = load_model(args.model), Path(tmp)
        if args.side == "reasonrl":
            seconds, rise = run_reasonrl(args, model, tokenizer, train, reward, out)
        else:
            seconds, rise = run_trl(args, model, tokenizer, train, reward, out, python_rewards=args.side == "trl-python")
    print(json.dumps({"seconds": seconds, "step_rise_mib": rise, "peak_mib": peak_rss_mib()}))


def same_batch(args: argparse.Namespace) -> dict[str, float]:
    """Loss and gradient of reasonrl and of TRL's `_compute_loss` on one batch, same weights;
    and what the batch looks like (reward, lengths, rows whose advantage is 0)."""
    tokenizer, train, reward = setup()
    model = load_model(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        ours = reasonrl_trainer(args, model, tokenizer, train, reward, Path(tmp) / "rr")
        examples = ours.sampler.next_step()
        rollouts = ours.rollout_step(examples)
        scores = ours.score(examples, rollouts)
        advantages, keep = ours.advantages(scores, rollouts)
        batch = ours.pack(rollouts, advantages, keep)
        # Every row goes into the comparison (reasonrl's update would skip those whose advantage
        # is 0; they add 0 on both sides).

        logp, entropy = ours.token_logprobs(model, batch, with_entropy=True)
        loss, _ = grpo_loss(logp, None, None, batch.advantages, batch.completion_mask, loss_type="dapo",
                            max_completion_length=args.max_new_tokens, entropy=entropy)
        loss.backward()
        our_grad = torch.cat([p.grad.flatten() for p in model.parameters()])
        model.zero_grad(set_to_none=True)

        theirs = trl_trainer(args, model, tokenizer, train, reward, Path(tmp) / "trl")
        theirs.current_gradient_accumulation_steps = 1
        P = rollouts.prompt_ids.shape[1]
        trl_loss = theirs._compute_loss(model, {
            "prompt_ids": batch.input_ids[:, :P], "prompt_mask": batch.attention_mask[:, :P],
            "completion_ids": batch.completion_ids, "completion_mask": batch.completion_mask.long(),
            "advantages": batch.advantages, "old_per_token_logps": None, "ref_per_token_logps": None,
            "num_items_in_batch": batch.completion_mask.sum(),
        })
        trl_loss.backward()
        trl_grad = torch.cat([p.grad.flatten() for p in model.parameters()])
    return {
        "rows": float(len(batch)), "loss": loss.item(), "trl_loss": trl_loss.item(),
        "reward": float(scores.total.mean()), "mean_length": float(rollouts.lengths.float().mean()),
        "zero_advantage": float((batch.advantages == 0).float().mean()),
        "loss_abs_diff": abs(loss.item() - trl_loss.item()),
        "grad_rel_diff": float((our_grad - trl_grad).norm() / trl_grad.norm().clamp(min=1e-30)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3, help="runs of each side, interleaved; medians are reported")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--warm-start-steps", type=int, default=200, help="SFT steps before the runs (0: a random model)")
    parser.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)  # internal: one child process
    parser.add_argument("--model", help=argparse.SUPPRESS)  # internal: the warm-started model
    args = parser.parse_args()
    if args.side:
        run_side(args)
        return
    quiet_transformers()
    with tempfile.TemporaryDirectory() as tmp:
        args.model = str(warm_start(build_char_tokenizer(), Path(tmp), args.warm_start_steps))
        sizes = ["--steps", str(args.steps), "--prompts", str(args.prompts), "--group-size", str(args.group_size),
                 "--max-new-tokens", str(args.max_new_tokens), "--model", args.model]
        runs: dict[str, list[dict[str, float]]] = {side: [] for side in SIDES}
        for _ in range(args.rounds):
            for side in SIDES:
                child = subprocess.run([sys.executable, __file__, "--side", side, *sizes], capture_output=True, text=True)
                if child.returncode != 0:
                    sys.exit(f"the {side} run failed:\n{child.stderr[-4000:]}")
                runs[side].append(json.loads(child.stdout.strip().splitlines()[-1]))
        check = same_batch(args)
    results = {side: {key: statistics.median(r[key] for r in side_runs) for key in side_runs[0]} for side, side_runs in runs.items()}

    print(f"GRPO step, tiny model after {args.warm_start_steps} SFT steps, {args.prompts} prompts x {args.group_size} completions, "
          f"<= {args.max_new_tokens} new tokens, CPU, {torch.get_num_threads()} threads, {args.steps - 1} timed steps, "
          f"median of {args.rounds} interleaved runs per side")
    print(f"{'':<12}{'s/step':>10}{'range':>15}{'peak RSS MiB':>14}{'rise in steps MiB':>19}{'reasonrl speed-up':>19}"
          f"  {'per round'}")
    for name, r in results.items():
        ratio = r["seconds"] / results["reasonrl"]["seconds"]
        seconds = [run["seconds"] for run in runs[name]]
        spread = f"{min(seconds):.3f}-{max(seconds):.3f}"
        # Each round's sides ran back to back, so a round's ratio is less exposed to the host
        # slowing down or speeding up between rounds than the ratio of the medians.
        per_round = "/".join(f"{run['seconds'] / ours['seconds']:.2f}" for run, ours in zip(runs[name], runs["reasonrl"]))
        print(f"{name:<12}{r['seconds']:>10.3f}{spread:>15}{r['peak_mib']:>14.0f}{r['step_rise_mib']:>19.1f}{ratio:>18.2f}x"
              f"  {per_round}")
    print("trl: TRL's loop with reasonrl's RewardSpec as reward; trl-python: with open-r1-style Python rewards")
    print(f"first batch: mean reward {check['reward']:.2f}, mean completion {check['mean_length']:.1f} tokens, "
          f"{check['zero_advantage']:.0%} of rows with advantage 0")
    print(f"same batch ({check['rows']:.0f} rows, same weights): loss {check['loss']:.6g} vs TRL {check['trl_loss']:.6g} "
          f"(|diff| {check['loss_abs_diff']:.1e}); gradient relative difference {check['grad_rel_diff']:.1e}")


if __name__ == "__main__":
    main()
