"""Config loading: every mistake is a ConfigError naming the key, before any model loads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from reasonrl.config import ConfigError, PipelineConfig, StageConfig, load_config, stage_from_dict

VALID = """
kind: grpo
model: {name_or_path: some/model}
data: {train: hub/dataset}
reward: {accuracy: {kind: math_accuracy}}
rollout: {group_size: 4, prompts_per_step: 2}
optim: {lr: 1e-6}
"""


def write(tmp_path, text, name="c.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_field_that_holds_text_gets_the_text_as_typed(tmp_path):
    # `{prompt}=?` parses as a broken YAML mapping; on the command line it means the text.
    config = load_config(write(tmp_path, VALID), ["data.template={prompt}=?<think>"])
    assert config.data.template == "{prompt}=?<think>"
    # Valid YAML that is not text, given to a field that holds text: the text as typed.
    config = load_config(write(tmp_path, VALID), ["data.template={prompt}", "name=yes", "data.split=null"])
    assert (config.data.template, config.name, config.data.split) == ("{prompt}", "yes", None)
    # Other fields still get the YAML value, and a section set whole can be refined after.
    config = load_config(write(tmp_path, VALID), ["rollout={group_size: 4}", "rollout.top_p=0.9", "algorithm.beta=0.04"])
    assert (config.rollout.group_size, config.rollout.top_p, config.algorithm.beta) == (4, 0.9, 0.04)


def test_valid_config_with_overrides(tmp_path):
    config = load_config(write(tmp_path, VALID), ["algorithm.beta=0.04", "rollout.stop=['</answer>']", "run.steps=7"])
    assert isinstance(config, StageConfig)
    assert config.algorithm.beta == 0.04 and config.rollout.stop == ["</answer>"] and config.run.steps == 7
    assert config.optim.lr == 1e-6  # YAML reads 1e-6 as a string; it is coerced


@pytest.mark.parametrize(
    ("text", "overrides", "message"),
    [
        (VALID + "extra: 1\n", [], r"^extra: unknown key"),
        (VALID, ["algorithm.betta=1"], r"^algorithm\.betta: unknown key"),
        (VALID, ["rollout.group_size=four"], r"^rollout\.group_size: expected an integer"),
        (VALID, ["rollout.group_size=1"], r"rollout\.group_size: GRPO needs at least 2"),
        (VALID, ["algorithm.loss_type=ppo"], r"^algorithm\.loss_type: 'ppo' is not one of"),
        (VALID, ["model.gradient_checkpointing=yes please"], r"^model\.gradient_checkpointing: expected true or false"),
        (VALID, ["data.train=missing.jsonl"], r"^data\.train: file not found: missing\.jsonl"),
        (VALID, ["reward={}"], r"^reward: a GRPO stage needs at least one reward"),
        (VALID, ["rollout.temperature=0"], r"^rollout\.temperature: must be > 0"),
        (VALID, ["algorithm.mini_batches=3"], r"^algorithm\.mini_batches: 3 does not divide"),
        (VALID, ["eval.ks=[4]"], r"^eval\.ks"),
        (VALID, ["noequals"], r"expected key=value"),
        (VALID, ["=3"], r"^--set .=3.: expected key=value, the key a dotted path"),
        (VALID, ["rollout..top_p=1"], r"expected key=value, the key a dotted path"),
        (VALID, ["rollout.stop=[</answer>"], r"^--set rollout\.stop: '\[</answer>' is not valid YAML"),
        (VALID, ["run.output_dir='runs/a"], r"^--set run\.output_dir: \"'runs/a\" is not valid YAML"),
        # Values out of range, each named before any model loads.
        (VALID, ["algorithm.beta=-1"], r"^algorithm\.beta: must be >= 0, got -1"),
        (VALID, ["algorithm.eps_low=-0.5"], r"^algorithm\.eps_low: must be in \[0, 1\)"),
        (VALID, ["algorithm.eps_low=1"], r"^algorithm\.eps_low: must be in \[0, 1\)"),
        (VALID, ["algorithm.eps_high=-0.1"], r"^algorithm\.eps_high: must be >= 0"),
        (VALID, ["optim.warmup_steps=-5"], r"^optim\.warmup_steps: must be >= 0"),
        (VALID, ["optim.min_lr_ratio=2"], r"^optim\.min_lr_ratio: must be in \[0, 1\]"),
        (VALID, ["optim.max_grad_norm=0"], r"^optim\.max_grad_norm: must be > 0"),
        (VALID, ["optim.betas=[0.9, 1.0]"], r"^optim\.betas: each must be in \[0, 1\)"),
        (VALID, ["eval.temperature=0"], r"^eval\.temperature: must be > 0"),
        (VALID, ["eval.max_new_tokens=0"], r"^eval\.max_new_tokens: must be >= 1"),
        (VALID, ["eval.ks=[0]"], r"^eval\.ks\[0\]: must be >= 1"),
        (VALID, ["data.train_limit=0"], r"^data\.train_limit: must be >= 1"),
        (VALID, ["run.max_consecutive_nonfinite=0"], r"^run\.max_consecutive_nonfinite: must be >= 1"),
        (VALID.replace("kind: grpo", "kind: sft"), ["sft.epochs=0"], r"^sft\.epochs: must be >= 1"),
        (VALID.replace("kind: grpo", "kind: sft"), ["sft.batch_size=0"], r"^sft\.batch_size: must be >= 1"),
        # What the trainer would only find out after loading the model.
        (VALID, ["reward.accuracy.kind=math_acuracy"], r"^reward\.accuracy: unknown kind 'math_acuracy'"),
        (VALID, ["reward.accuracy.answer_tags=true"], r"^reward\.accuracy: unknown parameter `answer_tags`"),
        (VALID, ["reward.accuracy.weight=abc"], r"^reward\.accuracy: weight must be a number, got 'abc'"),
        (VALID, ["reward.length.kind=kimi_length", "reward.accuracy.kind=format"], r"^reward: .*add an accuracy component"),
        (VALID, ["reward.accuracy.kind=format", "reward.accuracy.think_in_prompt=maybe"],
         r'^reward\.accuracy: `think_in_prompt` must be true or false, got "maybe"$'),
        (VALID, ["data.template='Q {question}'"], r"^data\.template: .*neither a built-in template"),
        (VALID, ["model.name_or_path=./no/such/model"], r"^model\.name_or_path: no such folder: \./no/such/model"),
        ("- a\n- b\n", [], r"top level must be a mapping"),
        ("kind: [", [], r"not valid YAML"),
    ],
)
def test_mistakes_are_named(tmp_path, text, overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text), overrides)


def test_wandb_project_needs_wandb(tmp_path, monkeypatch):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real_find_spec(name, *a))
    with pytest.raises(ConfigError, match=r"^run\.wandb_project: wandb is not installed"):
        load_config(write(tmp_path, VALID), ["run.wandb_project=my-runs"])
    assert load_config(write(tmp_path, VALID)).run.wandb_project is None


def test_reward_weights_written_as_yaml_strings_still_load(tmp_path):
    config = load_config(write(tmp_path, VALID + "eval: {samples: 2, ks: [1, 2]}\n"), ["reward.accuracy.weight=1e-1"])
    assert float(config.reward["accuracy"]["weight"]) == 0.1 and config.eval.ks == [1, 2]


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_pipeline_stages_and_stage_files(tmp_path):
    write(tmp_path, VALID.replace("kind: grpo", "kind: sft"), "sft.yaml")
    pipeline = load_config(write(tmp_path, "output_dir: out\nstages:\n  - sft.yaml\n  - kind: grpo\n    data: {train: hub/x}\n    reward: {a: {kind: format}}\n"))
    assert isinstance(pipeline, PipelineConfig)
    assert [s.kind for s in pipeline.stages] == ["sft", "grpo"]
    with pytest.raises(ConfigError, match=r"^stages\[1\]\.reward"):
        load_config(write(tmp_path, "stages:\n  - sft.yaml\n  - kind: grpo\n    data: {train: hub/x}\n", "p2.yaml"))


def test_pipeline_overrides_reach_every_stage_or_one(tmp_path):
    write(tmp_path, VALID.replace("kind: grpo", "kind: sft"), "sft.yaml")
    path = write(tmp_path, "output_dir: out\nstages:\n  - sft.yaml\n  - kind: grpo\n    data: {train: hub/x}\n    reward: {a: {kind: format}}\n")
    pipeline = load_config(path, ["run.seed=5", "stages.1.run.steps=7", "stages[0].sft.epochs=3", "output_dir=elsewhere"])
    assert isinstance(pipeline, PipelineConfig) and pipeline.output_dir == "elsewhere"
    assert [s.run.seed for s in pipeline.stages] == [5, 5]
    assert [s.run.steps for s in pipeline.stages] == [100, 7] and pipeline.stages[0].sft.epochs == 3
    for override, message in [
        ("stages.2.run.steps=1", r"there are 2 stages \(0 to 1\)"),
        ("stages.one.run.steps=1", r"expected stages\.I\.key=value"),
        ("run.output_dir=x", r"set output_dir instead"),
        ("stages.1.run.stepz=1", r"^stages\[1\]\.run\.stepz: unknown key"),
    ]:
        with pytest.raises(ConfigError, match=message):
            load_config(path, [override])


def test_shipped_recipes_load(tmp_path, monkeypatch):
    # Data paths point at ../shared/data or user files: create them (empty) under tmp_path.
    cwd = tmp_path / "work" / "repo"
    cwd.mkdir(parents=True)
    monkeypatch.chdir(cwd)
    recipes = sorted((Path(__file__).resolve().parents[2] / "recipes").glob("*.yaml"))
    assert len(recipes) >= 4
    for recipe in recipes:
        for path in {p.strip(",}") for p in recipe.read_text().split() if p.strip(",}").endswith(".jsonl")}:
            (cwd / path).parent.mkdir(parents=True, exist_ok=True)
            (cwd / path).write_text("")
        assert isinstance(load_config(recipe), (StageConfig, PipelineConfig)), recipe


def test_load_stage_config_takes_one_stage_and_names_a_pipeline(tmp_path):
    from reasonrl.config import load_stage_config

    assert load_stage_config(write(tmp_path, VALID)).kind == "grpo"
    write(tmp_path, VALID.replace("kind: grpo", "kind: sft"), "sft.yaml")
    pipeline = write(tmp_path, "stages:\n  - sft.yaml\n  - sft.yaml\n", "p.yaml")
    with pytest.raises(ConfigError, match=r"p.yaml is a pipeline of 2 stages, not one stage"):
        load_stage_config(pipeline)


def test_trainers_name_the_config_they_take():
    from reasonrl import GRPOTrainer, SFTTrainer
    from reasonrl.config import stage_from_dict
    from reasonrl.errors import InvalidInputError

    sft = stage_from_dict({"kind": "sft", "model": {"name_or_path": "m"}, "data": {"train": "d"}})
    with pytest.raises(InvalidInputError, match=r"GRPOTrainer takes a StageConfig of kind 'grpo'.*got a 'sft' stage \(run it with SFTTrainer\)"):
        GRPOTrainer(sft, None, None, [])
    with pytest.raises(InvalidInputError, match=r"SFTTrainer takes .* got a pipeline of 1 stages"):
        SFTTrainer(PipelineConfig(stages=[sft]), None, None, [("a", "b")])


def test_output_dirs_expand_a_home_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    config = load_config(write(tmp_path, VALID), ["run.output_dir=~/runs/a"])
    assert config.run.output_dir == str(tmp_path / "runs" / "a")
    write(tmp_path, VALID, "stage.yaml")
    pipeline = load_config(write(tmp_path, "output_dir: ~/runs/p\nstages:\n  - stage.yaml\n", "p.yaml"))
    assert isinstance(pipeline, PipelineConfig) and pipeline.output_dir == str(tmp_path / "runs" / "p")


def test_run_stage_names_data_and_machine_problems_by_key_before_loading_a_model(tmp_path, monkeypatch):
    import importlib.util

    from reasonrl.config import stage_from_dict
    from reasonrl.pipeline import run_stage

    (tmp_path / "splits").mkdir()
    (tmp_path / "splits" / "train.jsonl").write_text('{"prompt": "1+1", "answer": "2"}\n')
    (tmp_path / "empty.jsonl").write_text("")

    def stage(**sections):
        base = {"kind": "grpo", "model": {"name_or_path": "no/such-model-is-ever-loaded"}, "data": {"train": str(tmp_path / "splits")},
                "reward": {"a": {"kind": "format"}}, "run": {"output_dir": str(tmp_path / "run")}}
        for key, value in sections.items():
            base[key] = {**base.get(key, {}), **value}
        return stage_from_dict(base)

    cases = [
        (stage(), r"^data\.split: .*splits is a folder"),
        (stage(data={"split": "validation"}), r"^data\.split: no file for split 'validation'"),
        (stage(data={"train": str(tmp_path / "empty.jsonl")}), r"^data\.train: .*empty\.jsonl holds no examples"),
        (stage(data={"split": "train", "eval": str(tmp_path / "splits"), "eval_split": "test"}), r"^data\.eval_split: no file"),
    ]
    monkeypatch.setattr("reasonrl.kernels._backend.INTERPRET", False)
    if importlib.util.find_spec("vllm") is None:
        cases.append((stage(rollout={"backend": "vllm"}), r"^rollout\.backend: 'vllm' needs vLLM"))
    import torch

    if not torch.cuda.is_available():
        cases.append((stage(algorithm={"kernel_backend": "triton"}, model={"device": "cpu"}),
                      r"^algorithm\.kernel_backend: 'triton' needs a CUDA GPU"))
    for config, message in cases:
        with pytest.raises(ConfigError, match=message):
            run_stage(config)
    assert not (tmp_path / "run").exists()  # nothing was written either


def test_an_output_folder_that_is_a_file_and_a_seed_out_of_range_are_config_errors(tmp_path):
    from reasonrl.cli import main

    blocker = tmp_path / "afile"
    blocker.write_text("")
    stage = {"kind": "grpo", "model": {"name_or_path": "test:tiny"}, "data": {"train": "test:x"}}
    with pytest.raises(ConfigError, match=re.escape(f"run.output_dir: {blocker} is a file, not a folder")):
        stage_from_dict({**stage, "run": {"output_dir": str(blocker)}})
    with pytest.raises(ConfigError, match=re.escape(f"run.output_dir: {blocker} is a file, not a folder (in {blocker}/run)")):
        stage_from_dict({**stage, "run": {"output_dir": str(blocker / "run")}})
    with pytest.raises(ConfigError, match=re.escape("run.seed: must be in [0, 2**63), got -1")):
        stage_from_dict({**stage, "run": {"seed": -1}})
    assert main(["demo", "--output-dir", str(blocker)]) == 2
    with pytest.raises(SystemExit):
        main(["demo", "--seed", str(2**70)])


def test_settings_that_cannot_work_under_torchrun_are_refused_before_the_model_loads(monkeypatch):
    from reasonrl.pipeline import check_machine

    stage = {"kind": "grpo", "model": {"name_or_path": "test:tiny"}, "data": {"train": "test:x"},
             "reward": {"accuracy": {"kind": "math_accuracy"}}}
    alone = stage_from_dict({**stage, "distributed": {"strategy": "none", "cpu_offload": True}})
    check_machine(alone)  # one process: nothing to shard, nothing to refuse
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match=r"distributed.strategy: 'none' under torchrun would train 2 separate models"):
        check_machine(stage_from_dict({**stage, "distributed": {"strategy": "none"}}))
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match=r"distributed.cpu_offload: .* needs CUDA GPUs"):
            check_machine(stage_from_dict({**stage, "distributed": {"cpu_offload": True}}))
