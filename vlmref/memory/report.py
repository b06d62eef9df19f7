"""The documented-vs-predicted table as text, markdown, JSON and a PNG chart (matplotlib: the optional ``chart`` extra).

>>> rows = [{"key": "qwen-vl-chat/lora/1gpu", "documented_gib": 23.0, "predicted_gib": 20.1, "allocated_gib": 19.3,
...          "reserved_gib": 19.6, "gpus": "1 x 3090", "peak_phase": "backward", "seconds": 9.0}]
>>> print(markdown_table(rows).splitlines()[2])
| qwen-vl-chat/lora/1gpu | 1 x 3090 | 23.0 | 19.3 | 19.6 | 0.5 | 20.1 | 0.87 | +2.9 | backward |
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..utils import atomic_write_bytes

TOLERANCE = 0.10

HEADER = ("footprint", "GPUs", "documented GiB/GPU", "allocated GiB", "reserved GiB", "+ context/NCCL GiB",
          "predicted GiB/GPU", "ratio", "residual GiB", "peak in")
_LEFT = (0, 1, 9)  # left-aligned columns of the text table


def ratio(row: dict[str, Any]) -> float:
    return row["predicted_gib"] / row["documented_gib"]


def modelled(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows with a prediction (an anchor vlmref does not model has none)."""
    return [r for r in rows if r.get("predicted_gib") is not None]


def _gib(value: Any) -> str:
    return "-" if value is None else f"{value:.1f}"


def _cells(row: dict[str, Any]) -> list[str]:
    """The row's cells: what the prediction is made of on its busiest device, step by step (allocated -> reserved ->
    + CUDA context and NCCL = predicted), then the ratio and the residual (documented - predicted)."""
    head = [row["key"], row["gpus"], f"{row['documented_gib']:.1f}"]
    if row.get("predicted_gib") is None:
        return head + ["-"] * 6 + [f"not modelled: {row.get('not_modelled', '')}"]
    outside = row.get("context_nccl_gib")
    if outside is None and row.get("reserved_gib") is not None:  # a report written before the column existed
        outside = row["predicted_gib"] - row["reserved_gib"]
    residual = row.get("residual_gib", row["documented_gib"] - row["predicted_gib"])
    return head + [_gib(row["allocated_gib"]), _gib(row.get("reserved_gib")), _gib(outside),
                   f"{row['predicted_gib']:.1f}", f"{ratio(row):.2f}", f"{residual:+.1f}", row["peak_phase"]]


def markdown_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(_cells(r)) + " |" for r in rows]
    return "\n".join(lines)


def within_line(rows: list[dict[str, Any]]) -> str:
    """``6/16 within +-10% of the documented figure`` (rows without a prediction named apart)."""
    done = modelled(rows)
    within = sum(abs(ratio(r) - 1) <= TOLERANCE for r in done)
    rest = len(rows) - len(done)
    return (f"{within}/{len(done)} within +-{TOLERANCE:.0%} of the documented figure"
            + (f" ({rest} not modelled)" if rest else ""))


def text_table(rows: list[dict[str, Any]]) -> str:
    table = [list(HEADER)] + [_cells(r) for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(HEADER))]
    out = ["  ".join(c.ljust(w) if i in _LEFT else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths, strict=True)))
           for line in table]
    out.append(within_line(rows))
    return "\n".join(out)


CHART_EXTRA = "pip install 'vlmref[chart]'"
CHART_WIDTH_PX, CHART_DPI = 1200, 100  # fixed: the same rows give the same pixels (and bytes, on the same versions)
_ROW_PX, _BASE_PX, _FOOTER_LINE_PX = 30, 150, 13
_DOCUMENTED, _WITHIN, _OUTSIDE, _BAND = "#6b6b6b", "#2e75b6", "#d6604d", "#d5ead5"


def chart_size(n_rows: int, footer: str = "") -> tuple[int, int]:
    """(width, height) in pixels of the chart of ``n_rows`` rows with ``footer``."""
    return CHART_WIDTH_PX, _BASE_PX + _ROW_PX * n_rows + _FOOTER_LINE_PX * len(_footer_lines(footer))


