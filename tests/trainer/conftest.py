"""A tiny causal LM and char-level tokenizer built locally, and a small addition task."""

from __future__ import annotations

import pytest
import torch
from stages import grpo_stage_dict
from transformers.utils import logging as hf_logging

from reasonrl.config import stage_from_dict
from reasonrl.demo import AdditionTask, DemoSettings, build_char_tokenizer
from reasonrl.demo.run import build_tiny_model

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
    return stage_from_dict(grpo_stage_dict(tmp_path / "run", **sections))
