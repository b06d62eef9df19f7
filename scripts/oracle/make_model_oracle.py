"""Model oracle fixtures: tiny random checkpoints written by the UPSTREAM modeling code, with its fp32 logits.

Run in the oracle venv (transformers 4.41.2, torch 2.13.0; see ../shared/spec/upstream-sources.md)::

    /work/scratch/oracle-venv/bin/python scripts/oracle/make_model_oracle.py --out golden/oracle/models [layout ...]

For each layout, ``<out>/<layout>/`` gets

* ``checkpoint/``: the upstream model class's own ``save_pretrained`` output (config.json, model.safetensors, ...),
  random weights (seeded), a few layers, widths 32-64, a small vocabulary (so each checkpoint stays well under 2 MB);
* ``oracle.safetensors``: the ids fed to vlmref (image positions expanded as vlmref's templates do), the upstream
  fp32 logits at every text position and the last position, per-position summaries of all logits (sum, sum of
  squares, max), and the 8-token greedy continuation from upstream ``generate()``;
* ``pixels.npz``: the upstream image processor's tensors for the golden images (compressed; the images are solid
  colours so this is small);
* ``oracle.json``: what was run (prompt ids, image, tensor names, deviations, upstream commit, versions).

Upstream code (not committed, never copied into the repo) is imported from ``$VLMREF_UPSTREAM_DIR/<name>/``, written
by ``python3 scripts/oracle/upstream.py extract``. The llava-hf layouts use transformers 4.41.2 itself.
Stand-ins / monkeypatches of upstream imports are listed in ``STAND_INS`` below and recorded in oracle.json.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import shutil
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from import_stand_ins import STAND_INS, install_torchvision_standin, install_xformers_standin  # noqa: E402
from upstream import UPSTREAM, upstream_dir  # noqa: E402

GOLDEN_IMAGES = REPO / "golden" / "images"
NEW_TOKENS = 8
SEED = 1234
# solid-colour images drawn in memory (the test draws the same): (name, (width, height), rgb)
EXTRA_IMAGES = {"orange_640x427": ((640, 427), (200, 120, 40))}  # a COCO size: odd anyres remainder (449 of 672)

LAYOUTS: dict[str, Callable[[Path], None]] = {}


def layout(name: str):
    def deco(fn):
        LAYOUTS[name] = fn
        return fn
    return deco


# ---------------------------------------------------------------------------------------------------------------------
# helpers


def golden_image(name: str):
    from PIL import Image

    if name in EXTRA_IMAGES:
        size, colour = EXTRA_IMAGES[name]
        return Image.new("RGB", size, colour)
    return Image.open(GOLDEN_IMAGES / f"{name}.png").convert("RGB")


def seed_all(seed: int = SEED) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


def randomize_(model: torch.nn.Module, seed: int = SEED, std: float = 0.3) -> None:
    """Every floating parameter ~ N(0, std^2) (LayerNorm/RMSNorm weights around 1), so a tiny model's logits are
    not all ~0 and the 1e-4 comparison is meaningful. Deterministic in parameter order."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not p.is_floating_point():
                continue
            noise = torch.randn(p.shape, generator=g, dtype=torch.float32) * std
            owner = ".".join(name.split(".")[-2:]).lower()
            if p.dim() == 1 and name.endswith("weight") and ("norm" in owner or "ln" in owner):
                noise = 1.0 + noise
            p.copy_(noise.to(p.dtype))


def logits_record(logits: torch.Tensor, text_positions: list[int]) -> dict[str, torch.Tensor]:
    """Compact record of (L, V) fp32 logits: full rows at text positions and the last one, summaries of all rows."""
    logits = logits.detach().to(torch.float32)
    last = logits.shape[0] - 1
    rows = sorted(set(text_positions) | {last})
    return {
        "logits_positions": torch.tensor(rows, dtype=torch.long),
        "logits_rows": logits[rows].contiguous(),
        "logits_sum": logits.sum(-1).contiguous(),
        "logits_sumsq": logits.pow(2).sum(-1).contiguous(),
        "logits_max": logits.max(-1).values.contiguous(),
        "logits_argmax": logits.argmax(-1).contiguous(),
    }


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_outputs(out: Path, *, tensors: dict[str, torch.Tensor], pixels: dict[str, np.ndarray], meta: dict[str, Any]):
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    for code in out.rglob("*.py"):  # save_pretrained copies a remote-code model's own modules: never committed
        code.unlink()
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(out / "oracle.safetensors"))
    np.savez_compressed(out / "pixels.npz", **pixels)
    (out / "oracle.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def load_upstream_module(name: str, module: str, package: str | None = None):
    """Import ``$VLMREF_UPSTREAM_DIR/<name>/<module>.py`` as a module of a package named ``package`` (for relative
    imports inside the upstream code)."""
    folder = upstream_dir(name)
    pkg = package or f"upstream_{name}"
    if pkg not in sys.modules:
        spec = importlib.util.spec_from_file_location(pkg, folder / "__init__.py",
                                                      submodule_search_locations=[str(folder)])
        mod = importlib.util.module_from_spec(spec)
        sys.modules[pkg] = mod
        if (folder / "__init__.py").is_file():
            spec.loader.exec_module(mod)
    return importlib.import_module(f"{pkg}.{module}")


def versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": sys.version.split()[0]}
    for dist in ("torch", "transformers", "tokenizers", "safetensors", "numpy", "pillow", "ms-swift", "accelerate",
                 "einops", "timm", "sentencepiece"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    return out


def clean(folder: Path) -> None:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)


# ---------------------------------------------------------------------------------------------------------------------
# llava-hf LLaVA-NeXT (transformers 4.41.2 LlavaNextForConditionalGeneration / LlavaNextImageProcessor)

LLAVA_PINPOINTS = [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]]
LLAVA_IMAGES = ("red_640x480", "blue_336x336", "green_300x900", "orange_640x427")
TINY_CLIP = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4, image_size=336,
                 patch_size=14, projection_dim=32, hidden_act="quick_gelu", layer_norm_eps=1e-5)


