"""Yi-VL's part of ``vlmref export --merge_lora``: the merged vision tower goes back where the loader looks first."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from .config import vision_tower_dir


def export_vision_tower(merged: Any, base_dir: Path, target: Path) -> None:
    """Write ``vit/<name>`` (the vision tower the loader prefers) with the merged vision-tower weights."""
    from safetensors.torch import save_file

    source = vision_tower_dir(base_dir, getattr(merged.config, "mm_vision_tower", None))
    if source is None:
        return
    rel = Path(source).relative_to(base_dir)
    dest = Path(target) / rel
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns("*.safetensors", "*.bin", "*.pt", "*.index.json"))
    tower = merged.model.vision_tower.vision_tower.state_dict()
    save_file({k: v.detach().to("cpu").contiguous() for k, v in tower.items()}, str(dest / "model.safetensors"),
              metadata={"format": "pt"})
