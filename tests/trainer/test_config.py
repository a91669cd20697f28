"""Config loading: every mistake is a ConfigError naming the key, before any model loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from reasonrl.config import ConfigError, PipelineConfig, StageConfig, load_config

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
        ("- a\n- b\n", [], r"top level must be a mapping"),
        ("kind: [", [], r"not valid YAML"),
    ],
)
def test_mistakes_are_named(tmp_path, text, overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text), overrides)


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