def _footer_lines(footer: str) -> list[str]:
    import textwrap

    return textwrap.wrap(footer, 230) if footer else []


def _gib_panel(ax: Any, rows: list[dict[str, Any]], colours: list[str]) -> None:
    """Documented and predicted GiB as a bar pair per row, over the documented figure's +-10 % band."""
    ys = range(len(rows))
    docs = [r["documented_gib"] for r in rows]
    preds = [r["predicted_gib"] for r in rows]
    ax.barh(ys, [2 * TOLERANCE * d for d in docs], left=[(1 - TOLERANCE) * d for d in docs], height=0.9,
            color=_BAND, zorder=1)
    ax.barh([y - 0.2 for y in ys], docs, height=0.38, color=_DOCUMENTED, zorder=2)
    ax.barh([y + 0.2 for y in ys], preds, height=0.38, color=colours, zorder=2)
    ends = [max((1 + TOLERANCE) * d, p) for d, p in zip(docs, preds, strict=True)]
    for y, d, p, x in zip(ys, docs, preds, ends, strict=True):
        ax.text(x + 0.6, y, f"{d:.1f} / {p:.1f}", va="center", fontsize=8)
    ax.set_xlim(0, max(ends) * 1.14)
    ax.set_yticks(list(ys), [f"{r['key']} ({r['gpus']})" for r in rows], fontsize=9)
    ax.invert_yaxis()
    ax.set_xlabel("GiB per GPU (bar labels: documented / predicted)")
    ax.grid(axis="x", color="#dddddd", zorder=0)
    ax.set_axisbelow(True)


def _ratio_panel(ax: Any, ratios: list[float], colours: list[str]) -> None:
    """predicted/documented per row against the shaded +-10 % band and the 1.0 line."""
    from matplotlib.ticker import MultipleLocator

    ys = list(range(len(ratios)))
    ax.axvspan(1 - TOLERANCE, 1 + TOLERANCE, color=_BAND, zorder=1)
    ax.axvline(1.0, color="#333333", linewidth=1, zorder=2)
    ax.scatter(ratios, ys, c=colours, s=28, zorder=3)
    for y, q in zip(ys, ratios, strict=True):
        ax.text(q, y - 0.3, f"{q:.2f}", ha="center", va="bottom", fontsize=7)
    ax.set_xlim(min(0.8, min(ratios) - 0.06), max(1.2, max(ratios) + 0.06))
    ax.xaxis.set_major_locator(MultipleLocator(0.1))
    ax.set_xlabel("predicted / documented")
    ax.grid(axis="x", color="#dddddd", zorder=0)
    ax.set_axisbelow(True)
    ax.tick_params(axis="y", left=False)


