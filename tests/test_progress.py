"""Long work shows progress on stderr (issue 13 item 20): the row bar of ``check-data`` (shared with ``sft``'s
pre-check) and the per-scenario lines of ``memory --documented``; stdout stays the report."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from vlmref.cli import memory as memory_cli
from vlmref.cli.main import main
from vlmref.datasets import progress
from vlmref.datasets.loader import load_dataset

MODEL = "qwen-vl-chat"  # text-only rows are valid for it: no images to open, fast


def _rows(path: Path, n: int, bad: tuple[int, ...] = ()) -> Path:
    """``n`` text rows; the 1-based lines in ``bad`` have no response."""
    lines = [json.dumps({"query": f"q{i}"} if i in bad else {"query": f"q{i}", "response": f"r{i}"})
             for i in range(1, n + 1)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _check_data(*datasets: Path) -> list[str]:
    return ["check-data", "--model_type", MODEL, "--dataset", *map(str, datasets)]


def _pieces(text: str) -> list[str]:
    """What a terminal would show line by line: split on newlines and on the bar's carriage returns."""
    return [p for p in re.split(r"[\r\n]", text) if p.strip()]


# ---- check-data ----------------------------------------------------------------------------------------------------
def test_check_data_shows_a_bar_on_large_files_and_keeps_stdout(tmp_path, monkeypatch, capsys) -> None:
    n = progress.PROGRESS_MIN_ROWS + 2
    data = _rows(tmp_path / "big.jsonl", n, bad=(5, n))
    assert main(_check_data(data)) == 1
    out, err = capsys.readouterr()
    assert "Checking rows" in err and f"{n - 2}/{n - 2}" in err  # rows checked / total (the 2 bad rows never parse)
    assert "field 'response'" not in err and "Checking rows" not in out
    errors = [line for line in out.splitlines() if "field 'response'" in line]
    assert [e.split(": field")[0] for e in errors] == [f"{data}:5", f"{data}:{n}"]  # each on its own line

    monkeypatch.setattr(progress, "PROGRESS_MIN_ROWS", 10 ** 9)  # no bar: the same report, nothing on stderr
    assert main(_check_data(data)) == 1
    plain_out, plain_err = capsys.readouterr()
    assert plain_out == out and plain_err == ""


def test_check_data_bar_spans_every_dataset_and_an_error_follows_it(tmp_path, capsys) -> None:
    half = progress.PROGRESS_MIN_ROWS // 2
    first, second = _rows(tmp_path / "a.jsonl", half), _rows(tmp_path / "b.jsonl", half)
    assert main(_check_data(first, second, tmp_path / "missing.jsonl")) == 2
    out, err = capsys.readouterr()
    total = 2 * half
    assert f"{total}/{total}" in err and out == ""
    last = err.splitlines()[-1]
    assert last.startswith("error: unknown dataset") and "Checking rows" not in last  # below the closed bar


def test_small_datasets_have_no_bar_and_the_loader_reports_each_row(tmp_path, capsys) -> None:
    n = progress.PROGRESS_MIN_ROWS - 1
    data = _rows(tmp_path / "small.jsonl", n)
    assert main(_check_data(data)) == 0
    assert capsys.readouterr().err == ""
    calls: list[tuple[int, int]] = []
    load_dataset(str(data), MODEL, check_dataset_strategy="discard", progress=lambda d, t: calls.append((d, t)))
    assert len(calls) == n and calls[0] == (1, n) and calls[-1] == (n, n)


# ---- the bar itself ------------------------------------------------------------------------------------------------
def test_messages_go_above_the_bar_on_their_own_line(capsys) -> None:
    with progress.RowProgress("Checking rows", progress.PROGRESS_MIN_ROWS) as bar:
        assert bar.bar is not None
        bar.update(10)
        bar.say("warning: d.jsonl:3: field 'images' (kept)")
        bar.update(progress.PROGRESS_MIN_ROWS - 10)
    out, err = capsys.readouterr()
    assert out == "" and "warning: d.jsonl:3: field 'images' (kept)" in _pieces(err)
    assert err.endswith("\n")  # closed: the next line starts clean


def test_the_bar_opens_when_a_growing_total_reaches_the_threshold(capsys) -> None:
    bar = progress.RowProgress("Checking rows")
    bar.advance(5, 1000)
    assert bar.bar is None
    bar.advance(1001, progress.PROGRESS_MIN_ROWS)
    assert bar.bar is not None and bar.bar.n == 1001
    bar.close()
    assert f"1001/{progress.PROGRESS_MIN_ROWS}" in capsys.readouterr().err


def test_without_tqdm_there_is_no_bar_and_messages_still_print(monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import blocked
    bar = progress.RowProgress("Checking rows", 10 * progress.PROGRESS_MIN_ROWS)
    bar.update(3)
    bar.say("warning: kept")
    bar.close()
    assert bar.bar is None and capsys.readouterr().err == "warning: kept\n"


# ---- memory --documented -------------------------------------------------------------------------------------------
class _FakeEstimate:
    predicted_gib, peak_allocated_gib, peak_reserved_gib, peak_phase, seconds = 20.0, 18.5, 18.8, "backward", 24.0
    per_device = {"cuda:0": {"allocated": int(18.5 * 2**30), "reserved": int(18.8 * 2**30), "cuda_context": 500 << 20,
                             "nccl": 0, "nvidia_smi": int(20.0 * 2**30)}}

    def to_dict(self) -> dict:
        return {"predicted_gib": self.predicted_gib}


@pytest.mark.parametrize("as_json", [True, False])
def test_memory_documented_logs_each_scenario_with_an_eta(tmp_path, monkeypatch, capsys, as_json: bool) -> None:
    from vlmref.memory import simulate as simulate_module
    from vlmref.memory.documented import DOCUMENTED

    now = [0.0]

    def fake_simulate(scenario, tiny=False):
        now[0] += 24.0  # every scenario takes 24 s on the fake clock
        return _FakeEstimate()

    monkeypatch.setattr(simulate_module, "simulate", fake_simulate)
    monkeypatch.setattr(memory_cli, "_clock", lambda: now[0])
    argv = ["memory", "--documented", "--out_dir", str(tmp_path)] + (["--json"] if as_json else [])
    assert main(argv) == 0
    out, err = capsys.readouterr()
    n = len(DOCUMENTED)
    lines = err.splitlines()
    assert len(lines) == 2 * n
    first, second = DOCUMENTED[0], DOCUMENTED[1]
    assert lines[0] == f"[1/{n}] {first.key}: tracing {first.scenario.label()} ..."
    assert lines[1].startswith(f"[1/{n}] {first.key} ... 24.0 s, about 6 min to go (documented ")
    assert lines[2].startswith(f"[2/{n}] {second.key}: tracing ")
    assert lines[-3].startswith(f"[{n - 1}/{n}] {DOCUMENTED[-2].key} ... 24.0 s, about 24 s to go")
    assert lines[-1].startswith(f"[{n}/{n}] {DOCUMENTED[-1].key} ... 24.0 s, done")
    assert "tracing" not in out and f"[1/{n}]" not in out
    if as_json:
        assert len(json.loads(out)["rows"]) == n  # stdout is only the JSON
    else:
        assert first.key in out and "within +-10%" in out


def test_time_to_go_uses_the_mean_of_finished_scenarios() -> None:
    assert memory_cli.time_to_go([30.0, 50.0], 2) == "about 80 s to go"
    assert memory_cli.time_to_go([41.2], 9) == "about 6 min to go"
    assert memory_cli.time_to_go([41.2], 0) == "done"
