"""Regenerate golden/arch/ from the upstream facts recorded in scripts/arch_golden/<family>.py, then its MANIFEST.

    python scripts/make_arch_golden.py

Each family generator writes golden/arch/<model_type>.json (upstream checkpoint keys and shapes, per-component
parameter counts, the published total with its source) without importing vlmref's nn.Modules, so the tests that
compare vlmref's models against these files are real checks. Commit changes here only with the reason.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ARCH = REPO / "golden" / "arch"
FAMILIES = ("cogvlm", "qwen_vl", "internlm_xcomposer2", "yi_vl", "llava_next")


def manifest() -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(ARCH.glob("*.json")) if p.name != "MANIFEST.json"}


def main() -> int:
    for family in FAMILIES:
        path = REPO / "scripts" / "arch_golden" / f"{family}.py"
        spec = importlib.util.spec_from_file_location(f"arch_golden_{family}", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        if module.main([]) != 0:
            print(f"{path}: failed", file=sys.stderr)
            return 1
    entries = manifest()
    (ARCH / "MANIFEST.json").write_text(json.dumps(entries, indent=1, sort_keys=True) + "\n")
    print(f"golden/arch: {len(entries)} files, MANIFEST.json written")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
