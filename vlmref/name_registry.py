"""A small name -> item registry that refuses duplicates (the pattern every vlmref registry uses).

A registry filled by the model families takes ``populate`` (``vlmref.families.load_families``): it runs before the
first read and again when a name is not found, so a family module registers its parts on import and no generic
module has to import (or list) the families.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names (and aliases) to items; registering a taken name raises.

    >>> r = Registry[int]("number"); r.register("one", 1, aliases=("uno",)); r.get("uno")
    1
    """

    def __init__(self, kind: str, populate: Callable[[], None] | None = None) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._aliases: dict[str, str] = {}
        self._populate = populate
        self._populated = populate is None

    def _fill(self, force: bool = False) -> None:
        if self._populate is not None and (force or not self._populated):
            self._populated = True
            self._populate()

    def register(self, name: str, item: T, *, aliases: tuple[str, ...] = ()) -> T:
        for key in (name, *aliases):
            if key in self._items or key in self._aliases:
                raise ValueError(f"{self.kind} {key!r} is already registered")
        self._items[name] = item
        for alias in aliases:
            self._aliases[alias] = name
        return item

    def canonical(self, name: str) -> str:
        """The registered name for ``name`` or one of its aliases."""
        self._fill()
        if name not in self._items and name not in self._aliases:
            self._fill(force=True)  # a family added since the first read (a plugin named in the environment)
        if name in self._items:
            return name
        if name in self._aliases:
            return self._aliases[name]
        raise KeyError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}")

    def get(self, name: str) -> T:
        return self._items[self.canonical(name)]

    def names(self) -> list[str]:
        self._fill()
        return list(self._items)

    def aliases(self) -> dict[str, str]:
        self._fill()
        return dict(self._aliases)

    def __contains__(self, name: object) -> bool:
        self._fill()
        return name in self._items or name in self._aliases

    def __iter__(self) -> Iterator[str]:
        self._fill()
        return iter(list(self._items))

    def __len__(self) -> int:
        self._fill()
        return len(self._items)
