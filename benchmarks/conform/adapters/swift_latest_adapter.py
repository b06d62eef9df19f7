"""`vlmref conform` adapter for the newest ms-swift (4.x: ``swift.template`` / ``swift.model``; run in its own venv).

    vlmref conform --adapter swift_latest_adapter:encode --adapter_path benchmarks/conform/adapters \\
        --adapter_python .nox/conform-swift-latest-venv/bin/python

Each vlmref model type maps to the ms-swift model type of the same checkpoint and its registered template (``SWIFT``
below). The processor comes from that model type's own loader class (``ModelMeta.loader(...).get_processor`` and
``_postprocess_processor``, as ``get_model_processor(..., load_model=False)`` runs them) on a scratch model folder that
holds symlinks to the real tokenizer files of ``$VLMREF_TOKENIZERS_DIR`` (default ``../shared/tokenizers``) plus the
tokenizer config the hub repository has; then ``swift.template.get_template(processor, template_type=...)``.
Examples become swift's messages (history as user/assistant turns, ``system`` as a system message when given, ``""``
included: swift reads ``""`` as "no system"; absent/None: none passed, the template's default). A training example is
encoded in ``train`` mode; ``response`` None in inference mode (``transformers``: a generation prompt, no labels).
Images go as paths in ``images`` with the query text unchanged, so swift adds its own default ``<image>`` tags;
``None`` entries (some oracle samples) are dropped first, as vlmref does: swift 4.6.0's ``load_image`` raises
AttributeError on one, which would hide the token comparison of ~45 cases per LLaVA / Yi-VL model type.
``max_length`` sets the template's; ``delete`` -> ``raise`` (swift's MaxLengthError, a refusal), ``truncation_left``
-> ``left``.

Remote code (not installed; never in the repo) comes from ``$VLMREF_UPSTREAM_DIR`` as ``nox -s oracle`` extracts it
(``scripts/oracle/upstream.py``): Qwen-VL-Chat's ``tokenization_qwen.py`` + ``tokenizer_config.json`` (qwen_vl) and
InternLM2's ``tokenization_internlm2.py`` (xcomposer2 / xcomposer2_5; XComposer2's own tokenizer class is the same
sentencepiece model, not public as unmodified hub code).

Stand-ins (each supplies only what swift's template code reads; none decides an id):

* ``cogvlm`` (CogTemplate, ``use_model``): ``model.build_conversation_input_ids`` returning ``token_type_ids`` with
  one BOS and 1227 vision positions per image ((490/14)^2 + 2, cogvlm-chat-hf), refusing >1 image as the real code;
  the vicuna-7b-v1.5 tokenizer folder the loader would download is built from llama2/tokenizer.model + its config.
* ``xcomposer2`` / ``xcomposer2_5``: ids become embeddings only in ``Template._post_encode``; it is run on
  ``data_collator([encoded])`` with a model whose ``tok_embeddings`` writes each id into its row and whose
  ``img2emb`` gives 256 rows of -200 per image (CLIP-L/14 at 224 px; for 2.5 also 256, not its HD count), so the ids
  are read back from the rows; ``im_mask`` is swift's. 2.5's ``ixc_utils.Image_transform`` (torchvision, decord) is
  replaced by the identity.
* ``yi_vl``, ``llama3_llava_next``, ``llava_next_qwen`` (LLaVA repo code): ``llava.mm_utils`` (``expand2square``,
  ``process_images``) and the model's ``vision_tower.image_processor`` give placeholder pixels; one -200 per image.
* ``llava1_6_mistral_hf`` / ``llava1_6_yi_hf``: the real ``LlavaNextProcessor`` (PIL image processor) from the
  llava-hf repos' processor/preprocessor configs (written below), so image runs are swift's real expansion.

Tokenizers load as transformers 5.19 does: sentencepiece models without a tokenizer.json (Yi-VL, llava-v1.6-34b-hf
here, whose own tokenizer.json was not available) are converted with a '▁' before every segment (Yi's
add_dummy_prefix=false is not honoured), which shows in those reports.

Every vlmref model type is covered. Not installed: the models' ``requires`` (cogvlm: transformers<4.42) concern
loading weights; the template code runs on transformers 5.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "scripts" / "oracle"))  # the oracle's stand-ins (they import `upstream` top-level)
from stand_ins import _install_llava_mm_utils as install_llava_mm_utils  # noqa: E402 - the llava.mm_utils stub

IMAGE = -200  # LLaVA's placeholder id; also the stand-in's image rows (XComposer2)

# vlmref model type -> (ms-swift model type, ms-swift template type)
SWIFT = {
    "cogvlm-17b-instruct": ("cogvlm", "cogvlm"),
    "qwen-vl-chat": ("qwen_vl", "qwen_vl"),
    "internlm-xcomposer2-7b-chat": ("xcomposer2", "ixcomposer2"),
    "internlm-xcomposer2_5-7b-chat": ("xcomposer2_5", "xcomposer2_5"),
    "yi-vl-6b-chat": ("yi_vl", "yi_vl"),
    "yi-vl-34b-chat": ("yi_vl", "yi_vl"),
    "llava1d6-mistral-7b-instruct": ("llava1_6_mistral_hf", "llava1_6_mistral_hf"),
    "llava1d6-yi-34b-instruct": ("llava1_6_yi_hf", "llava1_6_yi_hf"),
    "llama3-llava-next-8b": ("llama3_llava_next", "llama3_llava_next"),
    "llava-next-72b": ("llava_next_qwen", "llava_next_qwen"),
    "llava-next-110b": ("llava_next_qwen", "llava_next_qwen"),
}


def _special(content: str) -> dict:
    return {"content": content, "special": True, "lstrip": False, "rstrip": False, "normalized": False,
            "single_word": False}


_LLAMA = {"clean_up_tokenization_spaces": False, "sp_model_kwargs": {}, "tokenizer_class": "LlamaTokenizer"}
YI_ADDED = {0: "<unk>", 1: "<|startoftext|>", 2: "<|endoftext|>", 6: "<|im_start|>", 7: "<|im_end|>", 8: "<|im_sep|>"}
PINPOINTS = [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]]
# llava-hf/llava-v1.6-*-hf preprocessor_config.json / processor_config.json (the fields the processor reads)
LLAVA_HF_PREPROCESSOR = {
    "image_processor_type": "LlavaNextImageProcessor", "processor_class": "LlavaNextProcessor",
    "aspect_ratio_setting": "anyres", "image_grid_pinpoints": PINPOINTS, "crop_size": {"height": 336, "width": 336},
    "size": {"shortest_edge": 336}, "do_center_crop": True, "do_convert_rgb": True, "do_normalize": True,
    "do_rescale": True, "do_resize": True, "do_pad": True, "resample": 3, "rescale_factor": 1 / 255,
    "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
}
LLAVA_HF_PROCESSOR = {"processor_class": "LlavaNextProcessor", "image_token": "<image>", "patch_size": 14,
                      "vision_feature_select_strategy": "default", "num_additional_image_tokens": 1}

# swift model type -> (tokenizer family, files linked, files written {name: json}, remote-code files from upstream)
FOLDERS: dict[str, tuple[str, tuple[str, ...], dict[str, Any], tuple[str, ...]]] = {
    "qwen_vl": ("qwen", ("qwen.tiktoken",), {}, ("qwen_vl/tokenization_qwen.py", "qwen_vl/tokenizer_config.json")),
    # lmsys/vicuna-7b-v1.5 (AI-ModelScope/vicuna-7b-v1.5, which CogVLMLoader downloads)
    "cogvlm": ("llama2", ("tokenizer.model",), {
        "tokenizer_config.json": {**_LLAMA, "add_bos_token": True, "add_eos_token": False, "legacy": False,
                                  "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": None,
                                  "model_max_length": 4096, "padding_side": "right"},
        "special_tokens_map.json": {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
                                    "pad_token": "<unk>"}}, ()),
    "xcomposer2": ("internlm2", ("tokenizer.model",), {"tokenizer_config.json": {
        "auto_map": {"AutoTokenizer": ["tokenization_internlm2.InternLM2Tokenizer", None]},
        "tokenizer_class": "InternLM2Tokenizer"}}, ("internlm2_tokenizer/tokenization_internlm2.py",)),
    # 01-ai/Yi-VL-*: Yi-Chat's tokenizer files (legacy true, pad <unk>)
    "yi_vl": ("yi", ("tokenizer.model", "tokenizer_config.json", "special_tokens_map.json"), {}, ()),
    "llava1_6_mistral_hf": ("mistral", ("tokenizer.model", "tokenizer.json", "special_tokens_map.json"), {
        "tokenizer_config.json": {**_LLAMA, "add_bos_token": True, "add_eos_token": False, "legacy": True,
                                  "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>",
                                  "added_tokens_decoder": {"32000": _special("<image>"), "32001": _special("<pad>")}},
        "preprocessor_config.json": LLAVA_HF_PREPROCESSOR, "processor_config.json": LLAVA_HF_PROCESSOR}, ()),
    "llava1_6_yi_hf": ("yi", ("tokenizer.model",), {
        "tokenizer_config.json": {**_LLAMA, "add_bos_token": False, "add_eos_token": False, "legacy": True,
                                  "bos_token": "<|startoftext|>", "eos_token": "<|im_end|>", "unk_token": "<unk>",
                                  "pad_token": "<pad>",
                                  "added_tokens_decoder": {**{str(i): _special(t) for i, t in YI_ADDED.items()},
                                                           "64000": _special("<image>"), "64001": _special("<pad>")}},
        "preprocessor_config.json": LLAVA_HF_PREPROCESSOR, "processor_config.json": LLAVA_HF_PROCESSOR}, ()),
    # lmms-lab checkpoints: Meta-Llama-3-8B-Instruct / Qwen1.5-72B-Chat tokenizer files
    "llama3_llava_next": ("llama3", ("tokenizer.json", "tokenizer_config.json"), {}, ()),
    "llava_next_qwen": ("qwen1.5", ("tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json"), {}, ()),
}
FOLDERS["xcomposer2_5"] = FOLDERS["xcomposer2"]


def _root(env: str, default: Path) -> Path:
    return Path(os.environ.get(env) or default)


def _model_dir(swift_type: str) -> str:
    family, links, written, code = FOLDERS[swift_type]
    folder = Path(tempfile.mkdtemp(prefix=f"swift-latest-{swift_type}-"))
    tokenizers = _root("VLMREF_TOKENIZERS_DIR", REPO.parent / "shared" / "tokenizers")
    for name in links:
        os.symlink(tokenizers / family / name, folder / name)
    upstream = os.environ.get("VLMREF_UPSTREAM_DIR")
    for rel in code:
        if not upstream or not (Path(upstream) / rel).is_file():
            raise RuntimeError(f"{swift_type} needs the model repository's {rel} under $VLMREF_UPSTREAM_DIR "
                               "(python scripts/oracle/upstream.py extract)")
        os.symlink(Path(upstream) / rel, folder / Path(rel).name)
    for name, data in written.items():
        (folder / name).write_text(json.dumps(data))
    return str(folder)


class _ImageProcessor:
    image_mean = (0.48145466, 0.4578275, 0.40821073)

    def __call__(self, images, return_tensors="pt"):
        return self.preprocess(images, return_tensors)

    def preprocess(self, images, return_tensors="pt"):
        import torch

        return {"pixel_values": torch.zeros(len(images), 3, 2, 2)}


def _model_stand_in(swift_type: str):
    import torch

    if swift_type == "cogvlm":
        def build_conversation_input_ids(tokenizer, *, query, history=None, images=None, template_version=None):
            assert images is None or len(images) <= 1, "not support multi images by now."  # as cogvlm-chat-hf
            n = (490 // 14) ** 2 + 2 if images else 0
            return {"token_type_ids": torch.tensor([0] + [1] * n), "images": [torch.zeros(3, 2, 2)] if n else []}

        return SimpleNamespace(build_conversation_input_ids=build_conversation_input_ids)
    if swift_type.startswith("xcomposer2"):
        import swift.template.templates.internlm as ixc

        ixc.get_class_from_dynamic_module = lambda ref, model_dir: (lambda image, hd_num=None: image)
        embed = lambda ids: ids.to(torch.float32).unsqueeze(-1)  # noqa: E731 - each row holds its id
        return SimpleNamespace(dtype=torch.float32, device="cpu", model_dir=None,
                               vis_processor=lambda image: torch.zeros(3, 2, 2),
                               img2emb=lambda image: (torch.full((image.shape[0], 256, 1), float(IMAGE)), None, None),
                               model=SimpleNamespace(tok_embeddings=embed))
    if swift_type in ("yi_vl", "llama3_llava_next", "llava_next_qwen"):
        install_llava_mm_utils()
        inner = SimpleNamespace(dtype=torch.float32, config=SimpleNamespace(),
                                vision_tower=SimpleNamespace(image_processor=_ImageProcessor()))
        return SimpleNamespace(dtype=torch.float32, model=inner, config=SimpleNamespace())
    return None


_TEMPLATES: dict[str, Any] = {}


def _template(model_type: str):
    """swift's template for ``model_type`` (built once): loader processor + stand-in model."""
    swift_type, template_type = SWIFT[model_type]
    if swift_type not in _TEMPLATES:
        import torch
        from swift.model.model_meta import MODEL_MAPPING, ModelInfo
        from swift.template import get_template

        meta = MODEL_MAPPING[swift_type]
        model_dir = _model_dir(swift_type)
        info = ModelInfo(swift_type, model_dir, torch.float32, None, None, None, is_multimodal=True,
                         task_type="causal_lm")
        loader = meta.loader(info, meta, model_kwargs={})
        if swift_type == "cogvlm":  # the loader downloads AI-ModelScope/vicuna-7b-v1.5: the scratch folder instead
            import swift.model.models.glm as glm

            glm.safe_snapshot_download = lambda *a, **k: model_dir
        processor = loader.get_processor(model_dir, None)
        loader._postprocess_processor(processor)
        template = get_template(processor, template_type=template_type)
        template.model = _model_stand_in(swift_type)
        _TEMPLATES[swift_type] = template
    return _TEMPLATES[swift_type]