def _llava_hf_processor():
    from PIL import Image
    from transformers import LlavaNextImageProcessor

    # as llava-hf/llava-v1.6-*-hf preprocessor_config.json
    return LlavaNextImageProcessor(
        size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336}, image_grid_pinpoints=LLAVA_PINPOINTS,
        resample=Image.Resampling.BICUBIC, do_resize=True, do_center_crop=True, do_rescale=True,
        rescale_factor=1 / 255, do_normalize=True, image_mean=[0.48145466, 0.4578275, 0.40821073],
        image_std=[0.26862954, 0.26130258, 0.27577711], do_pad=True, do_convert_rgb=True,
    )


def _anyres_deviation(image, processor) -> dict[str, Any] | None:
    """Which anyres patches transformers 4.41 gets wrong for ``image``: its ``_pad_for_patching`` pads
    (target - new) // 2 on both sides, so an odd remainder leaves the canvas one pixel short (fixed by transformers
    PR #37819, which pads the remainder's extra pixel on the bottom/right). Patch 0 is the base view (unaffected);
    grid patches in the last row (height short) or last column (width short) are cut from the short canvas."""
    from transformers.image_processing_utils import select_best_resolution
    from transformers.models.llava_next.image_processing_llava_next import _get_patch_output_size

    arr = np.asarray(image)
    th, tw = select_best_resolution((arr.shape[0], arr.shape[1]), LLAVA_PINPOINTS)
    nh, nw = _get_patch_output_size(arr, (th, tw), input_data_format="channels_last")
    odd_h, odd_w = (th - nh) % 2 == 1, (tw - nw) % 2 == 1
    if not (odd_h or odd_w):
        return None
    rows, cols = th // 336, tw // 336
    affected = [1 + r * cols + c for r in range(rows) for c in range(cols)
                if (odd_h and r == rows - 1) or (odd_w and c == cols - 1)]
    return {
        "name": "transformers-4.41-anyres-odd-remainder-padding",
        "fixed_by": "transformers PR #37819",
        "canvas": [th, tw], "resized": [nh, nw], "padded": [nh + 2 * ((th - nh) // 2), nw + 2 * ((tw - nw) // 2)],
        "affected_patches": affected,
        "note": "upstream pads (target-new)//2 on both sides: the canvas is one pixel short in the odd dimension; "
                "the grid patches cut from its last row/column are then resized back to 336 by the crop step",
    }


def _llava_hf(out: Path, layout_name: str, text_config: dict[str, Any], image_token_index: int,
              prompt_ids: list[int], note: str) -> None:
    from transformers import GenerationConfig, LlavaNextConfig, LlavaNextForConditionalGeneration

    clean(out)
    config = LlavaNextConfig(
        text_config=text_config, vision_config=dict(TINY_CLIP, model_type="clip_vision_model"),
        image_token_index=image_token_index, image_grid_pinpoints=LLAVA_PINPOINTS, projector_hidden_act="gelu",
        vision_feature_layer=-2, vision_feature_select_strategy="default", tie_word_embeddings=False,
    )
    seed_all()
    model = LlavaNextForConditionalGeneration(config).eval()
    randomize_(model)
    model.save_pretrained(str(out / "checkpoint"), safe_serialization=True)
    processor = _llava_hf_processor()
    processor.save_pretrained(str(out / "checkpoint"))

    pixels, deviations = {}, {}
    for name in LLAVA_IMAGES:
        image = golden_image(name)
        p = processor([image], return_tensors="pt")
        pixels[f"{name}.pixel_values"] = p["pixel_values"].numpy().astype(np.float32)
        pixels[f"{name}.image_sizes"] = p["image_sizes"].numpy()
        dev = _anyres_deviation(image, processor)
        if dev is not None:
            deviations[name] = dev

    image = "red_640x480"
    pv = torch.from_numpy(pixels[f"{image}.pixel_values"])
    sizes = torch.from_numpy(pixels[f"{image}.image_sizes"])
    ids = torch.tensor([prompt_ids])
    with torch.no_grad():
        logits = model(input_ids=ids, pixel_values=pv, image_sizes=sizes, attention_mask=torch.ones_like(ids)).logits[0]
        gen = model.generate(input_ids=ids, pixel_values=pv, image_sizes=sizes, attention_mask=torch.ones_like(ids),
                             generation_config=GenerationConfig(do_sample=False, max_new_tokens=NEW_TOKENS,
                                                                min_new_tokens=NEW_TOKENS, eos_token_id=None,
                                                                pad_token_id=0))
    n_image = logits.shape[0] - (len(prompt_ids) - 1)
    at = prompt_ids.index(image_token_index)
    expanded = prompt_ids[:at] + [image_token_index] * n_image + prompt_ids[at + 1:]
    text_positions = [i for i, t in enumerate(expanded) if t != image_token_index]
    tensors = {"input_ids": torch.tensor([expanded]), "attention_mask": torch.ones(1, len(expanded), dtype=torch.long),
               "generated": gen[0, len(prompt_ids):].clone(), **logits_record(logits, text_positions)}
    write_outputs(out, tensors=tensors, pixels=pixels, meta={
        "layout": layout_name, "upstream": "transformers 4.41.2 LlavaNextForConditionalGeneration (native)",
        "loader": "load_pretrained_model", "model_type": {"llava_hf_mistral": "llava1d6-mistral-7b-instruct",
                                                          "llava_hf_34b": "llava1d6-yi-34b-instruct"}[layout_name],
        "prompt_ids_upstream": prompt_ids, "image_token_index": image_token_index, "image_positions": n_image,
        "model_image": image,
        "vlmref_inputs": {"input_ids": "oracle:input_ids", "attention_mask": "oracle:attention_mask",
                          "pixel_values": f"pixels:{image}.pixel_values", "image_sizes": f"pixels:{image}.image_sizes"},
        "preprocessing": {"images": list(LLAVA_IMAGES), "extra_images": EXTRA_IMAGES,
                          "upstream_processor": "transformers 4.41.2 LlavaNextImageProcessor (llava-hf config)",
                          "vlmref_processor": "vlmref.datasets.processors.get_image_processor(model_type)",
                          "deviations": deviations},
        "generation": {"new_tokens": NEW_TOKENS, "do_sample": False, "min_new_tokens": NEW_TOKENS,
                       "eos_token_id": None},
        "note": note, "stand_ins": STAND_INS.get(layout_name, []),
    })


# the tiny text model both llava-hf layouts share; each sets its family, rope base and special ids
_LLAVA_HF_TEXT = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=4096, rms_norm_eps=1e-5, vocab_size=512,
                      tie_word_embeddings=False, bos_token_id=1)


@layout("llava_hf_mistral")
def llava_hf_mistral(out: Path) -> None:
    # llava-v1.6-mistral-7b-hf structure at tiny size: mistral text model, <image> = first id after the base
    # vocabulary (32000 of 32064 there; 448 of 512 here), bos 1, eos 2; prompt: "<s>[INST] <image>\n... [/INST]"
    text = dict(_LLAVA_HF_TEXT, model_type="mistral", rope_theta=1000000.0, sliding_window=None, eos_token_id=2)
    prompt = [1, 300, 301, 302, 448, 13, 200, 201, 202, 203, 303, 304, 305]
    _llava_hf(out, "llava_hf_mistral", text, 448, prompt,
              "tiny vocab 512 (base 448 + <image> 448 + <pad> 449, padded to 64 as the conversion does); the prompt "
              "ids follow the llava-mistral template's shape (bos, [INST] ids, <image>, newline 13, query, [/INST])")


@layout("llava_hf_34b")
def llava_hf_34b(out: Path) -> None:
    # llava-v1.6-34b-hf structure at tiny size: llama (Yi) text model, eos <|im_end|> 7, pad 0, <image> after the
    # base vocabulary (64000 of 64064 there; 448 of 512 here); prompt "<|im_start|>user\n<image>\n...<|im_end|>..."
    text = dict(_LLAVA_HF_TEXT, model_type="llama", rope_theta=5000000.0, eos_token_id=7, pad_token_id=0)
    prompt = [6, 300, 10, 448, 10, 200, 201, 202, 7, 10, 6, 301, 10]
    _llava_hf(out, "llava_hf_34b", text, 448, prompt,
              "tiny vocab 512; prompt ids follow the llava-yi template's shape (<|im_start|> 6, user, newline, "
              "<image>, newline, query, <|im_end|> 7, newline, <|im_start|> assistant newline)")


# ---------------------------------------------------------------------------------------------------------------------
# Qwen-VL-Chat (x1ngzai/Qwen-VL-Chat-Int4 remote code: modeling_qwen.py, visual.py, configuration_qwen.py)


@layout("qwen_vl")
def qwen_vl(out: Path) -> None:
    import os

    from transformers import GenerationConfig

    clean(out)
    install_torchvision_standin("qwen_vl")
    modeling = load_upstream_module("qwen_vl", "modeling_qwen")
    configuration = load_upstream_module("qwen_vl", "configuration_qwen")
    # tiny: the resampler has output_dim // 128 heads upstream, so output_dim = hidden = 128 (1 head); image ids
    # <img> 300, </img> 301, <imgpad> 302 (151857/8/9 in the real vocabulary), <|im_start|> 310, <|im_end|> 311
    # (151644/5); chatml-shaped prompt as the qwen-vl template writes it (no bos)
    img = 300
    config = configuration.QWenConfig(
        vocab_size=320, hidden_size=128, num_hidden_layers=2, num_attention_heads=4, kv_channels=32,
        intermediate_size=128, no_bias=True, layer_norm_epsilon=1e-6, seq_length=2048, max_position_embeddings=8192,
        rotary_emb_base=10000, rotary_pct=1.0, use_dynamic_ntk=True, use_logn_attn=True, use_flash_attn=False,
        scale_attn_weights=True, tie_word_embeddings=False, fp32=True, bf16=False, fp16=False,
        visual={"heads": 4, "image_size": 448, "image_start_id": img, "layers": 2, "mlp_ratio": 2.0,
                "output_dim": 128, "patch_size": 14, "width": 32},
    )
    config.auto_map = {"AutoConfig": "configuration_qwen.QWenConfig",
                       "AutoModelForCausalLM": "modeling_qwen.QWenLMHeadModel"}
    config.architectures = ["QWenLMHeadModel"]
    seed_all()
    model = modeling.QWenLMHeadModel(config).eval()
    randomize_(model, std=0.2)  # 128 wide: a smaller spread keeps the logits near the other layouts' range (~10)
    model.save_pretrained(str(out / "checkpoint"), safe_serialization=True)

    images = ("red_640x480", "blue_336x336", "green_300x900")
    pixels = {f"{name}.pixel_values": model.transformer.visual.image_transform(golden_image(name))[None].numpy()
              for name in images}
    # the path the upstream forward reads from the ids (relative to the repo root, where this runs)
    path = "golden/images/red_640x480.png"
    path_ids = list(path.encode("utf-8"))
    span = path_ids + [img + 2] * (256 - len(path_ids))
    prompt = ([310, 260, 10, 261, 311, 10, 310, 262, 10, 263, 264, 265, 266, img] + span + [img + 1]
              + [10, 267, 268, 269, 311, 10, 310, 270, 10])
    ids = torch.tensor([prompt])
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[0]
            gen = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=GenerationConfig(
                do_sample=False, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, eos_token_id=None,
                pad_token_id=0))
    finally:
        os.chdir(cwd)
    a = prompt.index(img)
    text_positions = [i for i in range(len(prompt)) if not a < i < a + 257]
    tensors = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "generated": gen[0, len(prompt):].clone(),
               **logits_record(logits, text_positions)}
    write_outputs(out, tensors=tensors, pixels=pixels, meta={
        "layout": "qwen_vl", "loader": "load_pretrained_model", "model_type": "qwen-vl-chat",
        "upstream": "x1ngzai/Qwen-VL-Chat-Int4 @ {} modeling_qwen.QWenLMHeadModel".format(UPSTREAM["qwen_vl"][1]),
        "prompt_ids_upstream": prompt, "image_path_in_ids": path, "model_image": "red_640x480",
        "vlmref_inputs": {"input_ids": "oracle:input_ids", "attention_mask": "oracle:attention_mask",
                          "pixel_values": "pixels:red_640x480.pixel_values"},
        "preprocessing": {"images": list(images),
                          "upstream_processor": "visual.VisionTransformer.image_transform (torchvision stand-in)",
                          "vlmref_processor": "vlmref.datasets.processors.get_image_processor(model_type)",
                          "deviations": {}},
        "generation": {"new_tokens": NEW_TOKENS, "do_sample": False, "min_new_tokens": NEW_TOKENS,
                       "eos_token_id": None},
        "note": "upstream reads the image from the path bytes between <img> and </img> in the ids; vlmref takes the "
                "upstream-transformed pixel_values for the same file. Tiny vocab 320, <img> 300",
        "stand_ins": STAND_INS.get("qwen_vl", []),
    })


