"""Errors a user can fix become one ``error:`` line and exit code 2; ``--debug`` (or ``VLMREF_DEBUG=1``) shows the
traceback instead. Anything else (a bug) keeps its traceback.

::

    $ vlmref render --model_type qwen-vl-chat --query hi --model_id_or_path /nonexistent
    error: qwen-vl-chat: model_id_or_path '/nonexistent' is not a local folder
    $ vlmref sft ...          # installed with .[tokenizers] only
    error: No module named 'peft': pip install 'vlmref[train]'
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

DEBUG_ENV = "VLMREF_DEBUG"
# the extra that installs each optional top-level module
EXTRAS = {
    "torch": "tokenizers", "transformers": "tokenizers", "tokenizers": "tokenizers", "sentencepiece": "tokenizers",
    "google": "tokenizers", "tiktoken": "tokenizers", "safetensors": "models", "accelerate": "models",
    "huggingface_hub": "models", "tqdm": "models", "peft": "train", "deepspeed": "train", "docker": "bench",
}


def debug_enabled() -> bool:
    return os.environ.get(DEBUG_ENV, "").lower() in ("1", "true", "yes")


def split_debug(argv: list[str]) -> tuple[bool | None, list[str]]:
    """``--debug`` / ``--debug true|false`` / ``--debug=false`` (anywhere; the boolean style of every flag) and the
    other arguments: ``(True, rest)``, ``(False, rest)``, or ``(None, argv)`` without the flag."""
    from ..flags import FALSE_WORDS, TRUE_WORDS

    words = TRUE_WORDS + FALSE_WORDS
    debug, rest, i = None, [], 0
    while i < len(argv):
        arg = argv[i]
        value = arg.partition("=")[2].lower() if arg.startswith("--debug=") else None
        if arg == "--debug":
            value = "true"
            if i + 1 < len(argv) and argv[i + 1].lower() in words:
                value, i = argv[i + 1].lower(), i + 1
        if value in words:
            debug = value in TRUE_WORDS
        else:  # not the flag, or --debug=WORD: the parser reports it
            rest.append(arg)
        i += 1
    return debug, rest


@contextlib.contextmanager
def debug_flag(argv: list[str]) -> Iterator[list[str]]:
    """``argv`` without ``--debug`` (accepted anywhere on the command line); while the command runs, ``--debug`` is
    ``VLMREF_DEBUG=1`` in the environment (``--debug false``: ``0``), so that a torchrun relaunch inherits it."""
    previous = os.environ.get(DEBUG_ENV)
    debug, rest = split_debug(argv)
    if debug is not None:
        os.environ[DEBUG_ENV] = "1" if debug else "0"
    try:
        yield rest
    finally:
        if previous is None:
            os.environ.pop(DEBUG_ENV, None)
        else:
            os.environ[DEBUG_ENV] = previous


def user_error_message(err: BaseException) -> str | None:
    """The one-line message for an error the user can fix (bad input, missing package, path, offline hub); else None."""
    from ..errors import VlmrefError

    text = " ".join(str(err).split())
    if isinstance(err, ImportError):
        module = (getattr(err, "name", None) or "").split(".")[0]
        if module in EXTRAS and "pip install" not in text:
            return f"{text}: pip install 'vlmref[{EXTRAS[module]}]'"
        return text
    if isinstance(err, VlmrefError | OSError | ValueError) and type(err).__module__.startswith("vlmref"):
        return text
    if isinstance(err, VlmrefError | OSError):  # FileNotFoundError, hub errors (offline, unknown repo)
        return text or type(err).__name__
    return None


def report_error(err: BaseException) -> int:
    """Print ``err`` as one ``error:`` line and return 2, or re-raise it (``--debug``, or not a user error)."""
    message = None if debug_enabled() else user_error_message(err)
    if message is None:
        raise err
    print(f"error: {message}", file=sys.stderr)
    return 2
