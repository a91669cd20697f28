"""The small GRPO stage every trainer test starts from, as a plain dict (the distributed tests
send it to their worker processes as JSON). Each layer of overrides, then the keyword sections,
is merged into it section by section."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reasonrl.demo.task import PROMPT_TEMPLATE


def grpo_stage_dict(output_dir: Path, *layers: dict[str, Any], **sections: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "kind": "grpo",
        "name": "test",
        "model": {"name_or_path": "test:tiny"},
        "data": {"train": "test:addition", "template": PROMPT_TEMPLATE},
        "rollout": {"prompts_per_step": 2, "group_size": 4, "max_new_tokens": 12},
        "reward": {"accuracy": {"kind": "math_accuracy"}, "format": {"kind": "format", "weight": 0.5, "think_in_prompt": True}},
        "algorithm": {"micro_batch_size": 3},
        "optim": {"lr": 1e-3, "schedule": "constant"},
        "run": {"output_dir": str(output_dir), "steps": 2, "tensorboard": False, "progress_bar": False},
    }
    for layer in (*layers, sections):
        for key, value in layer.items():
            base[key] = {**base.get(key, {}), **value} if isinstance(value, dict) else value
    return base
