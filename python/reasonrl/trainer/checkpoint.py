"""Checkpoints that resume exactly: the model in Hugging Face format (safetensors, loadable with
`from_pretrained`), plus optimizer, scheduler, RNG states and the position in the data.

Under torchrun every rank calls `save_checkpoint`: rank 0 writes the consolidated Hugging Face
weights (gathering sharded weights is a collective), and every rank writes its own shard of the
optimizer state into `optimizer/` (torch.distributed.checkpoint), so no rank ever holds all of
it. Both are keyed by parameter name, not by rank, so a run saved on 8 GPUs resumes on 1 or 16,
under FSDP, DDP or neither.
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch

from reasonrl.errors import ConfigError, ReasonRLError
from reasonrl.trainer.distributed import (
    barrier,
    full_model_state_dict,
    gather_objects,
    is_main_process,
    load_full_model_state_dict,
    load_sharded_optimizer,
    rank,
    save_sharded_optimizer,
    unwrap,
    world_size,
)

STATE_FILE = "trainer_state.pt"
OPTIMIZER_DIR = "optimizer"  # sharded optimizer state (torch.distributed.checkpoint)


def _rng_state() -> dict[str, Any]:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def _set_rng_state(rng: dict[str, Any]) -> None:
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])


def save_checkpoint(
    directory: Path,
    model: torch.nn.Module,
    tokenizer: Any,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    state: dict[str, Any] | None = None,
) -> Path | None:
    """Writes `directory` on rank 0 and returns it (None on the other ranks); every rank must call.

    Writes to a temporary folder, then renames it: a crash mid-save never leaves a half-written
    checkpoint where `--resume` would pick it up."""
    weights = full_model_state_dict(model)  # on CPU, rank 0 only: peak host memory = one model
    rng_per_rank = gather_objects(_rng_state())
    directory = Path(directory)
    partial = directory.with_name(directory.name + ".partial")
    if is_main_process():
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
    barrier()  # the folder exists before any rank writes its optimizer shard into it
    if optimizer is not None:
        save_sharded_optimizer(model, optimizer, partial / OPTIMIZER_DIR)
    if not is_main_process():
        barrier()
        return None
    unwrap(model).save_pretrained(partial, state_dict=weights, safe_serialization=True)
    tokenizer.save_pretrained(partial)
    payload = {
        "state": state or {},
        "optimizer": None,  # in OPTIMIZER_DIR
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "rng": rng_per_rank,  # one entry per rank
    }
    torch.save(payload, partial / STATE_FILE)
    (partial / "trainer_state.json").write_text(json.dumps(state or {}, indent=2, default=str))
    shutil.rmtree(directory, ignore_errors=True)
    partial.rename(directory)
    barrier()  # no rank moves on (and maybe resumes from it) before the folder exists
    return directory


def load_model_weights(directory: Path, model: torch.nn.Module) -> None:
    """Loads the checkpoint's Hugging Face weights into `model` (sharding them under FSDP)."""
    hf_model = unwrap(model)
    # `from_pretrained` of the model's own class resolves tied and renamed weights as
    # transformers does; under FSDP2 `type(model)` is a generated subclass, hence the MRO walk.
    hf_class = next(c for c in type(hf_model).__mro__ if hasattr(c, "from_pretrained"))
    dtype = next(hf_model.parameters()).dtype
    loaded = hf_class.from_pretrained(directory, dtype=dtype)
    load_full_model_state_dict(model, loaded.state_dict())