def png_chart(rows: list[dict[str, Any]], title: str = "GPU memory per GPU: documented (seeds) vs predicted",
              footer: str = "", documented: str = "documented (seed)") -> bytes:
    """The rows as a PNG (matplotlib, Agg, no display): paired GiB bars per footprint with each documented figure's
    +-10 % band shaded, and the predicted/documented ratio against the band. Raises ImportError without matplotlib."""
    import io

    import matplotlib  # first: a hidden matplotlib (None in sys.modules) fails here even if submodules are cached
    import matplotlib.style
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    if footer:
        footer = f"{footer} Chart: matplotlib {matplotlib.__version__}."
    lines = _footer_lines(footer)
    rows = modelled(rows)
    width, height = chart_size(len(rows), footer)
    ratios = [ratio(r) for r in rows]
    colours = [_WITHIN if abs(q - 1) <= TOLERANCE else _OUTSIDE for q in ratios]
    with matplotlib.style.context("default"):  # no user matplotlibrc changes the picture
        # + 0.25 px: the inches * dpi product lands inside the pixel whether a release rounds or truncates it
        fig = Figure(figsize=(width / CHART_DPI, (height + 0.25) / CHART_DPI), dpi=CHART_DPI)
        FigureCanvasAgg(fig)
        bottom = (_FOOTER_LINE_PX * len(lines) + 4) / height  # the footer's strip, below the layout
        fig.set_layout_engine("constrained", rect=(0, bottom, 1, 1 - bottom))
        gib, rel = fig.subplots(1, 2, sharey=True, width_ratios=(2.6, 1))
        _gib_panel(gib, rows, colours)
        _ratio_panel(rel, ratios, colours)
        band = f"±{TOLERANCE:.0%}"
        fig.legend(handles=[Patch(color=_DOCUMENTED, label=documented),
                            Patch(color=_WITHIN, label=f"predicted (nvidia-smi style), within {band}"),
                            Patch(color=_OUTSIDE, label=f"predicted, outside {band}"),
                            Patch(color=_BAND, label=f"documented {band} (band)")],
                   loc="outside lower center", ncol=4, frameon=False, fontsize=9)
        within = sum(c == _WITHIN for c in colours)
        fig.suptitle(f"{title}: {within}/{len(rows)} within {band}", fontsize=12)
        for i, line in enumerate(lines):
            fig.text(0.005, (_FOOTER_LINE_PX * (len(lines) - 1 - i) + 3) / height, line, fontsize=7, color="#555555")
        buf = io.BytesIO()
        fig.savefig(buf, format="png", metadata={"Software": None})  # no version string or date in the file
    return buf.getvalue()


def _legend(title: str) -> str:
    """The documented bars' legend entry of a report titled ``title``: ``documented (seed)`` for the seeds' table."""
    return title.split(",")[0].replace("(seeds)", "(seed)")


def chart_from_json(path: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Redraw the chart of a written report (its ``.json``: rows and versions) without tracing anything again; to
    ``out`` (default: the JSON's path with ``.png``), atomically."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    target = Path(out) if out is not None else Path(path).with_suffix(".png")
    title = data.get("title", "documented (seeds)")
    atomic_write_bytes(target, png_chart(data["rows"], title=f"GPU memory per GPU: {title} vs predicted",
                                         footer=versions_line(data["versions"]), documented=_legend(title)),
                       mode=0o644)
    return target


def versions_line(versions: dict[str, Any]) -> str:
    """``Made with python 3.11.7, torch 2.13.0, ... (commit abc1234, lock 1a2b3c4d5e6f)``: the md table's footer."""
    packages = ", ".join(f"{k} {v}" for k, v in versions.items() if k not in ("git_commit", "lock_sha256") and v)
    commit = (versions.get("git_commit") or "unknown")[:7]
    lock = (versions.get("lock_sha256") or "none")[:12]
    return f"Made with {packages} (commit {commit}, lock {lock})."


def write_report(rows: list[dict[str, Any]], out_dir: str | os.PathLike, details: list[dict[str, Any]],
                 stem: str = "documented", title: str = "documented (seeds)") -> list[Path]:
    """``<stem>.md``, ``<stem>.png`` and ``<stem>.json`` under ``out_dir`` (each written atomically, world-readable),
    each recording the versions that made it; the paths written. Without matplotlib no ``.png``: a note on stderr."""
    import sys

    from ..bench.env import result_versions

    out = Path(out_dir)
    versions = result_versions()
    footer = versions_line(versions)
    md, png, table = out / f"{stem}.md", out / f"{stem}.png", out / f"{stem}.json"
    atomic_write_bytes(md, (markdown_table(rows) + "\n\n" + footer + "\n").encode(), mode=0o644)
    try:
        chart = png_chart(rows, title=f"GPU memory per GPU: {title} vs predicted", footer=footer,
                          documented=_legend(title))
    except ImportError as err:
        chart = None
        print(f"note: {png} not written, the chart needs matplotlib ({err}): {CHART_EXTRA}", file=sys.stderr)
    if chart is not None:
        atomic_write_bytes(png, chart, mode=0o644)
    data = json.dumps({"versions": versions, "title": title, "rows": rows, "estimates": details}, indent=2) + "\n"
    atomic_write_bytes(table, data.encode(), mode=0o644)
    return [md, table] if chart is None else [md, png, table]
