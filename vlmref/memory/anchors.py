"""GPU-memory figures measured outside the seeds for the same models, each with the scenario ``vlmref memory
--anchors`` predicts: ms-swift's example scripts and Qwen-VL's own README.

The families record them (``ModelMeta.anchors``: figure, GPU, source, its wording, the run as scenario fields). A
row's scenario is the seeds' sample of its mode (``documented``: one 640x480 picture + 64 response positions for sft,
32 prompt positions and 128 new tokens for infer, each model's swift attention) with the anchor's fields over it, so
only what the anchor's run states differs from a documented row. An anchor vlmref cannot trace (QLoRA) is listed
with its reason and no prediction.

>>> row = select_anchors(["qwen-vl-chat/qwen-readme/lora-2048"])[0]
>>> row.scenario.label()
'qwen-vl-chat sft lora bf16 eager-attn 1x1 GPU, 1 image 480x640 + max_length, bs 1'
>>> row.scenario.max_length, row.scenario.lora_rank, row.documented_gib
(1790, 64, 27.3)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..models.model_types import MODELS, MemoryAnchor
from .documented import infer_scenario, select_keyed, sft_scenario
from .scenario import MemoryScenario, ScenarioError


@dataclass(frozen=True)
class AnchorRow:
    model_type: str
    anchor: MemoryAnchor
    scenario: MemoryScenario | None  # None: not modelled (``anchor.not_modelled`` says why)

    @property
    def key(self) -> str:
        return f"{self.model_type}/{self.anchor.name}"

    @property
    def documented_gib(self) -> float:
        """The source's per-GPU figure; its "GB" is read as GiB, as the seeds' are."""
        return float(self.anchor.gb_per_gpu)

    @property
    def gpus(self) -> str:
        return f"{self.anchor.gpus} x {self.anchor.gpu_kind}"


def anchor_scenario(model_type: str, anchor: MemoryAnchor) -> MemoryScenario:
    """The anchor's run: the seeds' sample of its mode with the anchor's scenario fields over it."""
    fields = dict(anchor.scenario)
    mode = fields.pop("mode", None)
    if mode not in ("sft", "infer"):
        raise ScenarioError(f"{model_type}/{anchor.name}: its scenario needs mode 'sft' or 'infer', got {mode!r}")
    if "lora_target_modules" in fields:
        fields["lora_target_modules"] = tuple(fields["lora_target_modules"])
    base = sft_scenario(model_type) if mode == "sft" else infer_scenario(model_type)
    scenario = base.with_(**fields)
    if scenario.devices != anchor.gpus:
        raise ScenarioError(f"{model_type}/{anchor.name}: its scenario uses {scenario.devices} GPUs, the source "
                            f"{anchor.gpus}")
    return scenario


def _build() -> tuple[AnchorRow, ...]:
    rows = []
    for model_type in MODELS.names():
        for anchor in MODELS.get(model_type).anchors:
            scenario = None if anchor.not_modelled else anchor_scenario(model_type, anchor)
            rows.append(AnchorRow(model_type, anchor, scenario))
    return tuple(rows)


ANCHORS: tuple[AnchorRow, ...] = _build()


def select_anchors(only: Iterable[str] | None = None) -> list[AnchorRow]:
    """The anchors in table order; ``only``: just these keys (an unknown key is a ``KeyError``)."""
    return select_keyed(ANCHORS, only, "anchor")