def load_trainer_state(
    directory: Path, *, model: torch.nn.Module | None = None, optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
) -> dict[str, Any]:
    """Restores optimizer, scheduler and RNG states; returns the saved trainer state.

    The sharded optimizer state is matched to parameters by name (`model` is then needed). A
    rank that did not exist when the checkpoint was written keeps its fresh RNG state: the run
    continues exactly in its data and weights, but its sampling is not the one it would have
    been."""
    payload = torch.load(Path(directory) / STATE_FILE, map_location="cpu", weights_only=False)
    saved_optimizer = payload["optimizer"]
    sharded = Path(directory) / OPTIMIZER_DIR
    if optimizer is not None and sharded.is_dir():
        if model is None:
            raise ReasonRLError("load_trainer_state: `model` is needed to load the sharded optimizer state")
        load_sharded_optimizer(model, optimizer, sharded)
    elif optimizer is not None and saved_optimizer is not None:
        optimizer.load_state_dict(saved_optimizer)  # an older single-process checkpoint: inline
    if scheduler is not None and payload["scheduler"] is not None:
        # A LambdaLR (what `build_optimizer` makes) gives the rate at a step from scratch; other
        # schedulers' state is the whole story and is restored as saved.
        follows_config = optimizer is not None and isinstance(scheduler, torch.optim.lr_scheduler.LambdaLR)
        configured = list(scheduler.base_lrs) if follows_config else []
        scheduler.load_state_dict(payload["scheduler"])
        if follows_config:
            assert optimizer is not None
            _follow_the_configured_schedule(scheduler, optimizer, configured)
    rng = payload["rng"]
    rng_per_rank = rng if isinstance(rng, list) else [rng]
    if rank() < len(rng_per_rank):
        _set_rng_state(rng_per_rank[rank()])
    return dict(payload["state"])


def _follow_the_configured_schedule(
    scheduler: torch.optim.lr_scheduler.LambdaLR, optimizer: torch.optim.Optimizer, base_lrs: list[float]
) -> None:
    """The checkpoint gives the schedule's position (its step); the run's config gives the
    schedule. A run resumed with more `run.steps` stretches its cosine (or a new `optim.lr`
    scales it), so the next step's learning rate is the configured schedule's at this step,
    not the rate saved at the end of the shorter one. Unchanged, it is the same number."""
    lrs: list[Any] = [base * factor(scheduler.last_epoch) for base, factor in zip(base_lrs, scheduler.lr_lambdas)]
    for group, base, lr in zip(optimizer.param_groups, base_lrs, lrs):
        group["initial_lr"], group["lr"] = base, lr
    configured: list[Any] = list(base_lrs)
    scheduler.base_lrs, scheduler._last_lr = configured, lrs


def checkpoint_step(directory: Path) -> int:
    """The step a checkpoint folder was saved at (from its `trainer_state.json`)."""
    return int(json.loads((Path(directory) / "trainer_state.json").read_text())["step"])


def latest_checkpoint(output_dir: Path) -> Path | None:
    """The checkpoint with the highest step, if any: a `checkpoint-<step>` folder, or `final`
    (a finished run's, saved with its optimizer state too, from which a longer run continues);
    `final` when both are at the same step."""
    output_dir = Path(output_dir)
    found = [p for p in output_dir.glob("checkpoint-*") if p.is_dir() and (p / STATE_FILE).exists()]
    steps = {p: int(p.name.split("-")[-1]) for p in found}
    final = output_dir / "final"
    if (final / STATE_FILE).exists() and (final / "trainer_state.json").exists():
        steps[final] = checkpoint_step(final)
    return max(steps, key=lambda p: (steps[p], p.name == "final"), default=None)


# What a run writes into its output folder (RunLogger, checkpoints, the report): what a fresh
# run there would mix with. Nothing else in the folder is looked at or touched.
_RUN_FILES = ("metrics.jsonl", "completions.jsonl", "config.yaml", "report.md", "plots", "tensorboard", "final")


