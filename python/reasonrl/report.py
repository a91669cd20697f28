"""The run report: PNG plots of the training curves and a short markdown summary.

``write_report(run_dir, title=...)`` reads ``run_dir/metrics.jsonl`` (one JSON object per logged
step: ``{"step": 12, "stage": "grpo", "reward/total": 0.8, "kl": 0.01, ...}``), draws one figure
per quantity into ``run_dir/plots/`` and writes ``run_dir/report.md`` around them. Stages of a
pipeline (SFT → GRPO → length penalty) are laid end to end on the x-axis, a dashed line and the
stage name at each boundary, so one picture tells the whole run. A quantity never logged is
simply not drawn.

Drawing uses matplotlib's Agg canvas directly (no pyplot), so it needs no display and does not
touch the process-wide backend of a notebook the trainer runs in.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reasonrl.data.loading import read_jsonl
from reasonrl.errors import InvalidInputError

__all__ = ["PLOTS", "PlotSpec", "read_metrics", "write_report"]

# Series with at least this many points in a stage also get a moving average drawn over them.
SMOOTH_MIN_POINTS = 20


@dataclass(frozen=True)
class PlotSpec:
    """One figure: the metric keys it shows, chosen by ``selects``."""

    name: str
    title: str
    ylabel: str
    selects: Callable[[str], bool]


PLOTS: tuple[PlotSpec, ...] = (
    PlotSpec("loss", "Training loss", "loss", lambda key: key == "loss"),
    PlotSpec("reward", "Reward", "reward", lambda key: key.startswith("reward/")),
    PlotSpec(
        "accuracy",
        "Accuracy",
        "accuracy",
        lambda key: key in ("accuracy", "eval/accuracy") or key.startswith(("eval/pass@", "eval/maj@")),
    ),
    PlotSpec(
        "response_length",
        "Response length",
        "tokens",
        lambda key: key.startswith("response_length/") or key == "eval/mean_tokens",
    ),
    PlotSpec("kl", "KL divergence to the reference model", "KL", lambda key: key == "kl"),
    PlotSpec("entropy", "Policy entropy", "nats per token", lambda key: key == "entropy"),
)


@dataclass(frozen=True)
class _Stage:
    name: str
    first_step: int
    last_step: int
    x_start: int  # where the stage begins on the shared x-axis


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The records of a metrics JSONL file, in file order (blank lines skipped).

    Raises:
        InvalidInputError: a line that is not a JSON object, or that has no integer ``step``;
            the message gives the line number.
    """
    records = []
    for line_number, record in read_jsonl(Path(path), what="metrics file"):
        step = record.get("step")
        if isinstance(step, bool) or not isinstance(step, int):
            raise InvalidInputError(
                f"invalid metrics file {path}: line {line_number} has no integer 'step' (got {step!r})"
            )
        records.append(record)
    return records


def write_report(run_dir: Path, *, title: str, summary: Mapping[str, Any] | None = None) -> Path:
    """Writes ``run_dir/plots/*.png`` and ``run_dir/report.md``; returns the markdown's path.

    Args:
        run_dir: the run's folder, holding ``metrics.jsonl``.
        title: the report's heading.
        summary: the figures to tabulate: ``{stage: {metric: value}}`` (one column per stage,
            e.g. ``{"sft": {"eval/pass@1": 0.31, "eval/mean_tokens": 212}, "grpo": {...}}``) or a
            flat ``{metric: value}``. Default: the last logged value of every plotted metric in
            each stage.

    Raises:
        InvalidInputError: ``run_dir`` has no ``metrics.jsonl``, or a line of it is malformed
            (the message gives the line number).
    """
    run_dir = Path(run_dir)
    metrics_path = run_dir / "metrics.jsonl"
    if not metrics_path.is_file():
        raise InvalidInputError(f"invalid `run_dir`: {metrics_path} not found")
    records = read_metrics(metrics_path)
    stages = _stages(records)

    plots_dir = run_dir / "plots"
    plots_dir.mkdir(parents=True, exist_ok=True)
    drawn: list[tuple[PlotSpec, Path]] = []
    for spec in PLOTS:
        target = plots_dir / f"{spec.name}.png"
        keys = _keys(records, spec.selects)
        if keys:
            _draw(spec, keys, records, stages, target)
            drawn.append((spec, target))
        elif target.exists():  # left over from an earlier report of this run
            target.unlink()

    if summary is None:
        summary = _last_values(records, stages)
    lines = [f"# {title}", ""]
    if stages:
        spans = ", ".join(f"{s.name or 'run'} (steps {s.first_step}–{s.last_step})" for s in stages)
        # A step's evaluation may be logged on a line of its own: steps, not lines, are counted.
        steps = len({(str(r.get("stage", "")), r["step"]) for r in records})
        lines += [f"{steps} logged steps in {len(stages)} stage(s): {spans}.", ""]
    else:
        lines += ["No metrics were logged.", ""]
    table = _summary_table(summary)
    if table:
        lines += ["## Results", "", *table, ""]
    if drawn:
        lines += ["## Training curves", ""]
        for spec, target in drawn:
            relative = target.relative_to(run_dir).as_posix()
            lines += [f"### {spec.title}", "", f"![{spec.title}]({relative})", ""]
    report = run_dir / "report.md"
    report.write_text("\n".join(lines), encoding="utf-8")
    return report


