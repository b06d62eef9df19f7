"""Per template: vlmref's profiles against the ms-swift 2.2.0 oracle fixtures, and encode speed side by side.

Runs in vlmref's own (locked) venv; ``nox -s oracle`` calls it right after timing ms-swift on the same cases::

    python scripts/oracle/report.py [--swift-times FILE] [--rounds 5] [--out benchmarks/results/template_oracle.md]

Columns: cases equal under ``swift-2.2.0`` (must be all); cases where ``official`` differs, by the deviation ids
that explain them; vlmref's and ms-swift's encode time for all cases (best of N) and their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from vlmref.templates.meta import SWIFT_2_2_0, get_template_meta  # noqa: E402
from vlmref.testing.oracle import (  # noqa: E402
    fixture_paths,
    load_fixture,
    template_report,
    time_encode,
    tokenizer_factory,
)
from vlmref.tokenizers import shared_tokenizers_dir  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--swift-times", type=Path, default=None, help="JSON from make_template_oracle.py --time")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None, help="also write the table (markdown) here")
    args = parser.parse_args(argv)
    root = shared_tokenizers_dir()
    if root is None:
        print("error: real tokenizers not found (set VLMREF_TOKENIZERS_DIR)", file=sys.stderr)
        return 2
    swift_times = json.loads(args.swift_times.read_text())["swift"] if args.swift_times else {}
    lines = [
        "| template | cases | swift-2.2.0 equal | official differs: cases, then cases per deviation id | unexplained "
        "| vlmref ms | ms-swift ms | speed-up |",
        "|---|---:|---:|---|---:|---:|---:|---:|",
    ]
    failed = False
    for path in fixture_paths():
        data = load_fixture(path)
        template_type = data["meta"]["template_type"]

        tokenizer_for = tokenizer_factory(template_type, root)
        rep = template_report(data, tokenizer_for)
        seconds = time_encode(data, tokenizer_for(get_template_meta(template_type, SWIFT_2_2_0)), args.rounds)
        swift = swift_times.get(template_type, {}).get("seconds")
        ratio = f"{swift / seconds:.2f}x" if swift else "-"
        differing = sum(rep["official_differences"].values())
        diffs = f"{differing}: " + ", ".join(f"{k} {v}" for k, v in rep["official_differences_by_id"].items())
        lines.append(f"| {template_type} | {rep['cases']} | {rep['swift_equal']} | {diffs} | {len(rep['unexplained'])} "
                     f"| {seconds * 1e3:.1f} | {swift * 1e3:.1f} | {ratio} |" if swift else
                     f"| {template_type} | {rep['cases']} | {rep['swift_equal']} | {diffs} | {len(rep['unexplained'])} "
                     f"| {seconds * 1e3:.1f} | - | - |")
        failed |= bool(rep["swift_failures"] or rep["unexplained"])
    table = "\n".join(lines) + "\n"
    if args.swift_times:
        import platform
        from importlib.metadata import version

        other = json.loads(args.swift_times.read_text())["versions"]
        table += (f"\nBest of {args.rounds} over the same cases and tokenizer files, ms-swift timed first, in one "
                  f"`nox -s oracle` run on {platform.node() or 'this machine'} ({os.cpu_count()} CPUs): ms-swift "
                  f"{other.get('ms-swift')} with transformers {other.get('transformers')}, vlmref with transformers "
                  f"{version('transformers')}, tokenizers {version('tokenizers')}.\n")
    print(table)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=args.out.parent, delete=False, encoding="utf-8") as tmp:
            tmp.write(table)
        Path(tmp.name).replace(args.out)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
