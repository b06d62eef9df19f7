"""Shared fixtures: the real tokenizer folder (skip with a reason when absent), hypothesis profiles."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from vlmref.tokenizers import shared_tokenizers_dir

REPO = Path(__file__).resolve().parent.parent
GOLDEN = REPO / "golden"

settings.register_profile(
    "ci", derandomize=True, max_examples=150, deadline=None, database=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=50, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

NO_TOKENIZERS = (
    "real tokenizer files not found: set VLMREF_TOKENIZERS_DIR or place them in ../shared/tokenizers "
    "(see README, 'Real tokenizers')"
)


@pytest.fixture(scope="session")
def tokenizers_root() -> Path:
    root = shared_tokenizers_dir()
    if root is None or not root.is_dir():
        pytest.skip(NO_TOKENIZERS)
    return root


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    return GOLDEN


@pytest.fixture
def fake_torchrun(monkeypatch: pytest.MonkeyPatch) -> dict:
    """NPROC_PER_NODE=2 outside torchrun, with ``subprocess.run`` of the relaunch recorded instead of run:
    ``fake_torchrun['cmd']`` is the torchrun command line the last relaunch built."""
    import subprocess

    from vlmref.llm import launch

    seen: dict = {}

    def fake_run(cmd, *a, **k):
        seen["cmd"] = cmd
        return subprocess.CompletedProcess(cmd, 0)

    for key in ("TORCHELASTIC_RUN_ID", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("NPROC_PER_NODE", "2")
    monkeypatch.setattr(launch.subprocess, "run", fake_run)
    return seen
