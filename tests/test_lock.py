"""The lock (constraints.txt) and the declared ranges (pyproject.toml): reproducible installs, ranges that were tested.

The session check runs when nox installed from the lock (it sets ``VLMREF_LOCK``): a session that resolved anything
else than the locked versions fails here, so a green `nox -s test` means "green on exactly these versions".
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _load_lock_module():
    spec = importlib.util.spec_from_file_location("vlmref_lock_script", REPO / "scripts" / "lock.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


lock = _load_lock_module()


def test_every_declared_requirement_is_pinned_inside_its_range() -> None:
    pins = lock.read_lock(lock.LOCK)
    assert lock.outside_ranges(pins, lock.declared_requirements()) == []
    assert pins["torch"] == "2.13.0"  # the CPU build on this project's machines


def test_every_requirement_declares_a_lower_bound_and_transformers_a_cap() -> None:
    requirements = lock.declared_requirements()
    bounds = lock.lower_bounds(requirements)  # raises for a requirement without one
    assert set(bounds) == {lock.canonicalize_name(r.name) for _, r in requirements}
    transformers = next(r for _, r in requirements if r.name == "transformers")
    assert any(s.operator == "<" for s in transformers.specifier), "private transformers APIs: cap the minor release"


def test_lowest_writes_the_lower_bounds_as_pins(tmp_path: Path) -> None:
    out = tmp_path / "lowest.txt"
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "lock.py"), "lowest", "--out", str(out)],
                          capture_output=True, text=True, check=True)
    assert "lower bounds" in done.stdout
    pins = lock.read_lock(out)
    assert pins["transformers"] == lock.lower_bounds(lock.declared_requirements())["transformers"]
    assert pins["torch"] == "2.13.0"


def test_read_lock_names_the_bad_line(tmp_path: Path) -> None:
    bad = tmp_path / "c.txt"
    bad.write_text("# header\nnumpy==2.0.0\ntransformers>=5\n")
    with pytest.raises(SystemExit, match=r"c.txt:3: expected 'name==version', found 'transformers>=5'"):
        lock.read_lock(bad)


def test_differences_report_versions_and_unknown_packages() -> None:
    locked = {"numpy": "2.4.6", "torch": "2.13.0", "ruff": "0.17.6"}
    env = {"numpy": "2.4.6", "torch": "2.13.0", "transformers": "5.25.0"}
    assert lock.differences(locked, env) == ["transformers: not in the lock -> 5.25.0"]
    assert lock.differences(locked, {**env, "numpy": "2.5.0"})[0] == "numpy: 2.4.6 -> 2.5.0"


@pytest.mark.skipif(not os.environ.get("VLMREF_LOCK"), reason="not a locked nox session (VLMREF_LOCK unset)")
def test_this_session_runs_exactly_the_locked_versions() -> None:
    path = REPO / os.environ["VLMREF_LOCK"]
    assert lock.differences(lock.read_lock(path), lock.installed()) == []


def test_drift_names_releases_a_cap_excludes(monkeypatch: pytest.MonkeyPatch) -> None:
    from packaging.requirements import Requirement

    answers = {"transformers": "transformers (5.25.0)\nAvailable versions: 5.25.0, 5.24.0\n",
               "numpy": "numpy (9.0.0)\nAvailable versions: 9.0.0\n"}

    def fake_run(cmd, **kwargs):
        return subprocess.CompletedProcess(cmd, 0, stdout=answers[cmd[-1]], stderr="")

    monkeypatch.setattr(subprocess, "run", fake_run)
    reqs = [("tokenizers", Requirement("transformers>=5.20.0,<5.25")), ("", Requirement("numpy>=1.26.4"))]
    lines = lock.releases_beyond_caps(reqs)
    assert lines == ["transformers 5.25.0 is released, outside the declared <5.25,>=5.20.0: test it "
                     "(nox -s test_latest with the cap lifted), then raise the cap"]  # numpy has no cap: not asked
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: subprocess.CompletedProcess(cmd, 1, "", "offline"))
    assert lock.releases_beyond_caps(reqs) == ["transformers: could not ask the index (pip index versions exited 1)"]
