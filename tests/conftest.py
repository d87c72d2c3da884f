"""Shared fixtures: the generated input files."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.make_fixtures import build


@pytest.fixture(scope="session")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every fixture file, written once per test session."""
    return build(tmp_path_factory.mktemp("fixtures"))
