"""Known third-party noise, silenced precisely: each helper drops one named message (or one needless import) for
the duration of one call and lets everything else through.

* ``quiet_known_warnings()``: peft asks transformers 5 for ``model.is_gradient_checkpointing``, which warns
  "FutureWarning: `is_gradient_checkpointing` is deprecated ..." on every LoRA load (nothing a user can change).
* ``no_deepspeed_import()``: ``save_pretrained`` -> accelerate's ``extract_model_from_parallel`` imports DeepSpeed
  whenever it is installed, only to test ``isinstance(model, DeepSpeedEngine)``; DeepSpeed then logs "Setting
  accelerator to CPU". A model can only be a DeepSpeed engine once DeepSpeed is imported, so the test is skipped
  while it is not.
* ``drop_sentencepiece_nul_piece_warning()``: InternLM2's ``tokenizer.model`` has a NUL piece (index 354);
  sentencepiece's C++ logger writes to file descriptor 2, on every load::

      WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
      W0000 00:00:1796285394.374595   17466 sentencepiece_processor.cc:130] Piece at index 354 is a null character ...

  The helper captures descriptor 2 while a model loads and writes back every other line.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Iterator

KNOWN_FUTURE_WARNINGS = (r"`is_gradient_checkpointing` is deprecated",)
NUL_PIECE = re.compile(rb"sentencepiece_processor\.cc:\d+\] Piece at index \d+ is a null character \(\\0\) and "
                       rb"byte_fallback is enabled\. Treating it as an UNUSED piece\.")
ABSL_PREAMBLE = b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"


@contextlib.contextmanager
def quiet_known_warnings() -> Iterator[None]:
    """Hide the FutureWarnings in ``KNOWN_FUTURE_WARNINGS`` (matched from the start of the message) inside the block."""
    with warnings.catch_warnings():
        for message in KNOWN_FUTURE_WARNINGS:
            warnings.filterwarnings("ignore", message=message, category=FutureWarning)
        yield


@contextlib.contextmanager
def no_deepspeed_import() -> Iterator[None]:
    """Inside the block accelerate sees DeepSpeed as available only if it is already imported (see module doc)."""
    try:
        from accelerate.utils import other
    except ImportError:
        yield
        return
    original = other.is_deepspeed_available
    other.is_deepspeed_available = lambda: "deepspeed" in sys.modules and original()
    try:
        yield
    finally:
        other.is_deepspeed_available = original


def filter_nul_piece_lines(data: bytes) -> bytes:
    """``data`` without sentencepiece's NUL-piece warnings (and absl's preamble line right before one)."""
    lines = data.splitlines(keepends=True)
    kept: list[bytes] = []
    for i, line in enumerate(lines):
        if NUL_PIECE.search(line):
            continue
        if line.rstrip(b"\r\n") == ABSL_PREAMBLE and i + 1 < len(lines) and NUL_PIECE.search(lines[i + 1]):
            continue
        kept.append(line)
    return b"".join(kept)


@contextlib.contextmanager
def drop_sentencepiece_nul_piece_warning() -> Iterator[None]:
    """Capture file descriptor 2 inside the block; afterwards write it back without the NUL-piece warning."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no descriptor 2 (embedded interpreter): nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            rest = filter_nul_piece_lines(capture.read())
            if rest:
                os.write(2, rest)
