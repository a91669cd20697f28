"""Helpers shared by the kernel tests: the error bound and the Triton skip marker."""

from __future__ import annotations

import pytest
import torch

from reasonrl.kernels import _backend

requires_triton = pytest.mark.skipif(
    not (_backend.HAS_TRITON and (torch.cuda.is_available() or _backend.INTERPRET)),
    reason="triton missing, or reasonrl.kernels was imported before TRITON_INTERPRET=1 was set",
)

FP32_EPS = torch.finfo(torch.float32).eps


def max_error(value: torch.Tensor, truth: torch.Tensor) -> float:
    return (value.detach().double() - truth.detach().double()).abs().max().item()


def assert_within_torch_error(
    name: str, ours: torch.Tensor, plain_torch: torch.Tensor, truth: torch.Tensor
) -> None:
    """flash-attention's rule: our error against the float64 truth is at most twice the error
    plain torch makes in the same input dtype, plus a few float32 roundings of the largest value
    (the floor only matters where torch happens to be exact)."""
    ours_error = max_error(ours, truth)
    torch_error = max_error(plain_torch, truth)
    floor = 8 * FP32_EPS * max(truth.detach().abs().max().item(), 1.0)
    assert ours_error <= 2 * torch_error + floor, (
        f"{name}: error {ours_error:.3g} > 2 x plain torch's {torch_error:.3g} + {floor:.3g}"
    )
