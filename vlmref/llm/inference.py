"""The seeds' Python inference API: ``inference`` and ``inference_stream`` (ms-swift 2.2.0 ``swift.llm`` semantics).

::

    model, tokenizer = get_model_tokenizer('yi-vl-6b-chat', torch.float16, {'device_map': 'auto'})
    model.generation_config.max_new_tokens = 256
    template = get_template(get_default_template_type('yi-vl-6b-chat'), tokenizer)
    response, history = inference(model, template, '距离各城市多远？', images=[road])
    for response, history in inference_stream(model, template, '距离最远的城市是哪？', history, images=[road, road]):
        ...   # response grows; history[-1] == [query, response so far]

* ``history`` is deep-copied; the returned history is ``history + [[query, response]]`` (the caller's list is never
  changed). ``inference_stream`` yields the same list object each time, its last pair updated in place.
* ``images`` follow the template's rules: 'round' templates (Yi-VL, LLaVA) take one entry per turn (``None`` for a
  turn without an image), CogVLM one image per dialogue, Qwen-VL and XComposer2 also read inline
  ``<img>PATH</img>`` from the query.
* ``generation_config`` defaults to ``model.generation_config`` (deep-copied; eos/pad/bos from the tokenizer,
  ``max_new_tokens`` capped by the model's maximum length). ``temperature == 0`` means greedy.
  ``get_generation_config()`` builds ``vlmref infer``'s defaults (max_new_tokens 2048, do_sample True, temperature
  0.3, top_k 20, top_p 0.7, repetition_penalty 1.0).
* Stop words: the caller's ``stop_words``, then ``template.stop_words``, ``template.suffix[-1]`` and the tokenizer's
  eos token. Generation stops when one appears; the response is the decoded text cut before the first stop word
  (what ms-swift's ``generate_ids_to_response`` leaves after stripping the suffix).
* Streaming goes through transformers' streamer mechanism (``model.generate(streamer=...)`` in a worker thread) and
  ``vlmref.llm.streaming.StreamDecoder``: a yielded response never ends in half a multi-byte character or in the
  beginning of a stop word, and the last one equals ``inference``'s response for the same ids.
"""

from __future__ import annotations

import copy
import queue
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from .streaming import StreamDecoder, decode_response

History = list[list[str]]

# ``vlmref infer`` / ms-swift InferArguments generation defaults (argument.py L1095-1101)
DEFAULT_GENERATION: dict[str, Any] = {
    "max_new_tokens": 2048,
    "do_sample": True,
    "temperature": 0.3,
    "top_k": 20,
    "top_p": 0.7,
    "repetition_penalty": 1.0,
    "num_beams": 1,
}
_GREEDY = {"do_sample": False, "temperature": 1.0, "top_p": 1.0, "top_k": 50}  # ms-swift handle_generation_config
_MAX_LEN_KEYS = ("seq_length", "max_position_embeddings", "n_positions", "model_max_length", "seq_len",
                 "max_seq_len", "max_sequence_length", "max_seq_length")
_STOP_LOOKBACK = 20  # generated tokens decoded by the stop-word check (ms-swift StopWordsCriteria)


# ---- generation config ---------------------------------------------------------------------------------------------
def get_generation_config(tokenizer: Any = None, **overrides: Any):
    """A ``transformers.GenerationConfig`` with ``vlmref infer``'s defaults, ``overrides`` applied, greedy settings
    when ``temperature == 0`` or ``do_sample`` is False, and the tokenizer's eos/pad/bos ids."""
    from transformers import GenerationConfig

    values = {**DEFAULT_GENERATION, **{k: v for k, v in overrides.items() if v is not None}}
    config = GenerationConfig(**values)
    _apply_greedy(config)
    if tokenizer is not None:
        _set_special_ids(config, tokenizer)
    return config


def _apply_greedy(config: Any) -> None:
    if getattr(config, "temperature", None) == 0:
        config.do_sample = False
    if not getattr(config, "do_sample", False):
        for key, value in _GREEDY.items():
            setattr(config, key, value)


def _set_special_ids(config: Any, tokenizer: Any) -> None:
    for name in ("eos_token_id", "pad_token_id", "bos_token_id"):
        value = getattr(tokenizer, name, None)
        if value is not None:
            setattr(config, name, value)


def max_model_len(config: Any) -> int | None:
    """ms-swift ``get_max_model_len``: the smallest length limit the config declares (nested text configs included)."""
    values = []
    for cfg in (config, getattr(config, "text_config", None), getattr(config, "llm_config", None)):
        if cfg is None:
            continue
        for key in _MAX_LEN_KEYS:
            value = getattr(cfg, key, None)
            if isinstance(value, int) and value > 0:
                values.append(value)
        if values:
            break
    return min(values) if values else None


