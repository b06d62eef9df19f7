#!/usr/bin/env python
"""Regenerate golden/: the images and every template x scenario case, with real-tokenizer ids.

Usage: python scripts/make_golden.py [--tokenizers DIR] [--only TEMPLATE]
DIR defaults to $VLMREF_TOKENIZERS_DIR or ../shared/tokenizers. Golden files change only in a commit that says why.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from vlmref.bench.env import result_versions  # noqa: E402
from vlmref.templates import TEMPLATES  # noqa: E402
from vlmref.testing.golden import (  # noqa: E402
    GOLDEN_IMAGES,
    SCENARIO_NAMES,
    build_case,
    dump_case,
    load_golden_tokenizer,
    sha256_of_folder,
    tokenizer_spec,
)
from vlmref.tokenizers import shared_tokenizers_dir  # noqa: E402
from vlmref.utils import atomic_write_bytes  # noqa: E402

GOLDEN = REPO / "golden"
GOLDEN_PACKAGES = ("transformers", "tokenizers", "sentencepiece", "tiktoken", "protobuf", "pillow", "vlmref")


def atomic_write(path: Path, data: bytes) -> None:
    atomic_write_bytes(path, data, mode=0o644)


def make_images() -> None:
    from PIL import Image

    for rel, (w, h, colour) in GOLDEN_IMAGES.items():
        path = GOLDEN / rel
        img = Image.new("RGB", (w, h), colour)
        tmp = path.with_suffix(".tmp.png")
        path.parent.mkdir(parents=True, exist_ok=True)
        img.save(tmp, format="PNG", optimize=True)
        os.replace(tmp, path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokenizers", type=Path, default=None)
    ap.add_argument("--only", default=None)
    args = ap.parse_args()
    root = args.tokenizers or shared_tokenizers_dir()
    if root is None or not root.is_dir():
        print("real tokenizers not found: pass --tokenizers DIR or set VLMREF_TOKENIZERS_DIR", file=sys.stderr)
        return 2
    make_images()
    written = 0
    specials: dict[str, dict] = {}
    for template_type in TEMPLATES.names():
        if args.only and template_type != args.only:
            continue
        tokenizer = load_golden_tokenizer(template_type, root)
        sha = sha256_of_folder(root / tokenizer_spec(template_type).family)
        for scenario in SCENARIO_NAMES:
            case = build_case(template_type, scenario, tokenizer, GOLDEN, sha)
            specials[template_type] = case["meta"]["special_tokens"]
            atomic_write(GOLDEN / "templates" / template_type / f"{scenario}.json", dump_case(case).encode())
            written += 1
    if not args.only:  # the special-token ids the fallback tokenizers of `vlmref create-tiny` reuse
        asset = REPO / "vlmref" / "assets" / "tokenizer_specials.json"
        atomic_write(asset, (json.dumps(specials, indent=1, sort_keys=True) + "\n").encode())
    files = {
        str(p.relative_to(GOLDEN)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(GOLDEN.rglob("*"))
        if p.is_file() and p.name not in ("MANIFEST.json", "README.md") and p.relative_to(GOLDEN).parts[0] not in ("arch", "oracle")
    }
    # the software that made these files (the tokenizer files themselves: each case's meta.tokenizer_sha256)
    manifest = {"generated_by": "python scripts/make_golden.py (nox -s golden)",
                "versions": result_versions(GOLDEN_PACKAGES), "files": files}
    atomic_write(GOLDEN / "MANIFEST.json", (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode())
    print(f"wrote {written} cases and {len(files)} manifest entries under {GOLDEN}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