def earlier_run_files(output_dir: Path) -> list[Path]:
    """The files an earlier run left in `output_dir` (its logs, checkpoints, report)."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    found = [output_dir / name for name in _RUN_FILES if (output_dir / name).exists()]
    found += sorted(p for p in output_dir.glob("checkpoint-*") if p.is_dir())
    return found


def check_no_earlier_run(output_dir: Path) -> None:
    """Refuses an `output_dir` an earlier run wrote, for a run that does not resume (see
    `start_fresh`)."""
    leftovers = earlier_run_files(output_dir)
    if leftovers:
        names = ", ".join(p.name for p in leftovers[:5]) + (", …" if len(leftovers) > 5 else "")
        raise ConfigError(
            f"run.output_dir: {output_dir} holds an earlier run ({names}): continue it with --resume, choose "
            "another run.output_dir, or set run.overwrite: true to delete those files first"
        )


def start_fresh(output_dir: Path, *, overwrite: bool) -> None:
    """Readies `output_dir` for a run that does not resume: a run there before would have its
    metrics appended to, its checkpoints picked up by a later --resume and its curves drawn
    over. So an earlier run's files stop the run (`overwrite` false) or are deleted first
    (rank 0; every rank must call)."""
    if not overwrite:
        check_no_earlier_run(output_dir)  # every rank sees the same folder: all stop, or none
    elif is_main_process():
        for path in earlier_run_files(output_dir):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    # No rank writes into the folder (rank 0's logger does at once) before every rank has
    # looked at it, and before it is clean.
    barrier()


def resume_or_start_fresh(trainer: Any, *, resume: bool, overwrite: bool) -> None:
    """The start of a trainer's `train`: with `resume`, `trainer.resume()` from the latest
    checkpoint in `trainer.output_dir` (saying where, or that there was none: then what a run
    that saved nothing logged is dropped, it is logged again from step 0); without, a clean
    output folder (`start_fresh`)."""
    if not resume:
        start_fresh(trainer.output_dir, overwrite=overwrite)
        return
    resumed = trainer.resume()
    if not resumed:
        drop_logged_after(trainer.output_dir, 0)
    if is_main_process():
        print(f"resumed at step {trainer.step} in {trainer.output_dir}" if resumed
              else f"--resume: no checkpoint in {trainer.output_dir}; starting from step 0")


def drop_logged_after(output_dir: Path, step: int) -> None:
    """Removes from the run's `metrics.jsonl` and `completions.jsonl` the records of steps after
    `step`: a run resumed from that step logs them again. Rank 0 only."""
    if not is_main_process():
        return
    for name in ("metrics.jsonl", "completions.jsonl"):
        path = Path(output_dir) / name
        if not path.exists():
            continue
        kept = [line for line in path.read_text(encoding="utf-8").splitlines(keepends=True)
                if not line.strip() or json.loads(line).get("step", 0) <= step]
        partial = path.with_name(path.name + ".partial")
        partial.write_text("".join(kept), encoding="utf-8")
        partial.replace(path)


@contextmanager
def stop_after_the_step_on_interrupt() -> Iterator[Callable[[], bool]]:
    """Ctrl-C lets the step in flight finish; the training loop then saves a checkpoint of it
    and stops (`save_then_stop`), so that --resume continues exactly as if the run had not
    stopped: a step cut in the middle would leave its weights half-updated and its data
    consumed. A second Ctrl-C stops at once, without saving. Yields a function: whether Ctrl-C
    was pressed.

    Not under torchrun (nor off the main thread): a save is a collective, and ranks interrupted
    at different steps would wait on each other forever (set run.save_every there)."""
    pressed = [False]
    if world_size() > 1 or threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return

    def on_ctrl_c(signum: int, frame: Any) -> None:
        if pressed[0]:
            raise KeyboardInterrupt
        pressed[0] = True
        print("\ninterrupted: finishing this step, then saving a checkpoint (Ctrl-C again to stop now)",
              file=sys.stderr)

    previous = signal.signal(signal.SIGINT, on_ctrl_c)
    try:
        yield lambda: pressed[0]
    finally:
        signal.signal(signal.SIGINT, previous)


def save_then_stop(saved: Path | None, save: Callable[[], Path | None]) -> NoReturn:
    """After Ctrl-C: `save()`s this step's checkpoint unless it was just `saved`, with Ctrl-C
    ignored meanwhile (a half-written checkpoint helps nobody), says where, and stops the run
    (KeyboardInterrupt)."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        saved = saved or save()
    finally:
        signal.signal(signal.SIGINT, previous)
    if saved is not None:
        print(f"\ninterrupted: saved {saved} (continue with --resume)", file=sys.stderr)
    raise KeyboardInterrupt