# ---- stop words ------------------------------------------------------------------------------------------------------
def resolve_stop_words(template: Any, stop_words: Sequence[Any] | None = None) -> list[str]:
    """The caller's stop words, then the template's, its last suffix element and the eos token (strings, no repeats).

    An entry may be a list of token ids (ms-swift allows it); it is decoded to its text.
    """
    tokenizer = template.tokenizer
    candidates: list[Any] = [*(stop_words or []), *template.stop_words]
    suffix = list(template.suffix)
    if suffix:
        candidates.append(suffix[-1])
    candidates.append(getattr(tokenizer, "eos_token", None))
    words: list[str] = []
    for word in candidates:
        if isinstance(word, (list, tuple)):
            ids = [int(getattr(tokenizer, i)) if isinstance(i, str) else int(i) for i in word]
            word = tokenizer.decode(ids, skip_special_tokens=False)
        if isinstance(word, str) and word and word not in words:
            words.append(word)
    return words


def _stopping_criteria(tokenizer: Any, stop_words: list[str], cancel: threading.Event | None = None):
    """Stop when a stop word appears in the last generated tokens (or when the stream's consumer went away)."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class StopWordsCriteria(StoppingCriteria):
        def __init__(self) -> None:
            self.start = -1

        def __call__(self, input_ids, scores, **kwargs):
            if self.start == -1:  # first call: one token generated
                self.start = input_ids.shape[1] - 1
            done = []
            for row in input_ids:
                text = tokenizer.decode(row[self.start :][-_STOP_LOOKBACK:].tolist(), skip_special_tokens=False)
                done.append(any(word in text for word in stop_words))
            if cancel is not None and cancel.is_set():
                done = [True] * len(done)
            return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([StopWordsCriteria()])


def _vocabulary_mask(size: int):
    """Never sample an id the tokenizer cannot decode (output rows padded past the vocabulary, e.g. Qwen-VL's
    151936 rows for 151860 tokens)."""
    from transformers import LogitsProcessor, LogitsProcessorList

    class VocabularyMask(LogitsProcessor):
        def __call__(self, input_ids, scores):
            if scores.shape[-1] > size:
                scores = scores.clone()
                scores[:, size:] = float("-inf")
            return scores

    return LogitsProcessorList([VocabularyMask()])


# ---- inputs ----------------------------------------------------------------------------------------------------------
class _Prepared:
    """Model inputs of one prompt, its generation config and stop words, and the template's encoding."""

    def __init__(self, tokenizer: Any, inputs: dict[str, Any], generation_config: Any, stop_words: list[str],
                 encoded: dict[str, Any]) -> None:
        self.tokenizer = tokenizer
        self.inputs = inputs
        self.generation_config = generation_config
        self.stop_words = stop_words
        self.encoded = encoded
        self.prompt_len = int(inputs["input_ids"].shape[1])

    def generate_kwargs(self, adapter_names: Any, cancel: threading.Event | None = None) -> dict[str, Any]:
        kwargs = dict(self.inputs)
        if adapter_names is not None:
            kwargs["adapter_names"] = adapter_names
        kwargs["generation_config"] = self.generation_config
        kwargs["stopping_criteria"] = _stopping_criteria(self.tokenizer, self.stop_words, cancel)
        kwargs["logits_processor"] = _vocabulary_mask(len(self.tokenizer))
        return kwargs


def template_kwargs_for(model_type: str, model: Any = None) -> dict[str, Any]:
    """``get_template`` keyword arguments that fit a template to a loaded model: the model type's ``media_options``
    and model-side media, i.e. image markers a profile leaves for the model (swift-2.2.0 llava, yi-vl) expanded the
    official way, filled with the model config's ``image_token_index`` when it has one::

        template = get_template('llava-qwen-instruct', tokenizer, profile='swift-2.2.0',
                                **template_kwargs_for('llava-next-72b', model))
        # -200 + '\n' per image -> 2340 x 151646 + '\n' (640x480), as the model's embed_inputs expects
    """
    from ..models.model_types import MODELS

    image_id = getattr(getattr(model, "config", None), "image_token_index", None)
    options = {} if image_id is None else {"image_token_id": int(image_id)}
    return {**MODELS.get(model_type).media_options, "model_side_media": True, "model_media_options": options}


