"""Shared fixtures: the repository root and a composed params dict for any profile."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def compose(*overrides: str) -> dict:
    """Compose conf/ exactly as `dvc exp run -S ...` does (DVC's own Hydra helper)."""
    import tempfile

    from dvc.utils.hydra import compose_and_dump

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "params.yaml"
        compose_and_dump(out, str(REPO / "conf"), None, "config", "", list(overrides))
        return yaml.safe_load(out.read_text())


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run in an empty temporary directory."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="session", autouse=True)
def _offline_env():
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    os.environ.setdefault("MPLBACKEND", "Agg")
