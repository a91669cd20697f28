"""Group-relative advantages (GRPO, Dr. GRPO, RLOO, REINFORCE++) and DAPO's group filter.

The work happens in one GIL-free, parallel Rust call; this module only turns what users pass
(lists, numpy arrays, CPU or GPU torch tensors) into the contiguous numpy arrays the core borrows
without copying.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, TypeVar

import numpy as np

from reasonrl import _core
from reasonrl.errors import InvalidInputError

if TYPE_CHECKING:
    import torch

__all__ = ["Estimator", "compute_advantages", "filter_groups", "token_advantages"]

Estimator = Literal["grpo", "dr_grpo", "rloo", "reinforce_pp"]

_TensorOrArray = TypeVar("_TensorOrArray", "np.ndarray[Any, Any]", "torch.Tensor")


def _as_numpy(value: Any, name: str) -> np.ndarray[Any, Any]:
    """A read-only view of ``value`` as numpy; torch tensors are moved to the CPU first."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch.Tensor, without importing torch
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":  # numpy has no bfloat16: widen (exactly) first
            value = value.float()
        value = value.numpy()
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as error:
        raise InvalidInputError(f"invalid `{name}`: cannot be read as an array ({error})") from None
    if array.ndim != 1:
        raise InvalidInputError(f"invalid `{name}`: expected a 1-D array, got shape {array.shape}")
    return array


def _rewards_array(rewards: Any) -> np.ndarray[Any, Any]:
    array = _as_numpy(rewards, "rewards")
    if array.dtype not in (np.float32, np.float64):
        if array.dtype.kind not in "biuf":
            raise InvalidInputError(
                f"invalid `rewards`: expected real numbers, got dtype {array.dtype}"
            )
        array = array.astype(np.float64)
    return np.ascontiguousarray(array)


def _group_ids_array(group_ids: Any) -> np.ndarray[Any, Any]:
    array = _as_numpy(group_ids, "group_ids")
    if array.size and array.dtype.kind not in "iu":
        raise InvalidInputError(
            f"invalid `group_ids`: expected integers, got dtype {array.dtype}"
        )
    if array.dtype.kind == "u" and array.size and array.max() > np.iinfo(np.int64).max:
        raise InvalidInputError("invalid `group_ids`: values must fit in int64")
    return np.ascontiguousarray(array, dtype=np.int64)


def compute_advantages(
    rewards: Any,
    group_ids: Any,
    estimator: Estimator = "grpo",
    *,
    eps: float = 1e-6,
    in_batch: Any = None,
    threads: int | None = None,
) -> np.ndarray[Any, np.dtype[np.float32]]:
    """Per-response advantages relative to the other responses to the same prompt.

    Args:
        rewards: (N,) rewards, float32 or float64 (lists and torch tensors are accepted).
            NaN marks a reward that could not be computed: it is left out of every statistic and
            its advantage is 0. ±inf is an error.
        group_ids: (N,) integers naming each response's prompt group. Groups may differ in size
            and need not be contiguous.
        estimator: ``"grpo"``: (r - mean_g) / (std_g + eps), std with Bessel's correction, a group
            of one valid reward gives 0. ``"dr_grpo"``: r - mean_g. ``"rloo"``: r minus the mean
            of the *other* members (a group of one gives 0). ``"reinforce_pp"``
            (REINFORCE++ with a group baseline, OpenRLHF's ``reinforce_baseline``): s = r - mean_g,
            then whitened over the responses of the batch, (s - mean(s)) / (std(s) + eps),
            Bessel's correction, one value per response.
        eps: added to the standard deviation before dividing.
        in_batch: (N,) bools, the responses that enter the loss (after DAPO's filter or the
            masking of truncated responses); None: all. The others still count in their
            group's statistics and get advantage 0; REINFORCE++ whitens over these only (its
            mean is exactly 0 while whole groups are left out, and moves, with every
            advantage, when a group is cut in two).
        threads: worker threads for this call (default: ``reasonrl.get_num_threads()``).

    Returns:
        (N,) float32 advantages.

    Raises:
        InvalidInputError: (a ``ValueError``) wrong shape, dtype, length, an infinite reward, a
            negative ``eps`` or an unknown estimator; the message names the argument.
    """
    mask = None
    if in_batch is not None:
        mask = np.asarray(in_batch.cpu() if hasattr(in_batch, "cpu") else in_batch)
        if mask.dtype != np.bool_:
            raise InvalidInputError(f"invalid `in_batch`: expected bools, got dtype {mask.dtype}")
        mask = np.ascontiguousarray(mask)
    return _core.compute_advantages(
        _rewards_array(rewards), _group_ids_array(group_ids), estimator, eps=eps, in_batch=mask, threads=threads
    )


def filter_groups(
    rewards: Any, group_ids: Any, *, threads: int | None = None
) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """DAPO dynamic sampling: a (N,) mask, True for responses whose group carries signal.

    A group is kept when it has at least two valid (non-NaN) rewards that are not all equal;
    all-correct and all-wrong groups have zero advantage under every estimator.
    """
    return _core.filter_groups(
        _rewards_array(rewards), _group_ids_array(group_ids), threads=threads
    )


def token_advantages(advantages: _TensorOrArray, response_mask: _TensorOrArray) -> _TensorOrArray:
    """Spreads (N,) per-response advantages over a (N, T) response mask → (N, T) float32.

    Positions where the mask is 0 (prompt or padding) get 0. numpy in gives numpy out; torch in
    gives torch out on the mask's device, so this never forces a GPU→CPU copy of the mask.
    """
    if hasattr(response_mask, "dim"):  # torch.Tensor
        import torch

        mask_t: torch.Tensor = response_mask  # type: ignore[assignment]
        adv_t = torch.as_tensor(advantages, device=mask_t.device)
        _check_token_shapes(tuple(adv_t.shape), tuple(mask_t.shape))
        return adv_t.to(torch.float32)[:, None] * mask_t.to(torch.float32)  # type: ignore[return-value]
    adv = np.asarray(advantages)
    mask = np.asarray(response_mask)
    _check_token_shapes(adv.shape, mask.shape)
    return adv.astype(np.float32)[:, None] * mask.astype(np.float32)  # type: ignore[return-value]


def _check_token_shapes(adv_shape: tuple[int, ...], mask_shape: tuple[int, ...]) -> None:
    if len(adv_shape) != 1:
        raise InvalidInputError(f"invalid `advantages`: expected shape (N,), got {adv_shape}")
    if len(mask_shape) != 2 or mask_shape[0] != adv_shape[0]:
        raise InvalidInputError(
            f"invalid `response_mask`: expected shape ({adv_shape[0]}, T), got {mask_shape}"
        )
