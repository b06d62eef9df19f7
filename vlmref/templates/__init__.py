"""Chat templates, registered as data by the model families; ``get_template`` binds one to a tokenizer.

The templates themselves live with their family (``vlmref/models/<family>/template.py``); ``TEMPLATES`` loads the
families on first use. Pure Python: importing this package never imports torch or transformers.
"""

from __future__ import annotations

from .base import Rendered, Segment, Template, get_template
from .meta import TEMPLATES, ImageSlot, TemplateMeta, register_template


class TemplateType:
    """Template type names (ms-swift 2.2.0 strings)."""

    qwen = "qwen"
    qwen_vl = "qwen-vl"
    cogvlm = "cogvlm"
    internlm_xcomposer2 = "internlm-xcomposer2"
    internlm_xcomposer2_5 = "internlm-xcomposer2_5"
    yi_vl = "yi-vl"
    llava_mistral = "llava-mistral"
    llava_yi = "llava-yi"
    llama_llava_next = "llama-llava-next"
    llava_qwen_instruct = "llava-qwen-instruct"


__all__ = [
    "TEMPLATES",
    "ImageSlot",
    "Rendered",
    "Segment",
    "Template",
    "TemplateMeta",
    "TemplateType",
    "get_template",
    "register_template",
]
