"""write_report on a synthetic two-stage run: plots, markdown, and a malformed metrics file."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from reasonrl import InvalidInputError
from reasonrl.report import read_metrics, write_report

pytest.importorskip("matplotlib", reason="matplotlib is not installed: the report cannot draw its plots")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def write_metrics(run_dir: Path) -> None:
    """An SFT stage (loss and sparse evals only), then 40 GRPO steps logging everything."""
    lines = []
    for step in range(1, 11):
        record = {"step": step, "stage": "sft", "loss": 2.0 / step}
        if step % 5 == 0:
            record |= {"eval/pass@1": 0.1 + 0.01 * step, "eval/mean_tokens": 300 - step}
        lines.append(record)
    for step in range(1, 41):
        record = {
            "step": step,
            "stage": "grpo",
            "reward/total": 0.5 + step / 40 + 0.1 * math.sin(step),
            "reward/accuracy": step / 50,
            "reward/format": 1.0,
            "accuracy": step / 50,
            "response_length/mean": 250 - step,
            "kl": 0.002 * step,
            "entropy": 1.2 - step / 100,
            "grad_norm": float("nan"),
        }
        lines.append(record)
        if step % 10 == 0:  # the trainer logs an evaluation on a line of its own, at the same step
            lines.append({"step": step, "stage": "grpo", "eval/pass@1": 0.3 + step / 200, "eval/mean_tokens": 260 - step})
    (run_dir / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in lines) + "\n", encoding="utf-8")


def test_report_writes_plots_and_markdown(tmp_path: Path) -> None:
    write_metrics(tmp_path)
    summary = {
        "sft": {"eval/pass@1": 0.2, "eval/mean_tokens": 290.0, "time_s": 12},
        "grpo": {"eval/pass@1": 0.5, "eval/mean_tokens": 220.5, "time_s": 95},
    }
    report = write_report(tmp_path, title="Tiny R1-Zero run", summary=summary)
    assert report == tmp_path / "report.md"

    names = {"loss", "reward", "accuracy", "response_length", "kl", "entropy"}
    assert {p.stem for p in (tmp_path / "plots").glob("*.png")} == names
    for name in names:
        data = (tmp_path / "plots" / f"{name}.png").read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 10_000

    text = report.read_text(encoding="utf-8")
    assert text.startswith("# Tiny R1-Zero run\n")
    assert "50 logged steps in 2 stage(s): sft (steps 1–10), grpo (steps 1–40)." in text
    assert "| metric | sft | grpo |" in text
    assert "| eval/pass@1 | 0.2 | 0.5 |" in text and "| time_s | 12 | 95 |" in text
    links = re.findall(r"!\[[^\]]+\]\(([^)]+)\)", text)
    assert sorted(links) == sorted(f"plots/{name}.png" for name in names)
    assert all((tmp_path / link).is_file() for link in links)


def test_default_summary_and_missing_quantities(tmp_path: Path) -> None:
    records = [{"step": s, "stage": "grpo", "reward/total": s / 10, "kl": 0.1} for s in range(5)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "entropy.png").write_bytes(PNG_SIGNATURE)  # from an earlier report
    text = write_report(tmp_path, title="t").read_text()
    assert {p.name for p in (tmp_path / "plots").iterdir()} == {"reward.png", "kl.png"}
    assert "| steps | 5 |" in text and "| reward/total | 0.4 |" in text
    assert "entropy" not in text and "accuracy" not in text


def test_flat_summary_and_empty_metrics(tmp_path: Path) -> None:
    (tmp_path / "metrics.jsonl").write_text("\n")
    text = write_report(tmp_path, title="empty", summary={"pass@1": 0.25, "note": "a|b"}).read_text()
    assert "No metrics were logged." in text
    assert "| pass@1 | 0.25 |" in text and "| note | a\\|b |" in text
    assert "Training curves" not in text


def test_malformed_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "stage": "sft", "loss": 1.0}\n\n{"step": 3, "loss": \n')
    with pytest.raises(InvalidInputError, match="line 3 is not valid JSON"):
        write_report(tmp_path, title="t")
    path.write_text('{"step": 1}\n{"stage": "sft"}\n')
    with pytest.raises(InvalidInputError, match="line 2 has no integer 'step'"):
        read_metrics(path)
    path.write_text('[1, 2]\n')
    with pytest.raises(InvalidInputError, match="line 1 is a JSON list"):
        read_metrics(path)


def test_missing_metrics_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="metrics.jsonl not found"):
        write_report(tmp_path, title="t")
