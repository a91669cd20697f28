# Type stubs for the compiled module `reasonrl._core` (rust/reasonrl-py). Checked against the
# built module by `python -m mypy.stubtest reasonrl._core` in the test command.
from typing import Any

import numpy as np
import numpy.typing as npt

__version__: str

def set_num_threads(threads: int) -> None: ...
def get_num_threads() -> int: ...
def _panic_for_test(message: str) -> None: ...
def compute_advantages(
    rewards: npt.NDArray[np.float32] | npt.NDArray[np.float64],
    group_ids: npt.NDArray[np.int64],
    estimator: str = "grpo",
    *,
    eps: float = 1e-6,
    threads: int | None = None,
) -> np.ndarray[Any, np.dtype[np.float32]]: ...
def filter_groups(
    rewards: npt.NDArray[np.float32] | npt.NDArray[np.float64],
    group_ids: npt.NDArray[np.int64],
    *,
    threads: int | None = None,
) -> np.ndarray[Any, np.dtype[np.bool_]]: ...
