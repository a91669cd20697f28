"""GRPO loss from hidden states: plain torch vs reasonrl's fused path vs Liger-Kernel, side by side.

    python benches/bench_kernels.py --device cuda               # H100/H200: bf16, up to V = 151 936
    python benches/bench_kernels.py --device cpu                # small CPU preset (fp32)
    python benches/bench_kernels.py --device cuda --markdown    # table ready for RESULTS.md

Paths (all compute the same `grpo` loss with beta = 0.04 from hidden [B, T, H] and W [V, H]):
  torch          logits = hidden @ W.T -> log_softmax (fp32) -> gather -> loss      (the baseline)
  rr-logprobs    logits = hidden @ W.T -> reasonrl.token_logprobs -> grpo_loss    (logits kept)
  rr-fused       reasonrl.linear_grpo_loss: chunked, [N, V] logits never held at once
  liger          liger_kernel LigerFusedLinearGRPOLoss, when installed

Modes: `fwd` is the forward with gradients enabled; `full` is forward + backward; `bwd` is
full - fwd (the fused paths compute their gradients during the forward, so their `bwd` is ~0 and
their `fwd` carries the whole cost: compare `full`). Time: median and p20/p80, from
triton.testing.do_bench on CUDA and a simple wall-clock loop on CPU. Peak memory: the increase of
torch.cuda.max_memory_allocated over the inputs on CUDA; on CPU, the increase of the process's peak
RSS (Linux VmHWM), in a fresh subprocess per (path, mode): the CPU allocator keeps no statistics.
Only the peak memory is comparable across runs on a shared CPU; timings there are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from reasonrl.kernels import grpo_loss, linear_grpo_loss, linear_token_logprobs, token_logprobs

BETA, EPS = 0.04, 0.2
LossFn = Callable[[dict], torch.Tensor]


@dataclass(frozen=True)
class Shape:
    B: int
    T: int
    H: int
    V: int

    def __str__(self) -> str:
        return f"B={self.B} T={self.T} H={self.H} V={self.V}"


PRESETS = {
    "cuda": [Shape(8, 1024, 1536, 151936), Shape(16, 2048, 1536, 151936)],
    "cpu": [Shape(8, 512, 256, 32000), Shape(1, 1024, 128, 151936)],
}


def make_inputs(shape: Shape, dtype: torch.dtype, device: str, seed: int = 0) -> dict:
    generator = torch.Generator(device=device).manual_seed(seed)
    B, T, H, V = shape.B, shape.T, shape.H, shape.V
    hidden = torch.randn(B, T, H, generator=generator, device=device, dtype=dtype)
    weight = torch.randn(V, H, generator=generator, device=device, dtype=dtype) / H**0.5
    targets = torch.randint(0, V, (B, T), generator=generator, device=device)
    # old and reference policies close to the current one, as in training (some tokens clip)
    logp = linear_token_logprobs(hidden, weight, targets)
    old = logp + 0.1 * torch.randn(B, T, generator=generator, device=device)
    ref = logp + 0.1 * torch.randn(B, T, generator=generator, device=device)
    advantages = torch.randn(B, generator=generator, device=device)
    lengths = torch.randint(T // 2, T + 1, (B,), generator=generator, device=device)
    mask = torch.arange(T, device=device)[None, :] < lengths[:, None]
    return {"hidden": hidden.requires_grad_(), "weight": weight.requires_grad_(), "targets": targets,
            "old": old, "ref": ref, "advantages": advantages, "mask": mask}


def torch_path(x: dict) -> torch.Tensor:
    logits = x["hidden"] @ x["weight"].T  # [B, T, V]
    logp = torch.log_softmax(logits.float(), dim=-1).gather(-1, x["targets"].unsqueeze(-1)).squeeze(-1)
    ratio = torch.exp(logp - x["old"])
    adv = x["advantages"][:, None]
    per_token = -torch.minimum(ratio * adv, ratio.clamp(1 - EPS, 1 + EPS) * adv)
    delta = x["ref"] - logp
    per_token = per_token + BETA * (delta.exp() - delta - 1)
    mask = x["mask"].float()
    return ((per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1)).mean()


def logprobs_path(x: dict) -> torch.Tensor:
    logits = x["hidden"] @ x["weight"].T  # [B, T, V]
    logp = token_logprobs(logits, x["targets"])
    loss, _ = grpo_loss(logp, x["old"], x["ref"], x["advantages"], x["mask"], beta=BETA)
    return loss


def fused_path(x: dict) -> torch.Tensor:
    loss, _ = linear_grpo_loss(x["hidden"], x["weight"], x["targets"], x["old"], x["ref"],
                               x["advantages"], x["mask"], beta=BETA)
    return loss


def liger_path_factory(device: str):
    try:
        from liger_kernel.chunked_loss import LigerFusedLinearGRPOLoss
    except ImportError:
        return None
    module = LigerFusedLinearGRPOLoss(beta=BETA, epsilon_low=EPS, epsilon_high=EPS, loss_type="grpo",
                                      compiled=device == "cuda", use_ref_model=True)

    def liger_path(x: dict) -> torch.Tensor:
        out = module(x["hidden"], x["weight"], x["targets"], x["mask"].long(), x["advantages"],
                     ref_per_token_logps=x["ref"], old_per_token_logps=x["old"])
        return out[0] if isinstance(out, tuple) else out

    return liger_path


def paths(device: str) -> dict:
    found = {"torch": torch_path, "rr-logprobs": logprobs_path, "rr-fused": fused_path}
    liger = liger_path_factory(device)
    if liger is not None:
        found["liger"] = liger
    return found


def run_mode(fn, x: dict, mode: str) -> None:
    x["hidden"].grad = x["weight"].grad = None
    loss = fn(x)
    if mode == "full":
        loss.backward()


def time_ms(fn, x: dict, mode: str, device: str, reps: int) -> tuple[float, float, float]:
    if device == "cuda":
        import triton.testing

        median, p20, p80 = triton.testing.do_bench(
            lambda: run_mode(fn, x, mode), quantiles=[0.5, 0.2, 0.8], grad_to_none=[x["hidden"], x["weight"]]
        )
        return median, p20, p80
    run_mode(fn, x, mode)  # warm-up
    samples = []
    for _ in range(reps):
        start = time.perf_counter()
        run_mode(fn, x, mode)
        samples.append(1e3 * (time.perf_counter() - start))
    q = statistics.quantiles(samples, n=10, method="inclusive") if len(samples) > 1 else samples * 9
    return statistics.median(samples), q[1], q[7]


def peak_mib_cuda(fn, x: dict, mode: str) -> float:
    run_mode(fn, x, mode)
    x["hidden"].grad = x["weight"].grad = None
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    run_mode(fn, x, mode)
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**20


# A fixed mmap threshold: every large buffer is mapped and unmapped, so RSS follows live memory
# (glibc's default threshold grows, then keeps freed chunks in the heap, hiding later allocations).
MEASURE_ENV = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}


def peak_mib_cpu_subprocess(path: str, mode: str, shape: Shape, dtype: str) -> float:
    """Peak RSS increase of one call, in a fresh process that first warms up on a tiny shape."""
    command = [sys.executable, __file__, "--measure-cpu-memory", json.dumps(
        {"path": path, "mode": mode, "shape": asdict(shape), "dtype": dtype})]
    out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=1800, env=MEASURE_ENV)
    return float(out.stdout.split()[-1])


def _status_bytes(key: str) -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith(key))


def measure_cpu_memory(spec: dict) -> None:
    """Print the peak RSS increase of one call (VmHWM, reset first: ru_maxrss would carry the
    parent's peak across exec)."""
    torch.set_num_threads(1)
    dtype = getattr(torch, spec["dtype"])
    fn = paths("cpu")[spec["path"]]
    run_mode(fn, make_inputs(Shape(2, 8, 16, 100), dtype, "cpu"), spec["mode"])
    x = make_inputs(Shape(**spec["shape"]), dtype, "cpu")
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")  # reset VmHWM to the current RSS
    before = _status_bytes("VmRSS:")
    run_mode(fn, x, spec["mode"])
    print((_status_bytes("VmHWM:") - before) / 2**20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=["bfloat16", "float16", "float32"], default=None,
                        help="default: bfloat16 on cuda, float32 on cpu")
    parser.add_argument("--reps", type=int, default=3, help="timed repetitions on CPU")
    parser.add_argument("--paths", default=None, help="comma-separated subset of the paths")
    parser.add_argument("--shape", default=None, help="B,T,H,V instead of the preset")
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    parser.add_argument("--measure-cpu-memory", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure_cpu_memory:
        measure_cpu_memory(json.loads(args.measure_cpu_memory))
        return

    device = args.device
    if device == "cuda" and not torch.cuda.is_available():
        sys.exit("bench_kernels: --device cuda, but torch sees no CUDA GPU here (use --device cpu)")
    dtype_name = args.dtype or ("bfloat16" if device == "cuda" else "float32")
    dtype = getattr(torch, dtype_name)
    if device == "cpu":
        torch.set_num_threads(1)
    shapes = [Shape(*map(int, args.shape.split(",")))] if args.shape else PRESETS[device]
    available = paths(device)
    chosen = args.paths.split(",") if args.paths else list(available)
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU (1 thread)"
    print(f"# device: {name}; dtype {dtype_name}; torch {torch.__version__}")

    rows = []
    for shape in shapes:
        x = make_inputs(shape, dtype, device)
        with torch.no_grad():
            reference = torch_path(x).item()
        for path in chosen:
            rows += measure_path(path, available[path], x, shape, device, dtype_name, args.reps, reference)
        del x
        if device == "cuda":
            torch.cuda.empty_cache()
    print_table(rows, args.markdown)


@dataclass
class Row:
    shape: str
    path: str
    mode: str  # fwd, bwd, full, or OOM
    times: tuple[float, float | None, float | None] | None = None  # median, p20, p80 (ms)
    peak_mib: float | None = None
    loss_diff: float | None = None


def measure_path(
    path: str, fn: LossFn, x: dict, shape: Shape, device: str, dtype_name: str, reps: int, reference: float
) -> list[Row]:
    try:
        loss = fn(x).item()
        timings = {mode: time_ms(fn, x, mode, device, reps) for mode in ("fwd", "full")}
        memory = {
            mode: peak_mib_cuda(fn, x, mode) if device == "cuda"
            else peak_mib_cpu_subprocess(path, mode, shape, dtype_name)
            for mode in ("fwd", "full")
        }
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        return [Row(str(shape), path, "OOM")]
    finally:
        x["hidden"].grad = x["weight"].grad = None
    fwd, full = timings["fwd"], timings["full"]
    bwd = (full[0] - fwd[0], None, None)  # derived: the fused paths cannot run backward alone
    diff = abs(loss - reference)
    return [Row(str(shape), path, "fwd", fwd, memory["fwd"], diff),
            Row(str(shape), path, "bwd", bwd, None, diff),
            Row(str(shape), path, "full", full, memory["full"], diff)]


def print_table(rows: list[Row], markdown: bool) -> None:
    baseline = {(r.shape, r.mode): r for r in rows if r.path == "torch"}
    header = ["shape", "path", "mode", "median ms", "p20 ms", "p80 ms", "peak MiB", "time / torch",
              "mem / torch", "loss diff"]

    def number(value: float | None) -> str:
        return "" if value is None else f"{value:.1f}"

    lines = []
    for row in rows:
        if row.times is None:
            lines.append([row.shape, row.path, row.mode] + [""] * 7)
            continue
        base = baseline.get((row.shape, row.mode))
        time_ratio = f"{row.times[0] / base.times[0]:.2f}" if base and base.times and base.times[0] else ""
        mem_ratio = f"{row.peak_mib / base.peak_mib:.2f}" if base and row.peak_mib is not None and base.peak_mib else ""
        lines.append([row.shape, row.path, row.mode, *map(number, row.times), number(row.peak_mib),
                      time_ratio, mem_ratio, f"{row.loss_diff:.1e}"])
    if markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for line in lines:
            print("| " + " | ".join(line) + " |")
    else:
        widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
        print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
        for line in lines:
            print("  ".join(c.ljust(w) for c, w in zip(line, widths)))

if __name__ == "__main__":
    main()
