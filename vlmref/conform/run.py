"""Run an adapter over the cases and compare it with vlmref's reference encoding under a template profile.

The reference is vlmref's ``Template`` for the model type's template under ``profile`` (``official``: the model
authors' format; ``swift-2.2.0``: ms-swift 2.2.0's, byte-identical to it on every oracle case), with the real
tokenizer files (``$VLMREF_TOKENIZERS_DIR`` or ``../shared/tokenizers``). A case that differs is explained, where
possible, by vlmref's recorded deviations (``TemplateMeta.deviations``: each one a documented way ms-swift 2.2.0
differs from the official format): the smallest set whose ms-swift behaviour, applied to the official format, gives
exactly the adapter's encoding.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

from ..errors import VlmrefError
from ..models.family import family_of
from ..models.model_types import MODELS
from ..templates.base import Template
from ..templates.media import IMAGE_SENTINEL, get_media_step
from ..templates.meta import OFFICIAL, PROFILES, SWIFT_2_2_0, TemplateMeta, apply_deviations, get_template_meta
from .adapter import Adapter
from .cases import GOLDEN, ConformCase, cases_for
from .compare import ImageIds, Normalised, aligned_view, first_difference, normalise


class ConformError(VlmrefError, ValueError):
    """A conformance run that cannot start (no tokenizers, unknown model type or profile)."""


@dataclass
class CaseResult:
    case: ConformCase
    status: str  # "equal" | "differ" | "skipped"
    field: str | None = None
    index: int | None = None
    explanation: tuple[str, ...] | None = None  # deviation ids; None: unexplained
    explanation_text: str = ""
    view: str = ""
    note: str = ""

    @property
    def kind(self) -> str:
        """What groups differences in the report: the explaining deviations, or the field that differs."""
        if self.explanation:
            return " + ".join(self.explanation)
        return f"unexplained {self.field}"


@dataclass
class ModelReport:
    model_type: str
    template_type: str
    results: list[CaseResult] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)


class Reference:
    """vlmref's encodings of one template under every deviation subset asked for, cached per meta."""

    def __init__(self, template_type: str, tokenizers_root: Path) -> None:
        from ..testing.oracle import tokenizer_factory

        self.template_type = template_type
        self.tokenizer_for = tokenizer_factory(template_type, tokenizers_root)
        self._templates: dict[tuple, Template] = {}
        self._metas: dict[tuple[str, ...], TemplateMeta] = {}

    def with_deviations(self, official: TemplateMeta, subset: tuple) -> TemplateMeta:
        """``official`` with ``subset``'s ms-swift fields applied, made once per subset (its templates are cached by
        the meta's identity)."""
        key = tuple(d.id for d in subset)
        if key not in self._metas:
            self._metas[key] = apply_deviations(official, subset) if subset else official
        return self._metas[key]

    def encode(self, meta: TemplateMeta, case: ConformCase) -> dict[str, Any]:
        key = (id(meta), case.options.get("max_length"), case.options.get("truncation_strategy", "delete"))
        if key not in self._templates:
            self._templates[key] = Template(meta, self.tokenizer_for(meta), max_length=key[1],
                                            truncation_strategy=key[2], media_root=str(GOLDEN))
        try:
            enc = self._templates[key].encode(case.example)
        except VlmrefError as err:
            return {"error": f"{type(err).__name__}: {err}"}
        return {k: enc[k] for k in ("input_ids", "labels", "image_spans", "token_type_ids", "im_mask") if k in enc}


def image_marks(model_type: str, tokenizer: Any, adapter: Adapter) -> ImageIds:
    """The ids that mark image positions of ``model_type`` (see ``compare``)."""
    from ..templates import TEMPLATES

    step = get_media_step(TEMPLATES.get(MODELS.get(model_type).template).media)
    ids = {IMAGE_SENTINEL, *adapter.image_token_ids}
    for name in ("<image>", "<imgpad>"):
        try:
            token = tokenizer.convert_tokens_to_ids(name)
        except Exception:  # noqa: BLE001 - a tokenizer without that token
            token = None
        if isinstance(token, int) and token != getattr(tokenizer, "unk_token_id", None):
            ids.add(token)
    open_close = None
    if step.tokenizer_expands_markup and len(step.markup_tokens) >= 2:
        open_close = tuple(tokenizer.convert_tokens_to_ids(t) for t in step.markup_tokens[:2])
    return ImageIds(frozenset(ids), open_close)


def _explain(reference: Reference, official: TemplateMeta, case: ConformCase, got: Normalised, marks: ImageIds,
             profile: str) -> tuple[tuple[str, ...] | None, str]:
    """The smallest deviation set whose ms-swift fields, applied to the official meta, give ``got``."""
    candidates = [d for d in official.deviations if d.swift]
    for size in range(0, len(candidates) + 1):
        for subset in combinations(candidates, size):
            expected = normalise(reference.encode(reference.with_deviations(official, subset), case), marks)
            if first_difference(expected, got) is None:
                both = (f" (both refuse the case, with different errors maybe: vlmref: {expected.error}; adapter: "
                        f"{got.error})" if got.error is not None else "")
                if profile == OFFICIAL:
                    return (tuple(d.id for d in subset),
                            "ms-swift 2.2.0's behaviour: " + "; ".join(str(d) for d in subset) + both)
                missing = [d for d in candidates if d not in subset]
                return (tuple(d.id for d in missing) or ("official",),
                        "the official format where ms-swift 2.2.0 differs: " + "; ".join(str(d) for d in missing)
                        + both)
    return None, ""