def _messages(example: dict[str, Any]) -> dict[str, Any]:
    messages = []
    if example.get("system") is not None:
        messages.append({"role": "system", "content": example["system"]})
    for query, response in example.get("history") or []:
        messages += [{"role": "user", "content": query}, {"role": "assistant", "content": response}]
    messages.append({"role": "user", "content": example["query"]})
    if example.get("response") is not None:
        messages.append({"role": "assistant", "content": example["response"]})
    return {"messages": messages, "images": [m for m in example.get("images") or [] if m is not None]}


def _runs(flags: list[int]) -> list[list[int]]:
    spans, i = [], 0
    while i < len(flags):
        if flags[i]:
            j = i
            while j < len(flags) and flags[j]:
                j += 1
            spans.append([i, j - i])
            i = j
        else:
            i += 1
    return spans


def _xcomposer(template, encoded: dict[str, Any]) -> dict[str, Any]:
    """XComposer2's ids after swift's ``_post_encode`` (images spliced in), read back from the stand-in rows."""
    batch = template.data_collator([encoded])
    out = template._post_encode(template.model, batch)
    ids = [int(round(v)) for v in out["inputs_embeds"][0, :, 0].tolist()]
    mask = [int(v) for v in out["im_mask"][0].tolist()]
    labels = out.get("labels")
    return {"input_ids": ids, "labels": None if labels is None else [int(v) for v in labels[0].tolist()],
            "im_mask": mask, "image_spans": _runs(mask)}


