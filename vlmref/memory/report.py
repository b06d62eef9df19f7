"""The documented-vs-predicted table as text, markdown, JSON and a PNG bar chart (pillow; no plotting library).

>>> rows = [{"key": "qwen-vl-chat/lora/1gpu", "documented_gib": 23.0, "predicted_gib": 20.1, "allocated_gib": 19.3,
...          "gpus": "1 x 3090", "peak_phase": "backward", "seconds": 9.0}]
>>> print(markdown_table(rows).splitlines()[2])
| qwen-vl-chat/lora/1gpu | 1 x 3090 | 23.0 | 20.1 | 0.87 | 19.3 | backward |
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..utils import atomic_write_bytes

TOLERANCE = 0.10

HEADER = ("footprint", "GPUs", "documented GiB/GPU", "predicted GiB/GPU", "ratio", "allocated GiB", "peak in")


def ratio(row: dict[str, Any]) -> float:
    return row["predicted_gib"] / row["documented_gib"]


def _cells(row: dict[str, Any]) -> list[str]:
    return [row["key"], row["gpus"], f"{row['documented_gib']:.1f}", f"{row['predicted_gib']:.1f}",
            f"{ratio(row):.2f}", f"{row['allocated_gib']:.1f}", row["peak_phase"]]


def markdown_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(_cells(r)) + " |" for r in rows]
    return "\n".join(lines)


def text_table(rows: list[dict[str, Any]]) -> str:
    table = [list(HEADER)] + [_cells(r) for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(HEADER))]
    out = ["  ".join(c.ljust(w) if i in (0, 1, 6) else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths, strict=True)))
           for line in table]
    within = sum(abs(ratio(r) - 1) <= TOLERANCE for r in rows)
    out.append(f"{within}/{len(rows)} within +-{TOLERANCE:.0%} of the documented figure")
    return "\n".join(out)


def png_chart(rows: list[dict[str, Any]], title: str = "GPU memory per GPU: documented (seeds) vs predicted",
              footer: str = "") -> bytes:
    """Horizontal paired bars, one pair per footprint; the +-10 % band of each documented figure is shaded."""
    import io

    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    label_w, bar_w, row_h, top, pad = 330, 560, 34, 50, 12
    width, height = label_w + bar_w + 90, top + row_h * len(rows) + 40
    scale = bar_w / max(max(r["documented_gib"], r["predicted_gib"]) for r in rows) / 1.05
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    draw.text((pad, 12), title, fill="black", font=font)
    draw.rectangle((pad, 30, pad + 10, 38), fill=(90, 90, 90))
    draw.text((pad + 14, 28), "documented", fill="black", font=font)
    draw.rectangle((pad + 90, 30, pad + 100, 38), fill=(46, 117, 182))
    draw.text((pad + 104, 28), "predicted (nvidia-smi style), within +-10 % (shaded band)", fill="black", font=font)
    draw.rectangle((pad + 440, 30, pad + 450, 38), fill=(214, 96, 77))
    draw.text((pad + 454, 28), "predicted, outside the band", fill="black", font=font)
    for i, row in enumerate(rows):
        y = top + i * row_h
        draw.text((pad, y + 8), f"{row['key']} ({row['gpus']})", fill="black", font=font)
        x0 = label_w
        doc, pred = row["documented_gib"], row["predicted_gib"]
        draw.rectangle((x0 + doc * (1 - TOLERANCE) * scale, y + 2, x0 + doc * (1 + TOLERANCE) * scale, y + row_h - 6),
                       fill=(225, 235, 225))
        draw.rectangle((x0, y + 4, x0 + doc * scale, y + 13), fill=(90, 90, 90))
        colour = (46, 117, 182) if abs(pred / doc - 1) <= TOLERANCE else (214, 96, 77)
        draw.rectangle((x0, y + 16, x0 + pred * scale, y + 25), fill=colour)
        draw.text((x0 + max(doc, pred) * scale + 6, y + 8), f"{doc:.0f} / {pred:.1f} GiB", fill="black", font=font)
    if footer:  # the versions that made the chart, in the bottom margin
        draw.text((pad, top + row_h * len(rows) + 14), footer, fill=(80, 80, 80), font=font)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def versions_line(versions: dict[str, Any]) -> str:
    """``Made with python 3.11.7, torch 2.13.0, ... (commit abc1234, lock 1a2b3c4d5e6f)``: the md table's footer."""
    packages = ", ".join(f"{k} {v}" for k, v in versions.items() if k not in ("git_commit", "lock_sha256") and v)
    commit = (versions.get("git_commit") or "unknown")[:7]
    lock = (versions.get("lock_sha256") or "none")[:12]
    return f"Made with {packages} (commit {commit}, lock {lock})."


def write_report(rows: list[dict[str, Any]], out_dir: str | os.PathLike, details: list[dict[str, Any]],
                 stem: str = "documented") -> list[Path]:
    """``<stem>.md``, ``<stem>.png`` and ``<stem>.json`` under ``out_dir`` (each written atomically, world-readable),
    each recording the versions that made it."""
    from ..bench.env import result_versions

    out = Path(out_dir)
    versions = result_versions()
    footer = versions_line(versions)
    paths = [out / f"{stem}.md", out / f"{stem}.png", out / f"{stem}.json"]
    atomic_write_bytes(paths[0], (markdown_table(rows) + "\n\n" + footer + "\n").encode(), mode=0o644)
    atomic_write_bytes(paths[1], png_chart(rows, footer=footer), mode=0o644)
    table = json.dumps({"versions": versions, "rows": rows, "estimates": details}, indent=2) + "\n"
    atomic_write_bytes(paths[2], table.encode(), mode=0o644)
    return paths
