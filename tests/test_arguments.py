"""vlmref.arguments: one dataclass-based flag mechanism for every command, with JSON/YAML argument files; its
dataclasses also parse with transformers' HfArgumentParser (issue 14 item 5)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

import pytest

from vlmref.arguments import ArgumentsError, DataclassArgumentParser, arg


@dataclass
class Example:
    ARGUMENT_GROUPS: ClassVar[dict[str, str]] = {"rank": "numbers"}
    REFUSED_FLAGS: ClassVar[dict[str, str]] = {"packing": "not implemented"}
    IGNORED_FLAGS: ClassVar[dict[str, str]] = {"use_flash_attn": "always sdpa"}

    name: str = arg(help="required: no default")
    mode: Literal["a", "b"] = arg("a", "the mode")
    note: str | None = arg(None, "a note")
    flag: bool = arg(False, "a boolean")
    maybe: bool | None = arg(None, "a boolean or None")
    rank: int = arg(8, "a number")
    ratio: float | None = arg(None, "a ratio")
    items: list[str] = arg(factory=list, help="several values")
    derived: int = field(default=0, init=False)


def _parse(*argv: str, log=None) -> Example:
    (out,) = DataclassArgumentParser(Example, prog="x").parse_args_into_dataclasses(list(argv), log=log or print)
    return out


def test_fields_become_flags_with_help_groups_and_defaults() -> None:
    p = DataclassArgumentParser(Example, prog="x")
    text = " ".join(p.format_help().split())
    for piece in ["--name NAME required: no default", "--mode {a,b} the mode (default: a)",
                  "--flag [{true,false}] a boolean (default: false)", "--maybe [{true,false}] a boolean or None "
                  "(default: None)", "numbers: --rank RANK a number (default: 8)",
                  "--items ITEMS [ITEMS ...] several values (default: [])", "--args_file FILE"]:
        assert piece in text, piece
    assert "--derived" not in text and "--use_flash_attn" not in text  # init=False / ignored: no help entry
    got = _parse("--name", "n", "--mode", "b", "--note", "None", "--flag", "--maybe", "no", "--rank", "3",
                 "--ratio", "0.5", "--items", "p", "q")
    assert (got.name, got.mode, got.note, got.flag, got.maybe, got.rank, got.ratio, got.items) == (
        "n", "b", None, True, False, 3, 0.5, ["p", "q"])


def test_unknown_refused_and_ignored_flags() -> None:
    with pytest.raises(ArgumentsError, match=r"unrecognised argument\(s\): --rnak \(did you mean --rank\?\)"):
        _parse("--name", "n", "--rnak", "3")
    with pytest.raises(ArgumentsError, match=r"--packing \(not implemented\)"):
        _parse("--name", "n", "--packing", "true")
    notes: list[str] = []
    assert _parse("--name", "n", "--use_flash_attn", "true", log=notes.append).name == "n"
    assert notes == ["note: --use_flash_attn is accepted for ms-swift compatibility and ignored: always sdpa"]


@pytest.mark.parametrize("suffix", [".json", ".yaml", ".yml"])
def test_argument_files_first_or_as_flag_and_the_command_line_wins(tmp_path: Path, suffix: str) -> None:
    values = {"name": "from-file", "mode": "b", "flag": True, "rank": "4", "items": ["x", "y"], "note": None}
    path = tmp_path / f"args{suffix}"
    path.write_text(json.dumps(values))  # JSON is YAML too
    for argv in ([str(path)], ["--args_file", str(path)], [f"--args_file={path}"]):
        got = _parse(*argv)
        assert (got.name, got.mode, got.flag, got.rank, got.items, got.note) == ("from-file", "b", True, 4,
                                                                                  ["x", "y"], None)
        over = _parse(*argv, "--rank", "9", "--flag", "false")
        assert (over.rank, over.flag, over.name) == (9, False, "from-file")
    second = tmp_path / "more.yaml"
    second.write_text("rank: 5\n")
    assert _parse("--args_file", str(path), "--args_file", str(second)).rank == 5  # a later file wins


def test_yaml_words_and_ignored_keys(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text("name: n\nflag: yes\nmaybe: 'off'\nitems: one\nuse_flash_attn: true\n")
    notes: list[str] = []
    got = _parse("--args_file", str(path), log=notes.append)
    assert (got.flag, got.maybe, got.items) == (True, False, ["one"])
    assert len(notes) == 1 and "--use_flash_attn" in notes[0]


@pytest.mark.parametrize(("text", "message"), [
    ("name: n\nrnak: 3\n", "a.yaml: key 'rnak': --rnak (did you mean --rank?)"),
    ("name: n\npacking: true\n", "a.yaml: key 'packing': --packing (not implemented)"),
    ("name: n\nmode: c\n", "a.yaml: key 'mode': expected one of a, b; found 'c'"),
    ("name: n\nrank: many\n", "a.yaml: key 'rank': expected int, found 'many'"),
    ("name: n\nratio: half\n", "a.yaml: key 'ratio': expected float, found 'half'"),
    ("name: [a, b]\n", "a.yaml: key 'name': expected one value, found a list"),
    ("- name\n- n\n", "a.yaml: expected a YAML mapping of flag values; found a list"),
    ("name: [n\n", "a.yaml:2: expected a YAML mapping of flag values; found invalid YAML"),
    ("args_file: b.yaml\n", "a.yaml: key 'args_file'"),
])
def test_bad_argument_files_name_the_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "a.yaml"
    path.write_text(text)
    with pytest.raises(ArgumentsError) as err:
        _parse("--args_file", str(path))
    assert str(err.value).startswith(f"{tmp_path}/{message}"), str(err.value)


def test_bad_json_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text('{"name": "n",\n "rank": }')
    with pytest.raises(ArgumentsError, match=r"a.json:2: expected a JSON object of flag values; found invalid JSON"):
        _parse(str(path))
    with pytest.raises(ArgumentsError, match=r"missing.json: cannot read the arguments file"):
        _parse(str(tmp_path / "missing.json"))


def test_cli_reports_a_bad_flag_or_file_in_one_line(tmp_path: Path, capsys) -> None:
    from vlmref.cli.main import main

    assert main(["sft", "--model_type", "qwen-vl-chat", "--lora_rnak", "4"]) == 2
    assert capsys.readouterr().err == "error: unrecognised argument(s): --lora_rnak (did you mean --lora_rank?)\n"
    bad = tmp_path / "sft.yaml"
    bad.write_text("model_type: qwen-vl-chat\nquantization_bit: 4\n")
    assert main(["sft", str(bad)]) == 2
    assert capsys.readouterr().err == (f"error: {bad}: key 'quantization_bit': --quantization_bit (an ms-swift 2.2.0 "
                                       "flag vlmref does not implement)\n")


SFT_ARGV = ["--model_type", "qwen-vl-chat", "--dataset", "a.jsonl", "b#3", "--sft_type", "full", "--lora_rank", "4",
            "--gradient_checkpointing", "true", "--do_sample", "false", "--learning_rate", "2e-5",
            "--max_length", "512", "--dtype", "bf16", "--truncation_strategy", "truncation_left"]


def test_sft_arguments_parse_alike_with_transformers_hfargumentparser() -> None:
    """The command dataclasses keep HfArgumentParser's contract, so scripts built on it can take them."""
    transformers = pytest.importorskip("transformers")
    from vlmref.llm.sft_args import SftArguments, parse_sft_args

    (theirs,) = transformers.HfArgumentParser(SftArguments).parse_args_into_dataclasses(
        SFT_ARGV, look_for_args_file=False)
    assert theirs == parse_sft_args(SFT_ARGV) and theirs != SftArguments()
