"""`reasonrl demo`: the R1 story in miniature, offline, on a CPU, in a few minutes.

    reasonrl demo [--output-dir runs/demo] [--seed 0] [--threads 2]

1. base model   a tiny causal LM (built here, random weights) reads bare equations
2. cold start   SFT on a few long, verbose chains of thought in the R1 template
3. GRPO         accuracy + format rewards                    → held-out accuracy rises
4. long→short   GRPO with the Kimi k1.5 length penalty added  → responses shrink, accuracy holds

Every stage uses the same trainers as `reasonrl train` / `reasonrl sft`. Accuracy is sampled
pass@1 on held-out problems (never trained on) at the training temperature, the metric
DeepSeek-R1 reports; greedy accuracy is shown beside it. As in R1's rule-based reward, an
answer only counts when it is given inside ``<answer>…</answer>``.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from reasonrl.config import stage_from_dict
from reasonrl.data import Example, get_template
from reasonrl.demo.task import PROMPT_TEMPLATE, AdditionTask
from reasonrl.demo.tokenizer import build_char_tokenizer
from reasonrl.pipeline import merge_metrics
from reasonrl.report import write_report
from reasonrl.rollout import HFRollout
from reasonrl.trainer.grpo import GRPOTrainer, evaluate_policy
from reasonrl.trainer.sft import SFTTrainer


@dataclass(frozen=True)
class DemoSettings:
    """Sizes chosen so the whole demo runs in a few minutes on 2 CPU cores."""

    seed: int = 0
    hidden_size: int = 64
    layers: int = 3
    heads: int = 4
    n_train: int = 2000
    n_heldout: int = 200
    pretrain_lines: int = 48_000
    pretrain_batch: int = 64
    cold_start_examples: int = 512
    cold_start_epochs: int = 16
    grpo_steps: int = 200
    length_steps: int = 120
    prompts_per_step: int = 16
    group_size: int = 16
    eval_samples: int = 8
    format_weight: float = 0.1
    max_new_tokens: int = 64
    # CPU threads for torch. Fixed, not the machine's core count: how a sum is split over
    # threads decides its last bits, and RL amplifies those into different tables.
    threads: int = 2


# The story's two bars: GRPO lifts held-out accuracy by at least 20 points over the cold start;
# the length stage then cuts mean response tokens by at least 20% and loses at most 2 points.
GRPO_GAIN_BAR = 0.20
LENGTH_CUT_BAR = 0.20
LENGTH_ACCURACY_LOSS_BAR = 0.02


@dataclass(frozen=True)
class StoryBars:
    """How a demo run did against the story's bars (accuracies as fractions)."""

    grpo_gain: float  # GRPO's accuracy minus the cold start's
    length_cut: float  # 1 - long2short's mean tokens / GRPO's
    length_accuracy_change: float  # long2short's accuracy minus GRPO's

    @property
    def grpo_met(self) -> bool:
        return self.grpo_gain >= GRPO_GAIN_BAR

    @property
    def length_met(self) -> bool:
        return self.length_cut >= LENGTH_CUT_BAR and self.length_accuracy_change >= -LENGTH_ACCURACY_LOSS_BAR

    @classmethod
    def from_rows(cls, rows: list[dict[str, Any]]) -> StoryBars:
        by_stage = {row["stage"]: row for row in rows}
        cold, grpo, short = by_stage["cold_start"], by_stage["grpo"], by_stage["long2short"]
        return cls(
            grpo_gain=grpo["accuracy"] - cold["accuracy"],
            length_cut=1.0 - short["mean_tokens"] / grpo["mean_tokens"] if grpo["mean_tokens"] > 0 else 0.0,
            length_accuracy_change=short["accuracy"] - grpo["accuracy"],
        )

    def lines(self) -> list[str]:
        verdict = lambda met: "met" if met else "NOT met"  # noqa: E731
        return [
            f"GRPO:       accuracy {100 * self.grpo_gain:+.1f} points over the cold start "
            f"(bar: +{100 * GRPO_GAIN_BAR:.0f}) - {verdict(self.grpo_met)}",
            f"long2short: {self.length_cut:.0%} fewer tokens than GRPO (bar: {LENGTH_CUT_BAR:.0%}), accuracy "
            f"{100 * self.length_accuracy_change:+.1f} points (bar: -{100 * LENGTH_ACCURACY_LOSS_BAR:.0f} at most) "
            f"- {verdict(self.length_met)}",
        ]


