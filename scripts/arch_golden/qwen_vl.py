#!/usr/bin/env python
"""Write golden/arch/qwen-vl-chat.json: Qwen-VL-Chat's checkpoint keys and shapes, from upstream facts only.

Usage: python scripts/arch_golden/qwen_vl.py [--check-index model.safetensors.index.json] [--out PATH]

Independent of vlmref's nn.Modules (nothing from vlmref is imported). The facts:

* KEY_PATTERNS: the weight_map of Qwen-VL-Chat-Int4's ``model.safetensors.index.json`` (mirror
  github.com/x1ngzai/Qwen-VL-Chat-Int4 @1cd721a27dd000fc4cf688c6ad58e614da1d600d), layer numbers collapsed to
  ``{i}`` (LLM, 32 layers) / ``{j}`` (ViT, 48 blocks). Its LLM Linears are GPTQ-packed (``qweight``, ``qzeros``,
  ``scales``, ``g_idx`` and a GPTQ ``bias`` on every one); the bf16 Qwen-VL-Chat stores ``weight`` instead, and a
  ``bias`` only where ``modeling_qwen.py`` builds the Linear with one: ``c_attn`` (``nn.Linear(h, 3 * proj)``),
  not ``attn.c_proj``/``mlp.w1``/``mlp.w2``/``mlp.c_proj`` (``bias=not config.no_bias``, no_bias true). The vision
  keys are not quantized and are taken verbatim. ``--check-index`` re-reads such an index and compares patterns.
* CONFIG: Qwen-VL-Chat ``config.json`` (values as read; see vlmref/models/qwen_vl/config.py for sources).
* SHAPES: from ``modeling_qwen.py`` / ``visual.py`` of the same mirror (nn.Linear weight = (out, in)).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from golden_io import count_parameters, dumps  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "golden" / "arch" / "qwen-vl-chat.json"
INDEX_SOURCE = "github.com/x1ngzai/Qwen-VL-Chat-Int4@1cd721a27dd000fc4cf688c6ad58e614da1d600d model.safetensors.index.json"

CONFIG = {  # Qwen-VL-Chat config.json
    "vocab_size": 151936, "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
    "kv_channels": 128, "intermediate_size": 22016, "no_bias": True, "tie_word_embeddings": False,
    "visual": {"heads": 16, "image_size": 448, "image_start_id": 151857, "layers": 48, "mlp_ratio": 4.9231,
               "output_dim": 4096, "patch_size": 14, "width": 1664},
}

# The Int4 index's weight_map, collapsed (1461 keys -> these patterns).
KEY_PATTERNS = """
lm_head.weight
transformer.h.{i}.attn.c_attn.{bias,g_idx,qweight,qzeros,scales}
transformer.h.{i}.attn.c_proj.{bias,g_idx,qweight,qzeros,scales}
transformer.h.{i}.ln_1.weight
transformer.h.{i}.ln_2.weight
transformer.h.{i}.mlp.c_proj.{bias,g_idx,qweight,qzeros,scales}
transformer.h.{i}.mlp.w1.{bias,g_idx,qweight,qzeros,scales}
transformer.h.{i}.mlp.w2.{bias,g_idx,qweight,qzeros,scales}
transformer.ln_f.weight
transformer.visual.attn_pool.attn.{in_proj_bias,in_proj_weight}
transformer.visual.attn_pool.attn.out_proj.{bias,weight}
transformer.visual.attn_pool.kv_proj.weight
transformer.visual.attn_pool.ln_kv.{bias,weight}
transformer.visual.attn_pool.ln_q.{bias,weight}
transformer.visual.attn_pool.pos_embed
transformer.visual.attn_pool.query
transformer.visual.conv1.weight
transformer.visual.ln_post.{bias,weight}
transformer.visual.ln_pre.{bias,weight}
transformer.visual.positional_embedding
transformer.visual.proj
transformer.visual.transformer.resblocks.{j}.attn.in_proj.{bias,weight}
transformer.visual.transformer.resblocks.{j}.attn.out_proj.{bias,weight}
transformer.visual.transformer.resblocks.{j}.ln_1.{bias,weight}
transformer.visual.transformer.resblocks.{j}.ln_2.{bias,weight}
transformer.visual.transformer.resblocks.{j}.mlp.c_fc.{bias,weight}
transformer.visual.transformer.resblocks.{j}.mlp.c_proj.{bias,weight}
transformer.wte.weight
"""

GPTQ_PARTS = {"g_idx", "qweight", "qzeros", "scales"}
LINEAR_WITH_BIAS = {"attn.c_attn"}  # modeling_qwen.py: the only LLM Linear built with a bias when no_bias is true

# The paper's split (arXiv:2308.12966 Table 1: ViT 1.9B, adapter 0.08B, LLM 7.7B): the adapter is the single
# cross-attention layer (attn_pool); ln_post and the 4096x4096 proj count with the ViT (1.859B -> "1.9B"; with
# proj in the adapter it would be 0.093B -> "0.09B").
COMPONENTS = {
    "vision_tower": ("transformer.visual.conv1", "transformer.visual.positional_embedding", "transformer.visual.ln_pre",
                     "transformer.visual.transformer", "transformer.visual.ln_post", "transformer.visual.proj"),
    "projector": ("transformer.visual.attn_pool",),
    "language_model": ("transformer.wte", "transformer.h", "transformer.ln_f"),
    "lm_head": ("lm_head",),
}

PUBLISHED_TOTAL = {
    "value": 9_600_000_000,
    "source": "Qwen-VL paper arXiv:2308.12966 Table 1 (ViT 1.9B + VL adapter 0.08B + LLM 7.7B = 9.6B), restated in "
              "https://blog.omagiclee.com/posts/vlms/qwen-vl and https://hidden-hyperparameter.github.io/2026/01/05/"
              "WXB007.html (paper PDF itself not reachable here)",
}


def expand(pattern: str) -> list[str]:
    m = re.search(r"\{([^{}]*,[^{}]*)\}", pattern)
    if not m:
        return [pattern]
    return [k for alt in m.group(1).split(",") for k in expand(pattern[: m.start()] + alt + pattern[m.end():])]


def bf16_patterns() -> list[str]:
    """The Int4 patterns rewritten to the bf16 checkpoint's (GPTQ parts -> weight; bias only where the code has one)."""
    out: set[str] = set()
    for line in KEY_PATTERNS.split():
        for key in expand(line):
            module, _, part = key.rpartition(".")
            if key.startswith("transformer.h.") and part in GPTQ_PARTS | {"bias"}:
                if part == "qweight":
                    out.add(f"{module}.weight")
                elif part == "bias" and any(module.endswith(s) for s in LINEAR_WITH_BIAS):
                    out.add(key)
                continue
            out.add(key)
    return sorted(out)


