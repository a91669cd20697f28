"""Every benchmark in benches/ runs end to end at a tiny size against its peer and prints its
side-by-side table. Smoke tests: speed ratios are measured by purpose-sized runs (their figures
are in benches/RESULTS.md) and never asserted here; what is asserted is that each bench runs, and
the agreement checks the benches make between reasonrl and the peer on the same work."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCHES = REPO_ROOT / "benches"


def run_bench(name: str, *args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [sys.executable, str(BENCHES / name), *args], capture_output=True, text=True, timeout=900, cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
    )
    assert result.returncode == 0, f"{name} {' '.join(args)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    return result.stdout


def figure(pattern: str, text: str) -> float:
    match = re.search(pattern, text)
    assert match, f"no match for {pattern!r} in:\n{text}"
    return float(match.group(1))


def test_bench_advantages_times_the_rust_call_against_numpy_and_torch():
    out = run_bench("bench_advantages.py", "--sizes", "1000", "--layout", "contiguous")
    assert re.search(r"^contiguous\s+\d+\s+[\d.]+ms\s+[\d.]+ms\s+[\d.]+ms\s+[\d.]+x\s+[\d.]+x$", out, re.MULTILINE), out


def test_bench_rewards_agrees_with_math_verify():
    out = run_bench("bench_rewards.py", "--batch", "64")
    assert "python (math-verify, re)" in out and "reasonrl, 2 threads" in out
    assert figure(r"accuracy verdicts agree on ([\d.]+)% of completions", out) >= 95.0


@pytest.mark.slow
def test_bench_math_runs_both_verifiers():
    out = run_bench("bench_math.py", "--limit", "20", "--threads", "1")
    assert "math-verify parse+verify" in out and "speed-up, batch (1 thread)" in out
    agreed, timed = re.search(r"verdicts agree on (\d+)/(\d+) timed pairs", out).groups()
    assert timed == "20" and int(agreed) >= 18


def test_bench_scoring_gets_the_plain_forwards_gradient():
    out = run_bench(
        "bench_scoring.py", "--prompts", "1", "--group-size", "2", "--prompt-tokens", "8", "--completion-tokens", "8",
        "--hidden", "32", "--layers", "1", "--rounds", "1",
    )
    assert "plain forward" in out and "shared prompt forward (reasonrl)" in out
    assert figure(r"largest relative gradient difference between the two: ([\d.e+-]+)", out) < 1e-5


@pytest.mark.slow
def test_bench_kernels_compares_the_fused_loss_with_liger():
    out = run_bench("bench_kernels.py", "--device", "cpu", "--reps", "1", "--shape", "2,16,32,64", "--paths", "rr-fused,liger")
    rows = [line.split() for line in out.splitlines() if line.startswith("B=2 T=16 H=32 V=64")]
    assert {(row[4], row[5]) for row in rows} >= {("rr-fused", "full"), ("liger", "full")}, out
    # The last column: each path's loss against the plain torch loss on the same inputs.
    assert all(float(row[-1]) < 1e-5 for row in rows), out


def test_bench_rollout_says_it_needs_a_gpu_and_exits_cleanly():
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is here: the real rollout benchmark is run by hand (benches/RESULTS.md)")
    assert "no CUDA GPU here" in run_bench("bench_rollout.py")


def test_bench_gpu_step_runs_both_backends_and_compares_their_loss():
    # On CPU the Triton side runs under the interpreter: a smoke run of the same code path.
    device = "cuda" if torch.cuda.is_available() else "cpu"
    out = run_bench(
        "bench_gpu_step.py", "--device", device, "--size", "tiny", "--steps", "2", "--prompts", "2", "--group-size", "4",
        "--max-new-tokens", "16", env={"TRITON_INTERPRET": "1"} if device == "cpu" else None,
    )
    for backend in ("torch", "triton"):
        assert re.search(rf"^{backend}\s+[\d.]+\s+[\d.]+\s+(\d+|n/a)\s+[\d.]+x$", out, re.MULTILINE), out
    assert figure(r"loss torch ([\d.e+-]+) vs", out) != 0.0
    assert figure(r"\(\|diff\| ([\d.e+-]+)\)", out) < 1e-5
    assert figure(r"gradient relative difference ([\d.e+-]+)", out) < 1e-4


def test_bench_gpu_step_says_what_it_needs():
    assert "TRITON_INTERPRET=1" in run_bench("bench_gpu_step.py", "--device", "cpu", env={"TRITON_INTERPRET": "0"})
    if not torch.cuda.is_available():
        assert "no CUDA GPU here" in run_bench("bench_gpu_step.py")


def test_gpu_checks_script_parses_and_refuses_a_machine_without_a_gpu(tmp_path):
    script = BENCHES / "gpu_checks.sh"
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is here: the script itself is the check, run by hand")
    result = subprocess.run(["bash", str(script), str(tmp_path / "out")], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHON": sys.executable})
    assert result.returncode == 1 and "torch sees no CUDA GPU here" in result.stderr


@pytest.mark.slow
def test_bench_trl_runs_both_trainers_and_compares_their_loss():
    # 100 SFT steps: enough for some rewards, so that the same-batch comparison has a gradient.
    out = run_bench(
        "bench_trl.py", "--steps", "2", "--rounds", "1", "--prompts", "4", "--group-size", "4", "--max-new-tokens", "40",
        "--warm-start-steps", "100",
    )
    for side in ("reasonrl", "trl", "trl-python"):
        assert re.search(rf"^{side}\s+[\d.]+\s+[\d.]+-[\d.]+\s+\d+", out, re.MULTILINE), out
    assert figure(r"(\d+)% of rows with advantage 0", out) < 100
    assert figure(r"loss ([\d.e+-]+) vs TRL", out) != 0.0
    assert figure(r"\(\|diff\| ([\d.e+-]+)\)", out) < 1e-5
    assert figure(r"gradient relative difference ([\d.e+-]+)", out) < 1e-4


@pytest.mark.slow
def test_bench_code_matches_the_subprocess_peers_verdicts(data_dir):
    # The bench itself asserts that both sides give every program the same verdict.
    out = run_bench("bench_code.py", "--rounds", "1", "--workers", "2", "--limit", "12", env={"REASONRL_DATA_DIR": str(data_dir)})
    assert re.search(r"^canonical\s+[\d.]+/s\s+[\d.]+/s\s+[\d.]+x\s+\(12 pass\)", out, re.MULTILINE), out
    assert re.search(r"^broken\s+[\d.]+/s\s+[\d.]+/s\s+[\d.]+x\s+\(0 pass\)", out, re.MULTILINE), out
