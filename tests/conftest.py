"""Shared pytest fixtures: the reference images of ``../shared/data``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SRLAB_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of the shared reference images; skips (or fails in CI) when absent."""
    if not SHARED_DATA.is_dir():
        message = (
            f"shared reference images not found at {SHARED_DATA} "
            "(set SRLAB_SHARED_DATA to their folder)"
        )
        if os.environ.get("SRLAB_REQUIRE_SHARED") == "1":
            pytest.fail(message + " and SRLAB_REQUIRE_SHARED=1 requires them")
        pytest.skip(message)
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _isolated_cache(monkeypatch, tmp_path_factory) -> None:
    """Keep made LR images and downloaded weights out of the user's ~/.cache."""
    monkeypatch.setenv("SRLAB_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
