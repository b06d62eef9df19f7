"""LLaMA-Factory (``llamafactory``) as a ``vlmref conform`` adapter: ``llamafactory_adapter:encode``.

Runs in LLaMA-Factory's own venv (``--adapter_python``; see benchmarks/conform/requirements-llamafactory.txt). Each
case goes through LLaMA-Factory's own code: ``load_tokenizer`` (AutoTokenizer, use_fast, as in training),
``get_template_and_fix_tokenizer`` and its default SFT preprocessing, ``SupervisedDatasetProcessor.preprocess_dataset``
(``train_on_prompt=False``, ``mask_history=False``: every reply is supervised, prompts are -100), or, for a generation
prompt (``response`` None), ``UnsupervisedDatasetProcessor`` (prompt + an empty assistant turn, its prompt ids).

Model types and the checkpoint each template assumes (tokenizer files from $VLMREF_TOKENIZERS_DIR or
../shared/tokenizers/<family>/; the checkpoint's added tokens are added with LLaMA-Factory's ``add_special_tokens``
option, in the checkpoint's order):

* llava1d6-mistral-7b-instruct -> ``llava_next_mistral``, llava-hf/llava-v1.6-mistral-7b-hf (mistral/ + ``<image>``
  32000, ``<pad>`` 32001). The template writes ``[INST] {q}[/INST]`` (no space before ``[/INST]``, hiyouga/LlamaFactory
  issue #6393, still so in 0.9.5) and the system as ``{system}\\n\\n`` without ``<<SYS>>``.
* llava1d6-yi-34b-instruct -> ``llava_next_yi``, llava-hf/llava-v1.6-34b-hf (yi/ + ``<image>`` 64000, ``<pad>`` 64001).
* llama3-llava-next-8b -> ``llava_next_llama3``, llava-hf/llama3-llava-next-8b-hf (llama3/ + ``<image>`` 128256).
* llava-next-72b / -110b -> ``llava_next_qwen``, llava-hf/llava-next-72b-hf / -110b-hf (qwen1.5/ + ``<image>`` 151646).
* yi-vl-6b-chat / -34b-chat -> ``yi_vl``: LLaMA-Factory needs Yi-VL converted to LlavaForConditionalGeneration
  (BUAADreamer/Yi-VL-6B-hf / -34B-hf); yi/ + ``<image>`` 64000. yi/ holds Yi-Chat's tokenizer_config (legacy=true),
  which transformers converts to a fast tokenizer that puts '▁' before each segment.

Not covered (no template in LLaMA-Factory 0.9.5): cogvlm-17b-instruct (no CogVLM/CogVLM2 template), qwen-vl-chat (only
Qwen2-VL+ and the text ``qwen`` template, whose default system is Qwen2.5's; Qwen-VL's tiktoken tokenizer is remote
code), internlm-xcomposer2(_5)-7b-chat (``intern_vl`` is InternVL's format and processor, not XComposer's).

Stand-ins (no checkpoints here): the processor is built in code, as the checkpoint's processor config reads and with
exactly what mm_plugin reads: LLaVA-NeXT: ``LlavaNextProcessor(LlavaNextImageProcessor(shortest_edge 336, crop 336, the
five llava-v1.6 pinpoints), patch_size=14, vision_feature_select_strategy="default", num_additional_image_tokens=1)``;
Yi-VL: ``LlavaProcessor(CLIPImageProcessor(448, crop 448), patch_size=14, "default", 1)`` (1024 positions). Then
LLaMA-Factory's ``patch_processor`` (image_max_pixels 768*768 as its default).

Example mapping: history ``[[q, r], ...]`` -> alternating user/assistant messages; ``system`` absent -> None, ``""`` ->
``""`` (LLaMA-Factory replaces both by the template's default: ``system or default_system``). LLaMA-Factory has no
default image placement in training data (``<image>`` tags must be in the text, else it raises); for images without
tags the adapter writes ``<image>\\n`` where vlmref's rule puts each image (LLaVA's data convention) or, with
$LLAMAFACTORY_ADAPTER_PLACEMENT=engine, ``<image>`` x n at the start of the first user turn (its chat engine's rule).
``max_length`` -> ``cutoff_len`` (LLaMA-Factory always truncates, per turn by ``infer_seqlen``; it has no ``delete``);
without it ``cutoff_len`` is 10**6 (its default 2048 would cut multi-image LLaVA-NeXT samples). ``image_spans`` are the
runs of the ``<image>`` id in the result.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
from pathlib import Path
from typing import Any

PINPOINTS = [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]]
NO_CUTOFF = 10**6

# vlmref model type -> (LLaMA-Factory template, tokenizer family, added tokens (in the checkpoint's order), processor)
MODELS: dict[str, tuple[str, str, str, str]] = {
    "llava1d6-mistral-7b-instruct": ("llava_next_mistral", "mistral", "<image>,<pad>", "llava_next"),
    "llava1d6-yi-34b-instruct": ("llava_next_yi", "yi", "<image>,<pad>", "llava_next"),
    "llama3-llava-next-8b": ("llava_next_llama3", "llama3", "<image>", "llava_next"),
    "llava-next-72b": ("llava_next_qwen", "qwen1.5", "<image>", "llava_next"),
    "llava-next-110b": ("llava_next_qwen", "qwen1.5", "<image>", "llava_next"),
    "yi-vl-6b-chat": ("yi_vl", "yi", "<image>", "llava"),
    "yi-vl-34b-chat": ("yi_vl", "yi", "<image>", "llava"),
}
IMAGE = "<image>"


def _tokenizers_dir() -> Path:
    env = os.environ.get("VLMREF_TOKENIZERS_DIR")
    if env:
        return Path(env)
    beside = Path(__file__).resolve().parents[3].parent / "shared" / "tokenizers"
    return beside if beside.is_dir() else Path("/work/shared/tokenizers")


def _processor(kind: str, tokenizer: Any) -> Any:
    from transformers import CLIPImageProcessor, LlavaNextImageProcessor, LlavaNextProcessor, LlavaProcessor

    common = {"patch_size": 14, "vision_feature_select_strategy": "default", "num_additional_image_tokens": 1,
              "image_token": IMAGE}
    if kind == "llava_next":
        images = LlavaNextImageProcessor(size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336},
                                         image_grid_pinpoints=PINPOINTS)
        return LlavaNextProcessor(image_processor=images, tokenizer=tokenizer, **common)
    images = CLIPImageProcessor(size={"shortest_edge": 448}, crop_size={"height": 448, "width": 448})
    return LlavaProcessor(image_processor=images, tokenizer=tokenizer, **common)


@functools.cache
def _setup(model_type: str) -> tuple[Any, Any, Any, int]:
    """(template, tokenizer, processor, image id) as LLaMA-Factory's training setup builds them."""
    from llamafactory.data.template import get_template_and_fix_tokenizer
    from llamafactory.hparams import DataArguments, ModelArguments
    from llamafactory.model.loader import load_tokenizer
    from llamafactory.model.patcher import patch_processor

    for handler in logging.getLogger("llamafactory").handlers:  # a stdout handler: its log lines go to stderr
        if isinstance(handler, logging.StreamHandler) and handler.stream is sys.__stdout__:
            handler.setStream(sys.stderr)
    template_name, family, added, kind = MODELS[model_type]
    model_args = ModelArguments(model_name_or_path=str(_tokenizers_dir() / family), add_special_tokens=added)
    tokenizer = load_tokenizer(model_args)["tokenizer"]  # no processor files here: it finds none
    processor = _processor(kind, tokenizer)
    patch_processor(processor, tokenizer, model_args)
    template = get_template_and_fix_tokenizer(tokenizer, DataArguments(template=template_name))
    return template, tokenizer, processor, tokenizer.convert_tokens_to_ids(IMAGE)


