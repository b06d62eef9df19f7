"""``vlmref infer``: the interactive loop (driven through a pseudo-terminal and in-process), dataset mode, checkpoints
with ``--load_dataset_config true``, and the arguments' ms-swift names and defaults."""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from vlmref.cli.infer import add_parser, main
from vlmref.datasets.loader import load_dataset
from vlmref.datasets.split import sample_rows
from vlmref.llm.infer import DASHES, MEDIA_PROMPT, InferArguments, llm_infer
from vlmref.models.tiny import create_tiny_checkpoint
from vlmref.models.yi_vl.template import YI_VL_SYSTEM

DATASET = "coco-en-2-mini-sample"  # 24 generated images with captions, offline


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory, tokenizers_root):
    cache: dict[str, Path] = {}

    def get(model_type: str) -> Path:
        if model_type not in cache:
            cache[model_type] = create_tiny_checkpoint(model_type, tmp_path_factory.mktemp("tiny") / model_type)
        return cache[model_type]

    return get


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> str:
    from PIL import Image

    path = tmp_path_factory.mktemp("img") / "cat.png"
    Image.new("RGB", (64, 48), (120, 120, 120)).save(path)
    return str(path)


def results(folder: Path) -> list[dict]:
    files = sorted((Path(folder) / "infer_result").glob("*.jsonl"))
    assert len(files) == 1, files
    return [json.loads(line) for line in files[0].read_text(encoding="utf-8").splitlines()]


def clear_results(folder: Path) -> None:
    shutil.rmtree(Path(folder) / "infer_result", ignore_errors=True)


# ---- the REPL through a pseudo-terminal -----------------------------------------------------------------------------
class Terminal:
    """The master side of a pseudo-terminal: ``expect`` text in the program's output, ``send`` lines as typed input
    (the terminal echoes them, so the transcript reads like a session)."""

    def __init__(self, master: int) -> None:
        self.master = master
        self.buffer = b""
        self.pos = 0

    @property
    def transcript(self) -> str:
        return self.buffer.decode("utf-8", errors="replace").replace("\r\n", "\n")

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], max(timeout, 0))
        if not ready:
            return False
        try:
            chunk = os.read(self.master, 65536)
        except OSError:  # EIO: every slave end is closed
            chunk = b""
        if not chunk:
            raise EOFError
        self.buffer += chunk
        return True

    def expect(self, text: str, timeout: float = 90.0) -> str:
        """Wait for ``text`` after the previous match; return what came before it."""
        needle = text.encode()
        deadline = time.monotonic() + timeout
        while needle not in self.buffer[self.pos :]:
            try:
                if not self._read(deadline - time.monotonic()):
                    raise TimeoutError(f"waited for {text!r}; output so far:\n{self.transcript}")
            except EOFError:
                raise EOFError(f"the program ended before {text!r}; output:\n{self.transcript}") from None
        start = self.buffer.index(needle, self.pos)
        before = self.buffer[self.pos : start]
        self.pos = start + len(needle)
        return before.decode("utf-8", errors="replace").replace("\r\n", "\n")

    def send(self, line: str) -> None:
        os.write(self.master, (line + "\n").encode())

    def drain(self, timeout: float = 1.0) -> None:
        try:
            while self._read(timeout):
                pass
        except EOFError:
            pass


def yi_session(term: Terminal, image: str) -> str:
    """yi-vl ('round' media): a query with an image, a multi-line query without one, single-line, clear,
    reset-system, a query under the new system, exit. Returns the output of the first turn."""
    term.expect("Input `exit` or `quit` to exit the conversation.")
    term.expect("Input `clear` to clear the history.")
    term.expect("followed by the path to the multimedia file.")
    term.expect("<<< ")
    term.send("Describe this image.")
    term.expect(MEDIA_PROMPT)
    term.send(image)
    first = term.expect(DASHES)
    term.expect("<<< ")
    term.send("multi-line")
    term.expect("End multi-line input with `#`.")
    term.expect("Input `single-line` to switch to single-line input mode.")
    term.expect("<<<[M] ")
    term.send("first line")
    term.send("second line#")
    term.expect(MEDIA_PROMPT)
    term.send("")
    term.expect(DASHES)
    term.expect("<<<[M] ")
    term.send("single-line#")
    term.expect("<<< ")
    term.send("clear")
    term.expect("<<< ")
    term.send("reset-system")
    term.expect("<<<[S] ")
    term.send("You are terse.")
    term.expect("<<< ")
    term.send("Hi")
    term.expect(MEDIA_PROMPT)
    term.send("")
    term.expect(DASHES)
    term.expect("<<< ")
    term.send("exit")
    term.expect("save_result_path: ")
    return first