def build_tiny_model(vocab_size: int, tokenizer: Any, settings: DemoSettings) -> Qwen2ForCausalLM:
    torch.manual_seed(settings.seed)
    config = Qwen2Config(
        vocab_size=vocab_size, hidden_size=settings.hidden_size, num_hidden_layers=settings.layers,
        num_attention_heads=settings.heads, num_key_value_heads=settings.heads,
        intermediate_size=3 * settings.hidden_size, max_position_embeddings=256, tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    model = Qwen2ForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def _stage(name: str, kind: str, output_dir: Path, settings: DemoSettings, **sections: Any) -> Any:
    """A validated StageConfig for one demo stage (the same schema as a YAML recipe)."""
    base: dict[str, Any] = {
        "kind": kind,
        "name": name,
        "model": {"name_or_path": "demo:tiny-char-lm"},
        "data": {"train": "demo:addition", "template": PROMPT_TEMPLATE},
        # A demo run again into the same folder replaces the last one.
        "run": {"output_dir": str(output_dir / name), "seed": settings.seed, "tensorboard": False, "progress_bar": False,
                "overwrite": True},
    }
    for key, value in sections.items():
        base[key] = {**base.get(key, {}), **value}
    return stage_from_dict(base)


def run_demo(output_dir: str | Path = "runs/demo", settings: DemoSettings | None = None, *, log: Any = print) -> dict[str, Any]:
    settings = settings or DemoSettings()
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(settings.threads)
    try:
        return _run_demo(Path(output_dir), settings, log)
    finally:
        torch.set_num_threads(previous_threads)


def _run_demo(root: Path, settings: DemoSettings, log: Any) -> dict[str, Any]:
    root.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(settings.seed)
    tokenizer = build_char_tokenizer()
    task = AdditionTask(seed=settings.seed)
    train, heldout = task.problems(settings.n_train, settings.n_heldout)
    # The held-out problems, for `reasonrl eval` of the final model (see the README).
    (root / "heldout.jsonl").write_text("".join(json.dumps({"prompt": e.prompt, "answer": e.answer}) + "\n" for e in heldout))
    model = build_tiny_model(len(tokenizer), tokenizer, settings)
    template = get_template(PROMPT_TEMPLATE)
    rollout = HFRollout(model, tokenizer)
    rows: list[dict[str, Any]] = []

    def evaluate(stage: str, seconds: float) -> dict[str, Any]:
        sampled = _evaluate(rollout, tokenizer, template, heldout, settings, greedy=False)
        greedy = _evaluate(rollout, tokenizer, template, heldout, settings, greedy=True)
        row = {
            "stage": stage, "accuracy": sampled["pass@1"], "greedy_accuracy": greedy["pass@1"],
            "mean_tokens": sampled["mean_tokens"], "format_rate": sampled["format_rate"], "seconds": seconds,
        }
        rows.append(row)
        log(f"  {stage:<12} held-out accuracy {row['accuracy']:.1%} (greedy {row['greedy_accuracy']:.1%}), "
            f"mean tokens {row['mean_tokens']:.1f}, {seconds:.0f}s")
        return row

    log(f"reasonrl demo: {sum(p.numel() for p in model.parameters()):,}-parameter model, "
        f"{len(train)} train / {len(heldout)} held-out addition problems")

    # 1. A "base model": next-token prediction on bare equations, no template.
    start = time.perf_counter()
    corpus = [("", line) for line in task.pretraining_corpus(settings.pretrain_lines, heldout)]
    pretrain = _stage("base", "sft", root, settings, sft={"epochs": 1, "batch_size": settings.pretrain_batch, "max_length": 32},
                      optim={"lr": 3e-3, "warmup_steps": 50, "weight_decay": 0.01})
    SFTTrainer(pretrain, model, tokenizer, corpus).train()
    evaluate("base", time.perf_counter() - start)

    # 2. Cold start: a few long chains of thought in the R1 template.
    start = time.perf_counter()
    cold = task.cold_start_examples(settings.cold_start_examples, heldout)
    sft = _stage("cold_start", "sft", root, settings, sft={"epochs": settings.cold_start_epochs, "batch_size": 16, "max_length": 128},
                 optim={"lr": 1e-3, "warmup_steps": 20})
    SFTTrainer(sft, model, tokenizer, cold).train()
    evaluate("cold_start", time.perf_counter() - start)

    # 3. GRPO with accuracy + format rewards.
    grpo_sections = {
        "rollout": {"prompts_per_step": settings.prompts_per_step, "group_size": settings.group_size,
                    "max_new_tokens": settings.max_new_tokens, "temperature": 1.0},
        "algorithm": {"loss_type": "dapo", "mini_batches": 2, "micro_batch_size": 128, "beta": 0.0},
        # A short warm-up: Adam's first steps move every weight by about lr whatever the size of
        # its (noisy) gradient, which at full lr wrecks a model this small.
        "optim": {"lr": 1e-4, "schedule": "constant", "warmup_steps": 10, "max_grad_norm": 1.0},
    }
    r1_rewards = {
        # As in R1, only an answer given in the requested format counts: without `answer_tag`
        # a tiny model learns to drop the template and keep the accuracy reward.
        "accuracy": {"kind": "math_accuracy", "weight": 1.0, "answer_tag": True},
        "format": {"kind": "format", "weight": settings.format_weight, "think_in_prompt": True},
    }
    start = time.perf_counter()
    grpo = _stage("grpo", "grpo", root, settings, reward=r1_rewards, run={"steps": settings.grpo_steps}, **grpo_sections)
    GRPOTrainer(grpo, model, tokenizer, train, template=template, rollout=rollout).train()
    evaluate("grpo", time.perf_counter() - start)

    # 4. Long → short: the same objective plus the Kimi k1.5 length penalty.
    start = time.perf_counter()
    short_rewards = {**r1_rewards, "length": {"kind": "kimi_length", "weight": 1.0}}
    short = _stage("long2short", "grpo", root, settings, reward=short_rewards, run={"steps": settings.length_steps}, **grpo_sections)
    GRPOTrainer(short, model, tokenizer, train, template=template, rollout=rollout).train()
    evaluate("long2short", time.perf_counter() - start)

    stages = ["base", "cold_start", "grpo", "long2short"]
    merge_metrics([root / s for s in stages], root / "metrics.jsonl")
    summary = {row["stage"]: {k: v for k, v in row.items() if k != "stage"} for row in rows}
    bars = StoryBars.from_rows(rows)
    bar_figures = {**asdict(bars), "grpo_met": bars.grpo_met, "length_met": bars.length_met}
    (root / "summary.json").write_text(json.dumps({**summary, "bars": bar_figures}, indent=2))
    model.save_pretrained(root / "final")
    tokenizer.save_pretrained(root / "final")
    report = write_report(root, title="reasonrl demo: R1 in miniature", summary=summary)
    log("")
    log(results_table(rows))
    log("")
    for line in bars.lines():
        log(line)
    log(f"\nreport: {report}   final model: {root / 'final'} (AutoModelForCausalLM.from_pretrained)")
    return {"rows": rows, "bars": bars, "report": str(report), "model": str(root / "final")}


def _evaluate(rollout: HFRollout, tokenizer: Any, template: Any, heldout: list[Example], settings: DemoSettings, *, greedy: bool) -> dict[str, Any]:
    from reasonrl.rollout import SamplingParams

    sampling = SamplingParams(temperature=1.0, max_new_tokens=settings.max_new_tokens, greedy=greedy)
    result = evaluate_policy(
        rollout, tokenizer, template, heldout, samples=1 if greedy else settings.eval_samples, ks=[1], sampling=sampling,
        answer_tag=True,  # the rule the accuracy reward uses
    )
    return dict(result.summary)


def results_table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'stage':<12}{'accuracy':>10}{'greedy':>9}{'tokens':>9}{'format':>9}{'time':>8}"]
    lines += [
        f"{r['stage']:<12}{r['accuracy']:>10.1%}{r['greedy_accuracy']:>9.1%}{r['mean_tokens']:>9.1f}"
        f"{r['format_rate']:>9.1%}{r['seconds']:>7.0f}s"
        for r in rows
    ]
    return "\n".join(lines)
