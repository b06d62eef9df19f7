"""The tokenizer a command without a model uses (``render``, ``check-data --max_length``): the real one from a model
folder or ``../shared/tokenizers``, else a byte-level stand-in with the real special-token ids.

>>> tok, desc = load_cli_tokenizer("llava1d6-mistral-7b-instruct", None)  # doctest: +SKIP
>>> desc  # doctest: +SKIP
'../shared/tokenizers/mistral (tokenizer_json)'
"""

from __future__ import annotations

import sys

from ..models.model_types import MODELS
from ..templates import TEMPLATES
from ..templates.media import get_media_step
from ..templates.meta import template_markers

STAND_IN_MARKER_IDS = 2_000_000  # template markers the real tokenizer has no special token for


def stand_in_tokenizer(model_type: str):
    """A byte-level tokenizer (``TinyTokenizer``: byte b is id 1000000 + b) whose special tokens keep the real
    tokenizer's ids (``assets/tokenizer_specials.json``, as create-tiny's stand-in); the template's other markers
    (e.g. ``[INST]``) get ids from 2000000. llava-mistral: ``<s>`` 1, ``</s>`` 2, ``<image>`` 32000."""
    from ..models.fallback_tokenizer import recorded_specials
    from ..testing.tiny_tokenizer import TinyTokenizer

    meta = MODELS.get(model_type)
    spec = meta.tokenizer
    try:
        recorded = recorded_specials(model_type)
    except KeyError:
        recorded = {}
    real = recorded.get("ids", {})
    bos = recorded.get("bos") or spec.bos or "<s>"
    eos = recorded.get("eos") or spec.eos or "</s>"
    pad = recorded.get("pad") or spec.pad or eos
    names = sorted(template_markers(TEMPLATES.get(meta.template)) | {bos, eos, pad, *spec.add_tokens, "<image>"}
                   | set(get_media_step(TEMPLATES.get(meta.template).media).markup_tokens))
    ids = {name: real[name] for name in names if name in real}
    for name in names:
        if name not in ids:
            ids[name] = STAND_IN_MARKER_IDS + len(ids)
    return TinyTokenizer(ids, bos=bos, eos=eos, pad=pad)


def load_cli_tokenizer(model_type: str, model_id_or_path: str | None):
    """(tokenizer, description): the given folder, else ../shared/tokenizers, else the byte-level stand-in."""
    from ..models.loader import get_model_tokenizer, shared_tokenizer_folder

    folder = model_id_or_path or shared_tokenizer_folder(model_type)
    if folder is not None:
        try:
            _, tok = get_model_tokenizer(model_type, load_model=False, model_id_or_path=folder)
            return tok, f"{folder} ({MODELS.get(model_type).tokenizer.kind})"
        except ImportError as err:  # transformers/tokenizer extras missing
            print(f"note: real tokenizer unavailable ({err}); using the byte-level stand-in", file=sys.stderr)
    return stand_in_tokenizer(model_type), ("byte-level stand-in (special tokens have the real ids; text ids are bytes; see README "
                                          "'Real tokenizers')")
