"""Fixtures shared by several test modules (keep this small)."""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """tests/fixtures: notebooks 01_ok, 02_failing (raises in cell 2), 03_malformed (no tag)."""
    return FIXTURES
