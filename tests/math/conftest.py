"""Fixtures for the math verification tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """``$REASONRL_DATA_DIR`` if set, else ``../shared/data`` next to the repository."""
    configured = os.environ.get("REASONRL_DATA_DIR")
    return Path(configured) if configured else REPO_ROOT.parent / "shared" / "data"
