"""The conformance cases as pytest tests: ``pytest --vlmref-conform module:function`` (entry point ``pytest11``).

A framework adds one line to its CI::

    pytest --vlmref-conform my_pkg.encoders:encode --vlmref-conform-profile official -q

Each case of each covered model type is one test, ``vlmref-conform[<model type>/<golden|oracle>/<case>]``; a failing
one shows the explanation (if a recorded deviation gives it) and the token-aligned view. Without the option the
plugin adds nothing. ``--vlmref-conform-model-type`` (repeatable) narrows the model types.
"""

from __future__ import annotations

from typing import Any

import pytest

OPTION = "--vlmref-conform"


def pytest_addoption(parser: Any) -> None:
    group = parser.getgroup("vlmref-conform", "check an encoder against vlmref's reference (vlmref conform)")
    group.addoption(OPTION, metavar="MODULE:FUNCTION", default=None,
                    help="the encoder under test; adds one test per conformance case")
    group.addoption("--vlmref-conform-profile", default="official", choices=["official", "swift-2.2.0"],
                    help="the reference profile (default: official)")
    group.addoption("--vlmref-conform-model-type", action="append", default=None, metavar="MODEL_TYPE",
                    help="only this model type (repeatable); default: every one the adapter covers")


class ConformItem(pytest.Item):
    def __init__(self, *, context: Any, case: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.context = context
        self.case = case

    def runtest(self) -> None:
        from vlmref.conform.run import compare_case

        result = compare_case(self.context, self.case)
        if result.status == "skipped":
            pytest.skip(result.note)
        if result.status == "differ":
            raise ConformMismatch(result)

    def repr_failure(self, excinfo: Any, style: Any = None) -> str:
        if isinstance(excinfo.value, ConformMismatch):
            r = excinfo.value.result
            why = r.explanation_text or "no recorded deviation explains it"
            return f"{r.case.case_id}: {r.field} differ at normalised position {r.index}\n{why}\n{r.view}"
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[str, int | None, str]:
        return "vlmref-conform", None, self.name


class ConformMismatch(AssertionError):
    def __init__(self, result: Any) -> None:
        super().__init__(result.case.case_id)
        self.result = result


def pytest_collection_modifyitems(session: Any, config: Any, items: list[Any]) -> None:
    target = config.getoption(OPTION)
    if not target:
        return
    from vlmref.conform.adapter import load_adapter
    from vlmref.conform.cases import cases_for
    from vlmref.conform.run import ModelContext, tokenizers_root_or_error
    from vlmref.models.model_types import MODELS

    adapter = load_adapter(target)
    root = tokenizers_root_or_error()
    profile = config.getoption("--vlmref-conform-profile")
    chosen = config.getoption("--vlmref-conform-model-type") or list(MODELS.names())
    for model_type in chosen:
        if not adapter.covers(model_type):
            continue
        context = ModelContext(adapter, model_type, profile, root)
        for case in cases_for(context.model_type):
            items.append(ConformItem.from_parent(session, name=f"vlmref-conform[{case.case_id}]", context=context,
                                                 case=case))
