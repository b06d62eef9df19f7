"""The family registry: every family loads without torch, names are refused twice, plugins load from the environment;
and generic code never branches on a family: no comparison (``==``, ``!=``, ``in``, ``startswith``) and no dict key
anywhere outside a family's folder names a family, media step, template type or model type. Read from the source
(ast); the names come from the registries. Tokenizer loader kinds (``vlmref.tokenizers.loader.KINDS``: ``qwen`` is
the tiktoken format) share two of those strings; a comparison with an expression named ``kind``, or a table keyed by
kinds only, is about the file format and allowed."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from vlmref.models.family import FAMILIES, family_of, family_of_media, register_family
from vlmref.models.model_types import MODELS
from vlmref.templates.media import MediaStep, get_media_step
from vlmref.templates.meta import SWIFT_TEMPLATES, TEMPLATES
from vlmref.tokenizers.loader import KINDS

PACKAGE = Path(__file__).resolve().parent.parent / "vlmref"
FAMILY_DIRS = {PACKAGE / "models" / name for name in FAMILIES.names()}


def family_names() -> set[str]:
    names = set(FAMILIES.names())
    for name in FAMILIES.names():
        names.update(FAMILIES.get(name).media_steps)
    names.update(TEMPLATES.names(), TEMPLATES.aliases(), SWIFT_TEMPLATES.names())
    names.update(MODELS.names(), MODELS.aliases())
    return names


def _strings(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return [s for elt in node.elts for s in _strings(elt)]
    return []


def branches(tree: ast.AST, names: set[str]) -> list[tuple[int, str]]:
    """(line, name) of every comparison, ``startswith``/``endswith`` call and dict-literal key naming one of ``names``."""
    found = []
    for node in ast.walk(tree):
        operands: list[ast.AST] = []
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            others = [ast.unparse(op) for op in operands if not _strings(op)]
            if all(s in KINDS for op in operands for s in _strings(op)) and any("kind" in o for o in others):
                continue  # a tokenizer file format, not a family
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in (
                "startswith", "endswith"):
            operands = list(node.args)
        elif isinstance(node, ast.Dict):
            operands = [k for k in node.keys if k is not None]
            if all(s in KINDS for op in operands for s in _strings(op)):
                continue  # a table over tokenizer file formats
        found += [(node.lineno, s) for op in operands for s in _strings(op) if s in names]
    return found


def generic_modules() -> list[Path]:
    return [p for p in sorted(PACKAGE.rglob("*.py")) if not any(d in p.parents for d in FAMILY_DIRS)]


def test_the_scan_finds_a_branch() -> None:
    tree = ast.parse('if meta.media == "qwen_vl" or t in ("yi-vl", "x"):\n    pass\nd = {"cogvlm": 1}\n'
                     'ok = m.startswith("xcomposer2") or meta.template == "qwen"\n'
                     'fmt = spec.kind == "qwen-vl" or {"qwen": 1, "sentencepiece": 2}')
    found = sorted(s for _, s in branches(tree, family_names()))
    assert found == ["cogvlm", "qwen", "qwen_vl", "xcomposer2", "yi-vl"]


def test_generic_code_has_no_family_branches() -> None:
    names = family_names()
    bad = [f"{path.relative_to(PACKAGE.parent)}:{line}: {name!r}" for path in generic_modules()
           for line, name in branches(ast.parse(path.read_text(encoding="utf-8")), names)]
    assert bad == []


def _run(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, **env}, cwd=PACKAGE.parent)


def test_loading_every_family_imports_no_torch() -> None:
    out = _run("import sys, json\nfrom vlmref.models.family import FAMILIES\nfrom vlmref.templates import TEMPLATES\n"
               "print(json.dumps([FAMILIES.names(), len(TEMPLATES), [m for m in ('torch', 'transformers', 'PIL') "
               "if m in sys.modules]]))")
    families, n_templates, heavy = json.loads(out.stdout)
    assert families == ["cogvlm", "qwen_vl", "internlm_xcomposer2", "yi_vl", "llava_next"]
    assert n_templates == 10 and heavy == []


def test_every_model_type_and_media_step_belongs_to_one_family() -> None:
    for model_type in MODELS.names():
        assert model_type in [meta.model_type for meta in family_of(model_type).model_types]
    for name in FAMILIES.names():
        spec = FAMILIES.get(name)
        for media in spec.media_steps:
            assert family_of_media(media) is spec and get_media_step(media) is spec.media_steps[media]
    assert family_of_media("text") is None


def test_a_taken_name_is_refused() -> None:
    spec = FAMILIES.get("yi_vl")
    with pytest.raises(ValueError, match="model family 'yi_vl' is already registered"):
        register_family(spec)
    clone = replace(spec, name="yi_vl_copy", templates=(), media_steps={})
    with pytest.raises(ValueError, match="model_type 'yi-vl-6b-chat' is already registered"):
        register_family(clone)
    media_clash = replace(spec, name="yi_vl_other", model_types=(), templates=(), media_steps={"yi_vl": MediaStep})
    with pytest.raises(ValueError, match="media step 'yi_vl' is already registered"):
        register_family(media_clash)
    assert "yi_vl_copy" not in FAMILIES and "yi_vl_other" not in FAMILIES  # nothing registered by a refused family


def test_a_plugin_named_in_the_environment_loads_and_a_missing_one_is_named() -> None:
    plugin = ("from vlmref.models.family import FAMILIES\nfrom vlmref.models.model_types import MODELS\n"
              "print(len(MODELS), 'yi-vl-6b-chat' in MODELS)")
    ok = _run(plugin, VLMREF_FAMILY_MODULES="vlmref.models.yi_vl.family")  # a built-in twice: loaded once
    assert ok.returncode == 0 and ok.stdout.split() == [str(len(MODELS)), "True"], ok.stderr
    bad = _run(plugin, VLMREF_FAMILY_MODULES="no_such_family_pkg.family")
    assert bad.returncode != 0
    assert "family module 'no_such_family_pkg.family' (listed in $VLMREF_FAMILY_MODULES" in bad.stderr