def shape_of(pattern: str, c: dict) -> list[int]:
    h, v = c["hidden_size"], c["vocab_size"]
    proj, ff = c["kv_channels"] * c["num_attention_heads"], c["intermediate_size"] // 2
    vis = c["visual"]
    w, d, p = vis["width"], vis["output_dim"], vis["patch_size"]
    mlp, nq = int(w * vis["mlp_ratio"]), 256  # visual.py: int(d_model * mlp_ratio); n_queries default 256
    table = {
        "lm_head.weight": [v, h], "transformer.wte.weight": [v, h], "transformer.ln_f.weight": [h],
        "transformer.h.{i}.ln_1.weight": [h], "transformer.h.{i}.ln_2.weight": [h],
        "transformer.h.{i}.attn.c_attn.weight": [3 * proj, h], "transformer.h.{i}.attn.c_attn.bias": [3 * proj],
        "transformer.h.{i}.attn.c_proj.weight": [proj, h],  # nn.Linear(hidden_size, projection_size)
        "transformer.h.{i}.mlp.w1.weight": [ff, h], "transformer.h.{i}.mlp.w2.weight": [ff, h],
        "transformer.h.{i}.mlp.c_proj.weight": [h, ff],
        "transformer.visual.conv1.weight": [w, 3, p, p],
        "transformer.visual.positional_embedding": [256, w],  # nn.Parameter(torch.randn(256, width))
        "transformer.visual.ln_pre.weight": [w], "transformer.visual.ln_pre.bias": [w],
        "transformer.visual.ln_post.weight": [d], "transformer.visual.ln_post.bias": [d],
        "transformer.visual.proj": [d, d],
        "transformer.visual.attn_pool.query": [nq, d], "transformer.visual.attn_pool.pos_embed": [nq, d],
        "transformer.visual.attn_pool.kv_proj.weight": [d, w],  # nn.Linear(kv_dim, embed_dim, bias=False)
        "transformer.visual.attn_pool.attn.in_proj_weight": [3 * d, d],  # nn.MultiheadAttention(d, d // 128)
        "transformer.visual.attn_pool.attn.in_proj_bias": [3 * d],
        "transformer.visual.attn_pool.attn.out_proj.weight": [d, d],
        "transformer.visual.attn_pool.attn.out_proj.bias": [d],
        "transformer.visual.attn_pool.ln_q.weight": [d], "transformer.visual.attn_pool.ln_q.bias": [d],
        "transformer.visual.attn_pool.ln_kv.weight": [d], "transformer.visual.attn_pool.ln_kv.bias": [d],
    }
    block = "transformer.visual.transformer.resblocks.{j}."
    for norm in ("ln_1", "ln_2"):
        table[f"{block}{norm}.weight"] = table[f"{block}{norm}.bias"] = [w]
    table.update({
        f"{block}attn.in_proj.weight": [3 * w, w], f"{block}attn.in_proj.bias": [3 * w],  # nn.Linear(w, 3 * w)
        f"{block}attn.out_proj.weight": [w, w], f"{block}attn.out_proj.bias": [w],
        f"{block}mlp.c_fc.weight": [mlp, w], f"{block}mlp.c_fc.bias": [mlp],
        f"{block}mlp.c_proj.weight": [w, mlp], f"{block}mlp.c_proj.bias": [w],
    })
    return table[pattern]


