"""The row progress bar of the dataset checks (``vlmref sft``'s pre-check, ``vlmref check-data``).

A tqdm bar on stderr once there are ``PROGRESS_MIN_ROWS`` rows (none without tqdm: the pure layer does not need it);
``say`` prints a message on its own line above the bar, never inside it. The loaders stay UI-free: they take a
``progress(done, total)`` callback, and ``RowProgress.advance`` is one::

    with RowProgress("Checking rows") as bar:
        loaded = load_dataset(paths, model_type, check_dataset_strategy="discard", progress=bar.advance)
"""

from __future__ import annotations

import sys
from typing import Any

PROGRESS_MIN_ROWS = 2000  # smaller datasets are checked in well under a second: no bar


class RowProgress:
    """A tqdm bar (stderr) while ``enabled`` and the total is at least ``PROGRESS_MIN_ROWS``; messages go above it.

    The total may grow (``set_total``, e.g. one dataset after another): the bar opens when it first reaches the
    threshold, counting the rows already done.
    """

    def __init__(self, desc: str, total: int = 0, *, enabled: bool = True, unit: str = "row") -> None:
        self.desc, self.unit, self.enabled = desc, unit, enabled
        self.done = 0
        self.total = 0
        self.bar: Any = None
        self.set_total(total)

    def set_total(self, total: int) -> None:
        self.total = total
        if self.bar is not None:
            if self.bar.total != total:
                self.bar.total = total
                self.bar.refresh()
        elif self.enabled and total >= PROGRESS_MIN_ROWS:
            self.bar = _tqdm(total=total, initial=self.done, desc=self.desc, unit=self.unit)

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.bar is not None and n:
            self.bar.update(n)

    def advance(self, done: int, total: int) -> None:
        """The loaders' ``progress`` callback: ``done`` of ``total`` rows so far."""
        if total != self.total:
            self.set_total(total)
        self.update(done - self.done)

    def say(self, line: str) -> None:
        """``line`` on stderr, on its own line above the bar."""
        if self.bar is not None:
            self.bar.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        """Close the bar (its last state stays, with the line ended); later output starts on a new line."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> RowProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _tqdm(**kwargs: Any) -> Any:
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm ships with vlmref[models] (transformers, huggingface_hub)
        return None
    return tqdm(file=sys.stderr, dynamic_ncols=True, mininterval=0.5, **kwargs)