# ---------------------------------------------------------------------------------------------------------------------
# CogVLM-17B chat (THUDM/cogvlm-chat-hf remote code as copied in function2-llx/MMMM mmmm/model/cogvlm/)


class _ByteTokenizer:
    """Stand-in tokenizer for ``build_conversation_input_ids``: bos 1, pad 0, text -> its UTF-8 bytes + 3 (ids
    3..258 of the tiny vocabulary), no special tokens added."""

    bos_token_id, pad_token_id, eos_token_id = 1, 0, 2

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [b + 3 for b in text.encode("utf-8")]


@layout("cogvlm")
def cogvlm(out: Path) -> None:
    from transformers import GenerationConfig

    clean(out)
    install_torchvision_standin("cogvlm")
    install_xformers_standin("cogvlm")
    modeling = load_upstream_module("cogvlm", "modeling_cogvlm")
    configuration = load_upstream_module("cogvlm", "configuration_cogvlm")
    config = configuration.CogVLMConfig(
        vocab_size=320, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        hidden_act="silu", max_position_embeddings=2048, rms_norm_eps=1e-5, template_version="chat",
        pad_token_id=0, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False,
        vision_config={"dropout_prob": 0.0, "hidden_act": "gelu", "hidden_size": 32, "image_size": 490,
                       "in_channels": 3, "intermediate_size": 64, "layer_norm_eps": 1e-6, "num_heads": 4,
                       "num_hidden_layers": 2, "num_positions": 1226, "patch_size": 14},
    )
    config.architectures = ["CogVLMForCausalLM"]
    config.auto_map = {"AutoConfig": "configuration_cogvlm.CogVLMConfig",
                       "AutoModelForCausalLM": "modeling_cogvlm.CogVLMForCausalLM"}
    seed_all()
    model = modeling.CogVLMForCausalLM(config).eval()
    randomize_(model)
    model.save_pretrained(str(out / "checkpoint"), safe_serialization=True)

    images = ("red_640x480", "blue_336x336", "green_300x900")
    tok = _ByteTokenizer()
    pixels, built = {}, {}
    for name in images:
        b = model.build_conversation_input_ids(tok, query="What is in the image?", history=[],
                                               images=[golden_image(name)], template_version="chat")
        pixels[f"{name}.pixel_values"] = b["images"][0][None].numpy()
        built[name] = b
    b = built["red_640x480"]
    ids, tt, am = b["input_ids"][None], b["token_type_ids"][None], b["attention_mask"][None]
    images_arg = [[b["images"][0]]]
    with torch.no_grad():
        logits = model(input_ids=ids, images=images_arg, token_type_ids=tt, attention_mask=am).logits[0]
        gen = model.generate(input_ids=ids, images=images_arg, token_type_ids=tt, attention_mask=am,
                             generation_config=GenerationConfig(do_sample=False, max_new_tokens=NEW_TOKENS,
                                                                min_new_tokens=NEW_TOKENS, eos_token_id=None,
                                                                pad_token_id=0))
    text_positions = [i for i, t in enumerate(tt[0].tolist()) if t == 0]
    tensors = {"input_ids": ids, "token_type_ids": tt, "attention_mask": am, "generated": gen[0, ids.shape[1]:].clone(),
               **logits_record(logits, text_positions)}
    write_outputs(out, tensors=tensors, pixels=pixels, meta={
        "layout": "cogvlm", "loader": "load_pretrained_model", "model_type": "cogvlm-17b-instruct",
        "upstream": f"function2-llx/MMMM @ {UPSTREAM['cogvlm'][1]} mmmm/model/cogvlm/modeling_cogvlm.CogVLMForCausalLM",
        "model_image": "red_640x480",
        "vlmref_inputs": {"input_ids": "oracle:input_ids", "token_type_ids": "oracle:token_type_ids",
                          "attention_mask": "oracle:attention_mask", "pixel_values": "pixels:red_640x480.pixel_values"},
        "preprocessing": {"images": list(images),
                          "upstream_processor": "CogVLMForCausalLM.build_conversation_input_ids transform "
                                                "(torchvision stand-in)",
                          "vlmref_processor": "vlmref.datasets.processors.get_image_processor(model_type)",
                          "deviations": {}},
        "generation": {"new_tokens": NEW_TOKENS, "do_sample": False, "min_new_tokens": NEW_TOKENS,
                       "eos_token_id": None},
        "note": "ids and token_type_ids from upstream build_conversation_input_ids (chat template, query 'What is in "
                "the image?') with a byte-level stand-in tokenizer (bos 1, pad 0, byte + 3); tiny vocab 320",
        "stand_ins": STAND_INS.get("cogvlm", []),
    })


