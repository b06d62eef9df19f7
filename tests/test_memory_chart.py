"""The memory report's chart (matplotlib, the optional ``chart`` extra): a PNG of a fixed size, the same bytes when
drawn twice, redrawn from a report's JSON; without matplotlib the report still writes its .md and .json."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from vlmref.cli import memory as memory_cli
from vlmref.memory.report import chart_from_json, chart_size, png_chart, versions_line

REPO = Path(__file__).resolve().parent.parent
ROWS = [
    {"key": "qwen-vl-chat/lora/1gpu", "gpus": "1 x 3090", "documented_gib": 23.0, "predicted_gib": 19.5,
     "allocated_gib": 18.7, "peak_phase": "backward", "seconds": 9.0},
    {"key": "llava1d6-yi-34b-instruct/infer/4gpu", "gpus": "4 x A100", "documented_gib": 20.0, "predicted_gib": 21.1,
     "allocated_gib": 20.3, "peak_phase": "prefill", "seconds": 30.0},
    {"key": "yi-vl-6b-chat/infer/1gpu", "gpus": "1 x A10/3090/V100", "documented_gib": 18.0, "predicted_gib": 13.8,
     "allocated_gib": 13.0, "peak_phase": "prefill", "seconds": 12.0},
]
VERSIONS = {"python": "3.11.7", "torch": "2.13.0+cpu", "git_commit": "0123456789abcdef", "lock_sha256": "ab" * 32}


def test_chart_is_a_png_of_a_fixed_size_and_the_same_bytes_twice() -> None:
    pytest.importorskip("matplotlib")
    from PIL import Image

    footer = versions_line(VERSIONS)
    first = png_chart(ROWS, footer=footer)
    assert png_chart(ROWS, footer=footer) == first
    with Image.open(io.BytesIO(first)) as img:
        assert img.format == "PNG" and img.mode == "RGBA"
        assert img.size == chart_size(3, footer + " Chart: matplotlib x.y.z.") == (1200, 253)
        assert "Software" not in img.info  # no version string or date: the bytes follow the pixels only
    assert b"tIME" not in first and b"tEXt" not in first
    assert png_chart(ROWS[:2]) != first  # the rows, not a constant picture
    with Image.open(io.BytesIO(png_chart(ROWS * 6))) as img:  # 18 rows: taller, same width
        assert img.size == (1200, 150 + 30 * 18)


def test_chart_from_json_redraws_the_reports_chart(tmp_path: Path, capsys) -> None:
    pytest.importorskip("matplotlib")
    report = tmp_path / "documented.json"
    report.write_text(json.dumps({"versions": VERSIONS, "rows": ROWS, "estimates": []}))
    assert chart_from_json(report) == tmp_path / "documented.png"
    expected = png_chart(ROWS, footer=versions_line(VERSIONS))
    assert (tmp_path / "documented.png").read_bytes() == expected
    out = tmp_path / "sub" / "chart.png"
    assert memory_cli.main(["--chart_from", str(report), "--out", str(out)]) == 0
    assert out.read_bytes() == expected and capsys.readouterr().out == f"wrote {out}\n"
    assert memory_cli.main(["--chart_from", str(tmp_path / "missing.json")]) == 2
    assert memory_cli.main(["--chart_from", str(report), "--documented"]) == 2
    assert "error:" in capsys.readouterr().err


def test_committed_chart_is_the_committed_jsons() -> None:
    """benchmarks/results/memory_documented.png is what its .json draws (on the locked matplotlib)."""
    matplotlib = pytest.importorskip("matplotlib")
    locked = [line.split("==")[1] for line in (REPO / "constraints.txt").read_text().splitlines()
              if line.startswith("matplotlib==")]
    if [matplotlib.__version__] != locked:
        pytest.skip(f"matplotlib {matplotlib.__version__}, the lock has {locked}: other pixels are fine")
    results = REPO / "benchmarks" / "results"
    data = json.loads((results / "memory_documented.json").read_text())
    drawn = png_chart(data["rows"], footer=versions_line(data["versions"]))
    assert drawn == (results / "memory_documented.png").read_bytes(), \
        "redraw it: vlmref memory --chart_from benchmarks/results/memory_documented.json"


def test_without_matplotlib_the_report_has_md_json_and_one_note(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` raises ImportError
    monkeypatch.setattr(memory_cli, "documented_rows", lambda only, tiny=False, log=print, anchors=False, legacy_stack=False: (ROWS, []))
    out = tmp_path / "report"
    assert memory_cli.main(["--documented", "--out_dir", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["documented.json", "documented.md"]
    assert json.loads((out / "documented.json").read_text())["rows"] == ROWS
    assert (out / "documented.md").read_text().count("\n| ") == 3
    captured = capsys.readouterr()
    notes = [line for line in captured.err.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "pip install 'vlmref[chart]'" in notes[0] and "documented.png" in notes[0]
    assert "Traceback" not in captured.err and "documented.png" not in captured.out
    report = out / "documented.json"
    assert memory_cli.main(["--chart_from", str(report)]) == 1
    assert "pip install 'vlmref[chart]'" in capsys.readouterr().err and not (out / "documented.png").exists()