def build(c: dict = CONFIG) -> dict:
    keys: dict[str, list[int]] = {}
    for pattern in bf16_patterns():
        shape = shape_of(pattern, c)
        layers = range(c["num_hidden_layers"]) if "{i}" in pattern else range(c["visual"]["layers"]) if "{j}" in pattern else [0]
        for n in layers:
            keys[pattern.replace("{i}", str(n)).replace("{j}", str(n))] = shape
    counts = count_parameters(keys, COMPONENTS)
    return {
        "model_type": "qwen-vl-chat",
        "provenance": (
            f"keys: {INDEX_SOURCE} (the Int4 checkpoint's weight_map; GPTQ qweight/qzeros/scales/g_idx -> weight, GPTQ "
            "bias kept only on attn.c_attn, the one LLM Linear modeling_qwen.py builds with a bias under no_bias=true; "
            "vision keys verbatim). Shapes: Qwen-VL-Chat config.json (hidden 4096, 32 layers, 32 heads x kv_channels "
            "128, intermediate 22016 -> w1/w2 11008, vocab 151936, visual width 1664 / 48 layers / mlp_ratio 4.9231 -> "
            "8192 / patch 14 / output_dim 4096) with modeling_qwen.py and visual.py of the same mirror (positional_"
            "embedding 256 rows, 256 resampler queries, 2-D sin-cos pos_embed stored as a Parameter). Generated by "
            "scripts/arch_golden/qwen_vl.py."
        ),
        "keys": keys,
        "param_counts": counts,
        "published_total": PUBLISHED_TOTAL,
    }


def check_index(path: Path) -> None:
    names = json.loads(path.read_text())["weight_map"]
    collapsed = {re.sub(r"^(transformer\.h\.)\d+\.", r"\1{i}.",
                        re.sub(r"(resblocks\.)\d+\.", r"\1{j}.", k)) for k in names}
    expected = {k for line in KEY_PATTERNS.split() for k in expand(line)}
    if collapsed != expected:
        raise SystemExit(f"index differs: missing {sorted(expected - collapsed)}, extra {sorted(collapsed - expected)}")
    print(f"{path}: {len(names)} keys, patterns match")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check-index", type=Path, help="a Qwen-VL-Chat(-Int4) model.safetensors.index.json")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    if args.check_index:
        check_index(args.check_index)
    data = build()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(dumps(data), encoding="utf-8")
    print(f"wrote {args.out}: {len(data['keys'])} keys, {data['param_counts']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