def profile_tokenizer(tokenizer: Any, template_type: str, profile: str) -> Any:
    """``tokenizer`` with the prefix semantics ``profile`` encodes ``template_type`` with: under ``swift-2.2.0`` the
    Yi and vicuna sentencepiece tokenizers as ms-swift 2.2.0's ``AutoTokenizer`` made them (fast conversions: a '▁'
    before every segment for Yi, legacy=false for CogVLM's vicuna); a shallow copy, the caller's object unchanged::

        tok = profile_tokenizer(yi_tokenizer, 'yi-vl', 'swift-2.2.0')
        tok.encode('This is', add_special_tokens=False)   # [1117, 620] '▁This' '▁is' (official: 'This' 3355)
    """
    import logging

    from ..templates.meta import get_template_meta

    policy = get_template_meta(template_type, profile).tokenizer_prefix_policy
    if policy is None or getattr(tokenizer, "prefix_policy", policy) == policy:
        return tokenizer
    if not hasattr(tokenizer, "prefix_policy"):
        logging.getLogger("vlmref").warning(f"template profile {profile}: {type(tokenizer).__name__} keeps its own prefix semantics "
                       f"(ms-swift 2.2.0 used {policy!r}); ids may differ from ms-swift's at segment starts")
        return tokenizer
    fitted = copy.copy(tokenizer)
    fitted.prefix_policy = policy
    return fitted


def _collator_name(model: Any, template: Any) -> str:
    from ..models.model_types import MODELS

    model_type = getattr(model, "model_type", None)
    if isinstance(model_type, str) and model_type in MODELS:
        return model_type
    return template.template_type


def _prepare(model: Any, template: Any, query: str, history: History, system: str | None, images: Any,
             generation_config: Any, stop_words: Sequence[Any] | None, kwargs: dict[str, Any]) -> _Prepared:
    from ..datasets.collate import DataCollator

    for key in ("tools", "objects"):
        if kwargs.pop(key, None):
            raise ValueError(f"{key!r} is not supported by the vision-language templates of vlmref")
    # accepted for ms-swift compatibility; the template's own truncation_strategy decides (under 'delete' a too long
    # prompt raises SequenceTooLongError instead of ms-swift's empty response)
    kwargs.pop("truncation_strategy", None)
    if kwargs:
        raise TypeError(f"unexpected keyword argument(s): {', '.join(sorted(kwargs))}")
    example = {"query": query, "history": history, "system": system, "images": images or []}
    encoded = template.encode(example)
    encoded["labels"] = None
    collator = DataCollator(_collator_name(model, template), template.tokenizer, padding_side="left",
                            media_root=getattr(template, "media_root", None))
    batch = collator([encoded])
    batch.pop("labels", None)
    param = next(model.parameters())
    from ..utils import to_device

    inputs = {k: to_device(v, param.device, param.dtype) for k, v in batch.items()}
    prompt_len = int(inputs["input_ids"].shape[1])

    config = copy.deepcopy(generation_config if generation_config is not None else model.generation_config)
    _set_special_ids(config, template.tokenizer)
    _apply_greedy(config)
    if getattr(config, "max_new_tokens", None) is not None:
        limit = max_model_len(model.config)
        if limit and prompt_len + config.max_new_tokens > limit:
            config.max_new_tokens = limit - prompt_len
            if config.max_new_tokens <= 0:
                raise ValueError(f"the prompt has {prompt_len} tokens: no room left under the model's max length {limit}")
    return _Prepared(template.tokenizer, inputs, config, resolve_stop_words(template, stop_words), encoded)


def render_prompt(template: Any, encoded: dict[str, Any]) -> str:
    """The decoded prompt with each image span shown as ``[<id> * <n>]`` (ms-swift's ``safe_tokenizer_decode``)."""
    tokenizer = template.tokenizer
    ids = list(encoded["input_ids"])
    if template.media.tokenizer_expands_markup:  # the Qwen-VL tokenizer decodes <img>PATH</img> spans itself
        return tokenizer.decode(ids, skip_special_tokens=False)
    parts, pos = [], 0
    for start, length in sorted(encoded.get("image_spans") or []):
        parts.append(tokenizer.decode([i for i in ids[pos:start] if i >= 0], skip_special_tokens=False))
        parts.append(f"[{ids[start]} * {length}]")
        pos = start + length
    parts.append(tokenizer.decode([i for i in ids[pos:] if i >= 0], skip_special_tokens=False))
    return "".join(parts)


# ---- streaming -------------------------------------------------------------------------------------------------------
_END = object()


class TokenQueueStreamer:
    """A transformers streamer (``put``/``end``) that queues the generated ids of row 0; the prompt is skipped."""

    def __init__(self) -> None:
        self.queue: queue.Queue = queue.Queue()
        self._prompt_seen = False

    @property
    def used(self) -> bool:
        return self._prompt_seen

    def put(self, value: Any) -> None:
        if not self._prompt_seen:  # generate() puts the prompt first
            self._prompt_seen = True
            return
        if value.ndim > 1:
            value = value[0]
        self.queue.put([int(v) for v in value.reshape(-1).tolist()])

    def end(self) -> None:
        self.queue.put(_END)


