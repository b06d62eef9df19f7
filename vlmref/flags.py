"""One style for every boolean flag of every ``vlmref`` command: ms-swift's (HfArgumentParser) style.

::

    --json              true (a bare flag)
    --json true         also 1/0, yes/no, y/n, t/f, on/off (any case)
    --json=false

``add_bool_flag(parser, "--json", False, "print JSON")`` registers one (help: ``--json [{true,false}]  print JSON
(default: false)``). A bare flag followed by a word that is not a boolean leaves the word to the command's
positional argument (``vlmref bench --compare_documented bench.json``) when the parser is a ``FlagParser``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

TRUE_WORDS = ("true", "1", "yes", "y", "t", "on")
FALSE_WORDS = ("false", "0", "no", "n", "f", "off")
NONE_WORDS = ("None", "none", "null")
BOOL_METAVAR = "{true,false}"


def parse_bool(text: str) -> bool:
    """ms-swift's boolean flag values: ``true/1/yes/y/t/on`` and ``false/0/no/n/f/off`` (any case)."""
    if text.strip().lower() in TRUE_WORDS:
        return True
    if text.strip().lower() in FALSE_WORDS:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def or_none(conv: Any) -> Any:
    """``conv`` that also takes ``None``/``none``/``null`` -> None (an Optional flag's "decide for me" value)."""
    def parse(text: str):
        return None if text in NONE_WORDS else conv(text)

    parse.__name__ = getattr(conv, "__name__", "value")  # argparse names the type in "invalid <name> value"
    return parse


parse_optional_bool = or_none(parse_bool)


def show_default(value: Any) -> str:
    """A default as the help shows it: ``true``/``false``, ``None``, lists space-separated (``[]`` when empty)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return " ".join(map(str, value)) if value else "[]"
    if isinstance(value, str) and not value.strip():
        return repr(value)
    return str(value)


class BoolAction(argparse.Action):
    """Stores a boolean flag's value (``const`` True for a bare flag); ``FlagParser`` knows its flags by this class."""

    def __init__(self, option_strings: list[str], dest: str, allow_none: bool = False, **kwargs: Any) -> None:
        self.allow_none = allow_none
        super().__init__(option_strings, dest, **kwargs)

    def takes(self, word: str) -> bool:
        """Whether ``word`` is this flag's value (and not the next positional argument)."""
        return word.strip().lower() in TRUE_WORDS + FALSE_WORDS or (self.allow_none and word in NONE_WORDS)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        setattr(namespace, self.dest, values)


_AS_STORED = object()


def add_bool_flag(parser: Any, name: str, default: Any, help: str, *, shown: Any = _AS_STORED,
                  allow_none: bool = False, **kwargs: Any) -> argparse.Action:
    """Register the boolean flag ``name`` (``--flag``, ``--flag true|false``); the help ends with ``(default: X)``,
    X being ``shown`` when the stored default differs from what the command applies (e.g. ``argparse.SUPPRESS``)."""
    text = f"{help} (default: {show_default(default if shown is _AS_STORED else shown)})".lstrip()
    return parser.add_argument(name, action=BoolAction, nargs="?", const=True, default=default,
                               type=parse_optional_bool if allow_none else parse_bool, allow_none=allow_none,
                               metavar=BOOL_METAVAR, help=text, **kwargs)


def _has_positionals(parser: argparse.ArgumentParser) -> bool:
    return any(not a.option_strings and a.help != argparse.SUPPRESS for a in parser._actions)


def leave_positionals(parser: argparse.ArgumentParser, args: Sequence[str]) -> list[str]:
    """``--flag WORD`` -> ``--flag=true WORD`` for a bare boolean flag followed by a non-boolean word, when the parser
    has a positional argument that the word is for."""
    args = list(args)
    if not _has_positionals(parser):
        return args  # no positional: argparse reports `--flag WORD` as a bad boolean value, naming the flag
    flags = {s: a for a in parser._actions if isinstance(a, BoolAction) for s in a.option_strings}
    out: list[str] = []
    for i, arg in enumerate(args):
        if arg == "--":
            return out + args[i:]
        nxt = args[i + 1] if i + 1 < len(args) else None
        if arg in flags and nxt is not None and not nxt.startswith("-") and not flags[arg].takes(nxt):
            arg = f"{arg}=true"
        out.append(arg)
    return out


class FlagParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose bare boolean flags leave a following word to the positionals (its
    sub-command parsers are ``FlagParser`` too)."""

    def parse_known_args(self, args: Sequence[str] | None = None, namespace: Any = None):
        args = sys.argv[1:] if args is None else args
        return super().parse_known_args(leave_positionals(self, args), namespace)
