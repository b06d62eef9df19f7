"""``vlmref render`` and ``vlmref demo``: show exactly what a template makes of a sample.

Output (llava-mistral, one image)::

    [RENDERED]    <s>[INST] ⟦image 0⟧\\nDescribe this image. [/INST]A red rectangle.</s>
    [MASK]        <s>[INST] ⟦image 0⟧\\nDescribe this image. [/INST][[A red rectangle.]][[</s>]]
    [INPUT_IDS]   (2360) 1 733 16289 28793 28705 [32000 * 2340] 13 ...
    [LABELS]      [-100 * 2355] 330 2760 ...

Id segments of a template are named with the tokenizer, and images the family's media step puts where the text
shows none (``images_outside_text``) get a line of their own. CogVLM (vision positions after BOS)::

    [RENDERED]  '⟦<s>⟧Question: Describe this image. Answer:A cat.⟦</s>⟧'
                + ⟦image 0⟧ at ids[1:1228]
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from ..models.model_types import MODELS
from ..templates import TEMPLATES, get_template
from ..templates.media import get_media_step
from ..utils import runs_text  # noqa: F401 - re-exported (was defined here)
from .tokenizer import STAND_IN_MARKER_IDS, load_cli_tokenizer, stand_in_tokenizer  # noqa: F401 - re-exported

SAMPLE = Path(__file__).resolve().parent.parent / "assets" / "sample.json"


def render_report(model_type: str, example: dict[str, Any], tokenizer: Any, tokenizer_desc: str, **template_kw) -> str:
    meta = MODELS.get(model_type)
    template = get_template(meta.template, tokenizer, **template_kw)
    rendered = template.render(example)
    enc = template.encode(example)
    lines = [
        f"model_type: {meta.model_type}   template: {meta.template} ({template.profile})   tokenizer: {tokenizer_desc}",
        f"[RENDERED]  {rendered.text(tokenizer)!r}",
        *outside_text_image_lines(template, enc),
        f"[MASK]      {rendered.mask_view(tokenizer)!r}   (supervised in [[ ]])",
        f"[INPUT_IDS] ({len(enc['input_ids'])}) {runs_text(enc['input_ids'])}",
        f"[LABELS]    {runs_text(enc['labels'])}",
    ]
    if enc["image_spans"]:
        lines.append(f"[IMAGES]    {[str(m) for m in enc['images']]} at (start, length) {enc['image_spans']}")
    for key in ("token_type_ids", "im_mask", "image_sizes"):
        if enc.get(key):
            value = enc[key] if key == "image_sizes" else runs_text(enc[key])
            lines.append(f"[{key.upper()}] {value}")
    return "\n".join(lines)


def outside_text_image_lines(template: Any, enc: dict[str, Any]) -> list[str]:
    """``+ ⟦image 0⟧ at ids[1:1228]`` for each image whose positions the media step inserts outside the rendered
    text (the span from the encode, so the count is the family's tokens per image)."""
    if not getattr(template.media, "images_outside_text", False):
        return []
    return [f"            + ⟦image {k}⟧ at ids[{s}:{s + n}]" for k, (s, n) in enumerate(enc["image_spans"])]


def write_sample_images(folder: Path) -> dict[str, str]:
    """The bundled sample's images, drawn with PIL (no binary assets in the package)."""
    from PIL import Image, ImageDraw

    sample = json.loads(SAMPLE.read_text(encoding="utf-8"))
    paths = {}
    for name, spec in sample["images"].items():
        img = Image.new("RGB", (spec["width"], spec["height"]), tuple(spec["background"]))
        ImageDraw.Draw(img).ellipse([spec["width"] // 4, spec["height"] // 4, spec["width"] * 3 // 4,
                                     spec["height"] * 3 // 4], fill=tuple(spec["shape"]))
        path = folder / name
        img.save(path)
        paths[name] = str(path)
    return paths


def run_demo(out=None) -> int:
    """Render every model type's template on the bundled sample (the README's main job for now)."""
    out = out or sys.stdout
    sample = json.loads(SAMPLE.read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory(prefix="vlmref-demo-") as tmp:
        paths = write_sample_images(Path(tmp))
        for model_type in MODELS.names():
            meta = MODELS.get(model_type)
            inline = get_media_step(TEMPLATES.get(meta.template).media).inline_image_syntax
            row = sample["rows"]["inline_img" if inline else "images_column"]
            example = json.loads(json.dumps(row).replace("{image}", paths["cat.png"]))
            tokenizer, desc = load_cli_tokenizer(model_type, None)
            print(render_report(model_type, example, tokenizer, desc), file=out)
            print("-" * 50, file=out)
    print(f"rendered {len(MODELS)} model types; templates: {', '.join(TEMPLATES.names())}", file=out)
    return 0
