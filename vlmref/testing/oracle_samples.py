"""Seeded samples for the ms-swift 2.2.0 template oracle (``scripts/oracle/make_template_oracle.py``).

Hypothesis draws them with ``derandomize=True``, so the same hypothesis release gives the same list; the oracle
stores the samples it encoded, so tests never regenerate them. A sample is an ms-swift example dict plus optional
``max_length`` / ``truncation_strategy``::

    {'example': {'query': '你好 <|im_end|>', 'response': ' 🚀', 'history': [], 'images': ['images/red_640x480.png'],
                 'system': None}, 'max_length': 24, 'truncation_strategy': 'truncation_left'}

Images follow each model's rules (one per turn or ``None`` for the round templates, at most one for CogVLM, paths
only for Qwen-VL, the images column or inline ``<img>`` tags for XComposer2).
"""

from __future__ import annotations

from typing import Any

from ..models.model_types import MODELS
from ..templates.media import get_media_step
from ..templates.meta import TemplateMeta, template_markers
from .golden import GOLDEN_IMAGES, template_tokenizer

IMAGES = tuple(GOLDEN_IMAGES)
FRAGMENTS = (
    "Describe the picture.", "What is this?", "Paris", "a", " ", "  ", "\n", "\n\n", "\t", " trailing ", "x ",
    "你好，世界！", "好的", "行末空格 ", "😀", "🚀🚀", "Ünïcödé", "1 + 1 = 2", "\"quoted\"", "it's", "line\nbreak",
)
ALPHABET = "abcXYZ019 .,!?\n\t-_'\"你好世界。，😀🚀ü"


def _strategies(meta: TemplateMeta):
    from hypothesis import strategies as st

    markers = sorted(m for m in template_markers(meta) if m not in ("<image>", "<img>", "</img>", "<imgpad>"))
    markers += ["</s>", "<s>", "<|im_end|>", "<|eot_id|>", "[INST]", "[UNUSED_TOKEN_145]"]
    piece = st.one_of(st.sampled_from(FRAGMENTS), st.sampled_from(sorted(set(markers))), st.text(ALPHABET, max_size=8))
    text = st.lists(piece, max_size=5).map("".join)
    return st, text


def sample_strategy(template_type: str, meta: TemplateMeta):
    """A hypothesis strategy of oracle samples for ``template_type`` (``meta`` is its official meta)."""
    st, text = _strategies(meta)
    model = MODELS.get(template_tokenizer(template_type)[0])
    rules = model.rules

    @st.composite
    def sample(draw) -> dict[str, Any]:
        turns = draw(st.integers(0, 2)) if meta.supports_multi_round else 0
        history = [[draw(text), draw(text)] for _ in range(turns)]
        query = draw(text)
        response = draw(st.one_of(st.none(), text, text, text))
        example: dict[str, Any] = {"query": query, "response": response, "history": history}
        if meta.supports_system:
            example["system"] = draw(st.one_of(st.none(), st.just(""), text))
        images: list[Any] = []
        if meta.media != "text":
            if meta.infer_media_type == "round":
                images = [draw(st.one_of(st.none(), st.sampled_from(IMAGES))) for _ in range(turns + 1)]
                if not any(images):
                    images = []
            else:
                most = rules.max_images if rules.max_images is not None else 2
                least = rules.min_images if draw(st.integers(0, 9)) else 0  # a few rule-breaking rows too
                images = draw(st.lists(st.sampled_from(IMAGES), min_size=least, max_size=most))
                if images and get_media_step(meta.media).inline_images_exclusive and draw(st.booleans()):
                    example["query"] = "".join(f"<img>{m}</img>" for m in images) + query  # inline markup
                    images = []
        if images:
            example["images"] = images
        out: dict[str, Any] = {"example": example}
        if draw(st.integers(0, 3)) == 0:
            out["max_length"] = draw(st.integers(4, 96))
            out["truncation_strategy"] = draw(st.sampled_from(["delete", "truncation_left"]))
        return out

    return sample()


def draw_samples(template_type: str, meta: TemplateMeta, n: int) -> list[dict[str, Any]]:
    """``n`` distinct samples, the same on every run of one hypothesis release."""
    import json

    from hypothesis import HealthCheck, Phase, given, settings

    _no_local_constants()
    seen: dict[str, dict[str, Any]] = {}

    @settings(max_examples=4 * n, derandomize=True, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck), deadline=None)
    @given(sample_strategy(template_type, meta))
    def collect(s: dict[str, Any]) -> None:
        if len(seen) < n:
            seen.setdefault(json.dumps(s, sort_keys=True, ensure_ascii=False), s)

    collect()
    if len(seen) < n:
        raise RuntimeError(f"{template_type}: hypothesis drew only {len(seen)} distinct samples, {n} wanted")
    return list(seen.values())


def _no_local_constants() -> None:
    """Hypothesis >= 6.131 mixes literals from the loaded local source files into its draws, so the same seed gives
    other samples whenever vlmref's code changes; the oracle's samples must depend on the seed only."""
    try:
        from hypothesis.internal.conjecture import providers
    except ImportError:  # pragma: no cover - older hypothesis: no local constants
        return
    if hasattr(providers, "_get_local_constants") and hasattr(providers, "Constants"):
        providers._get_local_constants = providers.Constants
