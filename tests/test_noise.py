"""Known third-party noise is silenced precisely (``vlmref.noise``): the named message goes, everything else stays."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
from sft_worker import cli_env

from vlmref.noise import filter_nul_piece_lines, quiet_known_warnings

NUL_LINE = (b"W0000 00:00:1796285394.374595   17466 sentencepiece_processor.cc:130] Piece at index 354 is a null "
            b"character (\\0) and byte_fallback is enabled. Treating it as an UNUSED piece.\n")
PREAMBLE = b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"


def _python(code: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, env=cli_env(),
                          timeout=timeout)


def test_nul_piece_filter_keeps_every_other_line() -> None:
    other = b"W0000 00:00:1.0 1 sentencepiece_processor.cc:99] some other warning\n"
    assert filter_nul_piece_lines(PREAMBLE + NUL_LINE + NUL_LINE + other + b"tail") == other + b"tail"
    assert filter_nul_piece_lines(PREAMBLE + other) == PREAMBLE + other  # the preamble of another message stays


def test_descriptor_2_is_filtered_and_the_rest_written_back() -> None:
    done = _python(f"""
        import os, sys
        from vlmref.noise import drop_sentencepiece_nul_piece_warning
        with drop_sentencepiece_nul_piece_warning():
            os.write(2, {PREAMBLE + NUL_LINE!r} + b"kept by C\\n")
            print("kept by Python", file=sys.stderr)
        print("after", file=sys.stderr)
    """)
    assert done.returncode == 0 and done.stderr.decode() == "kept by C\nkept by Python\nafter\n"


def test_only_the_known_future_warning_is_hidden() -> None:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with quiet_known_warnings():
            warnings.warn("`is_gradient_checkpointing` is deprecated and will be removed in v6.", FutureWarning, stacklevel=1)
            warnings.warn("something else is deprecated", FutureWarning, stacklevel=1)
    assert [str(w.message) for w in seen] == ["something else is deprecated"]


@pytest.mark.real_tokenizer
def test_internlm2_tokenizer_loads_silently(tokenizers_root: Path) -> None:
    done = _python(f"""
        from vlmref.models.loader import get_model_tokenizer
        _, tok = get_model_tokenizer("internlm-xcomposer2-7b-chat", load_model=False,
                                     model_id_or_path={str(tokenizers_root / "internlm2")!r})
        print(tok.eos_token_id)
    """)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert done.stdout.decode().strip().isdigit() and done.stderr == b""


@pytest.mark.slow
@pytest.mark.real_tokenizer
def test_create_tiny_does_not_import_deepspeed(tmp_path: Path, tokenizers_root: Path) -> None:
    pytest.importorskip("deepspeed")
    done = _python(f"""
        import sys
        from vlmref.cli.main import main
        code = main(["create-tiny", "--model_type", "qwen-vl-chat", "--out", {str(tmp_path / "tiny")!r}])
        print(code, "deepspeed" in sys.modules)
    """)
    assert done.stdout.decode().splitlines()[-1] == "0 False", done.stderr.decode()[-2000:]
    assert b"Setting accelerator" not in done.stderr


@pytest.mark.real_tokenizer
def test_lora_checkpoint_loads_without_future_warnings(tmp_path: Path, tokenizers_root: Path) -> None:
    pytest.importorskip("peft")
    from ckpt_fixtures import make_lora_checkpoint

    from vlmref.llm.ckpt import load_from_ckpt

    ckpt = make_lora_checkpoint("qwen-vl-chat", tmp_path)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        model, _, _ = load_from_ckpt(ckpt)
    assert model is not None
    assert [str(w.message) for w in seen if issubclass(w.category, FutureWarning)] == []
