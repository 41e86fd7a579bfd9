from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A run folder path that does not exist yet."""
    return tmp_path / "run"
