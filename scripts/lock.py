#!/usr/bin/env python
"""The committed lock (``constraints.txt``) and the declared ranges (``pyproject.toml``).

    python scripts/lock.py freeze [--out constraints.txt]  # pin every distribution of this env (`nox -s lock` runs it)
    python scripts/lock.py lowest --out FILE               # each declared lower bound as a == pin (`nox -s test_oldest`)
    python scripts/lock.py check [--lock constraints.txt]  # this env has exactly the locked versions (exit 1 if not)
    python scripts/lock.py drift [--lock constraints.txt]  # what differs from the lock, one line a package, and
                                                           # releases the declared caps exclude (exit 0)

``constraints.txt`` is a pip constraints file: ``pip install -c constraints.txt -e '.[test]'`` resolves exactly the
versions CI tested. Needs ``packaging`` (nox and transformers bring it) and Python >= 3.11 (or ``tomli``).
"""

from __future__ import annotations

import argparse
import platform
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser as a package
    import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # vlmref's pure utils, also from nox's own Python where vlmref is not installed

from vlmref.utils import atomic_write_bytes  # noqa: E402

LOCK = REPO / "constraints.txt"
PYPROJECT = REPO / "pyproject.toml"
PROJECT = "vlmref"
# never pinned: the project itself and the installer tools every venv brings
UNPINNED = {"vlmref", "pip", "setuptools", "wheel"}
REFRESH = "nox -s lock"


