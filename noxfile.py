"""nox sessions. `nox -s test` is the CI entry point (see README).

Every session installs from the committed lock (`constraints.txt`, refreshed by `nox -s lock`), except
`test_latest` (the newest versions pyproject.toml allows: drift shows early) and `test_oldest` (its lower bounds).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nox

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["lint", "test"]

TORCH = "torch==2.13.0"  # the CPU build on this project's machines; a looser pin pulls a multi-GB CUDA wheel
LOCK = "constraints.txt"
HERE = Path(__file__).resolve().parent


def _install(session: nox.Session, extras: str, constraints: str | None = LOCK) -> None:
    """torch first (from this machine's disk), then the project with ``extras``, both under ``constraints``."""
    pin = ["-c", constraints] if constraints else []
    session.install(*pin, TORCH)
    session.install(*pin, "-e", f".[{extras}]")


def _pytest(session: nox.Session, marker: str, lock: str | None) -> None:
    env = {"HYPOTHESIS_PROFILE": "ci"}
    if lock:
        env["VLMREF_LOCK"] = lock  # tests/test_lock.py then checks the session has exactly the locked versions
    session.run("pytest", "-m", marker, *session.posargs, env=env)


@nox.session
def test(session: nox.Session) -> None:
    """Default test selection (no slow tests), hypothesis CI profile (derandomised), the locked versions."""
    _install(session, "test")
    _pytest(session, "not slow", LOCK)


@nox.session
def test_slow(session: nox.Session) -> None:
    """Only the tests marked slow (2-process ZeRO-2/3, kill -9 during save, resume, every family's full run)."""
    _install(session, "test")
    _pytest(session, "slow", LOCK)


@nox.session
def test_latest(session: nox.Session) -> None:
    """The default selection on the newest versions pyproject.toml allows (no lock): upstream drift shows here first.
    Prints what differs from the lock before the tests."""
    _install(session, "test", constraints=None)
    session.run("python", "scripts/lock.py", "drift")
    _pytest(session, "not slow", None)


@nox.session
def test_oldest(session: nox.Session) -> None:
    """The default selection on every declared lower bound (`scripts/lock.py lowest`); `-- -m slow` for the rest."""
    lowest = os.path.join(session.create_tmp(), "lowest.txt")
    session.run(sys.executable, "scripts/lock.py", "lowest", "--out", lowest, external=True)  # nox's own Python
    _install(session, "test", constraints=lowest)
    session.run("python", "scripts/lock.py", "drift")
    _pytest(session, "not slow", None)


@nox.session
def lock(session: nox.Session) -> None:
    """Refresh constraints.txt: a fresh venv with the newest versions pyproject.toml allows, frozen. Commit the result
    after `nox -s test test_slow` pass on it (see README, 'Supported versions')."""
    session.install(TORCH)
    session.install("-e", ".[test,lint]", "nox")
    session.run("python", "scripts/lock.py", "freeze", "--out", str(HERE / LOCK))


@nox.session
def lint(session: nox.Session) -> None:
    session.install("-c", LOCK, "ruff")
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


@nox.session
def memory_results(session: nox.Session) -> None:
    """Regenerate the committed benchmarks/results/memory_documented.{md,png,json} (the seeds' 16 footprints predicted
    on CPU, with the versions that made them) and memory_anchors.* (the figures measured elsewhere); commit them with
    the reason."""
    _install(session, "test")
    session.run("vlmref", "memory", "--documented", "--out_dir", "benchmarks/results", "--stem", "memory_documented")
    session.run("vlmref", "memory", "--anchors", "--out_dir", "benchmarks/results", "--stem", "memory_anchors")

CONFORM_OUT = "benchmarks/results/conform"
LLAMAFACTORY_TORCH = ("torch==2.9.1", "torchvision==0.24.1", "torchaudio==2.9.1")  # see requirements-llamafactory.txt


def _framework_venv(session: nox.Session, name: str, first: tuple[str, ...], requirements: str) -> Path:
    """``.nox/conform-<name>-venv``: ``first`` installed alone (the torch build), then ``requirements`` (as
    constraints too); its python."""
    python = HERE / ".nox" / f"conform-{name}-venv" / "bin" / "python"
    if not python.exists():
        session.run(sys.executable, "-m", "venv", str(python.parent.parent), external=True)
    session.run(str(python), "-m", "pip", "install", "-q", *first, external=True)
    session.run(str(python), "-m", "pip", "install", "-q", "-c", requirements, "-r", requirements, external=True)
    return python


def _conform(session: nox.Session, python: Path, adapter: str, profile: str, stem: str, codes: list[int]) -> None:
    """`vlmref conform` from this session's locked vlmref, the adapter in ``python``'s venv; reports to
    benchmarks/results/conform/<stem>.{md,json}; the session's args go to `vlmref conform`."""
    os.makedirs(CONFORM_OUT, exist_ok=True)
    session.run("vlmref", "conform", "--adapter", adapter, "--adapter_path", "benchmarks/conform/adapters",
                "--adapter_python", str(python), "--profile", profile, "--report", f"{CONFORM_OUT}/{stem}.md",
                "--json", f"{CONFORM_OUT}/{stem}.json", *session.posargs, success_codes=codes)


def _needs_upstream(session: nox.Session) -> None:
    if not os.environ.get("VLMREF_UPSTREAM_DIR"):
        session.error("set VLMREF_UPSTREAM_DIR (see scripts/oracle/upstream.py: fetch the repositories, then extract)")


@nox.session(name="conform-swift22")
def conform_swift22(session: nox.Session) -> None:
    """`vlmref conform` against the real ms-swift 2.2.0 (never in CI): benchmarks/conform/adapters/swift22_adapter.py
    in its own venv (torch, then benchmarks/conform/requirements-swift22.txt, the oracle's pins); reports
    benchmarks/results/conform/swift22{,-swift-2.2.0}.{md,json}: `official` (exit 1 expected: the recorded
    deviations) and `swift-2.2.0` (must be 100 % equal). Needs the real tokenizers and the Qwen-VL / InternLM2
    tokenizer code extracted by `python scripts/oracle/upstream.py extract` ($VLMREF_UPSTREAM_DIR)."""
    _needs_upstream(session)
    python = _framework_venv(session, "swift22", (TORCH,), "benchmarks/conform/requirements-swift22.txt")
    _install(session, "test")
    _conform(session, python, "swift22_adapter:encode", "official", "swift22", [0, 1])
    _conform(session, python, "swift22_adapter:encode", "swift-2.2.0", "swift22-swift-2.2.0", [0])


@nox.session(name="conform-swift-latest")
def conform_swift_latest(session: nox.Session) -> None:
    """`vlmref conform` against the newest ms-swift (4.6.0; never in CI): benchmarks/conform/adapters/
    swift_latest_adapter.py in its own venv (torch, then benchmarks/conform/requirements-swift-latest.txt); the
    report benchmarks/results/conform/swift-latest.{md,json} (exit 1 expected: where 4.x differs). Needs the real
    tokenizers and $VLMREF_UPSTREAM_DIR as conform-swift22 (e.g. `-- --model_type qwen-vl-chat` narrows it)."""
    _needs_upstream(session)
    python = _framework_venv(session, "swift-latest", (TORCH,), "benchmarks/conform/requirements-swift-latest.txt")
    _install(session, "test")
    _conform(session, python, "swift_latest_adapter:encode", "official", "swift-latest", [0, 1])


@nox.session(name="conform-llamafactory")
def conform_llamafactory(session: nox.Session) -> None:
    """`vlmref conform` against LLaMA-Factory 0.9.5 (never in CI): benchmarks/conform/adapters/llamafactory_adapter.py
    in its own venv (torch 2.9.1 + torchvision + torchaudio first, not TORCH: llamafactory imports torchaudio, which
    fails beside the 2.13.0 CPU wheel; then benchmarks/conform/requirements-llamafactory.txt); the report
    benchmarks/results/conform/llamafactory.{md,json} (exit 1 expected). Needs the real tokenizers."""
    python = _framework_venv(session, "llamafactory", LLAMAFACTORY_TORCH,
                             "benchmarks/conform/requirements-llamafactory.txt")
    _install(session, "test")
    _conform(session, python, "llamafactory_adapter:encode", "official", "llamafactory", [0, 1])


@nox.session(name="bench-a100")
def bench_a100(session: nox.Session) -> None:
    """Build the Dockerfile's CUDA image, run `vlmref bench --documented` in it on all GPUs (docker SDK), keep the
    results as .benchmarks/a100/bench-<sha>.json and compare them with the seeds' documented GB (+-10%; exit 1 outside).

    Needs Docker Engine and the NVIDIA container toolkit on the host (the harness says what is missing otherwise);
    the session itself installs only the docker SDK and vlmref's pure layer, torch comes with the image.
    `nox -s bench-a100 -- --tolerance 0.15 --build-arg TORCH_INDEX=... -- --only qwen-vl-chat/lora/1gpu`"""
    session.install("-c", LOCK, "-e", ".[bench]")
    session.run("python", "-m", "vlmref.bench.docker_harness", *session.posargs)


@nox.session(python=False)
def oracle(session: nox.Session) -> None:
    """Oracle fixtures from the real upstream (never in CI), then the comparison and the speed table.

    1. A venv with ms-swift 2.2.0 and the packages of its era (scripts/oracle/requirements.txt) encodes every
       golden scenario and 200 seeded samples per template into golden/oracle/templates (`nox -s oracle --
       qwen-vl cogvlm`: only those), and the upstream modeling code writes golden/oracle/models (tiny upstream
       checkpoints, logits, greedy tokens, pixels). Needs the real tokenizers (../shared/tokenizers or
       $VLMREF_TOKENIZERS_DIR) and the upstream code extracted by `python scripts/oracle/upstream.py extract`
       ($VLMREF_UPSTREAM_DIR).
    2. The same venv times ms-swift's encode of the committed cases; 3. vlmref's locked venv times its own on the
       same cases and tokenizers right after, checks both profiles against the fixtures and writes
       benchmarks/results/template_oracle.md."""
    if not os.environ.get("VLMREF_UPSTREAM_DIR"):
        session.error("set VLMREF_UPSTREAM_DIR (see scripts/oracle/upstream.py: fetch the repositories, then extract)")
    venv = HERE / ".nox" / "oracle-venv"
    python = venv / "bin" / "python"
    if not python.exists():
        session.run(sys.executable, "-m", "venv", str(venv))
    session.run(str(python), "-m", "pip", "install", "-q", TORCH)
    session.run(str(python), "-m", "pip", "install", "-q", "-r", "scripts/oracle/requirements.txt")
    session.run(str(python), "scripts/oracle/make_template_oracle.py", *session.posargs)
    if not session.posargs:
        session.run(str(python), "scripts/oracle/make_model_oracle.py", "--out", "golden/oracle/models")
    times = HERE / ".nox" / "oracle-swift-times.json"
    session.run(str(python), "scripts/oracle/make_template_oracle.py", "--time", str(times))
    mine = HERE / ".nox" / "oracle-vlmref"
    mine_python = mine / "bin" / "python"
    if not mine_python.exists():
        session.run(sys.executable, "-m", "venv", str(mine))
    session.run(str(mine_python), "-m", "pip", "install", "-q", "-c", LOCK, TORCH)
    session.run(str(mine_python), "-m", "pip", "install", "-q", "-c", LOCK, "-e", ".[tokenizers]")
    session.run(str(mine_python), "scripts/oracle/report.py", "--swift-times", str(times),
                "--out", "benchmarks/results/template_oracle.md")
