"""`reasonrl demo` end to end at a small size: every stage runs through the real trainers and
the run leaves its table, summary, metrics, plots, report and a loadable final model behind.

The full-size demo (the README's main command) trains for several minutes; its figures are
reported in the README, not asserted here.
"""

from __future__ import annotations

import json

import torch
from transformers import AutoModelForCausalLM
from transformers.utils import logging as hf_logging

from reasonrl.demo import DemoSettings, run_demo
from reasonrl.demo.run import StoryBars

hf_logging.disable_progress_bar()


def test_demo_runs_every_stage_and_writes_its_report(tmp_path):
    settings = DemoSettings(
        n_train=64, n_heldout=8, pretrain_lines=512, cold_start_examples=32, cold_start_epochs=1,
        grpo_steps=2, length_steps=2, prompts_per_step=2, group_size=4, eval_samples=2, max_new_tokens=24, threads=1,
    )
    lines: list[str] = []
    threads_while_running: set[int] = set()

    def log(line: str) -> None:
        lines.append(line)
        threads_while_running.add(torch.get_num_threads())

    threads_before = torch.get_num_threads()
    result = run_demo(tmp_path / "demo", settings, log=log)
    # The demo trains on a fixed thread count (its figures depend on it) and gives it back.
    assert threads_while_running == {1} and torch.get_num_threads() == threads_before
    assert [row["stage"] for row in result["rows"]] == ["base", "cold_start", "grpo", "long2short"]
    table = "\n".join(lines)
    assert "stage" in table and "long2short" in table
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    for stage in ("base", "cold_start", "grpo", "long2short"):
        assert 0.0 <= summary[stage]["accuracy"] <= 1.0 and summary[stage]["mean_tokens"] > 0
    # The verdict on the story's bars is computed from the run's own rows, saved and printed.
    bars = result["bars"]
    assert bars == StoryBars.from_rows(result["rows"])
    assert summary["bars"]["grpo_gain"] == summary["grpo"]["accuracy"] - summary["cold_start"]["accuracy"]
    assert summary["bars"]["grpo_met"] == bars.grpo_met and summary["bars"]["length_met"] == bars.length_met
    assert any(line.startswith("GRPO:") for line in lines) and any(line.startswith("long2short:") for line in lines)
    metrics = [json.loads(line) for line in (tmp_path / "demo" / "metrics.jsonl").read_text().splitlines()]
    assert {m["stage"] for m in metrics} == {"base", "cold_start", "grpo", "long2short"}
    assert any("reward/length" in m for m in metrics if m["stage"] == "long2short")
    report = (tmp_path / "demo" / "report.md").read_text()
    assert "plots/" in report and any((tmp_path / "demo" / "plots").glob("*.png"))
    AutoModelForCausalLM.from_pretrained(tmp_path / "demo" / "final")
    heldout = [json.loads(line) for line in (tmp_path / "demo" / "heldout.jsonl").read_text().splitlines()]
    assert len(heldout) == 8 and all(set(h) == {"prompt", "answer"} for h in heldout)

    # The demo again into the same folder replaces the first run, not adds to it.
    run_demo(tmp_path / "demo", settings, log=lambda _: None)
    again = [json.loads(line) for line in (tmp_path / "demo" / "metrics.jsonl").read_text().splitlines()]
    assert [(m["stage"], m["step"]) for m in again] == [(m["stage"], m["step"]) for m in metrics]


def test_cold_start_data_earns_full_reward_and_never_shows_a_heldout_problem():
    from reasonrl.demo.task import PROMPT_TEMPLATE, AdditionTask
    from reasonrl.rewards import Component, RewardSpec

    task = AdditionTask(seed=0)
    train, heldout = task.problems(500, 50)
    cold = task.cold_start_examples(200, heldout)
    spec = RewardSpec([
        Component("accuracy", "math_accuracy", params={"answer_tag": True}),
        Component("format", "format", params={"think_in_prompt": True}),
    ])
    answers = [str(eval(prompt.removesuffix("=?<think>"))) for prompt, _ in cold]  # noqa: S307 (a+b)
    scores = spec.score([completion for _, completion in cold], answers=answers)
    assert scores.components["accuracy"].min() == 1.0 and scores.components["format"].min() == 1.0
    # Verbosity varies from none to max_detours re-checks: the room the length stage can cut.
    checks = {completion.count(" check ") for _, completion in cold}
    assert checks == set(range(task.min_detours, task.max_detours + 1))
    banned = {e.prompt for e in heldout}
    assert not banned & {e.prompt for e in train}
    assert not banned & {prompt.removesuffix("=?<think>") for prompt, _ in cold}
    assert all(PROMPT_TEMPLATE.format(prompt="") in prompt for prompt, _ in cold)
    corpus = task.pretraining_corpus(2000, heldout)
    assert not any(line.split("=")[0].split(":")[0] in banned for line in corpus)


def _rows(cold: tuple[float, float], grpo: tuple[float, float], short: tuple[float, float]) -> list[dict]:
    return [
        {"stage": stage, "accuracy": accuracy, "mean_tokens": tokens}
        for stage, (accuracy, tokens) in (("cold_start", cold), ("grpo", grpo), ("long2short", short))
    ]


def test_story_bars_judge_each_stage_against_its_bar():
    # Seed 0's README table: both bars met.
    bars = StoryBars.from_rows(_rows((0.246, 45.2), (0.524, 37.5), (0.527, 27.1)))
    assert bars.grpo_met and bars.length_met
    assert abs(bars.grpo_gain - 0.278) < 1e-9 and abs(bars.length_cut - (1 - 27.1 / 37.5)) < 1e-12
    lines = bars.lines()
    assert "+27.8 points" in lines[0] and lines[0].endswith("- met")
    assert "28% fewer tokens" in lines[1] and lines[1].endswith("- met")
    # Seed 1's: GRPO already at the floor, so the length stage cuts 1%; accuracy rising is fine.
    bars = StoryBars.from_rows(_rows((0.399, 44.4), (0.707, 27.1), (0.771, 26.9)))
    assert bars.grpo_met and not bars.length_met
    assert bars.lines()[0].endswith("- met") and bars.lines()[1].endswith("NOT met")
    # Short enough, but 2.5 points of accuracy lost; and a GRPO gain just under 20 points.
    bars = StoryBars.from_rows(_rows((0.40, 45.0), (0.599, 40.0), (0.574, 30.0)))
    assert not bars.grpo_met and not bars.length_met and bars.length_cut == 0.25
    # Exactly on the bars: 20 points, 20% fewer tokens, 2 points lost.
    assert StoryBars(0.2, 0.2, -0.02).grpo_met and StoryBars(0.2, 0.2, -0.02).length_met
    assert not StoryBars(0.2, 0.19, 0.0).length_met and not StoryBars(0.19, 0.2, 0.0).grpo_met
