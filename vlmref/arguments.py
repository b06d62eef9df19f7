"""One argument mechanism for every ``vlmref`` command: a dataclass per command, its fields the flags.

::

    @dataclass
    class ExportArguments:
        ARGUMENT_GROUPS: ClassVar[dict[str, str]] = {"overwrite": "output"}   # first field of a group -> its title
        ckpt_dir: str | None = field(default=None, metadata={"help": "the LoRA checkpoint folder"})
        merge_lora: bool = field(default=False, metadata={"help": "true: merge the LoRA into the base model"})
        merge_device_map: Literal["auto", "cpu"] = field(default="auto", metadata={"help": "where the model loads"})
        overwrite: bool = field(default=False, metadata={"help": "redo an existing merge"})

    p = DataclassArgumentParser(ExportArguments, prog="vlmref export")
    (args,) = p.parse_args_into_dataclasses(["--ckpt_dir", "ck", "--merge_lora"])
    # --help:  --ckpt_dir CKPT_DIR            the LoRA checkpoint folder (default: None)
    #          --merge_lora [{true,false}]    true: merge the LoRA into the base model (default: false)
    #          --merge_device_map {auto,cpu}  where the model loads (default: auto)

The dataclasses follow transformers' ``HfArgumentParser`` contract, so ``HfArgumentParser(ExportArguments)`` parses
them too (tests/test_arguments.py): ``metadata["help"]`` is the help text and other metadata keys are argparse keywords
(``metavar``, ``nargs``); ``Literal`` gives the choices, ``X | None`` an Optional flag, ``list[X]`` ``nargs="+"``, a
field without a default a required flag, ``init=False`` no flag. vlmref adds, in one place for every command:

* booleans in ms-swift's style (``vlmref.flags``): ``--flag``, ``--flag true|false|1|0|yes|no``, ``--flag=false``;
  an Optional flag (``X | None``) also takes ``None``;
* ``(default: X)`` at the end of every flag's help, and argument groups (the class's ``ARGUMENT_GROUPS``);
* **argument files**: ``--args_file FILE`` (every command), or ``FILE`` as the first argument of a command without
  positional arguments (ms-swift's ``swift sft args.json``). FILE is ``.json``, ``.yaml`` or ``.yml``, a mapping of
  flag names to values (``{"model_type": "qwen-vl-chat", "dataset": ["d.jsonl"], "max_steps": 10}``); flags on the
  command line override it. An unknown key, a bad value or a file that is not a mapping is an ``ArgumentsError``
  naming the file and the key;
* an unknown flag is an ``ArgumentsError`` with "did you mean"; the class's ``REFUSED_FLAGS`` (``{flag: why}``) name
  flags of the reference tool that vlmref does not implement, and ``IGNORED_FLAGS`` (``{flag: why}``) flags it accepts
  and ignores (a note is logged when one is given).

Why not ``HfArgumentParser`` itself: the commands of the pure layer (``list``, ``render``, ``check-data``) run on the
base install, without transformers; the dataclasses stay compatible with it instead.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import sys
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any, Literal

from .flags import FlagParser, add_bool_flag, or_none, show_default

ARGS_FILE_SUFFIXES = (".json", ".yaml", ".yml")
IGNORED_DEST = "ignored__"  # namespace prefix of an accepted-and-ignored flag's value


class ArgumentsError(ValueError):
    """A flag, value or argument file a command cannot take; the message names the flag (and the file and key)."""


def arg(default: Any = dataclasses.MISSING, help: str = "", *, factory: Callable[[], Any] | None = None,
        **argparse_kwargs: Any) -> Any:
    """A flag field: ``lora_rank: int = arg(8, "LoRA rank r")``; ``factory`` for a mutable default
    (``arg(factory=list, help=...)``); other keywords go to ``add_argument`` (``metavar``, ``nargs``)."""
    metadata = {"help": help, **argparse_kwargs}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def is_args_file(word: str) -> bool:
    return not word.startswith("-") and word.lower().endswith(ARGS_FILE_SUFFIXES)


def _field_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return dataclasses.MISSING


def _unwrap_optional(kind: Any) -> tuple[Any, bool]:
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(kind) if a is not type(None)]
        if len(inner) != 1:
            raise TypeError(f"only X | None unions can be flags, got {kind}")
        return inner[0], True
    return kind, False


def flag_fields(dtype: type) -> list[tuple[dataclasses.Field, Any, bool]]:
    """``(field, type, optional)`` of every field of ``dtype`` that is a flag (``init=True``)."""
    hints = typing.get_type_hints(dtype)
    return [(f, *_unwrap_optional(hints[f.name])) for f in dataclasses.fields(dtype) if f.init]


def dataclass_from(dtype: type, ns: argparse.Namespace, log: Callable[[str], Any] = print) -> Any:
    """The ``dtype`` instance a parsed namespace holds; a note for each accepted-and-ignored flag given."""
    values = vars(ns)
    for name, reason in getattr(dtype, "IGNORED_FLAGS", {}).items():
        if values.get(f"{IGNORED_DEST}{name}") is not None:
            log(f"note: --{name} is accepted for ms-swift compatibility and ignored: {reason}")
    names = {f.name for f, _, _ in flag_fields(dtype)}
    return dtype(**{k: v for k, v in values.items() if k in names})


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and epilogs as written (they hold command examples)."""