def check_yi_session(folder: Path, image: str, first: str, transcript: str) -> None:
    rows = results(folder)
    assert [r["query"] for r in rows] == ["Describe this image.", "first line\nsecond line", "Hi"]
    assert [r["images"] for r in rows] == [[image], [image, None], [None]]  # one entry per turn, growing
    assert rows[0]["history"] == [] and rows[1]["history"] == [["Describe this image.", rows[0]["response"]]]
    assert rows[2]["history"] == []  # reset-system clears the history
    assert [r["system"] for r in rows] == [YI_VL_SYSTEM, YI_VL_SYSTEM, "You are terse."]
    assert first.endswith(rows[0]["response"] + "\n")  # the streamed response, then the 50 dashes
    assert transcript.count(DASHES) == 3 and transcript.count(MEDIA_PROMPT) == 3
    assert "<<<[M] first line\nsecond line#\n" in transcript  # later lines of a multi-line input have no prompt
    assert "<<< clear\n<<< reset-system\n<<<[S] You are terse.\n<<< Hi\n" in transcript


YI_ARGS = ["--model_type", "yi-vl-6b-chat", "--max_new_tokens", "6", "--temperature", "0"]


@pytest.mark.real_tokenizer
def test_repl_on_a_pseudo_terminal_in_process(tiny_dir, image, monkeypatch) -> None:
    """``main`` in a thread with stdin/stdout/stderr on the slave side of a pty; the test types on the master."""
    folder = tiny_dir("yi-vl-6b-chat")
    clear_results(folder)
    master, slave = os.openpty()
    term = Terminal(master)
    tty_in = open(slave, encoding="utf-8", closefd=False)
    tty_out = open(os.dup(slave), "w", encoding="utf-8", buffering=1)
    monkeypatch.setattr(sys, "stdin", tty_in)
    monkeypatch.setattr(sys, "stdout", tty_out)
    monkeypatch.setattr(sys, "stderr", tty_out)
    rc: list[int] = []
    worker = threading.Thread(target=lambda: rc.append(main([*YI_ARGS, "--model_id_or_path", str(folder)])))
    worker.start()
    try:
        first = yi_session(term, image)
    finally:
        if worker.is_alive():  # a failed expectation: answer any pending prompt, then leave the loop
            for line in ("", "exit", "exit#"):
                term.send(line)
        worker.join(timeout=120)
        tty_out.close()
        tty_in.close()
        os.close(slave)
        term.drain(0.2)
        os.close(master)
    assert rc == [0]
    check_yi_session(folder, image, first, term.transcript)


@pytest.mark.slow  # a fresh interpreter imports torch + transformers: ~15-25 s on a shared 2-core machine
@pytest.mark.real_tokenizer
def test_repl_through_a_pseudo_terminal(tiny_dir, image, tmp_path) -> None:
    """``python -m vlmref.cli.infer`` as a child process on a pty (the real terminal input path of ``input()``)."""
    folder = tiny_dir("yi-vl-6b-chat")
    clear_results(folder)
    master, slave = os.openpty()
    env = {**os.environ, "TERM": "dumb", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "vlmref.cli.infer", *YI_ARGS, "--model_id_or_path", str(folder)],
                            stdin=slave, stdout=slave, stderr=slave, cwd=tmp_path, env=env, start_new_session=True)
    os.close(slave)
    term = Terminal(master)
    try:
        first = yi_session(term, image)
        term.drain(5.0)
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    (tmp_path / "transcript.txt").write_text(term.transcript, encoding="utf-8")
    print(term.transcript)
    assert rc == 0
    check_yi_session(folder, image, first, term.transcript)


