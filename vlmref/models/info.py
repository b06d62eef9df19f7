"""Parameter accounting on the meta device: per-component counts, image tokens, LoRA target resolution.

``vlmref model-info --model_type llava1d6-mistral-7b-instruct``::

    component        parameters
    vision_tower       303,507,456
    projector           20,979,712
    language_model   7,111,0...
    ...
    LoRA DEFAULT (q_proj, k_proj, v_proj), r=8: 320 modules, 5,898,240 trainable

LoRA target names match the way peft matches ``target_modules`` given as a list: a module is wrapped when its
qualified name equals a target or ends with ``"." + target``. ``ALL`` is ms-swift 2.2.0's ``find_all_linears`` (see
``find_all_linears``).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from .arch import COMPONENTS, ArchSpec, get_arch
from .model_types import MODELS

LORA_RANK = 8  # ms-swift 2.2.0 --lora_rank default
OUTPUT_HEADS = ("lm_head", "output")  # ms-swift find_all_linears: lm_head, InternLM2's `output`


def build_on_meta(model_type: str, tiny: bool = False, **overrides: Any):
    """The model with every tensor on the meta device (no memory, no init work)."""
    import torch

    spec = get_arch(model_type)
    config = spec.build_config(tiny=tiny, **overrides)
    with torch.device("meta"):
        return spec.model_class(config)


def component_of(name: str, spec: ArchSpec) -> str:
    """The component whose (longest) prefix owns the parameter/buffer ``name``."""
    best, best_len = None, -1
    for component, prefixes in spec.components.items():
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = component, len(prefix)
    if best is None:
        raise KeyError(f"parameter {name!r} belongs to no component of {spec.model_type} ({spec.components})")
    return best


def parameter_counts(model: Any, spec: ArchSpec) -> dict[str, int]:
    """Parameters per component (each counted once, tied weights once) and the total."""
    counts: dict[str, int] = OrderedDict((c, 0) for c in COMPONENTS)
    for name, param in model.named_parameters(remove_duplicate=True):
        component = component_of(name, spec)
        counts[component] = counts.get(component, 0) + param.numel()
    counts["total"] = sum(v for k, v in counts.items() if k != "total")
    return counts


def linear_modules(model: Any) -> list[tuple[str, int, int]]:
    import torch

    return [(n, m.in_features, m.out_features) for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]


def resolve_lora_targets(model: Any, model_type: str, targets: str | list[str] | tuple[str, ...] = "DEFAULT") -> list[str]:
    """``DEFAULT`` (the registry), ``ALL`` (``find_all_linears``) or explicit names -> target names."""
    if isinstance(targets, str):
        if targets.upper() == "DEFAULT":
            return list(MODELS.get(model_type).lora_target_modules)
        if targets.upper() == "ALL":
            return find_all_linears(model, exclude=get_arch(model_type).lora_all_exclude)
        targets = [t.strip() for t in targets.replace(",", " ").split() if t.strip()]
    return list(targets)


def find_all_linears(model: Any, exclude: tuple[str, ...] = ()) -> list[str]:
    """ms-swift 2.2.0's ``ALL``: a name suffix for every ``nn.Linear`` except the output head.

    The suffix starts as the last name component and grows leftwards while a non-Linear module's name ends with it
    (so ``mm_projector.0`` is kept apart from ``model.layers.0``). The head is ``lm_head`` or InternLM2's ``output``
    (ms-swift 2.2.0 excludes only names containing ``lm_head``, so it wraps InternLM2's ``output``; vlmref does not).
    """
    import torch

    linears, others = [], []
    for name, module in model.named_modules():
        (linears if isinstance(module, torch.nn.Linear) else others).append(name)
    out: set[str] = set()
    cache: dict[str, str] = {}
    for name in linears:
        parts = name.split(".")
        if "lm_head" in name or parts[-1] in OUTPUT_HEADS or parts[-1] in exclude:
            continue
        k = 1
        suffix = parts[-1]
        while k < len(parts):
            if suffix not in cache:
                cache[suffix] = "1" if any(o.endswith(suffix) for o in others) else ""
            if not cache[suffix]:
                break
            k += 1
            suffix = ".".join(parts[-k:])
        out.add(suffix)
    return sorted(out)


def matched_linears(model: Any, targets: list[str]) -> list[tuple[str, int, int]]:
    """The Linear modules peft wraps for ``targets`` (suffix matching on qualified names)."""
    return [(n, i, o) for n, i, o in linear_modules(model) if any(n == t or n.endswith("." + t) for t in targets)]


def lora_summary(model: Any, model_type: str, targets: Any, rank: int = LORA_RANK) -> dict[str, Any]:
    spec = get_arch(model_type)
    names = resolve_lora_targets(model, model_type, targets)
    matched = matched_linears(model, names)
    per_component: dict[str, int] = OrderedDict()
    for name, i, o in matched:
        component = component_of(name + ".weight", spec)
        per_component[component] = per_component.get(component, 0) + rank * (i + o)
    return {"targets": names, "modules": len(matched), "trainable": sum(rank * (i + o) for _, i, o in matched),
            "trainable_by_component": dict(per_component), "rank": rank}


def image_tokens_per_image(model_type: str, height: int, width: int) -> int:
    """LLM positions one image of ``height`` x ``width`` takes (the same numbers the templates use)."""
    from ..templates import TEMPLATES
    from ..templates.media import get_media_step

    meta = MODELS.get(model_type)
    step = get_media_step(TEMPLATES.get(meta.template).media)
    try:
        return step.tokens_per_image(height, width, dict(meta.media_options))
    except KeyError:
        raise KeyError(f"{model_type}: template {meta.template!r} takes no images") from None


def kv_cache_geometry(config: Any) -> dict[str, int]:
    """The decoder's KV cache per token: layers, KV heads and head dim of ``config.get_text_config()`` (the language
    model's config inside a composite one). KV heads default to the attention heads, head dim to hidden / heads."""
    text = config.get_text_config()
    heads = text.num_attention_heads
    return {"layers": text.num_hidden_layers, "kv_heads": getattr(text, "num_key_value_heads", None) or heads,
            "head_dim": getattr(text, "head_dim", None) or text.hidden_size // heads}


def kv_cache_bytes_per_token(config: Any, dtype_bytes: int = 2) -> int:
    """layers x KV heads x head dim x 2 (K and V) x dtype bytes: what one more cached position of one sequence costs.

    >>> from vlmref.models.arch import get_arch
    >>> kv_cache_bytes_per_token(get_arch("llava1d6-mistral-7b-instruct").build_config()) // 1024  # KiB, bf16
    128
    """
    g = kv_cache_geometry(config)
    return g["layers"] * g["kv_heads"] * g["head_dim"] * 2 * dtype_bytes


def model_info(model_type: str, image_size: tuple[int, int] = (480, 640), rank: int = LORA_RANK) -> dict[str, Any]:
    """Everything ``vlmref model-info`` prints, as data."""
    spec = get_arch(model_type)
    model = build_on_meta(model_type)
    return {
        "model_type": MODELS.canonical(model_type),
        "family": spec.family,
        "parameters": parameter_counts(model, spec),
        "image_size": list(image_size),
        "image_tokens_per_image": image_tokens_per_image(model_type, *image_size),
        "lora": {"DEFAULT": lora_summary(model, model_type, "DEFAULT", rank),
                 "ALL": lora_summary(model, model_type, "ALL", rank)},
        "kv_cache": {**kv_cache_geometry(model.config), "bf16_bytes_per_token": kv_cache_bytes_per_token(model.config)},
        "source": spec.source,
    }


def format_model_info(info: dict[str, Any]) -> str:
    lines = [f"model_type: {info['model_type']}   family: {info['family']}", "", f"{'component':<16}{'parameters':>18}"]
    for name, n in info["parameters"].items():
        lines.append(f"{name:<16}{n:>18,}")
    h, w = info["image_size"]
    lines += ["", f"image tokens per {h}x{w} image: {info['image_tokens_per_image']}", ""]
    for key in ("DEFAULT", "ALL"):
        lora = info["lora"][key]
        by = ", ".join(f"{c} {n:,}" for c, n in lora["trainable_by_component"].items())
        lines.append(f"LoRA {key} (r={lora['rank']}): {', '.join(lora['targets'])}")
        lines.append(f"  {lora['modules']} modules, {lora['trainable']:,} trainable parameters ({by})")
    kv = info["kv_cache"]
    lines += ["", f"KV cache: {kv['layers']} layers x {kv['kv_heads']} KV heads x {kv['head_dim']} head dim x 2 x 2 B "
              f"= {kv['bf16_bytes_per_token'] / 2**20:.3f} MiB per token (bf16)"]
    if info.get("source"):
        lines += ["", f"config source: {info['source']}"]
    return "\n".join(lines)
