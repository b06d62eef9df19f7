"""Write golden/arch/cogvlm-17b-instruct.json: THUDM/cogvlm-chat-hf's state-dict keys and shapes, from upstream facts.

Independent of vlmref's nn.Modules: the key patterns below were read from the upstream module tree
(THUDM/cogvlm-chat-hf ``modeling_cogvlm.py`` + ``visual.py``, via the mindspore-lab/mindnlp port
``mindnlp/transformers/models/cogvlm/`` and the unmerged huggingface/transformers port, whose conversion script
loads the remote model's ``state_dict()`` strictly); shapes follow from the full config (config.json, read).

    python scripts/arch_golden/cogvlm.py          # rewrite the golden file
    python scripts/arch_golden/cogvlm.py --check  # exit 1 if the file differs
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from vlmref.models.cogvlm.config import COGVLM_CHAT  # noqa: E402  (config values only, no modules)

OUT = REPO / "golden" / "arch" / "cogvlm-17b-instruct.json"
COMPONENTS = {  # component -> key prefixes
    "vision_tower": ("model.vision.patch_embedding.", "model.vision.transformer."),
    "projector": ("model.vision.linear_proj.", "model.vision.boi", "model.vision.eoi"),
    "language_model": ("model.embed_tokens.", "model.layers.", "model.norm."),
    "lm_head": ("lm_head.",),
}
BUFFER_SUFFIXES = ("rotary_emb.inv_freq",)  # persistent buffers: in the state dict, not parameters


def upstream_keys(c: dict) -> dict[str, list[int]]:
    h, i, v = c["hidden_size"], c["intermediate_size"], c["vocab_size"]
    head_dim = h // c["num_attention_heads"]
    vc = c["vision_config"]
    w, vi, p, ch = vc["hidden_size"], vc["intermediate_size"], vc["patch_size"], vc["in_channels"]
    keys: dict[str, list[int]] = {
        "model.embed_tokens.weight": [v, h],
        "model.norm.weight": [h],
        "lm_head.weight": [v, h],
    }
    for n in range(c["num_hidden_layers"]):
        pre = f"model.layers.{n}."
        for expert in ("vision", "language"):
            keys[f"{pre}self_attn.{expert}_expert_query_key_value.weight"] = [3 * h, h]  # bias=False
            keys[f"{pre}self_attn.{expert}_expert_dense.weight"] = [h, h]
            for proj, shape in (("gate_proj", [i, h]), ("up_proj", [i, h]), ("down_proj", [h, i])):
                keys[f"{pre}mlp.{expert}_mlp.{proj}.weight"] = shape
        keys[f"{pre}self_attn.rotary_emb.inv_freq"] = [head_dim // 2]  # RotaryEmbedding.register_buffer (persistent)
        keys[f"{pre}input_layernorm.weight"] = [h]
        keys[f"{pre}post_attention_layernorm.weight"] = [h]
    keys["model.vision.patch_embedding.proj.weight"] = [w, ch, p, p]
    keys["model.vision.patch_embedding.proj.bias"] = [w]
    keys["model.vision.patch_embedding.cls_embedding"] = [1, w]
    keys["model.vision.patch_embedding.position_embedding.weight"] = [vc["num_positions"], w]
    for n in range(vc["num_hidden_layers"]):
        pre = f"model.vision.transformer.layers.{n}."
        for name, shape in (
            ("input_layernorm", [w]),
            ("post_attention_layernorm", [w]),
            ("attention.query_key_value", [3 * w, w]),
            ("attention.dense", [w, w]),
            ("mlp.fc1", [vi, w]),
            ("mlp.fc2", [w, vi]),
        ):
            keys[f"{pre}{name}.weight"] = shape
            keys[f"{pre}{name}.bias"] = [shape[0]]
    keys["model.vision.linear_proj.linear_proj.weight"] = [h, w]  # GLU adapter, bias=False
    keys["model.vision.linear_proj.norm1.weight"] = [h]
    keys["model.vision.linear_proj.norm1.bias"] = [h]
    keys["model.vision.linear_proj.dense_h_to_4h.weight"] = [i, h]
    keys["model.vision.linear_proj.gate_proj.weight"] = [i, h]
    keys["model.vision.linear_proj.dense_4h_to_h.weight"] = [h, i]
    keys["model.vision.boi"] = [1, 1, h]
    keys["model.vision.eoi"] = [1, 1, h]
    return dict(sorted(keys.items()))


def numel(shape: list[int]) -> int:
    out = 1
    for d in shape:
        out *= d
    return out


def param_counts(keys: dict[str, list[int]]) -> dict[str, int]:
    counts = dict.fromkeys(COMPONENTS, 0)
    for key, shape in keys.items():
        if key.endswith(BUFFER_SUFFIXES):
            continue
        owners = [c for c, prefixes in COMPONENTS.items() if key.startswith(prefixes)]
        if len(owners) != 1:
            raise SystemExit(f"{key} belongs to {owners}")
        counts[owners[0]] += numel(shape)
    counts["total"] = sum(counts.values())
    return counts


def index_json_bytes(keys: list[str], total_size: int) -> int:
    """Size of a ``model.safetensors.index.json`` written by transformers' save_pretrained (indent 2, sorted keys)
    for these keys over 8 shards (every shard name has the same length)."""
    shard = "model-00001-of-00008.safetensors"
    index = {"metadata": {"total_size": total_size}, "weight_map": dict.fromkeys(keys, shard)}
    return len(json.dumps(index, indent=2, sort_keys=True) + "\n")


def build() -> dict:
    keys = upstream_keys(COGVLM_CHAT)
    counts = param_counts(keys)
    shard_gb = [4.94, 4.95, 4.95, 4.99, 4.99, 4.97, 4.96, 0.533]
    bf16_bytes = 2 * counts["total"]
    params = [k for k in keys if not k.endswith(BUFFER_SUFFIXES)]
    return {
        "model_type": "cogvlm-17b-instruct",
        "provenance": (
            "No copy of THUDM/cogvlm-chat-hf's model.safetensors.index.json was found in the code index "
            "(find_files on the index names, find_string on weight-map entries), so keys come from the upstream "
            "module tree: modeling_cogvlm.py + visual.py of THUDM/cogvlm-chat-hf as mirrored by "
            "mindspore-lab/mindnlp mindnlp/transformers/models/cogvlm/{modeling_cogvlm,visual}.py and the unmerged "
            "huggingface/transformers src/transformers/models/cogvlm/modeling_cogvlm.py (its conversion script "
            "loads the remote model's state_dict() strictly, so the trees match) [read]. Shapes: config.json of "
            "THUDM/cogvlm-chat-hf @ main (blame 4c1034a/caae4ce) [read]; biases as in the code (decoder and adapter "
            "Linears bias=False, EVA2-CLIP Linears/LayerNorms/Conv with bias). The 32 "
            "model.layers.N.self_attn.rotary_emb.inv_freq entries are upstream's persistent RotaryEmbedding buffer "
            "[read in code]; that the published checkpoint stores them is [inferred] from its index file size: the "
            "hub lists model.safetensors.index.json at 116 kB and save_pretrained's format gives "
            f"{index_json_bytes(list(keys), bf16_bytes)} bytes with them vs {index_json_bytes(params, bf16_bytes)} "
            "without. Generated by scripts/arch_golden/cogvlm.py."
        ),
        "keys": keys,
        "buffers": sorted(k for k in keys if k.endswith(BUFFER_SUFFIXES)),
        "param_counts": counts,
        "published_total": {
            "value": round(sum(shard_gb) * 1e9 / 2),
            "source": (
                "THUDM/cogvlm-chat-hf file listing (hub tree 4c1034a..54b93e0): 8 safetensors shards of 4.94, 4.95, "
                "4.95, 4.99, 4.99, 4.97, 4.96 GB and 533 MB = 35.283 GB, bf16 (config.json torch_dtype) -> "
                "35.283e9 / 2 bytes = 17.64e9 parameters (each size is rounded to 3 digits: +-0.1 %); "
                f"the computed total is {bf16_bytes} bytes in bf16"
            ),
            "nominal": {
                "value": 17_000_000_000,
                "source": (
                    "THUDM/CogVLM README: 'CogVLM-17B has 10 billion visual parameters and 7 billion language "
                    "parameters' (a rounded name: the computed total is 3.8 % above it; visual = vision tower + "
                    "adapter + the per-layer vision experts = 10.90e9, language = 6.74e9)"
                ),
            },
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the file instead of writing it")
    args = parser.parse_args(argv)
    text = json.dumps(build(), indent=1) + "\n"
    if args.check:
        same = OUT.is_file() and OUT.read_text() == text
        print(f"{OUT.relative_to(REPO)}: {'up to date' if same else 'DIFFERS'}")
        return 0 if same else 1
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(REPO)} ({len(build()['keys'])} keys)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