# ---- the REPL in-process (scripted input) ---------------------------------------------------------------------------
class Script:
    """An ``input()`` replacement: prints the prompt like input() and returns the next scripted line."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = list(lines)
        self.prompts: list[str] = []

    def __call__(self, prompt: str = "") -> str:
        self.prompts.append(prompt)
        if not self.lines:
            raise EOFError
        line = self.lines.pop(0)
        print(f"{prompt}{line}")
        return line


@pytest.mark.real_tokenizer
def test_repl_cogvlm_asks_for_the_image_once_per_dialogue(tiny_dir, image, capsys) -> None:
    folder = tiny_dir("cogvlm-17b-instruct")
    clear_results(folder)
    script = Script(["Describe.", image, "More?", "clear", "Again.", "", "Again.", image, "reset-system", "Be brief.",
                     "x", image, "quit"])
    args = InferArguments(model_type="cogvlm-17b-chat", model_id_or_path=str(folder), max_new_tokens=4, temperature=0)
    out = llm_infer(args, input_fn=script)
    assert script.prompts == ["<<< ", MEDIA_PROMPT, "<<< ", "<<< ",  # second turn reuses the dialogue's image
                              "<<< ", MEDIA_PROMPT,  # empty answer: CogVLM cannot run without an image -> error
                              "<<< ", MEDIA_PROMPT,  # asked again (the failed turn left nothing behind)
                              "<<< ", "<<<[S] ", "<<< ", MEDIA_PROMPT,  # a system prompt: refused by the template
                              "<<< "]
    printed = capsys.readouterr().out
    assert printed.count("error: ") == 2 and "has no image" in printed and "system" in printed
    rows = results(folder)
    assert [r["query"] for r in rows] == ["Describe.", "More?", "Again."] == [r["query"] for r in out["result"]]
    assert [r["images"] for r in rows] == [[image], [image], [image]]
    assert rows[1]["history"] == [["Describe.", rows[0]["response"]]] and rows[2]["history"] == []
    assert all(r["system"] is None for r in rows)


@pytest.mark.real_tokenizer
def test_repl_qwen_vl_takes_inline_images_and_never_asks(tiny_dir, image, capsys) -> None:
    folder = tiny_dir("qwen-vl-chat")
    clear_results(folder)
    query = f"Picture 1:<img>{image}</img>\nWhat is it?"
    script = Script([query, "", "multi-line", "Compare", f"<img>{image}</img> with it#", "EXIT#"])
    args = InferArguments(model_type="qwen-vl-chat", model_id_or_path=str(folder), max_new_tokens=4, temperature=0,
                          stream=False)
    llm_infer(args, input_fn=script)
    assert MEDIA_PROMPT not in script.prompts
    assert script.prompts == ["<<< ", "<<< ", "<<< ", "<<<[M] ", "", "<<<[M] "]
    rows = results(folder)
    assert [r["query"] for r in rows] == [query, f"Compare\n<img>{image}</img> with it"]
    assert all("images" not in r for r in rows) and rows[0]["system"] == "You are a helpful assistant."
    assert capsys.readouterr().out.count(DASHES) == 2


# ---- dataset mode ---------------------------------------------------------------------------------------------------
@pytest.mark.real_tokenizer
def test_dataset_mode_writes_one_line_per_validation_row(tiny_dir, capsys) -> None:
    folder = tiny_dir("yi-vl-6b-chat")
    clear_results(folder)
    rc = main(["--model_type", "yi-vl-6b-chat", "--model_id_or_path", str(folder), "--dataset", DATASET,
               "--dataset_test_ratio", "0.25", "--show_dataset_sample", "-1", "--max_new_tokens", "3",
               "--temperature", "0"])
    assert rc == 0
    rows = results(folder)
    val = load_dataset([DATASET], "yi-vl-6b-chat", dataset_test_ratio=0.25, dataset_seed=42).val
    assert len(rows) == len(val) == 6
    assert all(set(r) == {"system", "query", "response", "label", "history", "images"} for r in rows)
    assert [(r["query"], r["label"], r["images"]) for r in rows] == [(s.query, s.response, list(s.images)) for s in val]
    assert all(r["system"] == YI_VL_SYSTEM and isinstance(r["response"], str) for r in rows)
    out = capsys.readouterr()
    assert out.out.count("[LABELS]") == 6 and out.out.count("[PROMPT]") == 6  # verbose: fewer than 100 rows
    assert "save_result_path: " in out.err and "[-200 * 1024]" in out.out

    clear_results(folder)
    assert main(["--model_type", "yi-vl-6b-chat", "--model_id_or_path", str(folder), "--dataset", DATASET,
                 "--dataset_test_ratio", "0.25", "--show_dataset_sample", "2", "--max_new_tokens", "2",
                 "--verbose", "false"]) == 0
    import numpy as np

    picked = sample_rows(val, 2, np.random.RandomState(42))
    assert [r["label"] for r in results(folder)] == [s.response for s in picked]
    assert "You can set `--show_dataset_sample -1`" not in capsys.readouterr().err  # only for the default 10


@pytest.mark.real_tokenizer
def test_val_dataset_file_is_evaluated_in_full(tiny_dir, image, tmp_path) -> None:
    folder = tiny_dir("llava1d6-mistral-7b-instruct")
    clear_results(folder)
    data = tmp_path / "val.jsonl"
    data.write_text(json.dumps({"query": "What is it?", "response": "A grey box.", "images": [image]}) + "\n"
                    + json.dumps({"query": "And this?", "images": [image]}) + "\n", encoding="utf-8")
    assert main(["--model_type", "llava1d6-mistral-7b-instruct", "--model_id_or_path", str(folder), "--val_dataset",
                 str(data), "--max_new_tokens", "2", "--verbose", "false"]) == 0
    rows = results(folder)
    assert [(r["query"], r["label"]) for r in rows] == [("What is it?", "A grey box."), ("And this?", None)]


# ---- checkpoints ----------------------------------------------------------------------------------------------------
def hand_made_full_checkpoint(root: Path, model_type: str = "yi-vl-6b-chat") -> Path:
    """The workflow contract's layout, made by hand: a tiny model saved as a full checkpoint + sft_args.json."""
    base = create_tiny_checkpoint(model_type, root / "models" / model_type)
    run = root / "output" / model_type / "v0-20240101-000000"
    ckpt = create_tiny_checkpoint(model_type, run / "checkpoint-10", seed=1)
    sft_args = {
        "model_type": model_type, "model_id_or_path": str(base), "sft_type": "full", "template_type": "yi-vl",
        "system": "You describe images.", "max_length": 4096, "truncation_strategy": "truncation_left",
        "dtype": "fp32", "dataset": [DATASET], "val_dataset": [], "dataset_seed": 7, "dataset_test_ratio": 0.25,
        "check_dataset_strategy": "none", "lora_target_modules": [], "lora_rank": 8, "lora_alpha": 32,
        "lora_dropout_p": 0.05,
    }
    for folder in (run, ckpt):
        (folder / "sft_args.json").write_text(json.dumps(sft_args, indent=2), encoding="utf-8")
    return ckpt


