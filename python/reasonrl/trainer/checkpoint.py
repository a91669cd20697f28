"""Checkpoints that resume exactly: the model in Hugging Face format (safetensors, loadable with
`from_pretrained`), plus optimizer, scheduler, RNG states and the position in the data."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

STATE_FILE = "trainer_state.pt"


def save_checkpoint(
    directory: Path,
    model: torch.nn.Module,
    tokenizer: Any,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    state: dict[str, Any] | None = None,
) -> Path:
    """Writes to a temporary folder, then renames it: a crash mid-save never leaves a
    half-written checkpoint where `--resume` would pick it up."""
    directory = Path(directory)
    partial = directory.with_name(directory.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    model.save_pretrained(partial, safe_serialization=True)  # type: ignore[operator]
    tokenizer.save_pretrained(partial)
    payload = {
        "state": state or {},
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "rng": {
            "python": random.getstate(),
            "numpy": np.random.get_state(),
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        },
    }
    torch.save(payload, partial / STATE_FILE)
    (partial / "trainer_state.json").write_text(json.dumps(state or {}, indent=2, default=str))
    shutil.rmtree(directory, ignore_errors=True)
    partial.rename(directory)
    return directory


def load_trainer_state(
    directory: Path, *, optimizer: torch.optim.Optimizer | None = None, scheduler: Any = None
) -> dict[str, Any]:
    """Restores optimizer, scheduler and RNG states; returns the saved trainer state."""
    payload = torch.load(Path(directory) / STATE_FILE, map_location="cpu", weights_only=False)
    if optimizer is not None and payload["optimizer"] is not None:
        optimizer.load_state_dict(payload["optimizer"])
    if scheduler is not None and payload["scheduler"] is not None:
        scheduler.load_state_dict(payload["scheduler"])
    rng = payload["rng"]
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    return dict(payload["state"])


def latest_checkpoint(output_dir: Path) -> Path | None:
    """The `checkpoint-<step>` folder with the highest step, if any."""
    found = [p for p in Path(output_dir).glob("checkpoint-*") if p.is_dir() and (p / STATE_FILE).exists()]
    return max(found, key=lambda p: int(p.name.split("-")[-1]), default=None)