# ---------------------------------------------------------------------------------------------------------------------
# Yi-VL (01-ai/Yi VL/llava: LlavaLlamaForCausalLM + CLIPVisionTower over a separate vit/ CLIP folder)

YI_VIT = "vit/clip-vit-H-14-laion2B-s32B-b79K-yi-vl-6B-448"


def _import_package(name: str, package: str):
    """``import <package>`` from ``$VLMREF_UPSTREAM_DIR/<name>/`` (upstream packages import themselves by name)."""
    folder = str(upstream_dir(name))
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return importlib.import_module(package)


@layout("yi_vl")
def yi_vl(out: Path) -> None:
    from PIL import Image
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel, GenerationConfig

    clean(out)
    ckpt = out / "checkpoint"
    llava_model = _import_package("yi_vl", "llava.model")
    constants = importlib.import_module("llava.model.constants")
    mm_utils = importlib.import_module("llava.mm_utils")
    # 1. the vit/ folder: a transformers CLIPVisionModel checkpoint + its CLIPImageProcessor config, as Yi-VL ships
    #    (CLIP ViT-H/14 at 448 px there; 32 wide, 3 layers here)
    seed_all()
    vit = CLIPVisionModel(CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                                           num_attention_heads=4, image_size=448, patch_size=14, projection_dim=32,
                                           hidden_act="gelu", layer_norm_eps=1e-5)).eval()
    randomize_(vit, seed=SEED + 1)
    vit.save_pretrained(str(ckpt / YI_VIT), safe_serialization=True)
    CLIPImageProcessor(size={"shortest_edge": 448}, crop_size={"height": 448, "width": 448}, do_center_crop=True,
                       resample=Image.Resampling.BICUBIC, image_mean=[0.48145466, 0.4578275, 0.40821073],
                       image_std=[0.26862954, 0.26130258, 0.27577711]).save_pretrained(str(ckpt / YI_VIT))
    # 2. the LLM + projector, built by upstream LlavaLlamaForCausalLM (vision tower delay-loaded from vit/)
    constants.key_info["model_path"] = str(ckpt)
    config = llava_model.LlavaConfig(
        vocab_size=320, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, hidden_act="silu", max_position_embeddings=4096, rms_norm_eps=1e-5,
        rope_theta=5000000.0, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2, attention_bias=False,
        image_aspect_ratio="pad", mm_hidden_size=32, mm_projector_type="mlp2x_gelu_Norm",
        mm_vision_select_feature="patch", mm_vision_select_layer=-2, mm_use_im_start_end=False,
        mm_use_im_patch_token=False, mm_vision_tower="./" + YI_VIT, architectures=["LlavaLlamaForCausalLM"],
    )
    seed_all()
    model = llava_model.LlavaLlamaForCausalLM(config).eval()
    randomize_(model)
    model.config.mm_vision_tower = "./" + YI_VIT  # LlavaMetaModel made it absolute; the hub file has the relative one
    model.save_pretrained(str(ckpt), safe_serialization=True)
    del model
    # 3. load it back the way VL/llava/mm_utils.load_pretrained_model does (from_pretrained, then load_model())
    model = llava_model.LlavaLlamaForCausalLM.from_pretrained(str(ckpt), torch_dtype=torch.float32).eval()
    tower = model.get_vision_tower()
    if not tower.is_loaded:
        tower.load_model()
    image_processor = tower.image_processor

    images = ("red_640x480", "blue_336x336", "green_300x900")
    pixels = {}
    for name in images:  # as VL/single_inference.py: expand2square on the mean colour when image_aspect_ratio "pad"
        image = mm_utils.expand2square(golden_image(name), tuple(int(x * 255) for x in image_processor.image_mean))
        pixels[f"{name}.pixel_values"] = image_processor.preprocess(image, return_tensors="pt")["pixel_values"].numpy()
    image = torch.from_numpy(pixels["red_640x480.pixel_values"])
    # "### Human: <image_placeholder>\nWhat is it?\n### Assistant:" shaped ids (Yi-VL mm_default conversation)
    prompt = [1, 260, 261, 262, constants.IMAGE_TOKEN_INDEX, 10, 263, 264, 265, 10, 260, 266, 267]
    ids = torch.tensor([prompt])
    with torch.no_grad():
        logits = model(input_ids=ids, images=image, attention_mask=torch.ones_like(ids)).logits[0]
        gen = model.generate(inputs=ids, images=image, attention_mask=torch.ones_like(ids),
                             generation_config=GenerationConfig(do_sample=False, max_new_tokens=NEW_TOKENS,
                                                                min_new_tokens=NEW_TOKENS, eos_token_id=None,
                                                                pad_token_id=0))
    n_image = logits.shape[0] - (len(prompt) - 1)
    at = prompt.index(constants.IMAGE_TOKEN_INDEX)
    expanded = prompt[:at] + [constants.IMAGE_TOKEN_INDEX] * n_image + prompt[at + 1:]
    text_positions = [i for i, t in enumerate(expanded) if t != constants.IMAGE_TOKEN_INDEX]
    new = gen[0, -NEW_TOKENS:].clone()  # the prompt (with -200) + 8 new tokens
    tensors = {"input_ids": torch.tensor([expanded]), "attention_mask": torch.ones(1, len(expanded), dtype=torch.long),
               "generated": new, **logits_record(logits, text_positions)}
    write_outputs(out, tensors=tensors, pixels=pixels, meta={
        "layout": "yi_vl", "loader": "load_pretrained_model", "model_type": "yi-vl-6b-chat",
        "upstream": f"01-ai/Yi @ {UPSTREAM['yi_vl'][1]} VL/llava LlavaLlamaForCausalLM + CLIPVisionTower (vit/ folder)",
        "prompt_ids_upstream": prompt, "image_positions": n_image, "model_image": "red_640x480",
        "vlmref_inputs": {"input_ids": "oracle:input_ids", "attention_mask": "oracle:attention_mask",
                          "pixel_values": "pixels:red_640x480.pixel_values"},
        "preprocessing": {"images": list(images),
                          "upstream_processor": "llava.mm_utils.expand2square + vit/ CLIPImageProcessor "
                                                "(as VL/single_inference.py)",
                          "vlmref_processor": "vlmref.datasets.processors.get_image_processor(model_type)",
                          "deviations": {}},
        "generation": {"new_tokens": NEW_TOKENS, "do_sample": False, "min_new_tokens": NEW_TOKENS,
                       "eos_token_id": None},
        "note": f"vision tower in checkpoint/{YI_VIT} (CLIPVisionModel save_pretrained); main checkpoint written by "
                "LlavaLlamaForCausalLM.save_pretrained before the tower is loaded (LLM + mm_projector), then loaded "
                "back as mm_utils.load_pretrained_model does; tiny vocab 320, image placeholder -200",
        "stand_ins": STAND_INS.get("yi_vl", []),
    })


