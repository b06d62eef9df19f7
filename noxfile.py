"""nox sessions. `nox -s test` is the CI entry point (see README)."""

from __future__ import annotations

import os

import nox

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["lint", "test"]

TORCH = "torch==2.13.0"  # the CPU build on this project's machines; a looser pin pulls a multi-GB CUDA wheel


def _install(session: nox.Session, extras: str) -> None:
    session.install(TORCH)
    session.install("-e", f".[{extras}]")


@nox.session
def test(session: nox.Session) -> None:
    """Default test selection (no slow tests), hypothesis CI profile (derandomised)."""
    _install(session, "test")
    session.run("pytest", "-m", "not slow", *session.posargs, env={"HYPOTHESIS_PROFILE": "ci"})


@nox.session
def test_slow(session: nox.Session) -> None:
    """Only the tests marked slow."""
    _install(session, "test")
    session.run("pytest", "-m", "slow", *session.posargs, env={"HYPOTHESIS_PROFILE": "ci"})


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.6")
    session.run("ruff", "check", "vlmref", "tests", "benchmarks", "scripts", "noxfile.py")


@nox.session
def demo(session: nox.Session) -> None:
    """The main job on the embedded default: tiny-model LoRA sft on the bundled sample -> merge -> infer.

    `nox -s demo -- --templates` renders every model's template instead; other args go to `vlmref demo`."""
    _install(session, "train")
    session.run("vlmref", "demo", "--out", "demo_out", *session.posargs)


@nox.session
def golden(session: nox.Session) -> None:
    """Regenerate golden/ from the real tokenizers, then show what changed (commit it with the reason)."""
    _install(session, "tokenizers")
    session.run("python", "scripts/make_golden.py", *session.posargs)
    session.run("git", "--no-pager", "diff", "--stat", "--", "golden", external=True)


@nox.session
def bench(session: nox.Session) -> None:
    """The main job: the seeds' 16 documented GPU-memory footprints predicted on CPU (table, memory_report/), then the
    throughput benchmarks (pytest-benchmark JSON under .benchmarks/). Args go to pytest, e.g. `-- -k encode`."""
    _install(session, "test")
    session.run("vlmref", "memory", "--documented", "--out_dir", "memory_report")
    out = os.path.join(".benchmarks", "bench.json")
    session.run("pytest", "benchmarks", "-p", "no:cacheprovider", "--benchmark-only",
                f"--benchmark-json={out}", *session.posargs)


@nox.session(name="bench-a100")
def bench_a100(session: nox.Session) -> None:
    """Build the Dockerfile's CUDA image, run `vlmref bench --documented` in it on all GPUs (docker SDK), keep the
    results as .benchmarks/a100/bench-<sha>.json and compare them with the seeds' documented GB (+-10%; exit 1 outside).

    Needs Docker Engine and the NVIDIA container toolkit on the host (the harness says what is missing otherwise);
    the session itself installs only the docker SDK and vlmref's pure layer, torch comes with the image.
    `nox -s bench-a100 -- --tolerance 0.15 --build-arg TORCH_INDEX=... -- --only qwen-vl-chat/lora/1gpu`"""
    session.install("-e", ".[bench]")
    session.run("python", "-m", "vlmref.bench.docker_harness", *session.posargs)
