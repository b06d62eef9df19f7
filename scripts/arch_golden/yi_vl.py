#!/usr/bin/env python
"""Write golden/arch/yi-vl-6b-chat.json and yi-vl-34b-chat.json: Yi-VL's checkpoint keys and shapes, from upstream facts.

Usage: python scripts/arch_golden/yi_vl.py [--check-index pytorch_model.bin.index.json --model-type TYPE] [--out-dir DIR]

Independent of vlmref (the key/shape helpers come from llava_next.py beside this script). The facts:

* KEY NAMES: 01-ai/Yi ``VL/llava/model`` module tree: ``LlavaLlamaForCausalLM`` = ``model`` (``LlavaLlamaModel``:
  LlamaModel ``embed_tokens``/``layers``/``norm`` + ``LlavaMetaModel`` ``vision_tower`` + ``mm_projector``) + ``lm_head``;
  ``CLIPVisionTower.vision_tower`` is a transformers ``CLIPVisionModel`` (``vision_model.*``); ``mm_projector`` for
  ``mlp2x_gelu_Norm`` (multimodal_projector/builder.py) = Sequential(Linear, LayerNorm, GELU, Linear, LayerNorm) ->
  parameters at indices 0, 1, 3, 4. The main checkpoint (pytorch_model-0000{1,2}-of-00002.bin, 9.94 + 3.49 GB bf16 =
  6.715e9 params; index 89.5 kB) holds the ViT too: without it the LLM + projector are 6.08e9. Yi's code builds the
  tower with ``delay_load=True`` and loads it from ``vit/clip-vit-H-14-laion2B-s32B-b79K-yi-vl-{6B,34B}-448`` (a
  CLIPVisionModel folder: ``vision_model.*``, pytorch_model.bin 2.53 GB fp32 = 632e6 params), so the copy there is the
  one upstream uses; the keys below are the main checkpoint's names. No index file was found in the corpora.
* SHAPES: Yi-VL config.json (Llama fields, mm_hidden_size 1280) and the vit folder's CLIP config (width 1280, 32
  layers, 16 heads, MLP 5120, patch 14, image 448 -> 1025 positions); sources in vlmref/models/yi_vl/config.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from golden_io import check_index_keys, count_parameters, write_all_main  # noqa: E402
from llava_next import clip_vision_keys, decoder_keys  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
OUT_DIR = REPO / "golden" / "arch"

CLIP_H_448 = {"width": 1280, "intermediate": 5120, "layers": 32, "image": 448, "patch": 14}
VIT_PARAMS = 632_000_000  # vit/.../pytorch_model.bin: 2.53 GB of fp32 (4 bytes per parameter), rounded

MODELS = {  # hidden, intermediate, layers, heads, kv heads, vocab
    "yi-vl-6b-chat": {
        "llm": (4096, 11008, 32, 32, 4, 64000), "repo": "01-ai/Yi-VL-6B",
        "published_total": {
            "value": 6_715_000_000,
            "source": "bf16 shard sizes listed on huggingface.co/01-ai/Yi-VL-6B (pytorch_model-00001-of-00002.bin "
                      "9.94 GB + pytorch_model-00002-of-00002.bin 3.49 GB = 13.43 GB / 2 bytes; includes the ViT copy)",
        },
    },
    "yi-vl-34b-chat": {
        "llm": (7168, 20480, 60, 56, 8, 64000), "repo": "01-ai/Yi-VL-34B",
        "published_total": {
            "value": 34_389_000_000 + VIT_PARAMS + 60_598_272,
            "source": "derived: Yi-34B-Chat 34.389e9 params (Open LLM Leaderboard request file, safetensors count) + "
                      "the vit folder's CLIP ViT-H (pytorch_model.bin 2.53 GB fp32 / 4 = 0.632e9) + mlp2x_gelu_Norm "
                      "projector 1280*7168+7168 + 2*7168 + 7168^2+7168 + 2*7168 (no Yi-VL-34B total was found)",
        },
    },
}

COMPONENTS = {
    "vision_tower": ("model.vision_tower",),
    "projector": ("model.mm_projector",),
    "language_model": ("model.embed_tokens", "model.layers", "model.norm"),
    "lm_head": ("lm_head",),
}


def build(model_type: str) -> dict:
    info = MODELS[model_type]
    hidden, inter, layers, heads, kv, vocab = info["llm"]
    width = CLIP_H_448["width"]
    keys = dict(decoder_keys("model.", hidden, inter, layers, heads, kv, vocab, qkv_bias=False))
    keys.update(clip_vision_keys("model.vision_tower.vision_tower.vision_model.", **CLIP_H_448))
    for index, shape in ((0, [hidden, width]), (3, [hidden, hidden])):  # Linear layers
        keys[f"model.mm_projector.{index}.weight"], keys[f"model.mm_projector.{index}.bias"] = shape, [hidden]
    for index in (1, 4):  # LayerNorm(hidden)
        keys[f"model.mm_projector.{index}.weight"] = keys[f"model.mm_projector.{index}.bias"] = [hidden]
    keys["lm_head.weight"] = [vocab, hidden]
    return {
        "model_type": model_type,
        "provenance": (
            "keys: 01-ai/Yi VL/llava/model module tree (llava_llama.py LlavaLlamaForCausalLM/LlavaLlamaModel, "
            "llava_arch.py LlavaMetaModel, clip_encoder/clip_encoder.py CLIPVisionTower.vision_tower = CLIPVisionModel, "
            "multimodal_projector/builder.py mlp2x_gelu_Norm -> mm_projector.0/1/3/4) in the main checkpoint's naming "
            f"(no pytorch_model.bin.index.json of {info['repo']} was found in the searchable corpora; its 89.5 kB and the "
            "13.43 GB of shards fit the ViT being stored there too). The vit/<name> folder stores the same ViT as "
            "vision_model.* (what Yi's code loads). Shapes: "
            f"config.json (hidden {hidden}, intermediate {inter}, {layers} layers, {heads} heads, {kv} kv heads, vocab "
            f"{vocab}, mm_hidden_size 1280) + the vit folder's config.json (CLIP ViT-H/14 width 1280, 32 layers, MLP 5120, "
            "448 px, 1025 positions); sources in vlmref/models/yi_vl/config.py. Generated by scripts/arch_golden/yi_vl.py."
        ),
        "keys": keys,
        "param_counts": count_parameters(keys, COMPONENTS),
        "published_total": info["published_total"],
    }


def check_index(path: Path, model_type: str) -> None:
    check_index_keys(path, set(build(model_type)["keys"]), model_type, ignore=(".rotary_emb.inv_freq", ".position_ids"))


def main(argv: list[str] | None = None) -> int:
    return write_all_main(argv, __doc__, MODELS, build, OUT_DIR, "a real pytorch_model.bin.index.json to compare",
                          check_index)


if __name__ == "__main__":
    sys.exit(main())