# ---------------------------------------------------------------------------------------------------------------------
# lmms-lab LLaVA-NeXT (LLaVA-VL/LLaVA-NeXT llava/: LlavaLlamaForCausalLM, anyres + spatial_unpad)

CLIP_336 = "openai/clip-vit-large-patch14-336"


def patch_lmms_clip_loading(clip_encoder, vision_config: dict[str, Any], layout_name: str) -> None:
    """Monkeypatch (stated): clip_encoder.CLIPVisionTower.load_model calls ``CLIPVisionModel.from_pretrained`` and
    ``CLIPImageProcessor.from_pretrained`` on "openai/clip-vit-large-patch14-336" (a hub download). The names in that
    module are replaced by subclasses whose ``from_pretrained`` builds the tower from a tiny CLIPVisionConfig
    (random weights; they are saved inside the checkpoint since mm_tunable_parts has mm_vision_tower) and the image
    processor from that repo's preprocessor_config.json values (shortest_edge 336, crop 336, bicubic, OpenAI CLIP
    mean/std). Nothing else in the upstream code is changed."""
    from PIL import Image
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    class _TowerFromConfig(CLIPVisionModel):
        @classmethod
        def from_pretrained(cls, name, *args, **kwargs):
            assert name == CLIP_336, name
            return CLIPVisionModel(CLIPVisionConfig(**vision_config))

    class _ProcessorFromConfig(CLIPImageProcessor):
        @classmethod
        def from_pretrained(cls, name, *args, **kwargs):
            assert name == CLIP_336, name
            return CLIPImageProcessor(size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336},
                                      do_center_crop=True, resample=Image.Resampling.BICUBIC,
                                      image_mean=[0.48145466, 0.4578275, 0.40821073],
                                      image_std=[0.26862954, 0.26130258, 0.27577711], do_convert_rgb=True)

    class _ConfigFromDict(CLIPVisionConfig):
        @classmethod
        def from_pretrained(cls, name, *args, **kwargs):
            assert name == CLIP_336, name
            return CLIPVisionConfig(**vision_config)

    clip_encoder.CLIPVisionModel = _TowerFromConfig
    clip_encoder.CLIPImageProcessor = _ProcessorFromConfig
    clip_encoder.CLIPVisionConfig = _ConfigFromDict
    STAND_INS.setdefault(layout_name, []).append(
        "monkeypatch: llava.model.multimodal_encoder.clip_encoder.{CLIPVisionModel,CLIPImageProcessor,"
        "CLIPVisionConfig}.from_pretrained('openai/clip-vit-large-patch14-336') build a tiny CLIP tower from a "
        "config and the CLIP-336 image processor from its preprocessor_config values (no hub download)")


