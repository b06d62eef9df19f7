#!/usr/bin/env python
"""Write golden/arch/<model_type>.json for the five LLaVA-NeXT model types, from upstream facts only.

Usage: python scripts/arch_golden/llava_next.py [--check-index INDEX.json --model-type TYPE] [--out-dir DIR]

Independent of vlmref (nothing from vlmref is imported). The facts:

* KEY NAMES. No ``model.safetensors.index.json`` of these five checkpoints is in the searchable corpora (HF LFS and
  blob pages of index files are not stored), so the key lists follow the upstream module trees:
  - llava-hf (llava-v1.6-mistral-7b-hf, llava-v1.6-34b-hf): ``LlavaNextForConditionalGeneration`` of transformers
    4.39-4.51 = ``vision_tower`` (CLIPVisionModel: ``vision_model.*``), ``multi_modal_projector.linear_1/2``,
    ``image_newline``, ``language_model`` (MistralForCausalLM / LlamaForCausalLM: ``model.*`` + ``lm_head``); the
    names transformers' ``convert_llava_next_weights_to_hf.py`` writes and vLLM's llava_next ``hf_to_vllm_mapper``
    reads ("mapping for new names in checkpoint saved after transformers v4.52": ``model.language_model.`` ->
    ``language_model.model.``, ``model.vision_tower.`` -> ``vision_tower.``, ``lm_head.`` ->
    ``language_model.lm_head.``, ``model.image_newline`` -> ``image_newline``).
  - lmms-lab (llama3-llava-next-8b, llava-next-72b/110b): LLaVA-VL/LLaVA-NeXT ``llava/model/llava_arch.py``
    ``LlavaMetaModel`` (``vision_tower`` = ``CLIPVisionTower`` whose ``vision_tower`` is a CLIPVisionModel;
    ``vision_resampler`` = identity for ``mm_resampler_type`` null, no parameters; ``mm_projector`` =
    Sequential(Linear, GELU, Linear) -> ``.0`` / ``.2``; ``image_newline`` when "unpad" in ``mm_patch_merge_type``)
    mixed into Llama/Qwen2Model (``model.embed_tokens``, ``model.layers``, ``model.norm``) + ``lm_head``
    (``llava_llama.py`` / ``llava_qwen.py``). SGLang's/vLLM's llava loaders map exactly these names
    (``model.mm_projector.0`` -> linear_1, ``model.vision_tower.vision_tower`` -> vision_tower,
    ``model.image_newline``). The tower is stored in these checkpoints: ``mm_tunable_parts`` includes
    ``mm_vision_tower`` and the 73.2 kB index of llama3-llava-next-8b fits ~680 keys incl. ~390 CLIP keys.
* SHAPES from the configs below (each value's source is in vlmref/models/llava_next/config.py) and the modeling
  code: nn.Linear weight = (out, in); Qwen2 q/k/v have biases, Llama/Mistral none; CLIP Linears all have biases.
* ``--check-index`` compares a real index file's weight_map with the generated key set.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from golden_io import check_index_keys, count_parameters, write_all_main  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
OUT_DIR = REPO / "golden" / "arch"

CLIP_L_336 = {"width": 1024, "intermediate": 4096, "layers": 24, "image": 336, "patch": 14}

LLMS = {  # hidden, intermediate, layers, heads, kv heads, vocab (checkpoint rows), q/k/v bias
    "Mistral-7B-Instruct-v0.2 (+2 tokens, padded to 64)": (4096, 14336, 32, 32, 8, 32064, False),
    "Nous-Hermes-2-Yi-34B (+3 tokens, padded to 64)": (7168, 20480, 60, 56, 8, 64064, False),
    "Meta-Llama-3-8B-Instruct": (4096, 14336, 32, 32, 8, 128256, False),
    "Qwen1.5-72B-Chat": (8192, 24576, 80, 64, 64, 152064, True),
    "Qwen1.5-110B-Chat": (8192, 49152, 80, 64, 8, 152064, True),
}

CLIP_VISION_PARAMS = 303_507_456  # openai/clip-vit-large-patch14-336 vision tower (CLIPVisionModel, 24 layers)

MODELS = {
    "llava1d6-mistral-7b-instruct": {
        "layout": "llava-hf", "llm": "Mistral-7B-Instruct-v0.2 (+2 tokens, padded to 64)",
        "repo": "llava-hf/llava-v1.6-mistral-7b-hf",
        "published_total": {
            "value": 7_570_000_000,
            "source": "HF hub safetensors count 'Model size 7.57B params' shown for LLaVA-1.6-Mistral-7B checkpoints "
                      "(huggingface.co/erwannd/llava-1.6-mistral-7b-MISCHAv1-new-finetuned, same architecture; the "
                      "llava-hf page itself was not reachable)",
        },
    },
    "llava1d6-yi-34b-instruct": {
        "layout": "llava-hf", "llm": "Nous-Hermes-2-Yi-34B (+3 tokens, padded to 64)",
        "repo": "llava-hf/llava-v1.6-34b-hf",
        "published_total": {
            "value": 34_754_000_000,
            "source": "bf16 shard sizes of PerRing/llava-v1.6-34b-hf, a transformers conversion of liuhaotian/llava-"
                      "v1.6-34b with vocab 64064 (9.98+9.75+9.94+9.91+9.75+9.75+9.51+0.918 GB = 69.508 GB / 2 bytes)",
        },
    },
    "llama3-llava-next-8b": {
        "layout": "original", "llm": "Meta-Llama-3-8B-Instruct", "repo": "lmms-lab/llama3-llava-next-8b",
        "published_total": {
            "value": 8_360_000_000,
            "source": "bf16 shard sizes listed on huggingface.co/lmms-lab/llama3-llava-next-8b (model-0000{1..4}-of-"
                      "00004.safetensors: 4.98+5.00+4.92+1.82 GB = 16.72 GB / 2 bytes)",
        },
    },
    "llava-next-72b": {
        "layout": "original", "llm": "Qwen1.5-72B-Chat", "repo": "lmms-lab/llava-next-72b",
        "published_total": {
            "value": 72_288_000_000 + CLIP_VISION_PARAMS + 75_513_856,
            "source": "derived: Qwen1.5-72B-Chat 72.288e9 params (open-cn-llm-leaderboard request file, safetensors "
                      "count) + CLIP ViT-L/14-336 vision tower 303,507,456 + mlp2x projector 1024*8192+8192+8192^2+8192",
        },
    },
    "llava-next-110b": {
        "layout": "original", "llm": "Qwen1.5-110B-Chat", "repo": "lmms-lab/llava-next-110b",
        "published_total": {
            "value": 111_210_000_000 + CLIP_VISION_PARAMS + 75_513_856,
            "source": "derived: Qwen1.5-110B-Chat 111.21e9 params (Open LLM Leaderboard request file, safetensors "
                      "count; this also settles num_key_value_heads=8: 64 would give 120.2e9) + CLIP ViT-L/14-336 "
                      "vision tower 303,507,456 + mlp2x projector 1024*8192+8192+8192^2+8192",
        },
    },
}

PREFIXES = {  # layout -> (llm body, lm_head, vision tower, projector linear_1, linear_2, image_newline)
    "llava-hf": ("language_model.model.", "language_model.lm_head.", "vision_tower.vision_model.",
                 "multi_modal_projector.linear_1.", "multi_modal_projector.linear_2.", "image_newline"),
    "original": ("model.", "lm_head.", "model.vision_tower.vision_tower.vision_model.",
                 "model.mm_projector.0.", "model.mm_projector.2.", "model.image_newline"),
}


def decoder_keys(prefix: str, hidden: int, inter: int, layers: int, heads: int, kv: int, vocab: int,
                 qkv_bias: bool) -> Iterator[tuple[str, list[int]]]:
    """Llama/Mistral/Qwen2 decoder: embed_tokens, layers.{i}.{self_attn,mlp,norms}, norm (head_dim = hidden/heads)."""
    head_dim = hidden // heads
    yield f"{prefix}embed_tokens.weight", [vocab, hidden]
    for i in range(layers):
        p = f"{prefix}layers.{i}."
        for name, out in (("q_proj", heads * head_dim), ("k_proj", kv * head_dim), ("v_proj", kv * head_dim)):
            yield f"{p}self_attn.{name}.weight", [out, hidden]
            if qkv_bias:
                yield f"{p}self_attn.{name}.bias", [out]
        yield f"{p}self_attn.o_proj.weight", [hidden, heads * head_dim]
        yield f"{p}mlp.gate_proj.weight", [inter, hidden]
        yield f"{p}mlp.up_proj.weight", [inter, hidden]
        yield f"{p}mlp.down_proj.weight", [hidden, inter]
        yield f"{p}input_layernorm.weight", [hidden]
        yield f"{p}post_attention_layernorm.weight", [hidden]
    yield f"{prefix}norm.weight", [hidden]


def clip_vision_keys(prefix: str, width: int, intermediate: int, layers: int, image: int,
                     patch: int) -> Iterator[tuple[str, list[int]]]:
    """transformers CLIPVisionModel ``vision_model.*`` (all layers and post_layernorm are stored)."""
    yield f"{prefix}embeddings.class_embedding", [width]
    yield f"{prefix}embeddings.patch_embedding.weight", [width, 3, patch, patch]
    yield f"{prefix}embeddings.position_embedding.weight", [(image // patch) ** 2 + 1, width]
    yield f"{prefix}pre_layrnorm.weight", [width]
    yield f"{prefix}pre_layrnorm.bias", [width]
    for i in range(layers):
        p = f"{prefix}encoder.layers.{i}."
        for name in ("k_proj", "v_proj", "q_proj", "out_proj"):
            yield f"{p}self_attn.{name}.weight", [width, width]
            yield f"{p}self_attn.{name}.bias", [width]
        for norm in ("layer_norm1", "layer_norm2"):
            yield f"{p}{norm}.weight", [width]
            yield f"{p}{norm}.bias", [width]
        yield f"{p}mlp.fc1.weight", [intermediate, width]
        yield f"{p}mlp.fc1.bias", [intermediate]
        yield f"{p}mlp.fc2.weight", [width, intermediate]
        yield f"{p}mlp.fc2.bias", [width]
    yield f"{prefix}post_layernorm.weight", [width]
    yield f"{prefix}post_layernorm.bias", [width]


def build(model_type: str) -> dict:
    info = MODELS[model_type]
    hidden, inter, layers, heads, kv, vocab, bias = LLMS[info["llm"]]
    body, head, vision, lin1, lin2, newline = PREFIXES[info["layout"]]
    keys = dict(clip_vision_keys(vision, **CLIP_L_336))
    keys[f"{lin1}weight"], keys[f"{lin1}bias"] = [hidden, CLIP_L_336["width"]], [hidden]
    keys[f"{lin2}weight"], keys[f"{lin2}bias"] = [hidden, hidden], [hidden]
    keys[newline] = [hidden]
    keys.update(decoder_keys(body, hidden, inter, layers, heads, kv, vocab, bias))
    keys[f"{head}weight"] = [vocab, hidden]
    components = {
        "vision_tower": (vision.rsplit(".vision_model.", 1)[0],),
        "projector": (lin1.rsplit(".", 2)[0], newline),
        "language_model": (body.rstrip("."),) if info["layout"] == "llava-hf" else
        ("model.embed_tokens", "model.layers", "model.norm"),
        "lm_head": (head.rstrip("."),),
    }
    if info["layout"] == "llava-hf":
        tree = ("transformers 4.39-4.51 LlavaNextForConditionalGeneration module tree (language_model.model.*, "
                "language_model.lm_head, vision_tower.vision_model.*, multi_modal_projector.linear_1/2, image_newline)"
                "; the names of transformers' convert_llava_next_weights_to_hf.py and vLLM's llava_next loader")
    else:
        tree = ("LLaVA-VL/LLaVA-NeXT llava/model/llava_arch.py + multimodal_encoder/clip_encoder.py + language_model/"
                "llava_llama.py|llava_qwen.py module tree (model.embed_tokens/layers/norm, lm_head, model.vision_tower."
                "vision_tower.vision_model.*, model.mm_projector.0/.2, model.image_newline; the identity "
                "vision_resampler has no parameters); the names SGLang's/vLLM's llava loaders map")
    return {
        "model_type": model_type,
        "provenance": (
            f"keys: {tree} (no model.safetensors.index.json of {info['repo']} was found in the searchable corpora). "
            f"Shapes: {info['llm']} (hidden {hidden}, intermediate {inter}, {layers} layers, {heads} heads, {kv} kv "
            f"heads, vocab {vocab}{', q/k/v bias' if bias else ''}) and CLIP ViT-L/14-336 (width 1024, 24 layers, "
            "MLP 4096, 577 positions) from their config.json files (sources in vlmref/models/llava_next/config.py). "
            "Generated by scripts/arch_golden/llava_next.py."
        ),
        "keys": keys,
        "param_counts": count_parameters(keys, components),
        "published_total": info["published_total"],
    }


def check_index(path: Path, model_type: str) -> None:
    check_index_keys(path, set(build(model_type)["keys"]), model_type)


def main(argv: list[str] | None = None) -> int:
    return write_all_main(argv, __doc__, MODELS, build, OUT_DIR, "a real model.safetensors.index.json to compare",
                          check_index)


if __name__ == "__main__":
    sys.exit(main())