@pytest.mark.real_tokenizer
def test_ckpt_dir_with_load_dataset_config_evaluates_the_training_split(tmp_path, tokenizers_root) -> None:
    ckpt = hand_made_full_checkpoint(tmp_path)
    args = InferArguments(ckpt_dir=str(ckpt), load_dataset_config=True)
    assert (args.model_type, args.sft_type, args.template_type, args.system) == (
        "yi-vl-6b-chat", "full", "yi-vl", "You describe images.")
    assert (args.dataset, args.dataset_seed, args.dataset_test_ratio) == ([DATASET], 7, 0.25)  # ratio: unlike swift
    assert (args.max_length, args.truncation_strategy, args.dtype) == (4096, "truncation_left", "fp32")
    assert args.eval_human is False and args.overwrite_generation_config is True
    given = InferArguments(ckpt_dir=str(ckpt), load_dataset_config=True, dataset_test_ratio=0.5, dataset_seed=3,
                           max_length=100, system="Other.")
    assert (given.dataset_test_ratio, given.dataset_seed, given.max_length, given.system) == (0.5, 3, 100, "Other.")
    plain = InferArguments(ckpt_dir=str(ckpt))
    assert plain.dataset == [] and plain.eval_human is True and plain.max_length is None
    assert plain.system == "You describe images." and plain.dataset_test_ratio == 0.01

    gen_before = (ckpt / "generation_config.json").read_bytes()
    assert main(["--ckpt_dir", str(ckpt), "--load_dataset_config", "true", "--show_dataset_sample", "-1",
                 "--max_new_tokens", "2", "--temperature", "0", "--verbose", "false"]) == 0
    rows = results(ckpt)
    val = load_dataset([DATASET], "yi-vl-6b-chat", dataset_test_ratio=0.25, dataset_seed=7).val
    assert [(r["query"], r["label"], r["images"]) for r in rows] == [(s.query, s.response, list(s.images)) for s in val]
    assert len(rows) == 6 and all(r["system"] == "You describe images." for r in rows)
    assert (ckpt / "generation_config.json").read_bytes() == gen_before  # the checkpoint is read-only
    (saved_path,) = (ckpt / "infer_result").glob("*.generation_config.json")  # overwrite_generation_config
    saved = json.loads(saved_path.read_text())
    assert saved["max_new_tokens"] == 2 and saved["do_sample"] is False