_LMMS_MM = dict(image_aspect_ratio="anyres", image_grid_pinpoints=LLAVA_PINPOINTS,
                mm_hidden_size=TINY_CLIP["hidden_size"], mm_patch_merge_type="spatial_unpad",
                mm_projector_type="mlp2x_gelu", mm_vision_select_feature="patch", mm_vision_select_layer=-2,
                mm_vision_tower=CLIP_336, mm_tunable_parts="mm_vision_tower,mm_mlp_adapter,mm_language_model",
                mm_use_im_start_end=False, mm_use_im_patch_token=False)


@layout("llava_next_lmms")
def llava_next_lmms(out: Path) -> None:
    # lmms-lab/llama3-llava-next-8b config.json fields at tiny size (LLM + mm_*)
    _llava_next_lmms(out, "llava_next_lmms", "llama3-llava-next-8b", "llava_llama", "LlavaLlamaForCausalLM",
                     dict(vocab_size=320, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, hidden_act="silu",
                          max_position_embeddings=8192, rms_norm_eps=1e-5, rope_theta=500000.0, attention_bias=False,
                          tie_word_embeddings=False, bos_token_id=1, eos_token_id=2))


@layout("llava_next_lmms_qwen")
def llava_next_lmms_qwen(out: Path) -> None:
    # lmms-lab/llava-next-72b / -110b config.json fields at tiny size (Qwen1.5 LLM: qkv bias, GQA as in 110b)
    _llava_next_lmms(out, "llava_next_lmms_qwen", "llava-next-110b", "llava_qwen", "LlavaQwenForCausalLM",
                     dict(vocab_size=320, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, hidden_act="silu",
                          max_position_embeddings=32768, rms_norm_eps=1e-6, rope_theta=1000000.0,
                          use_sliding_window=False, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2))