def declared_requirements(pyproject: Path = PYPROJECT) -> list[tuple[str, Requirement]]:
    """(group, requirement) for every dependency and extra in pyproject.toml, the project's own extras left out."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    groups = {"dependencies": project.get("dependencies", []), **project.get("optional-dependencies", {})}
    out = []
    for group, requirements in groups.items():
        for text in requirements:
            req = Requirement(text)
            if canonicalize_name(req.name) != PROJECT:
                out.append((group, req))
    return out


def lower_bounds(requirements: list[tuple[str, Requirement]]) -> dict[str, str]:
    """name -> the declared lower bound (``>=X`` or ``==X``); every requirement must declare one."""
    bounds: dict[str, str] = {}
    missing = []
    for group, req in requirements:
        pins = [s.version for s in req.specifier if s.operator in (">=", "==")]
        if not pins:
            missing.append(f"{group}: {req}")
            continue
        name = canonicalize_name(req.name)
        bounds[name] = max([*pins, bounds.get(name, pins[0])], key=Version)
    if missing:
        raise SystemExit("error: no lower bound (>= or ==) declared for " + "; ".join(missing))
    return bounds


def read_lock(path: Path = LOCK) -> dict[str, str]:
    """name -> version of every ``name==version`` line (comments and blank lines skipped)."""
    pins: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        specs = list(req.specifier)
        if len(specs) != 1 or specs[0].operator != "==":
            raise SystemExit(f"error: {path}:{number}: expected 'name==version', found {line!r}")
        pins[canonicalize_name(req.name)] = specs[0].version
    return pins


def installed() -> dict[str, str]:
    """name -> version of every distribution in this environment (local labels such as +cpu dropped)."""
    out = {}
    for dist in metadata.distributions():
        name = canonicalize_name(dist.metadata["Name"] or "")
        if name and name not in UNPINNED:
            out[name] = str(Version(dist.version).public)
    return out


def outside_ranges(pins: dict[str, str], requirements: list[tuple[str, Requirement]]) -> list[str]:
    """Declared requirements whose pinned version is missing or outside the declared range."""
    problems = []
    for group, req in requirements:
        version = pins.get(canonicalize_name(req.name))
        if version is None:
            problems.append(f"{req.name} ({group}) is not pinned")
        elif not req.specifier.contains(version, prereleases=True):
            problems.append(f"{req.name}=={version} is outside the declared {req} ({group})")
    return problems


def differences(lock: dict[str, str], env: dict[str, str]) -> list[str]:
    """One line per package whose installed version is not the locked one, or that the lock does not know."""
    lines = []
    for name in sorted(set(lock) | set(env)):
        locked, have = lock.get(name), env.get(name)
        if locked == have or have is None:  # a locked package this session does not install is fine
            continue
        lines.append(f"{name}: {'not in the lock' if locked is None else locked} -> {have}")
    return lines


def releases_beyond_caps(requirements: list[tuple[str, Requirement]], timeout: float = 60) -> list[str]:
    """For each capped requirement (``<X``), the newest release on the index when the cap excludes it: drift that
    test_latest cannot see. Asks ``pip index versions``; a failed query says so instead."""
    import subprocess

    lines = []
    for _, req in requirements:
        if not any(s.operator in ("<", "<=") for s in req.specifier):
            continue
        try:
            done = subprocess.run([sys.executable, "-m", "pip", "index", "versions", req.name], capture_output=True,
                                  text=True, timeout=timeout)
        except (OSError, subprocess.SubprocessError) as err:
            lines.append(f"{req.name}: could not ask the index ({err})")
            continue
        newest = done.stdout.split("(", 1)[1].split(")", 1)[0] if done.returncode == 0 and "(" in done.stdout else None
        if newest is None:
            lines.append(f"{req.name}: could not ask the index (pip index versions exited {done.returncode})")
        elif not req.specifier.contains(newest):
            lines.append(f"{req.name} {newest} is released, outside the declared {req.specifier}: test it "
                         "(nox -s test_latest with the cap lifted), then raise the cap")
    return lines


def freeze(out: Path) -> int:
    pins = installed()
    problems = outside_ranges(pins, declared_requirements())
    if problems:
        print("error: this environment is not a resolve of pyproject.toml: " + "; ".join(problems), file=sys.stderr)
        return 1
    header = [
        "# vlmref lock: every distribution `nox -s test` and CI install, pinned (pip constraints file).",
        f"# Refresh: {REFRESH}   (fresh venv, torch==2.13.0, newest allowed `.[test,lint]` and nox, then freeze)",
        f"# Made {datetime.now(timezone.utc):%Y-%m-%d} on CPython {platform.python_version()} "
        f"{sys.platform} {platform.machine()}.",
    ]
    body = [f"{name}=={version}" for name, version in sorted(pins.items())]
    atomic_write_bytes(out, ("\n".join(header + body) + "\n").encode(), mode=0o644)
    print(f"{out}: {len(body)} pins (transformers=={pins.get('transformers')}, torch=={pins.get('torch')})")
    return 0


def write_lowest(out: Path) -> int:
    bounds = lower_bounds(declared_requirements())
    atomic_write_bytes(out, "".join(f"{name}=={version}\n" for name, version in sorted(bounds.items())).encode(),
                       mode=0o644)
    print(f"{out}: the declared lower bounds of {len(bounds)} requirements")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=("freeze", "lowest", "check", "drift"))
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--lock", type=Path, default=LOCK)
    args = ap.parse_args(argv)
    if args.command == "freeze":
        return freeze(args.out or LOCK)
    if args.command == "lowest":
        if args.out is None:
            ap.error("lowest needs --out FILE")
        return write_lowest(args.out)
    if not args.lock.is_file():
        print(f"error: {args.lock}: no lock file; make one with `{REFRESH}`", file=sys.stderr)
        return 2
    lines = differences(read_lock(args.lock), installed())
    if args.command == "drift":
        print(f"versions that differ from {args.lock.name}: " + ("none" if not lines else str(len(lines))))
        for line in lines + releases_beyond_caps(declared_requirements()):
            print(f"  {line}")
        return 0
    if lines:
        print(f"error: this environment differs from {args.lock} in {len(lines)} package(s): " + "; ".join(lines),
              file=sys.stderr)
        return 1
    print(f"environment matches {args.lock.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