def _place_images(model_type: str, example: dict[str, Any]) -> tuple[list[list[str]], str, list[str]]:
    history = [[q, r] for q, r in example.get("history") or []]
    query = example["query"]
    images = list(example.get("images") or [])
    texts = [q for q, _ in history] + [query]
    kept = [m for m in images if m]
    if not kept or any(IMAGE in t for t in texts):
        return history, query, kept
    if os.environ.get("LLAMAFACTORY_ADAPTER_PLACEMENT") == "engine":  # chat engine: all at the start of turn 0
        texts[0] = IMAGE * len(kept) + texts[0]
    elif len(images) == len(texts):  # 'round': one entry per turn (None: a turn without an image)
        texts = [(IMAGE + "\n" + t) if m else t for m, t in zip(images, texts, strict=True)]
    else:
        texts[0] = (IMAGE + "\n") * len(kept) + texts[0]
    for turn, text in zip(history, texts, strict=False):
        turn[0] = text
    return history, texts[-1], kept


def _spans(ids: list[int], image_id: int) -> list[list[int]]:
    spans: list[list[int]] = []
    for i, t in enumerate(ids):
        if t == image_id:
            if spans and spans[-1][0] + spans[-1][1] == i:
                spans[-1][1] += 1
            else:
                spans.append([i, 1])
    return spans


