"""A tiny causal LM and char-level tokenizer built locally, and a small addition task."""

from __future__ import annotations

import pytest
import torch
from transformers.utils import logging as hf_logging

from reasonrl.config import stage_from_dict
from reasonrl.demo import AdditionTask, DemoSettings, build_char_tokenizer
from reasonrl.demo.run import build_tiny_model
from reasonrl.demo.task import PROMPT_TEMPLATE

hf_logging.disable_progress_bar()


@pytest.fixture
def tokenizer():
    return build_char_tokenizer()


@pytest.fixture
def tiny_model(tokenizer):
    torch.manual_seed(0)
    return build_tiny_model(len(tokenizer), tokenizer, DemoSettings(hidden_size=32, layers=2, heads=2))


@pytest.fixture
def problems():
    return AdditionTask(seed=0).problems(64, 8)


@pytest.fixture
def make_stage():
    """Builds a validated GRPO StageConfig for tests: make_stage(tmp_path, run={"steps": 3})."""
    return grpo_stage


def grpo_stage(tmp_path, **sections):
    base = {
        "kind": "grpo",
        "name": "test",
        "model": {"name_or_path": "test:tiny"},
        "data": {"train": "test:addition", "template": PROMPT_TEMPLATE},
        "rollout": {"prompts_per_step": 2, "group_size": 4, "max_new_tokens": 12},
        "reward": {"accuracy": {"kind": "math_accuracy"}, "format": {"kind": "format", "weight": 0.5, "think_in_prompt": True}},
        "algorithm": {"micro_batch_size": 3},
        "optim": {"lr": 1e-3, "schedule": "constant"},
        "run": {"output_dir": str(tmp_path / "run"), "steps": 2, "tensorboard": False, "progress_bar": False},
    }
    for key, value in sections.items():
        base[key] = {**base.get(key, {}), **value}
    return stage_from_dict(base)
