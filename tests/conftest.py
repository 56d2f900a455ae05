"""Shared fixtures. The reactor is imported lazily: pytest-twisted installs asyncioreactor first."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
VECTORS = SHARED / "vectors"


@pytest.fixture
def shared_vectors() -> Path:
    """The independent test vectors in ../shared/vectors; skips where that folder is absent."""
    if not VECTORS.is_dir():
        pytest.skip(f"shared vectors not found at {VECTORS} (run from a checkout beside ../shared)")
    return VECTORS


@pytest.fixture
def reactor():  # type: ignore[no-untyped-def]
    from twisted.internet import reactor as r

    return r
