"""What the golden/arch generators share: the file layout, the index comparison and the write-all entry point.

Imports nothing from vlmref (the generators must stay independent of vlmref's nn.Modules).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterable
from pathlib import Path


def dumps(data: dict) -> str:
    """JSON with one line per key (sorted), so diffs of the golden file stay readable."""
    lines = [f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in sorted(data["keys"].items())]
    head = {k: v for k, v in data.items() if k != "keys"}
    body = json.dumps(head, indent=1)[:-2]
    return body + ',\n "keys": {\n' + ",\n".join(lines) + "\n }\n}\n"


def count_parameters(keys: dict[str, list[int]], components: dict[str, tuple[str, ...]]) -> dict[str, int]:
    """Parameters per component; every key must belong to exactly one."""
    counts = {name: 0 for name in components}
    for key, shape in keys.items():
        owners = [n for n, prefixes in components.items() if any(key == p or key.startswith(p + ".") for p in prefixes)]
        if len(owners) != 1:
            raise SystemExit(f"{key}: owned by {owners}")
        size = 1
        for s in shape:
            size *= s
        counts[owners[0]] += size
    counts["total"] = sum(counts.values())
    return counts


def check_index_keys(path: Path, expected: set[str], label: str, ignore: tuple[str, ...] = ()) -> None:
    """Compare a real ``*.index.json`` weight map with the expected keys (names ending in ``ignore`` are skipped)."""
    names = {n for n in json.loads(path.read_text())["weight_map"] if not (ignore and n.endswith(ignore))}
    if names != expected:
        raise SystemExit(f"index differs: missing {sorted(expected - names)[:20]}, extra {sorted(names - expected)[:20]}")
    print(f"{path}: {len(names)} keys, all match {label}")


def write_all_main(argv: list[str] | None, doc: str, model_types: Iterable[str], build: Callable[[str], dict],
                   out_dir: Path, index_help: str, check_index: Callable[[Path, str], None]) -> int:
    """``--check-index FILE --model-type X`` compares; otherwise every model type's file is written to ``out_dir``."""
    model_types = list(model_types)
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--check-index", type=Path, help=index_help)
    parser.add_argument("--model-type", choices=sorted(model_types), help="with --check-index")
    parser.add_argument("--out-dir", type=Path, default=out_dir)
    args = parser.parse_args(argv)
    if args.check_index:
        check_index(args.check_index, args.model_type or parser.error("--check-index needs --model-type"))
        return 0
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for model_type in model_types:
        data = build(model_type)
        out = args.out_dir / f"{model_type}.json"
        out.write_text(dumps(data), encoding="utf-8")
        print(f"wrote {out}: {len(data['keys'])} keys, {data['param_counts']}")
    return 0
