"""Which implementation runs (`backend=`), the optional triton import, and argument checks.

``backend="auto"`` runs the Triton kernels on CUDA tensors and the pure-torch reference
elsewhere. ``backend="triton"`` on CPU tensors works only under the Triton interpreter:
``TRITON_INTERPRET=1`` must be set before ``reasonrl.kernels`` is first imported, because
``triton.jit`` decides between compiling and interpreting when a kernel is defined.
"""

from __future__ import annotations

import math
import numbers
import os
from types import SimpleNamespace
from typing import Any, Literal

import torch

from reasonrl.errors import InvalidInputError

__all__ = [
    "HAS_TRITON",
    "INTERPRET",
    "Backend",
    "check_float",
    "check_same_shape",
    "check_targets",
    "resolve_backend",
    "tl",
    "triton",
]

Backend = Literal["auto", "triton", "torch"]

INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"

try:
    import triton
    import triton.language as tl

    HAS_TRITON = True
except ImportError:  # macOS, Windows: only the torch path exists
    HAS_TRITON = False

    def _identity_decorator(fn: Any = None, **_: Any) -> Any:
        return fn if fn is not None else (lambda f: f)

    # Just enough for the kernel definitions to be parsed; they are never launched.
    triton = SimpleNamespace(jit=_identity_decorator, next_power_of_2=None, cdiv=None)
    tl = SimpleNamespace(constexpr=Any)

_FLOAT_DTYPES = (torch.float32, torch.bfloat16, torch.float16, torch.float64)


def resolve_backend(backend: str, tensor: torch.Tensor) -> Literal["triton", "torch"]:
    """The implementation to run for inputs that live where ``tensor`` lives."""
    if backend not in ("auto", "triton", "torch"):
        raise InvalidInputError(
            f"invalid `backend`: expected 'auto', 'triton' or 'torch', got {backend!r}"
        )
    if backend == "torch":
        return "torch"
    if backend == "auto":
        return "triton" if HAS_TRITON and tensor.is_cuda else "torch"
    if not HAS_TRITON:
        raise InvalidInputError("invalid `backend`: 'triton' asked for, but triton is not installed")
    if not tensor.is_cuda and not INTERPRET:
        raise InvalidInputError(
            "invalid `backend`: 'triton' needs CUDA tensors, or TRITON_INTERPRET=1 set before "
            "reasonrl.kernels is imported"
        )
    return "triton"


def check_float(name: str, tensor: Any, ndim: tuple[int, ...] | None = None) -> torch.Tensor:
    """``tensor`` must be a floating-point torch tensor with one of the given ranks.

    float64 is accepted (and computed in float32 by the kernels, like the half types).
    """
    if not isinstance(tensor, torch.Tensor):
        raise InvalidInputError(f"invalid `{name}`: expected a torch.Tensor, got {type(tensor).__name__}")
    if tensor.dtype not in _FLOAT_DTYPES:
        raise InvalidInputError(
            f"invalid `{name}`: expected float32, bfloat16, float16 or float64, got {tensor.dtype}"
        )
    if ndim is not None and tensor.dim() not in ndim:
        raise InvalidInputError(
            f"invalid `{name}`: expected {' or '.join(f'{n}-D' for n in ndim)}, "
            f"got shape {tuple(tensor.shape)}"
        )
    return tensor


def check_temperature(temperature: Any) -> None:
    """The sampling temperature: a finite real number > 0."""
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) or not 0 < float(temperature) < math.inf:
        raise InvalidInputError(f"invalid `temperature`: expected a number > 0, got {temperature!r}")


def check_same_shape(name: str, tensor: torch.Tensor, like_name: str, like: torch.Tensor) -> None:
    if tensor.shape != like.shape:
        raise InvalidInputError(
            f"invalid `{name}`: expected the shape of `{like_name}` {tuple(like.shape)}, "
            f"got {tuple(tensor.shape)}"
        )
    if tensor.device != like.device:
        raise InvalidInputError(
            f"invalid `{name}`: on {tensor.device}, but `{like_name}` is on {like.device}"
        )


def check_targets(name: str, targets: Any, shape: torch.Size, device: torch.device) -> torch.Tensor:
    """Token ids: an integer tensor of ``shape`` on ``device``."""
    if not isinstance(targets, torch.Tensor):
        raise InvalidInputError(f"invalid `{name}`: expected a torch.Tensor, got {type(targets).__name__}")
    if targets.dtype.is_floating_point or targets.dtype.is_complex or targets.dtype == torch.bool:
        raise InvalidInputError(f"invalid `{name}`: expected integer token ids, got {targets.dtype}")
    if targets.shape != shape:
        raise InvalidInputError(
            f"invalid `{name}`: expected shape {tuple(shape)}, got {tuple(targets.shape)}"
        )
    if targets.device != device:
        raise InvalidInputError(f"invalid `{name}`: on {targets.device}, expected {device}")
    return targets
