"""Model types as data: ids, template, LoRA defaults, rules, documented footprints; each family registers its own
(``vlmref/models/<family>/family.py``) and ``MODELS`` collects them.

Canonical names are the seeds' (``cogvlm-17b-instruct``, ``llava1d6-mistral-7b-instruct``); ms-swift 2.2.0's names
(``cogvlm-17b-chat``, ``llava1_6-mistral-7b-instruct``) are aliases, accepted everywhere (CLI and Python API).
Sources: ms-swift 2.2.0 ``swift/llm/utils/model.py`` (the ``register_model`` calls) and ms-swift's multimodal
best-practice guides ``docs/source/Multi-Modal/*.md`` (the documented footprints).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ..families import load_families
from ..name_registry import Registry


@dataclass(frozen=True)
class Footprint:
    """A GPU-memory figure documented in a seed: ``gpus`` x ``gb_per_gpu`` on ``gpu_kind`` for ``mode``."""

    mode: Literal["infer", "lora", "full"]
    gb_per_gpu: float
    gpus: int
    gpu_kind: str
    launch: str  # how the seed runs it: single GPU, device_map over N GPUs, NPROC_PER_NODE=..., deepspeed
    seed: str  # the seed file and the command's dataset
    # the launch as vlmref memory models it: data-parallel processes, GPUs per process (device_map), ZeRO stage
    world_size: int = 1
    devices_per_process: int = 1
    deepspeed: Literal["zero2", "zero3"] | None = None


@dataclass(frozen=True)
class MemoryAnchor:
    """A GPU-memory figure measured outside the seeds for the same model (``vlmref memory --anchors``): ``gpus`` x
    ``gb_per_gpu`` on ``gpu_kind``, from ``source`` (``quote`` is its wording), for the run ``scenario`` describes as
    ``MemoryScenario`` fields over the seeds' sample (``vlmref.memory.anchors``). ``not_modelled``: why vlmref has no
    prediction for it (the row is listed without one)."""

    name: str
    gb_per_gpu: float
    gpus: int
    gpu_kind: str
    source: str
    quote: str
    scenario: Mapping[str, Any] = field(default_factory=dict)
    not_modelled: str = ""


@dataclass(frozen=True)
class DatasetRules:
    """What a dataset row may hold for this model (enforced by the dataset layer)."""

    min_images: int = 0  # per sample
    max_images: int | None = None  # per sample
    max_images_per_turn: int | None = None
    multi_turn: bool = True
    note: str = ""


@dataclass(frozen=True)
class TokenizerSource:
    """Where a tokenizer kept outside the model's checkpoint comes from (hub ids)."""

    hf_id: str
    ms_id: str


@dataclass(frozen=True)
class TokenizerSpec:
    """How to build the model's tokenizer: loader kind, the family folder of ../shared/tokenizers, overrides."""

    kind: Literal["sentencepiece", "tokenizer_json", "qwen", "qwen-vl"]
    family: str
    bos: str | None = None
    eos: str | None = None
    pad: str | None = None
    add_tokens: tuple[str, ...] = ()
    prefix_policy: str | None = None  # sentencepiece kinds: vlmref.tokenizers.sentencepiece.PREFIX_POLICIES
    source: TokenizerSource | None = None  # set when the model repo has no tokenizer (CogVLM: vicuna-7b-v1.5)

    def special(self) -> dict[str, Any]:
        return {"bos": self.bos, "eos": self.eos, "pad": self.pad, "add_tokens": list(self.add_tokens)}


@dataclass(frozen=True)
class ModelMeta:
    model_type: str
    aliases: tuple[str, ...]
    ms_model_id: str
    hf_model_id: str
    template: str
    lora_target_modules: tuple[str, ...]
    tokenizer: TokenizerSpec
    rules: DatasetRules
    architecture: str
    upstream_requires: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    support_merge_lora: bool = True
    merge_lora_note: str = ""
    gradient_checkpointing: bool = True
    media_options: dict[str, Any] = field(default_factory=dict)
    footprints: tuple[Footprint, ...] = ()
    anchors: tuple[MemoryAnchor, ...] = ()
    notes: str = ""


MODELS: Registry[ModelMeta] = Registry("model_type", populate=load_families)


class ModelType:
    """Model type names: the seeds' names, plus ms-swift 2.2.0's names as aliases."""

    cogvlm_17b_instruct = "cogvlm-17b-instruct"
    qwen_vl_chat = "qwen-vl-chat"
    internlm_xcomposer2_7b_chat = "internlm-xcomposer2-7b-chat"
    internlm_xcomposer2_5_7b_chat = "internlm-xcomposer2_5-7b-chat"
    yi_vl_6b_chat = "yi-vl-6b-chat"
    yi_vl_34b_chat = "yi-vl-34b-chat"
    llava1d6_mistral_7b_instruct = "llava1d6-mistral-7b-instruct"
    llava1d6_yi_34b_instruct = "llava1d6-yi-34b-instruct"
    llama3_llava_next_8b = "llama3-llava-next-8b"
    llava_next_72b = "llava-next-72b"
    llava_next_110b = "llava-next-110b"
    # ms-swift 2.2.0 names
    cogvlm_17b_chat = "cogvlm-17b-chat"
    llava1_6_mistral_7b_instruct = "llava1_6-mistral-7b-instruct"
    llava1_6_yi_34b_instruct = "llava1_6-yi-34b-instruct"


LLAMA_QKV = ("q_proj", "k_proj", "v_proj")  # LoRA DEFAULT of Llama-layout decoders (ms-swift's LoRATM.llama)
A10_CLASS = "A10/3090/V100"  # the seeds' "A10/3090/V100" GPU class
ANY_IMAGES = DatasetRules(note="multi-turn; any number of images per turn (inline <img>path</img>), or none")


def get_model_meta(model_type: str) -> ModelMeta:
    """The registry entry for ``model_type`` (seed name or ms-swift 2.2.0 alias)."""
    return MODELS.get(model_type)


def get_default_template_type(model_type: str) -> str:
    """ms-swift's ``get_default_template_type``: the template a model type uses."""
    return MODELS.get(model_type).template


def get_default_lora_target_modules(model_type: str) -> list[str]:
    return list(MODELS.get(model_type).lora_target_modules)