@pytest.mark.real_tokenizer
def test_lora_checkpoint_runs_through_peft(tmp_path, tokenizers_root) -> None:
    pytest.importorskip("peft")
    from ckpt_fixtures import make_lora_checkpoint

    ckpt = make_lora_checkpoint("qwen-vl-chat", tmp_path)
    assert main(["--ckpt_dir", str(ckpt), "--load_dataset_config", "true", "--max_new_tokens", "2",
                 "--temperature", "0", "--verbose", "false"]) == 0
    rows = results(ckpt)
    assert len(rows) == 1 and rows[0]["label"]  # 24 rows x 0.01 -> one validation row


# ---- arguments ------------------------------------------------------------------------------------------------------
def test_defaults_follow_ms_swift(tokenizers_root) -> None:
    args = InferArguments(model_type="qwen-vl-chat")
    swift = {"template_type": "qwen-vl", "infer_backend": "pt", "load_args_from_ckpt_dir": False, "seed": 42,
             "dataset_seed": 42, "dataset_test_ratio": 0.01, "show_dataset_sample": 10, "save_result": True,
             "max_length": None, "truncation_strategy": "delete", "check_dataset_strategy": "none",
             "max_new_tokens": 2048, "do_sample": True, "temperature": 0.3, "top_k": 20, "top_p": 0.7,
             "repetition_penalty": 1.0, "num_beams": 1, "stream": True, "eval_human": True, "sft_type": "full",
             "overwrite_generation_config": False, "infer_media_type": "none"}
    assert {k: getattr(args, k) for k in swift} == swift
    greedy = InferArguments(model_type="yi-vl-6b-chat", temperature=0)
    assert (greedy.do_sample, greedy.temperature, greedy.top_p, greedy.top_k, greedy.infer_media_type) == (
        False, 1.0, 1.0, 50, "round")
    assert InferArguments(model_type="yi-vl-6b-chat", num_beams=2).stream is False
    assert InferArguments(model_type="cogvlm-17b-chat").infer_media_type == "dialogue"
    assert InferArguments(model_type="yi-vl-6b-chat", dataset="a.jsonl,b.jsonl").dataset == ["a.jsonl", "b.jsonl"]


def test_argument_errors(capsys) -> None:
    assert main(["--model_type", "yi-vl-6b-chat", "--load_dataset_config", "true"]) == 2
    assert "needs --ckpt_dir" in capsys.readouterr().err
    assert main(["--model_type", "yi-vl-6b-chat", "--model_id_or_path", "out/v0-x/checkpoint-10"]) == 2
    assert "Please use `--ckpt_dir vx-xxx/checkpoint-xxx`" in capsys.readouterr().err
    assert main(["--model_type", "yi-vl-6b-chat", "--eval_human", "false"]) == 2
    assert "Please provide the dataset" in capsys.readouterr().err
    assert main(["--model_type", "yi-vl-6b-chat", "--infer_backend", "vllm"]) == 2
    assert main([]) == 2 and "--model_type" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--stream", "maybe"])


def test_add_parser_registers_the_subcommand() -> None:
    from vlmref.arguments import DataclassArgumentParser

    parser = DataclassArgumentParser(prog="vlmref")  # sub-command parsers take their flags from a dataclass
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["infer", "--model_type", "qwen-vl-chat", "--stream", "false", "--stop_words", "###",
                              "--dataset", "a", "b"])
    assert args.command == "infer" and args.stream is False and args.stop_words == ["###"]
    assert args.dataset == ["a", "b"] and callable(args.func) and args.temperature == 0.3  # InferArguments' default
