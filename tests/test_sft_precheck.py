"""``vlmref sft`` before the model loads: every row checked (all strategies), missing packages, bad paths and offline
hub ids as one ``error:`` line (exit 2), ``--debug``; the one ``--max_length`` rule shared with ``check-data``; the
torchrun relaunch keeping empty arguments; ``vlmref sft args.json``.

The commands run through ``vlmref.cli.main.main`` (the ``vlmref`` entry point) or a subprocess. The model loader is
replaced by one that fails the test, so each test proves that its error comes before the model would load.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from sft_worker import REPO, cli_env, free_port

from vlmref.cli import sft as cli_sft
from vlmref.cli.main import main
from vlmref.llm import sft_precheck
from vlmref.llm.sft_args import clean_argv, parse_sft_args

LLAVA = "llava1d6-mistral-7b-instruct"


@pytest.fixture
def no_model_load(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*a, **k):
        raise AssertionError("the model was loaded before the error")

    monkeypatch.setattr("vlmref.models.loader.get_model_tokenizer", refuse)
    monkeypatch.setattr("vlmref.models.loader.load_pretrained_model", refuse)


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """A folder that passes the path check (config.json); loading it would fail (see ``no_model_load``)."""
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    return folder


def _image(path: Path, size: tuple[int, int] = (640, 480)) -> str:
    Image.new("RGB", size, (200, 30, 30)).save(path)
    return str(path)


def _rows(tmp_path: Path, n: int, missing: tuple[int, ...] = (), no_image: tuple[int, ...] = ()) -> Path:
    """``n`` LLaVA rows (1-based line numbers in ``missing`` point at absent images; in ``no_image`` have none)."""
    img = _image(tmp_path / "red.png", (32, 24))
    lines = []
    for line in range(1, n + 1):
        images = [str(tmp_path / f"gone{line}.png")] if line in missing else [] if line in no_image else [img]
        lines.append(json.dumps({"query": "Describe the image.", "response": f"row {line}", "images": images}))
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def _sft(model_dir: Path, data: Path, *extra: str) -> list[str]:
    return ["sft", "--model_type", LLAVA, "--model_id_or_path", str(model_dir), "--dataset", str(data),
            "--output_dir", str(model_dir.parent / "out"), "--dataset_test_ratio", "0", *extra]


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


# ---- 2. fail fast: every row before the model ---------------------------------------------------------------------
def test_default_strategy_lists_every_bad_row_before_the_model_loads(tmp_path, model_dir, no_model_load, capsys):
    data = _rows(tmp_path, 8, missing=(3, 6))
    assert main(_sft(model_dir, data)) == 2  # --check_dataset_strategy none (ms-swift's default)
    err = capsys.readouterr().err
    for line in (3, 6):
        assert f"{data}:{line}: field 'images[0]': expected a readable image; found image " in err
    (error,) = _error_lines(err)
    assert "2 rows are invalid (image_missing 2" in error and "--check_dataset_strategy discard" in error
    assert "Traceback" not in err and not (model_dir.parent / "out").exists()


def test_error_strategy_stops_at_the_first_bad_row_in_file_order(tmp_path, model_dir, no_model_load, capsys):
    data = _rows(tmp_path, 30, missing=(29,), no_image=(4,))
    assert main(_sft(model_dir, data, "--check_dataset_strategy", "error")) == 2
    (error,) = _error_lines(capsys.readouterr().err)
    assert error.startswith(f"error: {data}:4: field 'images': expected exactly 1 image(s)")


def test_error_strategy_orders_unparseable_rows_with_the_others(tmp_path, model_dir, no_model_load, capsys):
    data = _rows(tmp_path, 6, missing=(5,))
    lines = data.read_text().splitlines()
    lines[1] = '{"query": "broken'  # line 2: invalid JSON, found by the loader; line 5 by the image check
    data.write_text("\n".join(lines) + "\n")
    assert main(_sft(model_dir, data, "--check_dataset_strategy", "error")) == 2
    (error,) = _error_lines(capsys.readouterr().err)
    assert error.startswith(f"error: {data}:2: ")


def test_discard_and_warning_count_every_row(tmp_path):
    data = _rows(tmp_path, 6, missing=(2,), no_image=(5,))
    for strategy, kept in (("discard", 4), ("warning", 6)):
        args = parse_sft_args(["--model_type", LLAVA, "--dataset", str(data), "--dataset_test_ratio", "0",
                               "--check_dataset_strategy", strategy]).resolve(log=lambda m: None)
        got = sft_precheck.precheck_rows(args, print)
        counts = got.report.sources[str(data)]
        assert len(got.train) == kept and (counts.rows, counts.valid, counts.invalid) == (6, 4, 2)
        assert got.report.by_reason == {"image_missing": 1, "image_count": 1}
        assert (counts.discarded, counts.kept_invalid) == ((2, 0) if strategy == "discard" else (0, 2))


def test_precheck_shows_progress_on_large_datasets(tmp_path, model_dir, no_model_load, capsys):
    n = sft_precheck.PROGRESS_MIN_ROWS + 1
    data = _rows(tmp_path, n, missing=(n,))
    assert main(_sft(model_dir, data)) == 2
    err = capsys.readouterr().err
    assert "Checking rows" in err and f"{n}/{n}" in err
    assert err.rstrip().splitlines()[-1].startswith(f"error: {data}:{n}: field 'images[0]'")  # below the bar


def test_a_training_error_is_printed_after_the_bar(monkeypatch, capsys):
    from vlmref.errors import DatasetRowError
    from vlmref.llm.sft import DistSetting, Logger, Plan, SftRun, TrainState

    run = SftRun.__new__(SftRun)
    run.args = parse_sft_args(["--model_type", LLAVA, "--dataset", "d.jsonl"]).resolve(log=lambda m: None)
    run.dist, run.engine, run.ddp = DistSetting(), None, None
    run.log = Logger(run.dist)
    run.plan = Plan.make(4, run.args, 1)
    run.state = TrainState()
    run.model = type("M", (), {"train": lambda self: None})()

    def bad_step(step):
        raise DatasetRowError("d.jsonl", 3, "images", "a readable image", "missing", "image_missing")

    monkeypatch.setattr(run, "_train_step", bad_step)
    with pytest.raises(DatasetRowError):
        run._train()
    assert run.log.bar is None and capsys.readouterr().err.endswith("\n")  # the bar is closed: its line is ended


# ---- 3. one --max_length rule ---------------------------------------------------------------------------------------
@pytest.mark.real_tokenizer
def test_check_data_follows_sfts_max_length_rule(tokenizers_root, tmp_path, capsys):
    img = _image(tmp_path / "coco.png")  # 640x480: 2340 LLaVA-NeXT image positions
    rows = [{"query": "Describe the image.", "response": "A red picture.", "images": [img]},
            {"query": "Describe the image.", "response": "word " * 2100, "images": [img]}]
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    base = ["check-data", "--model_type", LLAVA, "--dataset", str(data), "--max_length", "2048"]
    assert main(base) == 1
    out = capsys.readouterr().out
    assert f"{data}:1:" not in out and "1 valid, 1 invalid" in out  # row 1 trains under sft --max_length 2048
    too_long = next(line for line in out.splitlines() if line.startswith(f"{data}:2:"))
    assert "max_length 2048 counts text tokens only (ms-swift's budget" in too_long
    text = int(too_long.split("this row has ")[1].split()[0])
    assert 2048 < text < 2340 and "4388" not in too_long  # the user's limit, not 2048 + image positions
    assert main([*base, "--max_length_counts_images", "true"]) == 1
    out = capsys.readouterr().out
    assert f"{data}:1:" in out and "max_length 2048 counts every position" in out and "0 valid, 2 invalid" in out


@pytest.mark.real_tokenizer
def test_sft_length_check_states_the_same_rule(tokenizers_root, tmp_path):
    from vlmref.cli.render import load_cli_tokenizer
    from vlmref.datasets.loader import load_dataset
    from vlmref.errors import DatasetRowError
    from vlmref.templates import get_template

    img = _image(tmp_path / "coco.png")
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"query": "Describe the image.", "response": "word " * 2100, "images": [img]}) + "\n")
    tokenizer, _ = load_cli_tokenizer(LLAVA, None)
    loaded = load_dataset(str(data), LLAVA, check_dataset_strategy="discard")
    for counts_images, rule in ((False, "counts text tokens only"), (True, "counts every position")):
        template = get_template("llava-mistral", tokenizer, max_length=2048, max_length_counts_images=counts_images)
        with pytest.raises(DatasetRowError, match=f"max_length 2048 {rule}") as e:
            sft_precheck.encode_row(template, loaded.train[0])
        assert (e.value.source, e.value.line, e.value.reason) == (str(data), 1, "too_long")


# ---- 8. the torchrun relaunch keeps empty arguments ---------------------------------------------------------------
def test_relaunch_argv_keeps_empty_and_dash_values(fake_torchrun: dict) -> None:
    seen = fake_torchrun
    for entry in (lambda argv: main(["sft", *argv]), cli_sft.main):  # the namespace rebuild and the raw argv
        assert entry(["--model_type", LLAVA, "--dataset", "d.jsonl", "--system", "", "--lora_target_regex=-x", " "]) == 0
        child = seen["cmd"][seen["cmd"].index("vlmref.cli.sft") + 1:]
        args = parse_sft_args(clean_argv(child))  # what the child (cli.sft.main) parses
        assert (args.system, args.lora_target_regex, args.dataset) == ("", "-x", ["d.jsonl"])
    assert clean_argv(["--dataset", "a", " ", "--system", " "]) == ["--dataset", "a", "--system", " "]


def test_relaunched_child_gets_the_empty_system(tmp_path: Path, model_dir: Path) -> None:
    data = _rows(tmp_path, 2, missing=(2,))
    argv = _sft(model_dir, data, "--system", "")
    done = subprocess.run([sys.executable, "-m", "vlmref.cli.main", *argv], cwd=str(REPO), capture_output=True,
                          text=True, timeout=120, env=cli_env(NPROC_PER_NODE="1", MASTER_PORT=str(free_port())))
    assert "expected one argument" not in done.stderr and "--system=" in done.stdout
    assert f"error: {data}:2: field 'images[0]'" in done.stderr  # the child ran the pre-check with system=''


# ---- 9. vlmref sft args.json ---------------------------------------------------------------------------------------
def test_sft_reads_a_json_arguments_file(tmp_path, model_dir, no_model_load, capsys):
    data = _rows(tmp_path, 3, missing=(3,))
    args_file = tmp_path / "args.json"
    args_file.write_text(json.dumps({"model_type": LLAVA, "dataset": [str(data)], "model_id_or_path": "/nonexistent",
                                     "dataset_test_ratio": 0, "check_dataset_strategy": "error"}))
    # the file's values are used (model_type, dataset, strategy) and a flag after it overrides one of them
    assert main(["sft", str(args_file), "--model_id_or_path", str(model_dir)]) == 2
    (error,) = _error_lines(capsys.readouterr().err)
    assert error.startswith(f"error: {data}:3: field 'images[0]'")
    args_file.write_text(json.dumps({"model_type": LLAVA, "lora_rnak": 4}))
    assert main(["sft", str(args_file)]) == 2
    assert _error_lines(capsys.readouterr().err) == [f"error: {args_file}: key 'lora_rnak': --lora_rnak (did you mean "
                                                     "--lora_rank?)"]


# ---- 12. packages, paths and hub ids before the model; --debug ----------------------------------------------------
def test_missing_peft_is_one_line_with_the_fix(tmp_path, model_dir, no_model_load, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "peft", None)  # as after `pip install .[tokenizers]`
    assert main(_sft(model_dir, _rows(tmp_path, 2))) == 2
    (error,) = _error_lines(capsys.readouterr().err)
    assert "peft (for --sft_type lora" in error and error.endswith("pip install 'vlmref[train]'")
    monkeypatch.setitem(sys.modules, "deepspeed", None)
    assert main(_sft(model_dir, _rows(tmp_path, 2), "--sft_type", "full", "--deepspeed", "default-zero2")) == 2
    (error,) = _error_lines(capsys.readouterr().err)
    assert "deepspeed (for --deepspeed default-zero2)" in error and "peft" not in error


def test_bad_model_paths_are_one_line(tmp_path, model_dir, no_model_load, capsys):
    data = _rows(tmp_path, 2)
    assert main(_sft(model_dir, data, "--model_id_or_path", "/nonexistent")) == 2
    assert _error_lines(capsys.readouterr().err) == [
        "error: --model_id_or_path '/nonexistent' is not a folder: expected a local checkpoint folder or a hub id "
        "such as 'Qwen/Qwen-VL-Chat'"]
    (model_dir / "config.json").unlink()
    assert main(_sft(model_dir, data)) == 2
    (error,) = _error_lines(capsys.readouterr().err)
    assert "has no config.json" in error


def test_render_bad_path_is_one_line_and_debug_shows_the_traceback(capsys):
    assert main(["render", "--model_type", "qwen-vl-chat", "--query", "hi", "--model_id_or_path", "/nonexistent"]) == 2
    err = capsys.readouterr().err
    assert _error_lines(err) == [err.strip()] and "'/nonexistent' is not a local folder" in err
    with pytest.raises(FileNotFoundError):  # --debug: the traceback, anywhere on the command line
        main(["render", "--model_type", "qwen-vl-chat", "--query", "hi", "--model_id_or_path", "/nonexistent",
              "--debug"])


def test_offline_hub_ids_are_one_line(tmp_path: Path) -> None:
    data = tmp_path / "text.jsonl"
    data.write_text('{"query": "hi", "response": "ok"}\n')
    runs = {
        "sft": ["sft", "--model_type", "qwen-vl-chat", "--dataset", str(data), "--dataset_test_ratio", "0",
                "--model_id_or_path", "Qwen/Qwen-VL-Chat"],
        "infer": ["infer", "--model_type", "qwen-vl-chat"],
    }
    for name, argv in runs.items():
        done = subprocess.run([sys.executable, "-m", "vlmref.cli.main", *argv], cwd=str(REPO), capture_output=True,
                              text=True, timeout=120, env=cli_env(HF_HUB_OFFLINE="1", USE_HF="1"))
        assert done.returncode == 2, (name, done.stderr[-2000:])
        assert "Traceback" not in done.stderr
        (error,) = _error_lines(done.stderr)
        assert "could not download 'Qwen/Qwen-VL-Chat' from the HuggingFace Hub" in error and "Offline?" in error
