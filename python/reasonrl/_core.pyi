# Type stubs for the compiled module `reasonrl._core` (rust/reasonrl-py). Checked against the
# built module by `python -m mypy.stubtest reasonrl._core` in the test command.
from collections.abc import Sequence
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
    in_batch: npt.NDArray[np.bool_] | None = None,
    threads: int | None = None,
) -> np.ndarray[Any, np.dtype[np.float32]]: ...
def filter_groups(
    rewards: npt.NDArray[np.float32] | npt.NDArray[np.float64],
    group_ids: npt.NDArray[np.int64],
    *,
    threads: int | None = None,
) -> np.ndarray[Any, np.dtype[np.bool_]]: ...
def score_rewards(
    components: list[tuple[str, str, float, dict[str, bool | int | float | str]]],
    completions: Sequence[str],
    *,
    answers: Sequence[str] | None = None,
    choices: Sequence[Sequence[str]] | None = None,
    gold_choices: Sequence[int] | None = None,
    group_ids: Sequence[int] | None = None,
    lengths: Sequence[float] | None = None,
    external: Sequence[tuple[str, Sequence[float]]] | None = None,
    threads: int | None = None,
) -> tuple[np.ndarray[Any, np.dtype[np.float64]], np.ndarray[Any, np.dtype[np.float64]]]: ...
def chosen_options(
    completions: Sequence[str], choices: Sequence[Sequence[str]], *, threads: int | None = None
) -> list[int | None]: ...
def math_extract_answer(text: str) -> str | None: ...
def math_verify(
    gold: str, pred: str, *, timeout_s: float = 1.0, rel_tol: float = 1e-6
) -> bool: ...
def math_verify_batch(
    golds: Sequence[str],
    preds: Sequence[str],
    *,
    threads: int | None = None,
    timeout_s: float = 1.0,
    rel_tol: float = 1e-6,
) -> list[bool]: ...
def math_parse(text: str, *, timeout_s: float = 1.0) -> str: ...

# reasonrl.code: the sandboxed code runner (rust/reasonrl-py/src/code.rs).
def run_code_tests(
    programs: list[str],
    tests: list[Any],
    *,
    interpreter: str,
    expose: list[str],
    timeout_s: float,
    memory_mb: int,
    max_output_mb: int,
    threads: int | None = None,
) -> list[tuple[str, int, int, float, str]]: ...
def sandbox_capabilities() -> dict[str, Any]: ...
