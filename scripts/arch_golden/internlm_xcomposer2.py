#!/usr/bin/env python
"""Write golden/arch/internlm-xcomposer2-7b-chat.json and internlm-xcomposer2_5-7b-chat.json from upstream facts.

Usage: python scripts/arch_golden/internlm_xcomposer2.py [--check-index pytorch_model.bin.index.json] [--out-dir DIR]

Independent of vlmref (nothing from vlmref is imported). The facts:

* KEY_PATTERNS: the weight_map of ``internlm/internlm-xcomposer2-4khd-7b``'s ``pytorch_model.bin.index.json``
  (942 keys; mirrored at github.com/QimingLee/InternLM-XComposer-main @a0332991 ``model/``, whose README/build_mlp.py
  are the 4KHD ones), layer numbers collapsed to ``{i}`` (LLM) / ``{j}`` (CLIP). The three models share this module
  tree (InternLMXComposer2ForCausalLM: ``model``, ``output``, ``vit``, ``vision_proj``); per model, from the upstream
  code: XComposer2 has no ``plora_glb_GN``/``plora_sub_GN`` (modeling_internlm_xcomposer2.py of internlm-xcomposer2-7b,
  PaddleMIX port), IXC-2.5 adds task adapters ``lora_{web,sft,dpo}_{A,B}`` to every PLoRA (lmdeploy
  ``vl/tools/merge_xcomposer2d5_task.py`` @1ceceb506 reads them from every PLoRA module of the HF model). No
  ``post_layernorm`` and no ``position_ids`` keys in any of them. ``--check-index`` regenerates the 4KHD variant
  (wqkv PLoRA r=8 as in its modeling_internlm2.py, 336-px CLIP, GN separators) and compares keys and the index's
  ``total_size`` (bf16, 2 bytes a parameter): 942 keys, 8,597,499,904 parameters, both equal.
* CONFIGS: the checkpoints' config.json (LLM) [read]; CLIP ViT-L/14 numbers, image sizes, PLoRA ranks from
  build_mlp.py / modeling_internlm2.py [read]; IXC-2.5 task-adapter ranks web 512, sft 256, dpo 256 [inferred from
  the IXC-2.5 paper; the total then matches the checkpoint's 9.97 + 10 + 2.22 GB shards and its 186 kB index].
* SHAPES: nn.Linear weight = (out, in); wqkv out = (heads + 2 * kv_heads) * head_dim; PLoRA A = (r, in),
  B = (out, r); CLIP position_embedding = (image_size / 14)^2 + 1 rows; vision_proj in = 1024 (XComposer2) or
  4 * 1024 (IXC-2.5, 2x2 token merge); plora_glb_GN (1, 1, 4096), plora_sub_GN (1, 1, 1, 4096) (torch.zeros in
  modeling_internlm_xcomposer2.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from golden_io import dumps  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
OUT_DIR = REPO / "golden" / "arch"
INDEX_SOURCE = ("internlm/internlm-xcomposer2-4khd-7b pytorch_model.bin.index.json, mirrored at "
                "github.com/QimingLee/InternLM-XComposer-main@a0332991ea3aae5039c8ca14ecbab8e9ab5cc442 "
                "model/pytorch_model.bin.index.json (total_size 17194999808)")

LLM = {"vocab_size": 92544, "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
       "num_attention_heads": 32, "num_key_value_heads": 8}  # identical in both config.json files
CLIP = {"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24, "patch_size": 14}
MODELS = {
    "internlm-xcomposer2-7b-chat": {
        "image_size": 224, "projector_in": 1024, "separators": False, "plora_r": {"wqkv": 256}, "tasks": {},
        "published": (8_650_000_000, "internlm/internlm-xcomposer2-7b on the HF Hub (tree refs/pr/3): one "
                      "model.safetensors of 17.3 GB, bf16 -> 8.65e9 parameters (the name '7B' is the InternLM2-7B LLM)"),
        "config_source": "internlm/internlm-xcomposer2-7b config.json (HF main, blame 194829f): img_size 224",
    },
    "internlm-xcomposer2_5-7b-chat": {
        "image_size": 560, "projector_in": 4096, "separators": True, "plora_r": {"wqkv": 256},
        "tasks": {"web": 512, "sft": 256, "dpo": 256},
        "published": (11_095_000_000, "internlm/internlm-xcomposer2d5-7b on the HF Hub (tree refs/pr/1): "
                      "model-0000{1,2,3}-of-00003.safetensors 9.97 + 10 + 2.22 GB = 22.19 GB bf16 -> 11.095e9 "
                      "parameters (the name '7B' is the InternLM2-7B LLM)"),
        "config_source": "internlm/internlm-xcomposer2d5-7b config.json (HF raw refs/pr/1) and build_mlp.py "
                         "('internlm/internlm-xcomposer2d5-clip' at 560 px)",
    },
}
FOURKHD = {"image_size": 336, "projector_in": 4096, "separators": True, "plora_r": {"wqkv": 8}, "tasks": {}}

# internlm-xcomposer2-4khd-7b's weight_map, collapsed ({i}: 32 LLM layers, {j}: 24 CLIP layers; 942 keys).
KEY_PATTERNS = """
model.tok_embeddings.weight
model.norm.weight
output.weight
plora_glb_GN
plora_sub_GN
vision_proj.0.weight
vision_proj.0.bias
vision_proj.2.weight
vision_proj.2.bias
model.layers.{i}.attention.wqkv.weight
model.layers.{i}.attention.wqkv.Plora_A.weight
model.layers.{i}.attention.wqkv.Plora_B.weight
model.layers.{i}.attention.wo.weight
model.layers.{i}.attention.wo.Plora_A.weight
model.layers.{i}.attention.wo.Plora_B.weight
model.layers.{i}.feed_forward.w1.weight
model.layers.{i}.feed_forward.w1.Plora_A.weight
model.layers.{i}.feed_forward.w1.Plora_B.weight
model.layers.{i}.feed_forward.w2.weight
model.layers.{i}.feed_forward.w2.Plora_A.weight
model.layers.{i}.feed_forward.w2.Plora_B.weight
model.layers.{i}.feed_forward.w3.weight
model.layers.{i}.feed_forward.w3.Plora_A.weight
model.layers.{i}.feed_forward.w3.Plora_B.weight
model.layers.{i}.attention_norm.weight
model.layers.{i}.ffn_norm.weight
vit.vision_tower.vision_model.embeddings.class_embedding
vit.vision_tower.vision_model.embeddings.patch_embedding.weight
vit.vision_tower.vision_model.embeddings.position_embedding.weight
vit.vision_tower.vision_model.pre_layrnorm.weight
vit.vision_tower.vision_model.pre_layrnorm.bias
vit.vision_tower.vision_model.encoder.layers.{j}.self_attn.k_proj.weight
vit.vision_tower.vision_model.encoder.layers.{j}.self_attn.k_proj.bias
vit.vision_tower.vision_model.encoder.layers.{j}.self_attn.v_proj.weight
vit.vision_tower.vision_model.encoder.layers.{j}.self_attn.v_proj.bias
vit.vision_tower.vision_model.encoder.layers.{j}.self_attn.q_proj.weight
vit.vision_tower.vision_model.encoder.layers.{j}.self_attn.q_proj.bias
vit.vision_tower.vision_model.encoder.layers.{j}.self_attn.out_proj.weight
vit.vision_tower.vision_model.encoder.layers.{j}.self_attn.out_proj.bias
vit.vision_tower.vision_model.encoder.layers.{j}.layer_norm1.weight
vit.vision_tower.vision_model.encoder.layers.{j}.layer_norm1.bias
vit.vision_tower.vision_model.encoder.layers.{j}.mlp.fc1.weight
vit.vision_tower.vision_model.encoder.layers.{j}.mlp.fc1.bias
vit.vision_tower.vision_model.encoder.layers.{j}.mlp.fc2.weight
vit.vision_tower.vision_model.encoder.layers.{j}.mlp.fc2.bias
vit.vision_tower.vision_model.encoder.layers.{j}.layer_norm2.weight
vit.vision_tower.vision_model.encoder.layers.{j}.layer_norm2.bias
""".split()
PLORA_LINEARS = ("attention.wqkv", "attention.wo", "feed_forward.w1", "feed_forward.w2", "feed_forward.w3")


def linear_io(name: str) -> tuple[int, int]:
    """(in, out) of a decoder Linear."""
    h, inter = LLM["hidden_size"], LLM["intermediate_size"]
    head_dim = h // LLM["num_attention_heads"]
    return {
        "attention.wqkv": (h, (LLM["num_attention_heads"] + 2 * LLM["num_key_value_heads"]) * head_dim),
        "attention.wo": (h, h),
        "feed_forward.w1": (h, inter),
        "feed_forward.w3": (h, inter),
        "feed_forward.w2": (inter, h),
    }[name]


def shape_of(key: str, m: dict) -> list[int]:
    h, v = LLM["hidden_size"], LLM["vocab_size"]
    d, mlp, p = CLIP["hidden_size"], CLIP["intermediate_size"], CLIP["patch_size"]
    if key in ("model.tok_embeddings.weight", "output.weight"):
        return [v, h]
    if key.endswith(("norm.weight",)) and key.startswith("model."):
        return [h]
    if key == "plora_glb_GN":
        return [1, 1, m["projector_in"]]
    if key == "plora_sub_GN":
        return [1, 1, 1, m["projector_in"]]
    if key.startswith("vision_proj."):
        return {"0.weight": [h, m["projector_in"]], "0.bias": [h], "2.weight": [h, h], "2.bias": [h]}[key[12:]]
    if key.startswith("model.layers."):
        rest = key.split(".", 3)[3]  # e.g. attention.wqkv.Plora_A.weight
        linear = ".".join(rest.split(".")[:2])
        i, o = linear_io(linear)
        part = rest[len(linear) + 1:]
        r = m["plora_r"].get(linear.split(".")[1], 256)
        if part == "weight":
            return [o, i]
        if part == "Plora_A.weight":
            return [r, i]
        if part == "Plora_B.weight":
            return [o, r]
        task, side = part.split(".")[0][len("lora_"):].rsplit("_", 1)
        return [m["tasks"][task], i] if side == "A" else [o, m["tasks"][task]]
    if key.startswith("vit."):
        tail = key.split("vision_model.", 1)[1]
        if tail == "embeddings.class_embedding":
            return [d]
        if tail == "embeddings.patch_embedding.weight":
            return [d, 3, p, p]
        if tail == "embeddings.position_embedding.weight":
            return [(m["image_size"] // p) ** 2 + 1, d]
        if tail.startswith("pre_layrnorm") or ".layer_norm" in tail or tail.endswith(("_proj.bias", "fc2.bias")):
            return [d]
        if tail.endswith("_proj.weight"):
            return [d, d]
        return {"mlp.fc1.weight": [mlp, d], "mlp.fc1.bias": [mlp], "mlp.fc2.weight": [d, mlp]}[tail.split(".", 3)[3]]
    raise KeyError(key)


def keys_for(m: dict) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for pattern in KEY_PATTERNS:
        if pattern.startswith("plora_") and not m["separators"]:
            continue
        n = LLM["num_hidden_layers"] if "{i}" in pattern else CLIP["num_hidden_layers"] if "{j}" in pattern else 1
        for k in range(n):
            key = pattern.replace("{i}", str(k)).replace("{j}", str(k))
            out[key] = shape_of(key, m)
    for k in range(LLM["num_hidden_layers"]):  # IXC-2.5 task adapters next to each PLoRA
        for linear in PLORA_LINEARS:
            for task in m["tasks"]:
                for side in ("A", "B"):
                    key = f"model.layers.{k}.{linear}.lora_{task}_{side}.weight"
                    out[key] = shape_of(key, m)
    return out


def numel(shape: list[int]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def param_counts(keys: dict[str, list[int]]) -> dict[str, int]:
    groups = {"vision_tower": ("vit.",), "projector": ("vision_proj.", "plora_glb_GN", "plora_sub_GN"),
              "language_model": ("model.",), "lm_head": ("output.",)}
    counts = {c: sum(numel(s) for k, s in keys.items() if k.startswith(p)) for c, p in groups.items()}
    counts["total"] = sum(counts.values())
    assert counts["total"] == sum(numel(s) for s in keys.values())
    return counts


def build(model_type: str) -> dict:
    m = MODELS[model_type]
    keys = keys_for(m)
    provenance = (
        f"keys: {INDEX_SOURCE} (the XComposer2 module tree; minus plora_*_GN for XComposer2, plus "
        "lora_{web,sft,dpo}_{A,B} in every PLoRA for IXC-2.5 per lmdeploy merge_xcomposer2d5_task.py @1ceceb506). "
        f"Shapes: {m['config_source']}; LLM hidden 4096, 32 layers, 32 heads / 8 kv heads, intermediate 14336, "
        f"vocab 92544; CLIP ViT-L/14 width 1024, 24 layers, MLP 4096, {m['image_size']} px "
        f"({(m['image_size'] // 14) ** 2 + 1} positions); vision_proj {m['projector_in']}->4096->4096; PLoRA r 256 "
        "(modeling_internlm2.py)" + (f"; task adapter ranks {m['tasks']} [inferred]" if m["tasks"] else "")
        + ". Generated by scripts/arch_golden/internlm_xcomposer2.py."
    )
    value, source = m["published"]
    return {"model_type": model_type, "provenance": provenance, "keys": keys, "param_counts": param_counts(keys),
            "published_total": {"value": value, "source": source}}


def check_index(path: Path) -> None:
    """Regenerate the 4KHD variant and compare with a real weight_map (keys and total_size / 2)."""
    index = json.loads(path.read_text())
    keys = keys_for(FOURKHD)
    want, got = set(index["weight_map"]), set(keys)
    if want != got:
        raise SystemExit(f"key mismatch: missing {sorted(want - got)[:5]}, extra {sorted(got - want)[:5]}")
    total = param_counts(keys)["total"]
    if 2 * total != index["metadata"]["total_size"]:
        raise SystemExit(f"total {total} * 2 != total_size {index['metadata']['total_size']}")
    print(f"{path}: {len(keys)} keys and {total:,} parameters match")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check-index", type=Path, help="a 4KHD pytorch_model.bin.index.json to compare against")
    parser.add_argument("--out-dir", type=Path, default=OUT_DIR)
    args = parser.parse_args(argv)
    if args.check_index:
        check_index(args.check_index)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for model_type in MODELS:
        data = build(model_type)
        (args.out_dir / f"{model_type}.json").write_text(dumps(data), encoding="utf-8")
        print(model_type, data["param_counts"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