def encode(model_type: str, example: dict[str, Any], max_length: int | None = None,
           truncation_strategy: str = "delete") -> dict[str, Any]:
    """ms-swift's encoding of ``example`` for vlmref's ``model_type`` (raises where swift refuses)."""
    template = _template(model_type)
    template.max_length = max_length
    template.truncation_strategy = {"delete": "raise", "truncation_left": "left"}[truncation_strategy]
    training = example.get("response") is not None
    template.set_mode("train" if training else "transformers")
    encoded = template.encode(_messages(example))
    swift_type = SWIFT[model_type][0]
    if swift_type.startswith("xcomposer2"):
        return _xcomposer(template, encoded)
    ids = [int(i) for i in encoded["input_ids"]]
    labels = encoded.get("labels")
    out: dict[str, Any] = {"input_ids": ids, "labels": None if labels is None else [int(v) for v in labels]}
    if "token_type_ids" in encoded:  # CogVLM: the vision positions
        out["token_type_ids"] = [int(v) for v in encoded["token_type_ids"]]
        if len(out["token_type_ids"]) == len(ids):  # swift's left truncation cuts the ids, not token_type_ids
            out["image_spans"] = _runs(out["token_type_ids"])
    return out


def _version() -> str:
    from importlib.metadata import version

    return f"ms-swift {version('ms-swift')} (transformers {version('transformers')})"


encode.model_types = tuple(SWIFT)
encode.image_placement = "any"  # expanded (Qwen-VL, CogVLM, XComposer2, llava-hf), one -200 per image (LLaVA, Yi-VL)
encode.image_token_ids = (IMAGE,)
encode.name = "ms-swift (latest) swift.template"
encode.version = _version()
encode.supports_truncation = True
