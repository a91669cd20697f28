"""Where a run's numbers go: `metrics.jsonl` (always), TensorBoard and wandb (optional), sample
completions to `completions.jsonl`, and a live progress bar; the stage's resolved config to
`config.yaml`. Only rank 0 writes."""

from __future__ import annotations

import json
import math
import time
import warnings
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from reasonrl.trainer.distributed import is_main_process


def logged_at(output_dir: str | Path, step: int) -> list[dict[str, Any]]:
    """The records `metrics.jsonl` in `output_dir` holds for `step` (none if it does not exist)."""
    path = Path(output_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    records = (json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    return [record for record in records if record.get("step") == step]


class RunLogger:
    def __init__(
        self,
        output_dir: str | Path,
        *,
        stage: str,
        total_steps: int,
        tensorboard: bool = True,
        wandb_project: str | None = None,
        progress_bar: bool = True,
        config: dict[str, Any] | None = None,
    ) -> None:
        self.output_dir = Path(output_dir)
        self.stage = stage
        self.enabled = is_main_process()
        self._tensorboard = None
        self._wandb = None
        self._progress = None
        self._task = None
        if not self.enabled:
            return
        self.output_dir.mkdir(parents=True, exist_ok=True)
        if config is not None:
            # The config the run trains with, every default filled in (`load_config` reads it
            # back). A resumed run rewrites it: the latest run's settings are the ones in force.
            (self.output_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        self._metrics = (self.output_dir / "metrics.jsonl").open("a", encoding="utf-8")
        self._completions = (self.output_dir / "completions.jsonl").open("a", encoding="utf-8")
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tensorboard = SummaryWriter(str(self.output_dir / "tensorboard"))
            except ImportError:
                warnings.warn("TensorBoard logging is off: `pip install tensorboard` to enable it", stacklevel=2)
        if wandb_project:
            import wandb  # an explicit request: fail loudly if it is missing

            self._wandb = wandb.init(project=wandb_project, config=config or {}, dir=str(self.output_dir))
        if progress_bar:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(
                TextColumn(f"[bold]{stage}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                TextColumn("{task.fields[live]}"),
            )
            self._progress.start()
            self._task = self._progress.add_task(stage, total=total_steps, live="")

    def log(self, step: int, metrics: dict[str, float]) -> None:
        if not self.enabled:
            return
        record = {"step": step, "stage": self.stage, "time": time.time(), **metrics}
        self._metrics.write(json.dumps(record, allow_nan=True) + "\n")
        self._metrics.flush()
        for key, value in metrics.items():
            if self._tensorboard is not None and isinstance(value, (int, float)) and math.isfinite(value):
                self._tensorboard.add_scalar(f"{self.stage}/{key}", value, step)
        if self._wandb is not None:
            self._wandb.log({f"{self.stage}/{k}": v for k, v in metrics.items()}, step=step)
        if self._progress is not None and self._task is not None:
            live = "  ".join(
                f"{name} {metrics[key]:.3g}" for name, key in (
                    ("reward", "reward/total"), ("acc", "accuracy"), ("len", "response_length/mean"),
                    ("loss", "loss"), ("eval", "eval/pass@1"),
                ) if key in metrics
            )
            self._progress.update(self._task, completed=step, live=live)

    def log_completions(self, step: int, rows: list[dict[str, Any]]) -> None:
        if not self.enabled:
            return
        for row in rows:
            self._completions.write(json.dumps({"step": step, "stage": self.stage, **row}, ensure_ascii=False) + "\n")
        self._completions.flush()

    def close(self) -> None:
        if not self.enabled:
            return
        if self._progress is not None:
            self._progress.stop()
        if self._tensorboard is not None:
            self._tensorboard.close()
        if self._wandb is not None:
            self._wandb.finish()
        self._metrics.close()
        self._completions.close()

    def __enter__(self) -> RunLogger:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
