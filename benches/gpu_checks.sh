#!/usr/bin/env bash
# Every check that needs a CUDA GPU, in one run, with each part's output kept:
#
#   bash benches/gpu_checks.sh [OUT_DIR]        # default OUT_DIR: gpu-checks/
#
# 1. the kernel tests compiled for the GPU (CI runs them under the Triton interpreter);
# 2. bench_kernels.py at the GPU presets (bf16, up to V = 151 936): time and peak memory of the
#    fused loss against plain torch and Liger-Kernel;
# 3. bench_gpu_step.py: whole GRPO steps on Qwen2.5-0.5B's shape, Triton kernels against the
#    torch path, and their loss and gradient on one batch;
# 4. bench_rollout.py, when vLLM is installed.
#
# reasonrl must be importable (the wheel installed, or PYTHONPATH pointing at an installed copy)
# and torch must see a GPU. A part that fails is reported and the others still run; the exit
# status is the number of parts that failed. Each part has a time limit (PART_TIMEOUT seconds,
# default 240) so that one hung part cannot eat a short GPU lease.
set -uo pipefail
cd "$(dirname "$0")/.."

out="${1:-gpu-checks}"
mkdir -p "$out"
python="${PYTHON:-python3}"
limit="${PART_TIMEOUT:-240}"
export PYTHONUNBUFFERED=1

if ! "$python" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_checks: torch sees no CUDA GPU here; nothing to check" >&2
    exit 1
fi
if ! "$python" -c "import reasonrl" 2>/dev/null; then
    echo "gpu_checks: reasonrl is not importable: install the wheel (make wheel; pip install dist/*.whl)" >&2
    exit 1
fi
"$python" - <<'EOF' | tee "$out/environment.txt"
import platform, torch, triton, transformers, reasonrl
print(f"{torch.cuda.get_device_name()} | torch {torch.__version__} (CUDA {torch.version.cuda}) | triton {triton.__version__} "
      f"| transformers {transformers.__version__} | reasonrl {reasonrl.__version__} | Python {platform.python_version()}")
EOF

failed=0
part() {  # part NAME COMMAND...: runs COMMAND with a time limit, output to OUT/NAME.txt
    local name="$1"; shift
    echo "== $name: $*"
    local start=$SECONDS
    timeout "$limit" "$@" >"$out/$name.txt" 2>&1
    local status=$?
    tail -n 25 "$out/$name.txt"
    echo "== $name: exit $status after $((SECONDS - start)) s"
    [ "$status" -eq 0 ] || failed=$((failed + 1))
}

part kernel-tests "$python" -m pytest -q -p no:cacheprovider tests/kernels
part bench-kernels "$python" benches/bench_kernels.py --device cuda --markdown
part bench-gpu-step "$python" benches/bench_gpu_step.py
if "$python" -c "import vllm" 2>/dev/null; then
    part bench-rollout "$python" benches/bench_rollout.py --markdown
else
    echo "== bench-rollout: skipped, vLLM is not installed (pip install reasonrl[vllm])" | tee "$out/bench-rollout.txt"
fi
echo "gpu_checks: $failed part(s) failed; outputs in $out/"
exit "$failed"
