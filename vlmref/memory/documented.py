"""The 16 GPU-memory figures the seeds document, each with the exact scenario ``vlmref memory --documented`` predicts.

Every ``Footprint`` in the model registry appears here exactly once, in registry order. The scenario is the seed's
command (with the launch its ``Footprint`` records: processes, GPUs per process, ZeRO stage) with ms-swift 2.2.0's
defaults: bf16, batch 1, LoRA r=8 on the registry's DEFAULT targets, the registry's gradient-checkpointing default,
``max_length`` 2048 (a budget the seeds' coco samples never reach).

Sample lengths (stated assumptions, the same for every model, never fitted to the documented numbers):

* sft on ``coco-en-mini`` / ``coco-en-2-mini``: one 640x480 COCO picture + 64 text positions (the query
  "please describe the image." and one caption, ~10-50 words, plus the template's markup);
* infer (the seeds' interactive sessions): one 640x480 picture + 32 prompt positions, 128 generated tokens.

Attention as ms-swift 2.2.0 ran it with the seeds' commands (no ``--use_flash_attn``): ``eager`` for LLaVA-NeXT and
Yi-VL (``get_model_tokenizer_with_flash_attn`` sets ``_attn_implementation='eager'`` on transformers >= 4.36), for
Qwen-VL (its remote code's non-flash path without the flash-attn package) and InternLM-XComposer2 (its remote code's
``eager`` attention); ``sdpa`` for CogVLM (its remote ``attention_fn`` calls torch's SDPA for causal masks).

>>> len(DOCUMENTED)
16
>>> documented_for("qwen-vl-chat")[2].scenario.label()
'qwen-vl-chat sft full bf16 eager-attn 2x2 GPU, 1 image 480x640 + 64 text tokens, bs 1'
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..models.family import family_of
from ..models.model_types import MODELS, Footprint
from .scenario import MemoryScenario

SFT_TEXT_TOKENS = 64
INFER_TEXT_TOKENS = 32
INFER_NEW_TOKENS = 128
COCO_IMAGE = (480, 640)


@dataclass(frozen=True)
class DocumentedFootprint:
    model_type: str
    footprint: Footprint
    scenario: MemoryScenario

    @property
    def documented_gib(self) -> float:
        """The seed's per-GPU figure; its "GB" is read as GiB (nvidia-smi and ms-swift print MiB/GiB)."""
        return float(self.footprint.gb_per_gpu)

    @property
    def gpus(self) -> str:
        return f"{self.footprint.gpus} x {self.footprint.gpu_kind}"

    @property
    def key(self) -> str:
        fp = self.footprint
        return f"{self.model_type}/{fp.mode}/{fp.gpus}gpu"


def _attention(model_type: str) -> str:
    """The attention implementation ms-swift 2.2.0's documented run of ``model_type`` used (its family's record)."""
    return family_of(model_type).swift_attention


def sft_scenario(model_type: str, sft_type: str = "lora", **kw) -> MemoryScenario:
    """A seed's sft run of ``model_type`` on its coco sample (``kw``: other scenario fields)."""
    return MemoryScenario(model_type, "sft", sft_type=sft_type, text_tokens=SFT_TEXT_TOKENS, image_size=COCO_IMAGE,
                          attention=_attention(model_type), **kw)


def infer_scenario(model_type: str, **kw) -> MemoryScenario:
    """A seed's interactive inference of ``model_type`` on its coco picture (``kw``: other scenario fields)."""
    return MemoryScenario(model_type, "infer", text_tokens=INFER_TEXT_TOKENS, new_tokens=INFER_NEW_TOKENS,
                          image_size=COCO_IMAGE, attention=_attention(model_type), **kw)


def _scenario(model_type: str, fp: Footprint) -> MemoryScenario:
    """The seed command of ``fp`` (quoted in its ``launch``/``seed``) as a scenario, with the launch it records."""
    launch = {"world_size": fp.world_size, "devices_per_process": fp.devices_per_process}
    if fp.mode == "infer":
        return infer_scenario(model_type, **launch)
    return sft_scenario(model_type, fp.mode, deepspeed=fp.deepspeed, **launch)


def _build() -> tuple[DocumentedFootprint, ...]:
    rows = []
    for model_type in MODELS.names():
        for fp in MODELS.get(model_type).footprints:
            scenario = _scenario(model_type, fp)
            if scenario.devices != fp.gpus:
                raise ValueError(f"{model_type}/{fp.mode}/{fp.gpus}gpu: its launch uses {scenario.devices} GPUs, the "
                                 f"seed {fp.gpus}")
            rows.append(DocumentedFootprint(model_type, fp, scenario))
    return tuple(rows)


DOCUMENTED: tuple[DocumentedFootprint, ...] = _build()


def documented_for(model_type: str) -> list[DocumentedFootprint]:
    canonical = MODELS.canonical(model_type)
    return [d for d in DOCUMENTED if d.model_type == canonical]


def select_keyed(rows: Iterable[Any], only: Iterable[str] | None, what: str) -> list[Any]:
    """``rows`` (each with a ``key``) in order; ``only``: just these keys (an unknown key is a ``KeyError`` naming
    the known ones, as "unknown <what> key(s)")."""
    rows = list(rows)
    if not only:
        return rows
    wanted = set(only)
    unknown = sorted(wanted - {r.key for r in rows})
    if unknown:
        raise KeyError(f"unknown {what} key(s) {unknown}; known: {', '.join(r.key for r in rows)}")
    return [r for r in rows if r.key in wanted]


def select_documented(only: Iterable[str] | None = None) -> list[DocumentedFootprint]:
    """The documented footprints, in table order; ``only``: just these keys (an unknown key is a ``KeyError``)."""
    return select_keyed(DOCUMENTED, only, "documented")
