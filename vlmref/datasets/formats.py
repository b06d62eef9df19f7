"""Custom dataset files (json, jsonl, csv) and the three documented row formats, normalised to ``Sample``.

Row formats (detected per row)::

    query/response   {"query": "..", "response": "..", "history": [["q", "r"]], "system": "..", "images": ["a.png"]}
    conversations    {"conversations": [{"from": "user", "value": ".."}, {"from": "assistant", "value": ".."}]}
                     (roles user/assistant or human/gpt, optional leading system; optional "images")
    messages         {"messages": [{"role": "system"|"user"|"assistant", "content": ".."}], "images": [..]}

For Qwen-VL and XComposer2 (``inline_images=True``) ``<img>path</img>`` in user turns becomes an ``<image>`` tag plus an
``images`` entry, so ``Picture 1:<img>a.png</img>\\nhi`` and ``{"query": "Picture 1:<image>\\nhi", "images": ["a.png"]}``
are the same sample. Relative image paths are resolved against the dataset file's folder.

Every error is a ``DatasetRowError`` naming file, line, field, what was expected and what was found.
"""

from __future__ import annotations

import ast
import csv
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import DatasetError, DatasetRowError
from ..templates.inline_images import EXPECTED as INLINE_EXPECTED
from ..templates.inline_images import InlineMarkupError, replace_inline_images, user_turn_fields
from .sample import RowOrigin, Sample

SUPPORTED_SUFFIXES = (".json", ".jsonl", ".csv")
USER_ROLES = ("user", "human")
ASSISTANT_ROLES = ("assistant", "gpt")
SYSTEM_ROLES = ("system",)
KNOWN_FIELDS = frozenset({"query", "response", "history", "system", "images", "conversations", "messages"})
INLINE_IMAGE = re.compile(r"<img>(.+?)</img>")
IMAGE_TAG = "<image>"
# names people give the images field; each is read by no format, so the row would train as text only
_NEAR_MISS_IMAGES = frozenset({"image", "images", "img", "imgs", "image_path", "image_paths", "image_file",
                               "image_files", "image_url", "image_urls", "picture", "pictures", "photo", "photos"})


@dataclass(frozen=True)
class RawRow:
    """A row as read from a file, before normalisation."""

    origin: RowOrigin
    data: Any


# ---- readers ---------------------------------------------------------------------------------------------------------
def read_rows(path: str) -> Iterator[RawRow]:
    """Yield the rows of a .json (array of objects), .jsonl or .csv file with their line numbers.

    A .jsonl line that is not JSON is yielded as a ``DatasetRowError`` instance (so ``discard`` can count it); a .json
    file that does not parse raises ``DatasetError`` (its rows cannot be told apart).
    """
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise DatasetError(f"{path}: unsupported dataset file type {suffix or '(none)'!r}; expected one of {SUPPORTED_SUFFIXES}")
    if not os.path.isfile(path):
        raise DatasetError(f"{path}: dataset file not found")
    if suffix == ".jsonl":
        yield from _read_jsonl(path)
    elif suffix == ".json":
        yield from _read_json(path)
    else:
        yield from _read_csv(path)


def _read_jsonl(path: str) -> Iterator[RawRow]:
    index = 0
    with open(path, encoding="utf-8-sig") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            origin = RowOrigin(path, lineno, index)
            index += 1
            try:
                yield RawRow(origin, json.loads(line))
            except json.JSONDecodeError as e:
                yield RawRow(origin, DatasetRowError(path, lineno, "<row>", "one JSON object per line",
                                                     f"invalid JSON ({e.msg} at column {e.colno})", "invalid_json"))


