"""Run the Triton kernels on CPU through the Triton interpreter when there is no GPU.

``triton.jit`` picks compile or interpret when a kernel is defined, so TRITON_INTERPRET must be set
before ``reasonrl.kernels`` is first imported; pytest loads this file before the test modules here.
"""

from __future__ import annotations

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def triton_usable() -> bool:
    """Whether backend="triton" can run here (a GPU, or kernels defined under the interpreter)."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    from reasonrl.kernels import _backend

    return torch.cuda.is_available() or _backend.INTERPRET


requires_triton = pytest.mark.skipif(
    not triton_usable(),
    reason="triton missing, or reasonrl.kernels was imported before TRITON_INTERPRET=1 was set",
)


@pytest.fixture
def device() -> str:
    return DEVICE