def _stream_ids(model: Any, prepared: _Prepared, adapter_names: Any) -> Iterator[list[int]]:
    """Run ``model.generate`` in a worker thread; yield the new ids as they come. Closing the iterator stops the
    generation at the next step; an exception in the worker is re-raised here."""
    import torch

    if getattr(prepared.generation_config, "num_beams", 1) not in (None, 1):
        raise ValueError("Streaming generation does not support beam search.")
    streamer = TokenQueueStreamer()
    cancel = threading.Event()
    kwargs = prepared.generate_kwargs(adapter_names, cancel)
    kwargs["streamer"] = streamer

    def work() -> None:
        try:
            with torch.inference_mode():
                output = model.generate(**kwargs)
            if not streamer.used:  # a generate() that ignores streamers: hand over its result at once
                streamer.queue.put([int(i) for i in output[0, prepared.prompt_len :].tolist()])
                streamer.end()
        except BaseException as error:  # handed to the consumer
            streamer.queue.put(error)

    thread = threading.Thread(target=work, name="vlmref-generate", daemon=True)
    thread.start()
    try:
        while True:
            item = streamer.queue.get()
            if item is _END:
                break
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        cancel.set()
        thread.join()


def _stream(model: Any, prepared: _Prepared, query: str, history: History, adapter_names: Any,
            generation_info: dict[str, int]) -> Iterator[tuple[str, History]]:
    generation_info["num_prompt_tokens"] = prepared.prompt_len
    generation_info["num_generated_tokens"] = 0
    decoder = StreamDecoder(prepared.tokenizer, prepared.stop_words)
    shown = ""
    history.append([query, shown])
    for ids in _stream_ids(model, prepared, adapter_names):
        generation_info["num_generated_tokens"] += len(ids)
        delta = decoder.push(ids)
        if delta:
            shown += delta
            history[-1] = [query, shown]
            yield shown, history
    shown += decoder.flush()
    history[-1] = [query, shown]
    yield shown, history


def inference_stream(
    model: Any,
    template: Any,
    query: str,
    history: History | None = None,
    system: str | None = None,
    images: Any = None,
    *,
    generation_config: Any = None,
    stop_words: Sequence[Any] | None = None,
    generation_info: dict[str, int] | None = None,
    adapter_names: Any = None,
    **kwargs: Any,
) -> Iterator[tuple[str, History]]:
    """Yield ``(response_so_far, history)`` while generating; ``history[-1]`` is ``[query, response_so_far]``.

    The input is encoded (and its errors raised) when the first item is requested. The last yield carries the full
    response, equal to ``inference``'s for the same generated ids. Beam search is refused
    (``ValueError('Streaming generation does not support beam search.')``).
    """
    history = [] if history is None else copy.deepcopy(history)
    prepared = _prepare(model, template, query, history, system, images, generation_config, stop_words, kwargs)
    yield from _stream(model, prepared, query, history, adapter_names, {} if generation_info is None else generation_info)


def inference(
    model: Any,
    template: Any,
    query: str,
    history: History | None = None,
    system: str | None = None,
    images: Any = None,
    *,
    generation_config: Any = None,
    stop_words: Sequence[Any] | None = None,
    stream: bool = False,
    verbose: bool = False,
    prompt_prefix: str = "[PROMPT]",
    output_prefix: str = "[OUTPUT]",
    generation_info: dict[str, int] | None = None,
    adapter_names: Any = None,
    **kwargs: Any,
) -> tuple[str, History]:
    """Generate one response; return ``(response, history + [[query, response]])`` (``history`` is not changed).

    ``verbose`` prints ``[PROMPT]<decoded prompt>[OUTPUT]<response>``; with ``stream=True`` too, the response is
    printed while it is generated (``stream`` without ``verbose`` is ignored, as in ms-swift).
    """
    import torch

    history = [] if history is None else copy.deepcopy(history)
    prepared = _prepare(model, template, query, history, system, images, generation_config, stop_words, kwargs)
    info = {} if generation_info is None else generation_info
    if verbose:
        print(f"{prompt_prefix}{render_prompt(template, prepared.encoded)}{output_prefix}", end="", flush=True)
    if stream and verbose:
        response, printed = "", 0
        for response, _ in _stream(model, prepared, query, history, adapter_names, info):  # appends to history
            print(response[printed:], end="", flush=True)
            printed = len(response)
        print()
        return response, history
    info["num_prompt_tokens"] = prepared.prompt_len
    with torch.inference_mode():
        output = model.generate(**prepared.generate_kwargs(adapter_names))
    generated = output[0, prepared.prompt_len :].tolist()
    info["num_generated_tokens"] = len(generated)
    response = decode_response(template.tokenizer, generated, prepared.stop_words)
    if verbose:
        print(response)
    history.append([query, response])
    return response, history
