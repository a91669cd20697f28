"""One GRPO setup run through TRL's `GRPOTrainer` and through reasonrl, in one process: seconds
per step and peak memory side by side.

    pip install trl   # the peer (pip install reasonrl[bench])
    python benches/bench_trl.py [--steps 6] [--prompts 8] [--group-size 8] [--max-new-tokens 48]

Same tiny model (the demo's char-level Qwen2, random weights, same seed), same prompts, group
size, completion length, loss type (dapo), beta = 0, learning rate and reward (the R1 format
reward plus math accuracy). Each side trains the same number of steps on CPU; the first step is
a warm-up and not timed. Peak memory is the rise of the process's peak RSS during the run,
reset before each side (Linux `VmHWM`).
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from pathlib import Path

import torch
from transformers.utils import logging as hf_logging

from reasonrl.config import stage_from_dict
from reasonrl.data import get_template
from reasonrl.demo import AdditionTask, DemoSettings, build_char_tokenizer
from reasonrl.demo.run import build_tiny_model
from reasonrl.demo.task import PROMPT_TEMPLATE
from reasonrl.rewards import RewardSpec
from reasonrl.trainer.grpo import GRPOTrainer


def reset_peak_rss() -> None:
    Path("/proc/self/clear_refs").write_text("5")


def peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_reasonrl(args: argparse.Namespace, model, tokenizer, train, reward: RewardSpec, out: Path) -> tuple[float, float]:
    config = stage_from_dict({
        "kind": "grpo", "name": "bench", "model": {"name_or_path": "bench:tiny"},
        "data": {"train": "bench:addition", "template": PROMPT_TEMPLATE},
        "rollout": {"prompts_per_step": args.prompts, "group_size": args.group_size, "max_new_tokens": args.max_new_tokens},
        "reward": {"unused": {"kind": "format"}},
        "algorithm": {"loss_type": "dapo", "micro_batch_size": args.prompts * args.group_size},
        "optim": {"lr": 1e-5, "schedule": "constant"},
        "run": {"output_dir": str(out), "steps": args.steps, "tensorboard": False, "progress_bar": False},
    })
    trainer = GRPOTrainer(config, model, tokenizer, train, template=get_template(PROMPT_TEMPLATE), reward_spec=reward)
    trainer.train_step()  # warm-up
    reset_peak_rss()
    start_rss = peak_rss_mib()
    start = time.perf_counter()
    for _ in range(args.steps - 1):
        trainer.train_step()
    return (time.perf_counter() - start) / (args.steps - 1), peak_rss_mib() - start_rss


def run_trl(args: argparse.Namespace, model, tokenizer, train, reward: RewardSpec, out: Path) -> tuple[float, float]:
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig
    from trl import GRPOTrainer as TRLGRPOTrainer

    dataset = Dataset.from_list([{"prompt": PROMPT_TEMPLATE.format(prompt=e.prompt), "answer": e.answer} for e in train])
    config = GRPOConfig(
        output_dir=str(out), per_device_train_batch_size=args.prompts * args.group_size, num_generations=args.group_size,
        max_completion_length=args.max_new_tokens, max_steps=args.steps, learning_rate=1e-5, lr_scheduler_type="constant",
        loss_type="dapo", beta=0.0, temperature=1.0, use_cpu=True, report_to="none", save_strategy="no",
        logging_steps=args.steps + 1, seed=0, disable_tqdm=True,
    )

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
    trainer = TRLGRPOTrainer(model=model, reward_funcs=[reward], args=config, train_dataset=dataset, processing_class=tokenizer, callbacks=[timer])
    trainer.train()
    end = time.perf_counter()
    return (end - timer.starts[1]) / (len(timer.starts) - 1), peak_rss_mib() - timer.start_rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    args = parser.parse_args()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    tokenizer = build_char_tokenizer()
    train, _ = AdditionTask(seed=0).problems(512, 8)
    reward = RewardSpec.from_config({
        "accuracy": {"kind": "math_accuracy"},
        "format": {"kind": "format", "weight": 0.5, "think_in_prompt": True},
    })
    settings = DemoSettings()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, run in (("reasonrl", run_reasonrl), ("trl", run_trl)):
            gc.collect()
            torch.manual_seed(0)
            model = build_tiny_model(len(tokenizer), tokenizer, settings)
            results[name] = run(args, model, tokenizer, train, reward, Path(tmp) / name)
    print(f"GRPO step, tiny model, {args.prompts} prompts x {args.group_size} completions, "
          f"<= {args.max_new_tokens} new tokens, CPU, {torch.get_num_threads()} threads")
    print(f"{'':<10}{'s/step':>10}{'peak MiB':>10}")
    for name, (seconds, memory) in results.items():
        print(f"{name:<10}{seconds:>10.3f}{memory:>10.1f}")
    print(f"reasonrl is {results['trl'][0] / results['reasonrl'][0]:.2f}x TRL's speed per step")


if __name__ == "__main__":
    main()
