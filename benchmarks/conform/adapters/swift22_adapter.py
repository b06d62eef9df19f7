"""``vlmref conform`` adapter for ms-swift 2.2.0: ``swift22_adapter:encode``, run in the ms-swift 2.2.0 venv.

    vlmref conform --adapter swift22_adapter:encode --adapter_path benchmarks/conform/adapters \\
        --adapter_python .nox/conform-swift22-venv/bin/python --profile swift-2.2.0

Each vlmref model type is mapped to ms-swift 2.2.0's own model type (``SWIFT_MODEL_TYPES``), whose template comes
from swift's ``MODEL_MAPPING[...]["template"]``; ``swift.llm.get_template(template, tokenizer, model=stand-in)``
encodes the example, as the repository's oracle generator does (``scripts/oracle/make_template_oracle.py``).

Tokenizer and stand-ins: reused from ``scripts/oracle/stand_ins.py``, not repeated here.

* ``swift_tokenizer``: the real files of ``$VLMREF_TOKENIZERS_DIR`` (or ``../shared/tokenizers``) loaded as swift
  2.2.0 loads them (``AutoTokenizer`` with each hub repo's tokenizer_config facts; Qwen-VL's ``QWenTokenizer`` and
  InternLM2's ``InternLM2Tokenizer`` from the pinned upstream model repositories in ``$VLMREF_UPSTREAM_DIR``, see
  ``scripts/oracle/upstream.py``; ``IMAGE_ST = ()`` for Qwen-VL as swift's loader sets it).
* ``model_stand_in`` (templates registered with ``use_model=True``; they never decide an id):
  CogVLM: ``dtype`` and ``build_conversation_input_ids`` giving 1 + 35*35 + 2 ``token_type_ids`` (cogvlm-chat-hf's
  490 px / patch 14 vision tokens) and a placeholder image tensor. InternLM-XComposer2: ``dtype``, ``device``,
  ``vis_processor``, ``encode_img`` (256 rows of -200 per image: CLIP ViT-L/14 at 224 px) and
  ``model.tok_embeddings`` writing each id into its one-wide row, so the ids are read back from ``inputs_embeds``.
  Yi-VL and lmms-lab LLaVA-NeXT: ``model.vision_tower.image_processor`` and a ``llava.mm_utils`` module
  (``expand2square``, ``process_images``) returning placeholder pixels. llava-hf LLaVA-1.6: ``tokenizer.processor``
  with an image processor (``image_mean`` and placeholder pixels).

Images as swift marks them: LLaVA and Yi-VL one -200 per image; Qwen-VL ``<img>path</img>`` padded by its tokenizer
(the comparison collapses ``<img>`` ... ``</img>``); CogVLM ``pad_token_id`` runs marked by ``token_type_ids`` and
XComposer2 embedding rows marked by ``im_mask`` (both returned as ``image_spans`` too). Where swift returns ``{}``
(``max_length`` exceeded under ``delete``) the adapter raises: swift refuses the case.

Inline ``<img>path</img>`` in a query (Qwen-VL, XComposer2) comes with an absolute path, as ``images`` do; swift
still runs with the working directory golden/, as the oracle generator does, so that a relative path given by hand
resolves the same way.

Not covered: internlm-xcomposer2_5-7b-chat (ms-swift 2.2.0 has neither its model type nor a template for it).
Qwen-VL and XComposer2 need the upstream tokenizer code: without ``$VLMREF_UPSTREAM_DIR/qwen_vl`` or
``.../internlm2_tokenizer`` the model types that need it are left out of ``model_types`` (a warning on stderr).
"""

from __future__ import annotations

import contextlib
import copy
import os
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]
MEDIA_ROOT = REPO / "golden"  # what the cases' inline <img> paths are relative to
sys.path.insert(0, str(REPO / "scripts" / "oracle"))  # stand_ins imports `upstream` as a top-level module
if os.environ.get("VLMREF_UPSTREAM_DIR"):  # read by stand_ins under encode's working directory (golden/)
    os.environ["VLMREF_UPSTREAM_DIR"] = str(Path(os.environ["VLMREF_UPSTREAM_DIR"]).resolve())