def encode(model_type: str, example: dict[str, Any], max_length: int | None = None,
           truncation_strategy: str = "delete") -> dict[str, Any]:
    """One vlmref example through LLaMA-Factory's SFT (or generation-prompt) preprocessing."""
    with contextlib.redirect_stdout(sys.stderr):  # its logger writes to stdout, the worker's JSON channel
        return _encode(model_type, example, max_length)


def _encode(model_type: str, example: dict[str, Any], max_length: int | None) -> dict[str, Any]:
    from llamafactory.data.processor.supervised import SupervisedDatasetProcessor
    from llamafactory.data.processor.unsupervised import UnsupervisedDatasetProcessor
    from llamafactory.hparams import DataArguments

    if model_type not in MODELS:
        raise ValueError(f"LLaMA-Factory has no template for {model_type}")
    template, tokenizer, processor, image_id = _setup(model_type)
    history, query, images = _place_images(model_type, example)
    prompt = []
    for q, r in history:
        prompt += [{"role": "user", "content": q}, {"role": "assistant", "content": r}]
    prompt.append({"role": "user", "content": query})
    generation = example.get("response") is None
    response = [] if generation else [{"role": "assistant", "content": example["response"]}]
    data_args = DataArguments(template=MODELS[model_type][0], cutoff_len=max_length or NO_CUTOFF)
    cls = UnsupervisedDatasetProcessor if generation else SupervisedDatasetProcessor
    batch = {"_prompt": [prompt], "_response": [response], "_system": [example.get("system")], "_tools": [""],
             "_images": [images or None], "_videos": [None], "_audios": [None]}
    out = cls(template=template, tokenizer=tokenizer, processor=processor, data_args=data_args).preprocess_dataset(batch)
    if not out.get("input_ids"):
        raise ValueError("LLaMA-Factory dropped the example (invalid message count)")
    ids = [int(i) for i in out["input_ids"][0]]
    labels = None if generation else [int(i) for i in out["labels"][0]]
    return {"input_ids": ids, "labels": labels, "image_spans": _spans(ids, image_id)}


def _version() -> str:
    try:
        from importlib.metadata import version

        return f"LLaMA-Factory {version('llamafactory')} (transformers {version('transformers')})"
    except Exception:  # noqa: BLE001 - only shown in the report
        return "LLaMA-Factory"


encode.model_types = tuple(MODELS)
encode.image_placement = "expanded"
encode.name = "llamafactory" + ("-engine" if os.environ.get("LLAMAFACTORY_ADAPTER_PLACEMENT") == "engine" else "")
encode.version = _version()
encode.supports_truncation = True
