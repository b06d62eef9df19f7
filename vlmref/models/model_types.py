"""One entry per model type of the seeds, as data: ids, template, LoRA defaults, rules, documented footprints.

Canonical names are the seeds' (``cogvlm-17b-instruct``, ``llava1d6-mistral-7b-instruct``); ms-swift 2.2.0's names
(``cogvlm-17b-chat``, ``llava1_6-mistral-7b-instruct``) are aliases, accepted everywhere (CLI and Python API).
Sources: ms-swift 2.2.0 ``swift/llm/utils/model.py`` (the ``register_model`` calls) and ms-swift's multimodal
best-practice guides ``docs/source/Multi-Modal/*.md`` (the documented footprints).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from ..name_registry import Registry
from ..templates.image_tokens import LLAVA_NEXT_GRID_PINPOINTS


@dataclass(frozen=True)
class Footprint:
    """A GPU-memory figure documented in a seed: ``gpus`` x ``gb_per_gpu`` on ``gpu_kind`` for ``mode``."""

    mode: Literal["infer", "lora", "full"]
    gb_per_gpu: float
    gpus: int
    gpu_kind: str
    launch: str  # how the seed runs it: single GPU, device_map over N GPUs, NPROC_PER_NODE=..., deepspeed
    seed: str  # the seed file and the command's dataset


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
    notes: str = ""


MODELS: Registry[ModelMeta] = Registry("model_type")


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


_LLAMA_QKV = ("q_proj", "k_proj", "v_proj")
_A10 = "A10/3090/V100"
_ANY_IMAGES = DatasetRules(note="multi-turn; any number of images per turn (inline <img>path</img>), or none")
_LLAVA_RULES = DatasetRules(
    min_images=1, max_images=1, max_images_per_turn=1, multi_turn=False, note="single turn with exactly one image"
)
_LLAVA_MEDIA = {"image_grid_pinpoints": LLAVA_NEXT_GRID_PINPOINTS}


def _register(meta: ModelMeta) -> ModelMeta:
    return MODELS.register(meta.model_type, meta, aliases=meta.aliases)


_register(ModelMeta(
    model_type=ModelType.cogvlm_17b_instruct,
    aliases=(ModelType.cogvlm_17b_chat,),
    ms_model_id="ZhipuAI/cogvlm-chat",
    hf_model_id="THUDM/cogvlm-chat-hf",
    template="cogvlm",
    lora_target_modules=("vision_expert_query_key_value", "vision_expert_dense",
                         "language_expert_query_key_value", "language_expert_dense"),
    tokenizer=TokenizerSpec("sentencepiece", "llama2", pad="<unk>",
                            source=TokenizerSource("lmsys/vicuna-7b-v1.5", "AI-ModelScope/vicuna-7b-v1.5")),
    rules=DatasetRules(min_images=1, max_images=1, multi_turn=True,
                       note="exactly one image per conversation, in any turn; it is placed after BOS"),
    architecture="cogvlm",
    upstream_requires=("transformers<4.42",),
    gradient_checkpointing=False,
    media_options={"vision_tokens": 1227},
    footprints=(
        Footprint("infer", 38, 1, "A100", "single GPU", "cogvlm.md"),
        Footprint("lora", 50, 1, "A100", "single GPU", "cogvlm.md, --dataset coco-mini-en-2"),
    ),
    notes="tokenizer: vicuna-7b-v1.5 (ModelScope AI-ModelScope/vicuna-7b-v1.5), pad <unk>=0",
))

_register(ModelMeta(
    model_type=ModelType.qwen_vl_chat,
    aliases=(),
    ms_model_id="qwen/Qwen-VL-Chat",
    hf_model_id="Qwen/Qwen-VL-Chat",
    template="qwen-vl",
    lora_target_modules=("c_attn",),
    tokenizer=TokenizerSpec("qwen-vl", "qwen", eos="<|im_end|>"),
    rules=_ANY_IMAGES,
    architecture="qwen_vl",
    footprints=(
        Footprint("infer", 24, 1, "3090", "single GPU", "qwen-vl.md"),
        Footprint("lora", 23, 1, "3090", "single GPU", "qwen-vl.md, --dataset coco-en-mini"),
        Footprint("full", 70, 4, "A100", "NPROC_PER_NODE=2 over 4 GPUs (2 DDP ranks x 2-GPU device_map)",
                  "qwen-vl.md, --dataset coco-en-mini --sft_type full"),
    ),
))

_XCOMPOSER = dict(
    aliases=(),
    lora_target_modules=("wqkv",),
    tokenizer=TokenizerSpec("sentencepiece", "internlm2", eos="[UNUSED_TOKEN_145]"),
    rules=_ANY_IMAGES,
    architecture="internlm_xcomposer2",
    support_merge_lora=True,
    merge_lora_note=("ms-swift documents merge-lora as unsupported here ('该模型不支持merge-lora'; ms-swift#448: a merged "
                     "model produced NaN/<unk>). vlmref merges it: the LoRA folds into the PLoRA layer's base weight "
                     "exactly, the built-in Plora_A/B (image positions only) stay untouched; parity is tested"),
)
_register(ModelMeta(
    model_type=ModelType.internlm_xcomposer2_7b_chat,
    ms_model_id="Shanghai_AI_Laboratory/internlm-xcomposer2-7b",
    hf_model_id="internlm/internlm-xcomposer2-7b",
    template="internlm-xcomposer2",
    media_options={"image_tokens": 256},
    footprints=(
        Footprint("infer", 21, 1, _A10, "single GPU", "internlm-xcomposer2.md"),
        Footprint("lora", 21, 1, _A10, "single GPU", "internlm-xcomposer2.md, --dataset coco-en-mini"),
    ),
    notes="config.json img_size 224 -> 16x16 = 256 image tokens (InternLM/InternLM-XComposer#492, finetune README)",
    **_XCOMPOSER,
))
_register(ModelMeta(
    model_type=ModelType.internlm_xcomposer2_5_7b_chat,
    ms_model_id="Shanghai_AI_Laboratory/internlm-xcomposer2d5-7b",
    hf_model_id="internlm/internlm-xcomposer2d5-7b",
    template="internlm-xcomposer2_5",
    notes="registered in ms-swift 2.2.1 (not 2.2.0); eos <|im_end|> is the same id (92542) as [UNUSED_TOKEN_145]",
    **_XCOMPOSER,
))

for _mt, _ms, _hf, _fp in (
    (ModelType.yi_vl_6b_chat, "01ai/Yi-VL-6B", "01-ai/Yi-VL-6B", (
        Footprint("infer", 18, 1, _A10, "single GPU", "yi-vl.md"),
        Footprint("lora", 19, 1, _A10, "single GPU", "yi-vl.md, --dataset coco-en-2-mini"),
    )),
    (ModelType.yi_vl_34b_chat, "01ai/Yi-VL-34B", "01-ai/Yi-VL-34B", ()),
):
    _register(ModelMeta(
        model_type=_mt,
        aliases=(),
        ms_model_id=_ms,
        hf_model_id=_hf,
        template="yi-vl",
        lora_target_modules=_LLAMA_QKV,
        tokenizer=TokenizerSpec("sentencepiece", "yi"),
        rules=DatasetRules(max_images_per_turn=1, multi_turn=True,
                           note="multi-turn; each turn has one image or none (one images entry per turn)"),
        architecture="yi_vl",
        upstream_requires=("transformers>=4.34",),
        media_options={"image_tokens": 1024},
        footprints=_fp,
    ))

_register(ModelMeta(
    model_type=ModelType.llava1d6_mistral_7b_instruct,
    aliases=(ModelType.llava1_6_mistral_7b_instruct,),
    ms_model_id="huangjintao/llava-v1.6-mistral-7b-hf",
    hf_model_id="llava-hf/llava-v1.6-mistral-7b-hf",
    template="llava-mistral",
    lora_target_modules=_LLAMA_QKV,
    tokenizer=TokenizerSpec("tokenizer_json", "mistral", pad="<pad>", add_tokens=("<image>", "<pad>")),
    rules=_LLAVA_RULES,
    architecture="llava_next",
    upstream_requires=("transformers>=4.39",),
    media_options=_LLAVA_MEDIA,
    footprints=(
        Footprint("infer", 20, 1, "A100", "single GPU", "llava.md"),
        Footprint("lora", 21, 1, _A10, "single GPU", "llava.md, --dataset coco-en-2-mini"),
        Footprint("full", 70, 4, "A100", "NPROC_PER_NODE=4, --deepspeed default-zero2",
                  "llava.md, --dataset coco-en-2-mini --sft_type full"),
    ),
))

_register(ModelMeta(
    model_type=ModelType.llava1d6_yi_34b_instruct,
    aliases=(ModelType.llava1_6_yi_34b_instruct,),
    ms_model_id="huangjintao/llava-v1.6-34b-hf",
    hf_model_id="llava-hf/llava-v1.6-34b-hf",
    template="llava-yi",
    lora_target_modules=_LLAMA_QKV,
    # llava-hf/llava-v1.6-34b-hf: <image> 64000 and <pad> 64001 are added tokens, its pad_token is <pad>
    tokenizer=TokenizerSpec("sentencepiece", "yi", eos="<|im_end|>", pad="<pad>", add_tokens=("<image>", "<pad>")),
    rules=_LLAVA_RULES,
    architecture="llava_next",
    upstream_requires=("transformers>=4.39",),
    media_options=_LLAVA_MEDIA,
    footprints=(
        Footprint("infer", 70, 1, "A100", "single GPU", "llava.md"),
        Footprint("infer", 20, 4, "A100", "device_map over 4 GPUs", "llava.md"),
        Footprint("lora", 45, 2, "A100", "device_map over 2 GPUs", "llava.md, --dataset coco-en-2-mini"),
        Footprint("full", 50, 8, "A100", "device_map over 8 GPUs, no DeepSpeed",
                  "llava.md, --dataset coco-en-2-mini --sft_type full"),
    ),
))

for _mt, _ms, _hf, _tpl, _tok in (
    (ModelType.llama3_llava_next_8b, "AI-Modelscope/llama3-llava-next-8b", "lmms-lab/llama3-llava-next-8b",
     "llama-llava-next", TokenizerSpec("tokenizer_json", "llama3", add_tokens=("<image>",))),
    (ModelType.llava_next_72b, "AI-Modelscope/llava-next-72b", "lmms-lab/llava-next-72b",
     "llava-qwen-instruct", TokenizerSpec("tokenizer_json", "qwen1.5", add_tokens=("<image>",))),
    (ModelType.llava_next_110b, "AI-Modelscope/llava-next-110b", "lmms-lab/llava-next-110b",
     "llava-qwen-instruct", TokenizerSpec("tokenizer_json", "qwen1.5", add_tokens=("<image>",))),
):
    _register(ModelMeta(
        model_type=_mt,
        aliases=(),
        ms_model_id=_ms,
        hf_model_id=_hf,
        template=_tpl,
        lora_target_modules=_LLAMA_QKV,
        tokenizer=_tok,
        rules=_LLAVA_RULES,
        architecture="llava_next",
        media_options=_LLAVA_MEDIA,
    ))


def get_model_meta(model_type: str) -> ModelMeta:
    """The registry entry for ``model_type`` (seed name or ms-swift 2.2.0 alias)."""
    return MODELS.get(model_type)


def get_default_template_type(model_type: str) -> str:
    """ms-swift's ``get_default_template_type``: the template a model type uses."""
    return MODELS.get(model_type).template


def get_default_lora_target_modules(model_type: str) -> list[str]:
    return list(MODELS.get(model_type).lora_target_modules)
