"""The import graph of ``vlmref``, read from the source (ast, nothing imported): no cycles, lazy imports included, and
no layer imports one above it. Every ``import``/``from ... import`` counts, inside functions too; only
``if TYPE_CHECKING:`` blocks are left out, as they never run."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "vlmref"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in ast.iter_child_nodes(tree):
        if _is_type_checking(node):
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        yield from _imports(node)


def imported_modules(name: str) -> set[str]:
    """The vlmref modules ``name`` imports (``from . import x`` counts as module ``x`` when it is one)."""
    path = MODULES[name]
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: set[str] = set()
    for node in _imports(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        found.update(t for t in targets if t in MODULES and t != name)
    return found


GRAPH = {name: imported_modules(name) for name in MODULES}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
    return cycles


def test_the_reader_sees_imports_and_cycles() -> None:
    """The graph reader on known facts, so an empty result below means something."""
    assert "vlmref.templates.base" in GRAPH["vlmref.templates"]
    assert "vlmref.cli.main" in GRAPH["vlmref.__main__"]
    assert "vlmref.llm.sft_args" in GRAPH["vlmref.llm.sft"]
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles() -> None:
    assert import_cycles(GRAPH) == []


def _under(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


@pytest.mark.parametrize(("lower", "upper"), [
    ("vlmref", "vlmref.cli"),  # only the commands (and `python -m vlmref`) import the command layer
    ("vlmref.training", "vlmref.llm.sft"),  # the training library never imports the recipe that wires it
    ("vlmref.templates", "vlmref.llm"),
    ("vlmref.datasets", "vlmref.llm"),
    ("vlmref.models", "vlmref.llm"),
    ("vlmref.memory", "vlmref.llm.sft"),  # memory and bench use the training library, not the recipe
    ("vlmref.bench", "vlmref.llm.sft"),
    ("vlmref.llm", "vlmref.memory"),
    ("vlmref.training", "vlmref.memory"),
])
def test_no_layer_imports_one_above_it(lower: str, upper: str) -> None:
    exempt = {"vlmref.__main__"}
    bad = sorted(f"{name} -> {target}" for name, targets in GRAPH.items() if _under(name, lower)
                 and not _under(name, upper) and name not in exempt for target in targets if _under(target, upper))
    assert bad == []