def _stages(records: Sequence[Mapping[str, Any]]) -> list[_Stage]:
    """Stages in order of first appearance, laid end to end on the x-axis.

    Each stage covers its own step range, whether steps restart per stage or keep counting;
    the first stage keeps its step numbers.
    """
    ranges: dict[str, list[int]] = {}
    for record in records:
        step = record["step"]
        span = ranges.setdefault(str(record.get("stage", "")), [step, step])
        span[0], span[1] = min(span[0], step), max(span[1], step)
    stages = []
    cursor = next(iter(ranges.values()))[0] if ranges else 0
    for name, (first, last) in ranges.items():
        stages.append(_Stage(name, first, last, cursor))
        cursor += last - first + 1
    return stages


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _keys(records: Sequence[Mapping[str, Any]], selects: Callable[[str], bool]) -> list[str]:
    """Keys with at least one finite number that the figure selects, in first-logged order."""
    keys: dict[str, None] = {}
    for record in records:
        for key, value in record.items():
            if key not in keys and selects(key) and _is_number(value):
                keys[key] = None
    return list(keys)


def _series(
    records: Sequence[Mapping[str, Any]], stages: Sequence[_Stage], key: str
) -> list[tuple[list[float], list[float]]]:
    """The (x, y) points of ``key``, one list pair per stage, sorted by x."""
    by_name = {s.name: s for s in stages}
    points: dict[str, list[tuple[float, float]]] = {s.name: [] for s in stages}
    for record in records:
        value = record.get(key)
        if isinstance(value, (int, float)) and _is_number(value):
            stage = by_name[str(record.get("stage", ""))]
            points[stage.name].append((stage.x_start + record["step"] - stage.first_step, float(value)))
    out = []
    for stage in stages:
        pairs = sorted(points[stage.name])
        if pairs:
            out.append(([x for x, _ in pairs], [y for _, y in pairs]))
    return out


def _moving_average(values: Sequence[float]) -> list[float]:
    """A centred moving average (no lag), the window shrinking at the ends."""
    import numpy as np

    window = max(3, len(values) // 10) | 1  # odd, so it centres on a point
    kernel = np.ones(window)
    sums = np.convolve(np.asarray(values, dtype=float), kernel, mode="same")
    counts = np.convolve(np.ones(len(values)), kernel, mode="same")
    smoothed: list[float] = (sums / counts).tolist()
    return smoothed


def _draw(
    spec: PlotSpec,
    keys: Sequence[str],
    records: Sequence[Mapping[str, Any]],
    stages: Sequence[_Stage],
    target: Path,
) -> None:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("the run report's plots need matplotlib: `pip install matplotlib`") from None

    figure = Figure(figsize=(7.5, 3.8), dpi=110)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    colors = [f"C{i % 10}" for i in range(len(keys))]
    for key, color in zip(keys, colors):
        sparse = key.startswith("eval/")  # evaluated every few steps: draw the points
        for segment, (xs, ys) in enumerate(_series(records, stages, key)):
            label = key if segment == 0 else None
            if sparse:
                axes.plot(xs, ys, color=color, marker="o", markersize=4, linewidth=1.2, label=label)
            elif len(ys) >= SMOOTH_MIN_POINTS:
                axes.plot(xs, ys, color=color, linewidth=0.8, alpha=0.3)
                axes.plot(xs, _moving_average(ys), color=color, linewidth=1.6, label=label)
            else:
                axes.plot(xs, ys, color=color, linewidth=1.4, label=label)
    # Every figure spans the whole run, so the stages line up from one figure to the next
    # even where a quantity is logged in some stages only.
    end = stages[-1].x_start + stages[-1].last_step - stages[-1].first_step
    axes.set_xlim(stages[0].x_start - 0.5, end + 0.5)
    named = len(stages) > 1 or bool(stages[0].name)
    for index, stage in enumerate(stages):
        if index > 0:
            axes.axvline(stage.x_start - 0.5, color="0.45", linestyle="--", linewidth=1.0)
        if named:  # above the frame, clear of the curves and the legend
            axes.text(
                stage.x_start - 0.5, 1.01, f" {stage.name or 'run'}",
                transform=axes.get_xaxis_transform(), va="bottom", ha="left", fontsize=8, color="0.3",
            )
    axes.set_title(spec.title, pad=16 if named else 6)
    axes.set_xlabel("step" if len(stages) <= 1 else "step (stages end to end)")
    axes.set_ylabel(spec.ylabel)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="best")
    figure.tight_layout()
    figure.savefig(target, format="png")


def _last_values(records: Sequence[Mapping[str, Any]], stages: Sequence[_Stage]) -> dict[str, dict[str, Any]]:
    """Per stage, the last logged value of every plotted metric (the default summary)."""
    plotted = [key for spec in PLOTS for key in _keys(records, spec.selects)]
    last: dict[str, dict[str, Any]] = {s.name: {} for s in stages}
    for record in records:
        row = last[str(record.get("stage", ""))]
        for key in plotted:
            if _is_number(record.get(key)):
                row[key] = record[key]
    return {
        s.name or "run": {
            "steps": s.last_step - s.first_step + 1,
            **{key: last[s.name].get(key) for key in plotted},
        }
        for s in stages
    }


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _summary_table(summary: Mapping[str, Any]) -> list[str]:
    """Markdown table lines: metrics down, stages across (or metric | value for a flat summary)."""
    if not summary:
        return []
    if all(isinstance(v, Mapping) for v in summary.values()):
        stages = list(summary)
        metrics = list(dict.fromkeys(key for stage in stages for key in summary[stage]))
        lines = ["| metric | " + " | ".join(_cell(s) for s in stages) + " |",
                 "| --- |" + " ---: |" * len(stages)]
        for metric in metrics:
            cells = [_cell(summary[stage].get(metric)) for stage in stages]
            lines.append(f"| {_cell(metric)} | " + " | ".join(cells) + " |")
        return lines
    lines = ["| metric | value |", "| --- | ---: |"]
    lines += [f"| {_cell(key)} | {_cell(value)} |" for key, value in summary.items()]
    return lines