class DataclassArgumentParser(FlagParser):
    """``argparse`` parser built from dataclasses (see the module docstring); sub-command parsers made through
    ``add_subparsers().add_parser`` are of this class too, and take their dataclasses with ``add_dataclass``."""

    def __init__(self, *dataclass_types: type, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(**kwargs)
        self.dataclass_types: list[type] = []
        self.refused_flags: dict[str, str] = {}
        self.ignored_flags: dict[str, str] = {}
        for dtype in dataclass_types:
            self.add_dataclass(dtype)

    # ---- building ----------------------------------------------------------------------------------------------
    def add_dataclass(self, dtype: type) -> DataclassArgumentParser:
        """Add ``dtype``'s fields as flags (and ``--args_file`` with the first dataclass)."""
        if not self.dataclass_types:
            self.add_argument("--args_file", metavar="FILE", default=None, dest="args_file",
                              help="a .json/.yaml/.yml mapping of flag names to values; flags given on the command "
                                   "line override it (default: None)")
        self.dataclass_types.append(dtype)
        groups = getattr(dtype, "ARGUMENT_GROUPS", {})
        target: Any = self
        for f, kind, optional in flag_fields(dtype):
            if f.name in groups:
                target = self.add_argument_group(groups[f.name])
            self._add_field(target, dtype, f, kind, optional)
        self.refused_flags.update(getattr(dtype, "REFUSED_FLAGS", {}))
        for name in getattr(dtype, "IGNORED_FLAGS", {}):
            self.ignored_flags[name] = dtype.IGNORED_FLAGS[name]
            self.add_argument(f"--{name}", dest=f"{IGNORED_DEST}{name}", nargs="*", default=None,
                              help=argparse.SUPPRESS)
        return self

    @staticmethod
    def _add_field(target: Any, dtype: type, f: dataclasses.Field, kind: Any, optional: bool) -> None:
        meta = dict(f.metadata)
        text = meta.pop("help", "")
        default = _field_default(f)
        required = default is dataclasses.MISSING
        if kind is bool:
            add_bool_flag(target, f"--{f.name}", False if required else default, text, allow_none=optional,
                          dest=f.name, **({"required": True} if required else {}), **meta)
            return
        kw: dict[str, Any] = {"dest": f.name}
        if required:
            kw.update(required=True, help=text)
        else:
            kw.update(default=default, help=f"{text} (default: {show_default(default)})".lstrip())
        if typing.get_origin(kind) is Literal:
            choices = list(typing.get_args(kind))
            kw.update(type=or_none(str) if optional else str, choices=choices + ([None] if optional else []))
        elif typing.get_origin(kind) is list:
            (item,) = typing.get_args(kind)
            kw.update(type=item, nargs="+")
        elif kind in (int, float, str):
            kw["type"] = or_none(kind) if optional else kind
        else:
            raise TypeError(f"{dtype.__name__}.{f.name}: a flag cannot have the type {kind}")
        kw.update(meta)
        target.add_argument(f"--{f.name}", **kw)

    # ---- parsing -----------------------------------------------------------------------------------------------
    def parse_known_args(self, args: Sequence[str] | None = None, namespace: Any = None):
        args = list(sys.argv[1:] if args is None else args)
        if self.dataclass_types:
            args = self._apply_args_files(args)
        return super().parse_known_args(args, namespace)

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> argparse.Namespace:
        ns, unknown = self.parse_known_args(args, namespace)
        if unknown:
            raise ArgumentsError(self._chosen(ns).unknown_message(unknown))
        return ns

    def parse_args_into_dataclasses(self, args: Sequence[str] | None = None,
                                    log: Callable[[str], Any] = print) -> tuple[Any, ...]:
        """``args`` -> one instance per dataclass (``ArgumentsError`` on an unknown flag)."""
        ns = self.parse_args(args)
        return tuple(dataclass_from(dtype, ns, log) for dtype in self.dataclass_types)

    def _chosen(self, ns: argparse.Namespace) -> DataclassArgumentParser:
        """The sub-command parser that parsed ``ns`` (or this parser)."""
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                chosen = action.choices.get(getattr(ns, action.dest, None) or "")
                if isinstance(chosen, DataclassArgumentParser):
                    return chosen._chosen(ns)
        return self

    def known_flags(self) -> list[str]:
        return [a.option_strings[0][2:] for a in self._actions
                if a.option_strings and a.help != argparse.SUPPRESS and a.option_strings[0].startswith("--")]

    def unknown_message(self, unknown: list[str]) -> str:
        flags = [u for u in unknown if u.startswith("--")]
        problems = []
        for word in flags or unknown:
            name = word[2:].split("=", 1)[0] if word.startswith("--") else word
            if name in self.refused_flags:
                problems.append(f"--{name} ({self.refused_flags[name]})")
                continue
            close = difflib.get_close_matches(name, self.known_flags(), n=1)
            problems.append(word + (f" (did you mean --{close[0]}?)" if close else ""))
        return "unrecognised argument(s): " + "; ".join(problems)

    # ---- argument files ----------------------------------------------------------------------------------------
    def _apply_args_files(self, args: list[str]) -> list[str]:
        files: list[str] = []
        if args and is_args_file(args[0]) and not self._visible_positionals():
            files.append(args.pop(0))
        rest: list[str] = []
        i = 0
        while i < len(args):
            word = args[i]
            if word == "--":
                rest += args[i:]
                break
            if word == "--args_file" and i + 1 < len(args):
                files.append(args[i + 1])
                i += 2
                continue
            if word.startswith("--args_file="):
                files.append(word.split("=", 1)[1])
            else:
                rest.append(word)
            i += 1
        for path in files:  # a later file overrides an earlier one; the command line overrides both
            self.set_defaults(**self.read_args_file(path))
        return rest

    def _visible_positionals(self) -> bool:
        return any(not a.option_strings and a.help != argparse.SUPPRESS for a in self._actions)

    def read_args_file(self, path: str) -> dict[str, Any]:
        """A mapping of flag names to values -> ``{dest: value}`` (checked and converted like the flags)."""
        data = load_mapping(path)
        actions = {a.option_strings[0][2:]: a for a in self._actions if a.option_strings}
        out: dict[str, Any] = {}
        for key, value in data.items():
            action = actions.get(str(key))
            if action is None or key == "args_file":
                raise ArgumentsError(f"{path}: key {key!r}: " + self.unknown_message([f"--{key}"]).split(": ", 1)[1])
            out[action.dest] = self._file_value(path, key, action, value)
            if action.required:
                action.required = False  # given by the file
        return out

    def _file_value(self, path: str, key: str, action: argparse.Action, value: Any) -> Any:
        if action.dest.startswith(IGNORED_DEST):
            return [str(value)]
        many = action.nargs in ("+", "*")
        items = value if isinstance(value, list) else [value]
        if not many and isinstance(value, list):
            raise ArgumentsError(f"{path}: key {key!r}: expected one value, found a list")
        converted = []
        for item in items:
            if isinstance(item, str) and action.type is not None:
                try:
                    item = action.type(item)
                except argparse.ArgumentTypeError as err:
                    raise ArgumentsError(f"{path}: key {key!r}: {err}") from None
                except (TypeError, ValueError):
                    kind = getattr(action.type, "__name__", "value")
                    raise ArgumentsError(f"{path}: key {key!r}: expected {kind}, found {item!r}") from None
            if action.choices is not None and item not in action.choices:
                shown = ", ".join(map(str, action.choices))
                raise ArgumentsError(f"{path}: key {key!r}: expected one of {shown}; found {item!r}")
            converted.append(item)
        return converted if many else converted[0]


def parse_or_report(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace | None:
    """``parser.parse_args(argv)``; an ``ArgumentsError`` (an unknown flag, a bad arguments file) is printed as one
    ``error:`` line on stderr and gives None, for which a command returns exit status 2."""
    try:
        return parser.parse_args(argv)
    except ArgumentsError as err:
        print(f"error: {err}", file=sys.stderr)
        return None


def load_mapping(path: str) -> dict[str, Any]:
    """Read an argument file: JSON (``.json``) or YAML (``.yaml``/``.yml``), a mapping at the top."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ArgumentsError(f"{path}: cannot read the arguments file ({e.strerror or e})") from None
    if path.lower().endswith(".json"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ArgumentsError(f"{path}:{e.lineno}: expected a JSON object of flag values; found invalid JSON "
                                 f"({e.msg})") from None
    else:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f":{mark.line + 1}" if mark is not None else ""
            raise ArgumentsError(f"{path}{where}: expected a YAML mapping of flag values; found invalid YAML "
                                 f"({getattr(e, 'problem', None) or e})") from None
    if not isinstance(data, dict):
        kind = "JSON object" if path.lower().endswith(".json") else "YAML mapping"
        raise ArgumentsError(f"{path}: expected a {kind} of flag values; found a {type(data).__name__}")
    return data