def _llava_next_lmms(out: Path, layout_name: str, model_type: str, module: str, class_name: str,
                     text: dict[str, Any]) -> None:
    from transformers import GenerationConfig

    clean(out)
    ckpt = out / "checkpoint"
    lm = _import_package("llava_next_lmms", f"llava.model.language_model.{module}")
    clip_encoder = importlib.import_module("llava.model.multimodal_encoder.clip_encoder")
    constants = importlib.import_module("llava.constants")
    mm_utils = importlib.import_module("llava.mm_utils")
    vision = dict(TINY_CLIP)
    patch_lmms_clip_loading(clip_encoder, vision, layout_name)
    # "vision_config" records the tiny tower's shape for readers of this checkpoint (upstream ignores it and
    # rebuilds the tower from mm_vision_tower, see patch_lmms_clip_loading)
    config_class = lm.LlavaConfig if module == "llava_llama" else lm.LlavaQwenConfig
    config = config_class(**text, **_LMMS_MM, architectures=[class_name],
                          vision_config=dict(vision, model_type="clip_vision_model"))
    seed_all()
    model = getattr(lm, class_name)(config).eval()
    randomize_(model)
    model.save_pretrained(str(ckpt), safe_serialization=True)
    processor = model.get_vision_tower().image_processor

    from transformers.image_processing_utils import select_best_resolution as hf_best

    images = ("red_640x480", "blue_336x336", "green_300x900", "orange_640x427")
    pixels, deviations = {}, {}
    for name in images:
        image = golden_image(name)
        t = mm_utils.process_images([image], processor, model.config)  # (1, n_patches, 3, 336, 336)
        pixels[f"{name}.pixel_values"] = t.numpy() if t.dim() == 5 else t[None].numpy()
        pixels[f"{name}.image_sizes"] = np.array([[image.size[1], image.size[0]]])  # (height, width)
        # upstream reads the pinpoints as (width, height) and keeps the first of tied canvases; transformers (and
        # vlmref) read them as (height, width): same candidates (the list is symmetric), but a tie (both sides
        # <= 336 px) picks a different canvas
        up_w, up_h = mm_utils.select_best_resolution(image.size, LLAVA_PINPOINTS)
        hf_h, hf_w = hf_best((image.size[1], image.size[0]), LLAVA_PINPOINTS)
        if (up_h, up_w) != (hf_h, hf_w):
            deviations[name] = {
                "name": "lmms-anyres-pinpoint-tie-order",
                "upstream_canvas_hw": [up_h, up_w], "vlmref_canvas_hw": [hf_h, hf_w],
                "affected_patches": list(range(1, 1 + (up_h // 336) * (up_w // 336))),
                "note": "vlmref follows transformers' (height, width) reading of image_grid_pinpoints; on an exact "
                        "tie the original code keeps the first (width, height) pair listed, so the anyres grid "
                        "(not the base view, patch 0) is laid out differently; documented in "
                        "vlmref.datasets.processors.LlavaNextImageProcessor",
            }
    name = "red_640x480"
    image = golden_image(name)
    pv = torch.from_numpy(pixels[f"{name}.pixel_values"])[0]
    # chat-shaped ids: bos, role header, newline, <image> (-200), newline, query, end + assistant header
    prompt = [1, 260, 261, 262, 10, constants.IMAGE_TOKEN_INDEX, 10, 263, 264, 265, 266, 267, 260, 268, 262, 10]
    ids = torch.tensor([prompt])
    image_sizes = [image.size]  # PIL (width, height), as LLaVA-NeXT's own demo and ms-swift 2.2.0 pass them
    with torch.no_grad():
        logits = model(input_ids=ids, images=[pv], image_sizes=image_sizes, modalities=["image"],
                       attention_mask=torch.ones_like(ids)).logits[0]
        gen = model.generate(ids, images=[pv], image_sizes=image_sizes, modalities=["image"],
                             attention_mask=torch.ones_like(ids),
                             generation_config=GenerationConfig(do_sample=False, max_new_tokens=NEW_TOKENS,
                                                                min_new_tokens=NEW_TOKENS, eos_token_id=None,
                                                                pad_token_id=0))
    n_image = logits.shape[0] - (len(prompt) - 1)
    at = prompt.index(constants.IMAGE_TOKEN_INDEX)
    expanded = prompt[:at] + [constants.IMAGE_TOKEN_INDEX] * n_image + prompt[at + 1:]
    text_positions = [i for i, t in enumerate(expanded) if t != constants.IMAGE_TOKEN_INDEX]
    tensors = {"input_ids": torch.tensor([expanded]), "attention_mask": torch.ones(1, len(expanded), dtype=torch.long),
               "generated": gen[0, -NEW_TOKENS:].clone(), **logits_record(logits, text_positions)}
    write_outputs(out, tensors=tensors, pixels=pixels, meta={
        "layout": layout_name, "loader": "load_pretrained_model", "model_type": model_type,
        "upstream": f"LLaVA-VL/LLaVA-NeXT @ {UPSTREAM['llava_next_lmms'][1]} "
                    f"llava/model/language_model/{module}.{class_name}",
        "prompt_ids_upstream": prompt, "image_positions": n_image, "model_image": name,
        "upstream_image_sizes": [list(image.size)],
        "image_placeholder": constants.IMAGE_TOKEN_INDEX, "replace_placeholder_with_config_image_token_id": True,
        "vlmref_inputs": {"input_ids": "oracle:input_ids", "attention_mask": "oracle:attention_mask",
                          "pixel_values": f"pixels:{name}.pixel_values", "image_sizes": f"pixels:{name}.image_sizes"},
        "preprocessing": {"images": list(images), "extra_images": EXTRA_IMAGES,
                          "upstream_processor": "llava.mm_utils.process_images (anyres) with the CLIP-336 "
                                                "CLIPImageProcessor",
                          "vlmref_processor": "vlmref.datasets.processors.get_image_processor(model_type)",
                          "deviations": deviations},
        "generation": {"new_tokens": NEW_TOKENS, "do_sample": False, "min_new_tokens": NEW_TOKENS,
                       "eos_token_id": None},
        "note": "upstream gets image_sizes as PIL (width, height) and ids with the -200 placeholder; vlmref gets "
                "(height, width) and the placeholder run replaced by its config's image_token_id. Tiny vocab 320",
        "stand_ins": STAND_INS.get(layout_name, []),
    })


# ---------------------------------------------------------------------------------------------------------------------
# InternLM-XComposer-2.5 (OmniLive base): image preprocessing only, no model checkpoint.
# The model cannot be built tiny without changing upstream code: build_mlp.py hard-codes the projector widths
# (4096 -> 4096 -> 4096, input 4 x CLIP width) and plora_glb_GN / plora_sub_GN (4096), so the LLM must be 4096 wide
# and the CLIP tower 1024 wide (a >300 MB checkpoint even with one layer), and __init__ downloads a font (get_font).


@layout("xcomposer2d5")
def xcomposer2d5(out: Path) -> None:
    clean(out)
    install_torchvision_standin("xcomposer2d5")
    if "decord" not in sys.modules:  # ixc_utils imports decord.VideoReader (video input only; unused here)
        decord = types.ModuleType("decord")
        decord.VideoReader = None
        sys.modules["decord"] = decord
    STAND_INS.setdefault("xcomposer2d5", []).append(
        "decord: sys.modules stand-in with VideoReader = None (imported by ixc_utils for video input only)")
    ixc_utils = load_upstream_module("xcomposer2d5", "ixc_utils")
    tv = sys.modules["torchvision"].transforms
    # the model's vis_processor (modeling_internlm_xcomposer2.py __init__): ToTensor + Normalize(OpenAI CLIP)
    vis_processor = tv.Compose([tv.ToTensor(), tv.Normalize((0.48145466, 0.4578275, 0.40821073),
                                                            (0.26862954, 0.26130258, 0.27577711))])
    hd_num = 24  # chat()/interleav_wrap_chat default for one image (ms-swift 2.2.1's template passes the same)
    images = ("red_640x480", "blue_336x336", "green_300x900")
    pixels = {}
    for name in images:  # encode_img: Image_transform(image, hd_num) then vis_processor
        tiled = ixc_utils.Image_transform(golden_image(name), hd_num)
        pixels[f"{name}.pixel_values"] = vis_processor(tiled)[None].numpy()
    write_outputs(out, tensors={"hd_num": torch.tensor([hd_num])}, pixels=pixels, meta={
        "layout": "xcomposer2d5", "checkpoint": None, "model_type": "internlm-xcomposer2_5-7b-chat",
        "upstream": f"InternLM/InternLM-XComposer @ {UPSTREAM['xcomposer2d5'][1]} {UPSTREAM['xcomposer2d5'][2]} "
                    "ixc_utils.Image_transform + vis_processor",
        "preprocessing": {"images": list(images), "vlmref_processor_options": {"hd_num": hd_num},
                          "upstream_processor": "ixc_utils.Image_transform(img, hd_num=24) + ToTensor + "
                                                "Normalize(CLIP) (torchvision stand-in)",
                          "vlmref_processor": "vlmref.datasets.processors.get_image_processor(model_type, hd_num=24)",
                          "list_output": True, "deviations": {}},
        "note": "preprocessing only: build_mlp.py hard-codes 4096-wide projector / separators, so no tiny upstream "
                "checkpoint can be written without changing upstream code (and __init__ downloads a font)",
        "stand_ins": STAND_INS.get("xcomposer2d5", []),
    })


# ---------------------------------------------------------------------------------------------------------------------


def write_manifest(root: Path) -> None:
    files, stand_ins = {}, {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.name != "MANIFEST.json":
            files[str(path.relative_to(root))] = sha256(path)
        if path.name == "oracle.json":
            stand_ins[path.parent.name] = json.loads(path.read_text(encoding="utf-8")).get("stand_ins", [])
    commits = {name: {"repo": repo, "commit": commit, "folder": folder or "."}
               for name, (repo, commit, folder, _) in UPSTREAM.items()}
    manifest = {"generator": "scripts/oracle/make_model_oracle.py", "versions": versions(),
                "upstream": commits, "layouts": sorted(p.name for p in root.iterdir() if p.is_dir()),
                "stand_ins": stand_ins, "files": files}
    (root / "MANIFEST.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    import subprocess

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "golden" / "oracle" / "models")
    parser.add_argument("--one", action="store_true", help="internal: run one layout in this process, no manifest")
    parser.add_argument("layouts", nargs="*", help=f"default: all of {', '.join(LAYOUTS)}")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    names = args.layouts or list(LAYOUTS)
    for name in names:
        if name not in LAYOUTS:
            raise SystemExit(f"error: unknown layout {name!r}; known: {', '.join(LAYOUTS)}")
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    if args.one:
        for name in names:
            LAYOUTS[name](out / name)
        return 0
    # each layout in its own interpreter: the upstream packages (two different ``llava``) and the sys.modules
    # stand-ins must not leak from one layout into the next
    for name in names:
        print(f"== {name}", flush=True)
        subprocess.run([sys.executable, __file__, "--out", str(out), "--one", name], check=True)
    write_manifest(out)
    print(f"wrote {out}/MANIFEST.json", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