# vlmref model type -> ms-swift 2.2.0 model type (swift's MODEL_MAPPING gives its template)
SWIFT_MODEL_TYPES = {
    "cogvlm-17b-instruct": "cogvlm-17b-chat",
    "qwen-vl-chat": "qwen-vl-chat",
    "internlm-xcomposer2-7b-chat": "internlm-xcomposer2-7b-chat",
    "yi-vl-6b-chat": "yi-vl-6b-chat",
    "yi-vl-34b-chat": "yi-vl-34b-chat",
    "llava1d6-mistral-7b-instruct": "llava1_6-mistral-7b-instruct",
    "llava1d6-yi-34b-instruct": "llava1_6-yi-34b-instruct",
    "llama3-llava-next-8b": "llama3-llava-next-8b",
    "llava-next-72b": "llava-next-72b",
    "llava-next-110b": "llava-next-110b",
}
# upstream tokenizer code (scripts/oracle/upstream.py names) a model type needs
NEEDS_UPSTREAM = {"qwen-vl-chat": "qwen_vl", "internlm-xcomposer2-7b-chat": "internlm2_tokenizer"}


def _tokenizers_root() -> Path:
    return Path(os.environ.get("VLMREF_TOKENIZERS_DIR") or REPO.parent / "shared" / "tokenizers").resolve()


def _covered() -> tuple[str, ...]:
    root = os.environ.get("VLMREF_UPSTREAM_DIR")
    out = []
    for model_type in SWIFT_MODEL_TYPES:
        need = NEEDS_UPSTREAM.get(model_type)
        if need and not (root and (Path(root) / need).is_dir()):
            print(f"swift22_adapter: {model_type} left out: no $VLMREF_UPSTREAM_DIR/{need} "
                  "(scripts/oracle/upstream.py extract)", file=sys.stderr)
            continue
        out.append(model_type)
    return tuple(out)


def _version() -> str:
    from importlib.metadata import version

    return f"ms-swift {version('ms-swift')} (transformers {version('transformers')})"


_TEMPLATES: dict[str, Any] = {}  # swift template type -> swift Template (one per type, as swift's dataset loop)


def _template(model_type: str) -> Any:
    from stand_ins import model_stand_in, swift_tokenizer
    from swift.llm import MODEL_MAPPING, get_template

    template_type = MODEL_MAPPING[SWIFT_MODEL_TYPES[model_type]]["template"]
    if template_type not in _TEMPLATES:
        try:
            tokenizer, _ = swift_tokenizer(template_type, _tokenizers_root())
        except SystemExit as err:  # upstream.upstream_dir's message; not an exit of the worker
            raise RuntimeError(str(err)) from None
        _TEMPLATES[template_type] = get_template(template_type, tokenizer,
                                                 model=model_stand_in(template_type, tokenizer))
    return _TEMPLATES[template_type]


def _spans(mask: list[int]) -> list[list[int]]:
    """``[[start, length], ...]`` of the runs of 1 in ``mask``."""
    out: list[list[int]] = []
    for i, v in enumerate(mask):
        if v and (i == 0 or not mask[i - 1]):
            out.append([i, 0])
        if v:
            out[-1][1] += 1
    return out


def _result(inputs: dict[str, Any]) -> dict[str, Any]:
    if "inputs_embeds" in inputs:  # XComposer2: ids read back from the stand-in embedding rows
        im_mask = [int(v) for v in inputs["im_mask"][0].tolist()]
        return {"input_ids": [int(round(v)) for v in inputs["inputs_embeds"][:, 0].tolist()],
                "labels": inputs["labels"], "im_mask": im_mask, "image_spans": _spans(im_mask)}
    out = {"input_ids": [int(i) for i in inputs["input_ids"]], "labels": inputs.get("labels")}
    if "token_type_ids" in inputs:  # CogVLM
        out["token_type_ids"] = [int(v) for v in inputs["token_type_ids"]]
        out["image_spans"] = _spans(out["token_type_ids"])
    return out


def encode(model_type: str, example: dict[str, Any], max_length: int | None = None,
           truncation_strategy: str = "delete") -> dict[str, Any]:
    """ms-swift 2.2.0's encoding of ``example`` for vlmref's ``model_type``."""
    if model_type not in SWIFT_MODEL_TYPES:
        raise KeyError(f"ms-swift 2.2.0 has no model type for {model_type}")
    # the worker's stdout carries only its JSON lines
    with contextlib.redirect_stdout(sys.stderr), contextlib.chdir(MEDIA_ROOT):
        template = _template(model_type)
        template.max_length = max_length
        template.truncation_strategy = truncation_strategy
        inputs, _ = template.encode(copy.deepcopy(example))
    if not inputs:
        raise ValueError(f"ms-swift 2.2.0 returned no encoding (max_length {max_length}, {truncation_strategy})")
    return _result(inputs)


encode.model_types = _covered()
encode.image_placement = "any"
encode.image_token_ids = ()
encode.name = "swift22_adapter (swift.llm.get_template)"
encode.supports_truncation = True
with contextlib.redirect_stdout(sys.stderr):
    encode.version = _version()
