"""Shared test helpers: where the repository and the optional real data sets are."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def shared_data_dir() -> Path | None:
    """The real benchmark data (GSM8K, MATH, ...): $REASONRL_DATA_DIR, else ../shared/data.

    The data is never part of the repository; tests that need it skip (with the reason printed
    by ``-ra``) on a user's clone that has no ``../shared``.
    """
    configured = os.environ.get("REASONRL_DATA_DIR")
    candidate = Path(configured) if configured else REPO_ROOT.parent / "shared" / "data"
    return candidate if candidate.is_dir() else None


@pytest.fixture
def data_dir() -> Path:
    found = shared_data_dir()
    if found is None:
        pytest.skip("real data sets not found: set REASONRL_DATA_DIR or provide ../shared/data")
    return found