def _read_json(path: str) -> Iterator[RawRow]:
    with open(path, encoding="utf-8-sig") as f:
        text = f.read()
    if not text.strip():
        return  # an empty file: no rows (the loader reports an empty dataset)
    decoder = json.JSONDecoder()
    where = _Position(text)
    pos = _skip_ws(text, 0)
    if text[pos : pos + 1] != "[":
        hint = " (one object per line is a .jsonl file)" if text[pos : pos + 1] == "{" else ""
        raise DatasetError(f"{path}:{where.line(pos)}: a .json dataset must be one JSON array of row objects{hint}; "
                           f"found {text[pos : pos + 1]!r} at column {where.column(pos)}")
    pos = _skip_ws(text, pos + 1)
    index = 0
    while text[pos : pos + 1] != "]":
        line = where.line(pos)
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            raise DatasetError(f"{path}:{e.lineno}: invalid JSON ({e.msg} at column {e.colno})") from None
        yield RawRow(RowOrigin(path, line, index), value)
        index += 1
        pos = _skip_ws(text, end)
        if text[pos : pos + 1] == ",":
            pos = _skip_ws(text, pos + 1)
        elif text[pos : pos + 1] != "]":
            found = repr(text[pos]) if pos < len(text) else "the end of the file"
            raise DatasetError(f"{path}:{where.line(pos)}: invalid JSON (expected ',' or ']' after row {index} at "
                               f"column {where.column(pos)}; found {found})")


