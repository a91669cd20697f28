"""Every kernel variant compiles for an H100 (sm_90), even on a machine without a GPU.

The interpreter that runs the kernels on CPU accepts programs the compiler rejects (loop-carried
types, dtype mismatches); compiling ahead of time with Triton's bundled toolchain catches those.
It runs in a subprocess: the compiler cannot work in a process where TRITON_INTERPRET=1 is set.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

import pytest

H100 = ("cuda", 90, 32)


def variants():
    """(kernel, signature, constexprs, num_warps) for every specialisation the launchers use."""
    logprobs = importlib.import_module("reasonrl.kernels.logprobs")
    grpo = importlib.import_module("reasonrl.kernels.grpo_loss")
    for dtype in ("bf16", "fp16", "fp32"):
        for with_entropy in (False, True):
            constexprs = {"WITH_ENTROPY": with_entropy, "BLOCK_V": logprobs.MAX_BLOCK_V}
            yield logprobs._logprobs_fwd_kernel, {
                "logits_ptr": f"*{dtype}", "targets_ptr": "*i64", "logp_ptr": "*fp32",
                "entropy_ptr": "*fp32", "lse_ptr": "*fp32", "stride_logits_n": "i64", "V": "i32",
                "inv_temperature": "fp32", "WITH_ENTROPY": "constexpr", "BLOCK_V": "constexpr",
            }, constexprs, 8
            yield logprobs._logprobs_bwd_kernel, {
                "logits_ptr": f"*{dtype}", "grad_logits_ptr": f"*{dtype}", "targets_ptr": "*i64",
                "lse_ptr": "*fp32", "entropy_ptr": "*fp32", "grad_logp_ptr": "*fp32",
                "grad_entropy_ptr": "*fp32", "stride_logits_n": "i64", "stride_grad_n": "i64", "V": "i32",
                "inv_temperature": "fp32", "WITH_ENTROPY": "constexpr", "BLOCK_V": "constexpr",
            }, constexprs, 8
    for has_old, has_ref, has_entropy, dtype in (
        (True, True, True, "fp32"), (False, False, False, "bf16"), (True, False, True, "fp16")
    ):
        yield grpo._grpo_loss_fwd_kernel, {
            "logp_ptr": f"*{dtype}", "old_logp_ptr": f"*{dtype}", "ref_logp_ptr": "*fp32",
            "adv_ptr": "*fp32", "mask_ptr": "*u8", "entropy_ptr": "*fp32", "row_weight_ptr": "*fp32",
            "dlogp_ptr": "*fp32", "partials_ptr": "*fp32", "n_tokens": "i32", "token_offset": "i32",
            "T": "i32", "eps_low": "fp32", "eps_high": "fp32", "beta": "fp32", "HAS_OLD": "constexpr",
            "HAS_REF": "constexpr", "HAS_ENTROPY": "constexpr", "BLOCK": "constexpr",
        }, {"HAS_OLD": has_old, "HAS_REF": has_ref, "HAS_ENTROPY": has_entropy,
            "BLOCK": grpo.BLOCK_TOKENS}, 4


def compile_all() -> None:
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    for kernel, signature, constexprs, num_warps in variants():
        source = ASTSource(fn=kernel, signature=signature, constexprs=constexprs)
        compiled = triton.compile(source, target=GPUTarget(*H100), options={"num_warps": num_warps})
        assert compiled.asm["cubin"], kernel.__name__
        print(kernel.__name__, constexprs, "compiled")


def test_every_kernel_compiles_for_h100(tmp_path):
    triton = pytest.importorskip("triton")
    if "nvidia" not in triton.backends.backends:
        pytest.skip("triton's CUDA backend is not installed")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_CACHE_DIR"] = str(tmp_path)  # compile for real, not from an earlier cache
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    result = subprocess.run(
        [sys.executable, __file__], env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert result.stdout.count("compiled") == 15


if __name__ == "__main__":
    compile_all()
