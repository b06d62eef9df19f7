"""Inline image markup ``<img>PATH</img>`` (Qwen-VL, XComposer2), read strictly: malformed markup is a named error.

ms-swift 2.2.0 reads the markup with the regex ``<img>(.+?)</img>``, so an unclosed, nested or empty tag is left in
the text: Qwen-VL's tokenizer then fails with a bare ``ValueError('Unclosed image token')`` and XComposer2 trains the
row as text without its image. vlmref refuses such text, naming the problem and where it is::

    >>> find_inline_images("Picture 1:<img>a.png</img>\\nWhat is it?")
    [(10, 26, 'a.png')]
    >>> find_inline_images("Picture 1:<img>a.png\\nWhat is it?")
    Traceback (most recent call last):
    ...
    vlmref.templates.inline_images.InlineMarkupError: '<img>' at character 10 is never closed (no '</img>')

Pure Python; used by the templates (``vlmref.templates.media``) and the dataset reader (``vlmref.datasets.formats``).
"""

from __future__ import annotations

import re
from collections.abc import Callable

_MARKUP = re.compile(r"<img>|</img>")
EXPECTED = "inline images written <img>PATH</img> (each closed, none nested, a non-empty one-line path)"


class InlineMarkupError(ValueError):
    """Malformed ``<img>`` markup. ``problem``: ``unclosed``, ``nested``, ``unopened``, ``empty`` or ``multiline``;
    ``position``: the character offset of the offending tag in the text."""

    def __init__(self, problem: str, position: int, message: str) -> None:
        self.problem = problem
        self.position = position
        super().__init__(message)


def find_inline_images(text: str) -> list[tuple[int, int, str]]:
    """``(start, end, path)`` of each ``<img>PATH</img>`` in ``text`` (``path`` as written), in order.

    Raises ``InlineMarkupError`` for an ``<img>`` without ``</img>``, an ``<img>`` inside another, a ``</img>``
    without ``<img>``, an empty (or blank) path, or a path with a line break.
    """
    if "<img>" not in text and "</img>" not in text:
        return []
    spans: list[tuple[int, int, str]] = []
    opened: int | None = None
    for m in _MARKUP.finditer(text):
        if m.group() == "<img>":
            if opened is not None:
                raise InlineMarkupError("nested", m.start(), f"'<img>' at character {m.start()} is inside the "
                                        f"'<img>' opened at character {opened}")
            opened = m.start()
            continue
        if opened is None:
            raise InlineMarkupError("unopened", m.start(), f"'</img>' at character {m.start()} closes no '<img>'")
        path = text[opened + len("<img>") : m.start()]
        if not path.strip():
            raise InlineMarkupError("empty", opened, f"'<img>' at character {opened} holds no path")
        if "\n" in path or "\r" in path:
            raise InlineMarkupError("multiline", opened, f"the path of the '<img>' at character {opened} has a "
                                    "line break")
        spans.append((opened, m.end(), path))
        opened = None
    if opened is not None:
        raise InlineMarkupError("unclosed", opened, f"'<img>' at character {opened} is never closed (no '</img>')")
    return spans


def replace_inline_images(text: str, replacement: str | Callable[[str], str]) -> tuple[str, list[str]]:
    """``text`` with each ``<img>PATH</img>`` replaced, and the paths as written, in order.

    >>> replace_inline_images("<img>a.png</img>hi <img>b.png</img>", "<image>")
    ('<image>hi <image>', ['a.png', 'b.png'])
    """
    spans = find_inline_images(text)
    if not spans:
        return text, []
    out, paths, prev = [], [], 0
    for start, end, path in spans:
        paths.append(path)
        out += [text[prev:start], replacement(path) if callable(replacement) else replacement]
        prev = end
    out.append(text[prev:])
    return "".join(out), paths


def user_turn_fields(n_history: int) -> list[str]:
    """The field names of the user turns, history first: ``['history[0]', ..., 'query']``."""
    return [f"history[{i}]" for i in range(n_history)] + ["query"]