class ModelContext:
    """What every case of one model type shares: the reference, the profile's and the official meta, the marks."""

    def __init__(self, adapter: Adapter, model_type: str, profile: str, tokenizers_root: Path) -> None:
        self.adapter = adapter
        self.model_type = MODELS.canonical(model_type)
        self.template_type = MODELS.get(self.model_type).template
        self.profile = profile
        self.reference = Reference(self.template_type, tokenizers_root)
        self.meta = get_template_meta(self.template_type, profile)
        self.official = get_template_meta(self.template_type, OFFICIAL)
        self.tokenizer = self.reference.tokenizer_for(self.meta)
        self.marks = image_marks(self.model_type, self.tokenizer, adapter)


def compare_case(context: ModelContext, case: ConformCase, explain: bool = True) -> CaseResult:
    """One case through the adapter and the reference: equal, differ (where, why, the aligned view) or skipped."""
    adapter = context.adapter
    if case.options and not adapter.supports_truncation:
        return CaseResult(case, "skipped", note="the adapter does not take max_length")
    ref_raw = context.reference.encode(context.meta, case)
    marks = context.marks
    if "image_spans" in ref_raw and not marks.open_close:
        marks = marks.with_ids(i for s, n in ref_raw["image_spans"] for i in ref_raw["input_ids"][s:s + n])
    try:
        got_raw = adapter.encode(context.model_type, case.adapter_example(), **case.options)
    except Exception as err:  # noqa: BLE001 - the adapter's refusal is a result
        got_raw = {"error": f"{type(err).__name__}: {err}"}
    if "error" not in got_raw and "input_ids" not in got_raw:
        got_raw = {"error": f"the adapter returned no input_ids (keys: {sorted(got_raw)})"}
    ref, got = normalise(ref_raw, marks), normalise(got_raw, marks)
    diff = first_difference(ref, got)
    if diff is None:
        return CaseResult(case, "equal")
    ids, text = (_explain(context.reference, context.official, case, got, marks, context.profile) if explain
                 else (None, ""))
    return CaseResult(case, "differ", diff[0], diff[1], ids, text, aligned_view(ref, got, diff[1], context.tokenizer))


def run_model(adapter: Adapter, model_type: str, profile: str, tokenizers_root: Path,
              cases: list[ConformCase] | None = None, explain: bool = True) -> ModelReport:
    """Every case of ``model_type`` through the adapter and the reference."""
    context = ModelContext(adapter, model_type, profile, tokenizers_root)
    report = ModelReport(context.model_type, context.template_type)
    for case in cases if cases is not None else cases_for(context.model_type):
        report.results.append(compare_case(context, case, explain))
    return report


def tokenizers_root_or_error(root: Path | str | None = None) -> Path:
    """The folder of real tokenizer files the reference reads (``ConformError`` when there is none)."""
    from ..tokenizers.loader import shared_tokenizers_dir

    found = Path(root) if root else shared_tokenizers_dir()
    if found is None or not Path(found).is_dir():
        raise ConformError("the reference needs the real tokenizer files: set VLMREF_TOKENIZERS_DIR to a folder of "
                           "<family>/ tokenizer folders (README, 'Real tokenizers')")
    return Path(found)


def run_conform(adapter: Adapter, profile: str = OFFICIAL, model_types: Iterable[str] | None = None,
                tokenizers_root: Path | None = None, log: Callable[[str], None] = lambda m: None,
                explain: bool = True) -> dict[str, Any]:
    """Every covered model type (``model_types``: just these); the per-model reports and the run's facts."""
    if profile not in PROFILES:
        raise ConformError(f"--profile {profile!r}: expected one of {', '.join(PROFILES)}")
    root = tokenizers_root_or_error(tokenizers_root)
    chosen = [MODELS.canonical(m) for m in model_types] if model_types else list(MODELS.names())
    for m in chosen:
        family_of(m)  # an unknown name is a KeyError naming the known ones
    start = time.perf_counter()
    reports = []
    outside = [m for m in chosen if not in_profile(m, profile)]
    for m in chosen:
        if not adapter.covers(m) or m in outside:
            continue
        log(f"{m}: ...")
        reports.append(run_model(adapter, m, profile, root, explain=explain))
        r = reports[-1]
        log(f"{m}: {r.count('equal')}/{len(r.results)} equal")
    return {"adapter": adapter, "profile": profile, "reports": reports, "seconds": time.perf_counter() - start,
            "not_covered": [m for m in chosen if not adapter.covers(m)], "not_in_profile": outside}


def in_profile(model_type: str, profile: str) -> bool:
    """Whether the profile has a template for ``model_type`` (ms-swift 2.2.0 has none for InternLM-XComposer2.5)."""
    from ..templates.meta import template_registry

    return MODELS.get(model_type).template in template_registry(profile)


__all__ = ["SWIFT_2_2_0", "CaseResult", "ConformError", "ModelContext", "ModelReport", "compare_case", "run_conform",
           "run_model"]