class _Position:
    """Line and column of offsets into ``text``, counted incrementally: rows are read in order, so finding the line
    of every row costs one pass over the file in all (counting from the start each time made .json loading
    quadratic)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.lineno = 1

    def line(self, pos: int) -> int:
        if pos < self.pos:  # not on the reading path; count from the start
            return self.text.count("\n", 0, pos) + 1
        self.lineno += self.text.count("\n", self.pos, pos)
        self.pos = pos
        return self.lineno

    def column(self, pos: int) -> int:
        return pos - self.text.rfind("\n", 0, pos)


def _read_csv(path: str) -> Iterator[RawRow]:
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames:
            return
        start = reader.line_num + 1
        for index, row in enumerate(reader):
            if None in row:
                err = DatasetRowError(path, start, "<row>", f"{len(reader.fieldnames)} cells (the header's columns)",
                                      f"{len(reader.fieldnames) + len(row[None])} cells", "wrong_type")
                yield RawRow(RowOrigin(path, start, index), err)
            else:
                yield RawRow(RowOrigin(path, start, index), {k: v for k, v in row.items() if v is not None})
            start = reader.line_num + 1


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


# ---- normalisation ---------------------------------------------------------------------------------------------------
class _Row:
    """Error helper bound to one row."""

    def __init__(self, origin: RowOrigin) -> None:
        self.origin = origin

    def error(self, field: str, expected: str, found: str, reason: str) -> DatasetRowError:
        row = self.origin.index if self.origin.line is None else None
        return DatasetRowError(self.origin.source, self.origin.line, field, expected, found, reason, row=row)


def show(value: Any, limit: int = 60) -> str:
    """A short description of a found value: ``'text'`` or ``int 3``, ``list [1, 2]``, truncated."""
    if isinstance(value, str):
        return repr(value if len(value) <= limit else value[: limit - 3] + "...")
    text = json.dumps(value, ensure_ascii=False, default=str)
    return f"{type(value).__name__} {text if len(text) <= limit else text[: limit - 3] + '...'}"


def near_miss_fields(data: dict[str, Any]) -> list[str]:
    """Fields named like ``images`` that no format reads (so their images would be lost).

    >>> near_miss_fields({"query": "q", "response": "r", "image": "a.png", "Images": ["b.png"], "id": 3})
    ['image', 'Images']
    """
    return [k for k in data if isinstance(k, str) and k != "images"
            and re.sub(r"[\s-]+", "_", k.strip().lower()) in _NEAR_MISS_IMAGES]


def near_miss_error(raw: RawRow, key: str) -> DatasetRowError:
    """The row error for a near-miss images field (reason ``near_miss_field``)::

        d.jsonl:4: field 'image': expected 'images' (did you mean 'images'? no format reads 'image', so the row
        would train without its images); found 'a.png'
    """
    return _Row(raw.origin).error(key, f"'images' (did you mean 'images'? no format reads {key!r}, so the row would "
                                  "train without its images)", show(raw.data[key]), "near_miss_field")


def detect_format(data: dict[str, Any]) -> str:
    """``'query_response'``, ``'conversations'`` or ``'messages'`` (raises ``KeyError`` with the reason otherwise)."""
    found = [name for name, keys in (("query_response", ("query", "response")), ("conversations", ("conversations",)),
                                     ("messages", ("messages",))) if any(k in data for k in keys)]
    if len(found) == 1:
        return found[0]
    if not found:
        raise KeyError("no 'query'/'response', 'conversations' or 'messages' field")
    raise KeyError(f"fields of several formats at once ({', '.join(found)})")


def normalise_row(
    raw: RawRow, *, base_dir: str | None = None, inline_images: bool = False, require_response: bool = True
) -> Sample:
    """Turn one raw row into a ``Sample`` or raise ``DatasetRowError``."""
    if isinstance(raw.data, DatasetRowError):
        raise raw.data
    row = _Row(raw.origin)
    data = raw.data
    if not isinstance(data, dict):
        raise row.error("<row>", "a JSON object", show(data), "not_an_object")
    try:
        fmt = detect_format(data)
    except KeyError as e:
        reason = "ambiguous_format" if "several" in e.args[0] else "unknown_format"
        raise row.error("<row>", "exactly one of the formats query/response, conversations or messages",
                        f"{e.args[0]}; fields {sorted(data)}", reason) from None
    if fmt == "query_response":
        query, response, history, system = _query_response(row, data)
    else:
        key, role_key, value_key = ("conversations", "from", "value") if fmt == "conversations" else ("messages", "role", "content")
        query, response, history, system = _turns(row, data[key], key, role_key, value_key)
    if require_response:
        if response is None:
            raise row.error("response", "an assistant reply to train on", "no reply", "missing_response")
        if not response.strip():
            raise row.error("response", "a non-empty assistant reply", show(response), "empty_response")
    images = _images(row, data.get("images"), base_dir)
    if inline_images:
        query, history, images = _take_inline_images(row, query, history, images, base_dir)
    else:
        for i, text in enumerate([q for q, _ in history] + [query]):
            if INLINE_IMAGE.search(text):
                field = "query" if i == len(history) else f"history[{i}]"
                raise row.error(field, "images in the 'images' field (inline <img>path</img> is read only for qwen-vl "
                                "and internlm-xcomposer2)", show(INLINE_IMAGE.search(text).group(0)), "inline_tags")
    return Sample(query=query, response=response, history=tuple(history), system=system, images=tuple(images),
                  origin=raw.origin)


def _query_response(row: _Row, data: dict[str, Any]):
    query = data.get("query")
    query = "" if query is None else query
    if not isinstance(query, str):
        raise row.error("query", "a string", show(query), "wrong_type")
    response = data.get("response")
    if response is not None and not isinstance(response, str):
        raise row.error("response", "a string", show(response), "wrong_type")
    history = _history(row, data.get("history"))
    return query, response, history, _system(row, data.get("system"), "system")


def _history(row: _Row, value: Any) -> list[tuple[str, str]]:
    if value is None or value == "":
        return []
    if isinstance(value, str):  # CSV cell; ms-swift reads it with ast.literal_eval
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            try:
                value = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                raise row.error("history", "a list of [query, response] pairs", show(value), "wrong_type") from None
    if not isinstance(value, list):
        raise row.error("history", "a list of [query, response] pairs", show(value), "wrong_type")
    out = []
    for i, turn in enumerate(value):
        if not isinstance(turn, (list, tuple)) or len(turn) != 2 or not all(isinstance(x, str) for x in turn):
            raise row.error(f"history[{i}]", "a [query, response] pair of strings", show(turn), "wrong_type")
        out.append((turn[0], turn[1]))
    return out


def _system(row: _Row, value: Any, field: str) -> str | None:
    if value is None or value == "":
        return None  # the template's default system (an empty CSV cell cannot mean anything else)
    if not isinstance(value, str):
        raise row.error(field, "a string", show(value), "wrong_type")
    return value


def _turns(row: _Row, turns: Any, key: str, role_key: str, value_key: str):
    if isinstance(turns, str):  # CSV cell holding JSON
        try:
            turns = json.loads(turns)
        except json.JSONDecodeError:
            raise row.error(key, "a JSON list of turns", show(turns), "wrong_type") from None
    if not isinstance(turns, list) or not turns:
        raise row.error(key, "a non-empty list of turns", show(turns), "wrong_type")
    system = None
    pairs: list[list[str]] = []
    expect = "user"
    for i, turn in enumerate(turns):
        field = f"{key}[{i}]"
        if not isinstance(turn, dict) or role_key not in turn or value_key not in turn:
            raise row.error(field, f"an object with '{role_key}' and '{value_key}'", show(turn), "wrong_type")
        role, value = turn[role_key], turn[value_key]
        if not isinstance(value, str):
            raise row.error(f"{field}.{value_key}", "a string", show(value), "wrong_type")
        if role in SYSTEM_ROLES:
            if i != 0:
                raise row.error(f"{field}.{role_key}", "'system' only as the first turn", f"role {role!r} at turn {i}", "bad_role")
            system = _system(row, value, f"{field}.{value_key}")
            continue
        kind = "user" if role in USER_ROLES else "assistant" if role in ASSISTANT_ROLES else None
        if kind is None:
            raise row.error(f"{field}.{role_key}", "one of user/human, assistant/gpt, system", f"role {role!r}", "bad_role")
        if kind != expect:
            article = "an" if expect == "assistant" else "a"
            raise row.error(f"{field}.{role_key}", f"{article} {expect} turn (turns alternate user, assistant)",
                            f"role {role!r}", "bad_role")
        if kind == "user":
            pairs.append([value, None])
        else:
            pairs[-1][1] = value
        expect = "assistant" if kind == "user" else "user"
    if not pairs:
        raise row.error(key, "at least one user turn", "no user turn", "bad_role")
    query, response = pairs[-1]
    return query, response, [(q, r) for q, r in pairs[:-1]], system


def _images(row: _Row, value: Any, base_dir: str | None) -> list[Any]:
    if value is None or value == "" or value == []:
        return []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):  # CSV cell holding a JSON list
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                raise row.error("images", "a path, URL or base64 string, or a JSON list of them", show(value), "wrong_type") from None
        else:
            value = [value]
    if not isinstance(value, (list, tuple)):
        if hasattr(value, "size") and hasattr(value, "mode"):  # a PIL image (Python API)
            return [value]
        raise row.error("images", "a list of image references", show(value), "wrong_type")
    out = []
    for i, ref in enumerate(value):
        if ref is None or (isinstance(ref, str) and not ref.strip()):
            out.append(None)
        elif isinstance(ref, str):
            out.append(normalise_image_ref(ref, base_dir))
        elif hasattr(ref, "size") and hasattr(ref, "mode"):
            out.append(ref)
        else:
            raise row.error(f"images[{i}]", "a path, URL, base64 string or null", show(ref), "wrong_type")
    return out


def normalise_image_ref(ref: str, base_dir: str | None) -> str:
    """URLs, ``data:`` URIs and base64 stay as they are; a path is joined to ``base_dir`` (the file's folder).

    The kind is decided by ``vlmref.datasets.images.classify_image_ref`` (the same rule the image loader uses).
    """
    from .images import classify_image_ref, resolve_image_path

    ref = ref.strip()
    if classify_image_ref(ref, base_dir) != "path":
        return ref
    return os.path.normpath(resolve_image_path(ref, base_dir))


def _take_inline_images(row: _Row, query: str, history: list, images: list, base_dir: str | None):
    """``<img>path</img>`` in user turns -> ``<image>`` tags + images (history first, then the query).

    Malformed markup (unclosed, nested, empty, a stray ``</img>``) is the row error ``image_markup``, naming the turn.
    """
    found: list[str] = []
    fields = user_turn_fields(len(history))

    def take(text: str, field: str) -> str:
        try:
            text, paths = replace_inline_images(text, IMAGE_TAG)
        except InlineMarkupError as err:
            raise row.error(field, INLINE_EXPECTED, str(err), "image_markup") from None
        found.extend(normalise_image_ref(p, base_dir) for p in paths)
        return text

    history = [(take(q, fields[i]), r) for i, (q, r) in enumerate(history)]
    query = take(query, "query")
    if found and any(m is not None for m in images):
        raise row.error("images", "images either inline (<img>path</img>) or in the 'images' field, not both",
                        f"{len(found)} inline and {len(images)} in 'images'", "ambiguous_images")
    return query, history, found or images
