"""The seeds' Python inference API: ``inference`` / ``inference_stream`` on tiny models of every family.

Streaming concatenates to the non-streamed response, never shows half a character or the start of a stop word,
history is copied and extended, images follow each family's rule (round / dialogue / inline ``<img>``).
"""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import vlmref
from vlmref.datasets.collate import CollateError
from vlmref.errors import SequenceTooLongError, TemplateInputError
from vlmref.llm.inference import (
    DEFAULT_GENERATION,
    get_generation_config,
    inference,
    inference_stream,
    max_model_len,
    resolve_stop_words,
)
from vlmref.llm.streaming import REPLACEMENT, decode_response
from vlmref.models.loader import get_model_tokenizer, shared_tokenizer_folder
from vlmref.models.model_types import ModelType, get_default_template_type
from vlmref.models.tiny import create_tiny_checkpoint
from vlmref.templates import get_template

FAMILIES = ["qwen-vl-chat", "yi-vl-6b-chat", "cogvlm-17b-instruct", "internlm-xcomposer2-7b-chat",
            "llava1d6-mistral-7b-instruct", "llama3-llava-next-8b"]


# ---- fixtures ---------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny(tmp_path_factory, tokenizers_root):
    """model_type -> (model, template, folder) of a tiny random checkpoint, built once per module."""
    cache: dict[str, tuple] = {}

    def get(model_type: str):
        if model_type not in cache:
            out = create_tiny_checkpoint(model_type, tmp_path_factory.mktemp("tiny") / model_type)
            model, tokenizer = get_model_tokenizer(model_type, model_id_or_path=str(out))
            cache[model_type] = (model, get_template(get_default_template_type(model_type), tokenizer), out)
        return cache[model_type]

    return get


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> str:
    from PIL import Image

    path = tmp_path_factory.mktemp("img") / "road.png"
    Image.new("RGB", (64, 48), (30, 120, 200)).save(path)
    return str(path)


def greedy(max_new_tokens: int = 10):
    return get_generation_config(max_new_tokens=max_new_tokens, temperature=0)


def collect(gen):
    """All yields of a stream: the responses (copied) and the last history."""
    responses, history = [], None
    for response, latest in gen:
        responses.append(response)
        history = latest
    return responses, history


class Force:
    """A logits processor that makes greedy decoding emit ``ids`` (then repeat the last one)."""

    def __init__(self, ids: list[int]) -> None:
        self.ids = ids
        self.start: int | None = None

    def __call__(self, input_ids, scores):
        if self.start is None:
            self.start = input_ids.shape[1]
        step = min(input_ids.shape[1] - self.start, len(self.ids) - 1)
        out = torch.full_like(scores, float("-inf"))
        out[:, self.ids[step]] = 0.0
        return out


def force_output(monkeypatch, model, ids: list[int]) -> None:
    from transformers import LogitsProcessorList

    original = model.generate

    def generate(*args, **kwargs):
        kwargs["logits_processor"] = LogitsProcessorList([*kwargs.get("logits_processor", []), Force(ids)])
        return original(*args, **kwargs)

    monkeypatch.setattr(model, "generate", generate)


# ---- streaming == non-streaming ---------------------------------------------------------------------------------------
@pytest.mark.real_tokenizer
@pytest.mark.parametrize("model_type", FAMILIES)
def test_stream_equals_non_stream_greedy(tiny, image, model_type) -> None:
    model, template, _ = tiny(model_type)
    info_a, info_b = {}, {}
    response, history = inference(model, template, "Describe the picture.", images=[image],
                                  generation_config=greedy(), generation_info=info_a)
    responses, streamed_history = collect(inference_stream(model, template, "Describe the picture.", images=[image],
                                                           generation_config=greedy(), generation_info=info_b))
    assert responses[-1] == response and response  # the random tiny model says something
    assert all(b.startswith(a) for a, b in zip(responses, responses[1:], strict=False))
    assert not any(REPLACEMENT in r for r in responses[:-1])
    assert history == streamed_history == [["Describe the picture.", response]]
    assert info_a == info_b and info_a["num_generated_tokens"] <= 10 and info_a["num_prompt_tokens"] > 10


@pytest.mark.real_tokenizer
@pytest.mark.parametrize("model_type", ["yi-vl-6b-chat", "qwen-vl-chat", "internlm-xcomposer2-7b-chat",
                                        "llama3-llava-next-8b"])
def test_forced_cjk_emoji_output_streams_whole_characters_and_stops(tiny, monkeypatch, model_type) -> None:
    """Greedy output forced to ``你好🦜龘 ok`` + the template's stop word + more: rare characters are several byte
    tokens; the stream shows none of them in halves, stops at the stop word and equals ``inference``."""
    model, template, _ = tiny(model_type)
    tok = template.tokenizer
    stop = template.stop_words[0]
    text = "你好🦜龘 ok"
    ids = tok.encode(text, add_special_tokens=False)
    assert any(REPLACEMENT in tok.decode([i]) for i in ids)  # really split into byte pieces
    force_output(monkeypatch, model, ids + tok.encode(stop + "tail", add_special_tokens=False))
    response, history = inference(model, template, "hi", generation_config=greedy(40))
    responses, streamed = collect(inference_stream(model, template, "hi", generation_config=greedy(40)))
    assert response == responses[-1] == text
    assert history == streamed == [["hi", text]]
    for shown in responses[:-1]:
        assert REPLACEMENT not in shown and text.startswith(shown)
        assert not any(shown.endswith(stop[:k]) for k in range(1, len(stop)))


class FakeLM(torch.nn.Module):
    """Generates a fixed id list through the streamer/stopping-criteria protocol of ``generate``."""

    def __init__(self, model_type: str, ids: list[int]) -> None:
        from transformers import GenerationConfig

        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.model_type = model_type
        self.ids = ids
        self.config = SimpleNamespace()
        self.generation_config = GenerationConfig(max_new_tokens=64)

    def generate(self, input_ids, attention_mask=None, generation_config=None, stopping_criteria=None,
                 logits_processor=None, streamer=None, **family_extras):
        seq = input_ids
        if streamer is not None:
            streamer.put(seq.cpu())
        for token in self.ids[: generation_config.max_new_tokens]:
            seq = torch.cat([seq, torch.tensor([[token]])], dim=1)
            if streamer is not None:
                streamer.put(torch.tensor([token]))
            if token == generation_config.eos_token_id or bool(stopping_criteria(seq, None).all()):
                break
        if streamer is not None:
            streamer.end()
        return seq


STREAM_TYPES = ["yi-vl-6b-chat", "qwen-vl-chat", "internlm-xcomposer2-7b-chat", "llava1d6-mistral-7b-instruct",
                "llama3-llava-next-8b"]


@pytest.fixture(scope="module")
def tokenizer_templates(tokenizers_root):
    out = {}
    for model_type in STREAM_TYPES:
        tok = get_model_tokenizer(model_type, load_model=False, model_id_or_path=str(shared_tokenizer_folder(model_type)))[1]
        out[model_type] = get_template(get_default_template_type(model_type), tok)
    return out


PIECES = st.sampled_from(["你好", "世界", "😀", "🦜", "龘", "é", " ok", "a", "\n", "#", "##", "<", "|", "im_", "end",
                          "</", "s>", "<|im_end|>", "\n###", "</s>", "<|eot_id|>", "<|endoftext|>"])


@pytest.mark.real_tokenizer
@settings(max_examples=80)
@given(model_type=st.sampled_from(STREAM_TYPES),
       pieces=st.lists(PIECES, max_size=12))
def test_stream_never_shows_partial_character_or_stop_word(tokenizer_templates, model_type, pieces) -> None:
    template = tokenizer_templates[model_type]
    tok = template.tokenizer
    ids = tok.encode("".join(pieces), add_special_tokens=False)
    model = FakeLM(model_type, ids)
    stops = resolve_stop_words(template)
    responses, history = collect(inference_stream(model, template, "q"))
    response, _ = inference(model, template, "q")
    assert responses[-1] == response == decode_response(tok, ids, stops) == history[-1][1]
    assert not any(word in response for word in stops)
    full = tok.decode(ids, skip_special_tokens=False)  # not cut at stop words
    for shown in responses[:-1]:  # mid-stream: whole characters, never the beginning of a stop word occurrence
        assert REPLACEMENT not in shown and response.startswith(shown)
        assert not any(shown.endswith(w[:k]) and full[len(shown) - k :].startswith(w)
                       for w in stops for k in range(1, len(w)))


@pytest.mark.real_tokenizer
def test_stream_falls_back_when_generate_ignores_the_streamer(tokenizer_templates) -> None:
    template = tokenizer_templates["qwen-vl-chat"]
    ids = template.tokenizer.encode("plain 你好<|im_end|>", add_special_tokens=False)
    model = FakeLM("qwen-vl-chat", ids)
    original = model.generate
    model.generate = lambda streamer=None, **kwargs: original(**kwargs)
    responses, history = collect(inference_stream(model, template, "q"))
    assert responses[-1] == "plain 你好" and history == [["q", "plain 你好"]]


# ---- history -----------------------------------------------------------------------------------------------------------
@pytest.mark.real_tokenizer
def test_history_is_copied_and_extended(tiny) -> None:
    model, template, _ = tiny("qwen-vl-chat")
    history = [["Hello", "Hi there."]]
    snapshot = [list(h) for h in history]
    response, new = inference(model, template, "And now?", history, generation_config=greedy(4))
    assert history == snapshot and new == [*snapshot, ["And now?", response]]
    new[0][0] = "changed"
    assert history[0][0] == "Hello"  # deep copy
    seen = []
    for _, h in inference_stream(model, template, "And now?", history, generation_config=greedy(4)):
        seen.append(h)
        assert history == snapshot and len(h) == 2 and h[:1] == snapshot
    assert all(h is seen[0] for h in seen)  # one list, its last pair updated in place (as ms-swift)
    assert seen[-1][-1] == ["And now?", response]
    assert inference(model, template, "x", None, generation_config=greedy(2))[1][0][0] == "x"


# ---- images per family --------------------------------------------------------------------------------------------
@pytest.mark.real_tokenizer
def test_round_templates_take_one_image_entry_per_turn(tiny, image) -> None:
    model, template, _ = tiny("yi-vl-6b-chat")
    r1, history = inference(model, template, "What is it?", images=[image], generation_config=greedy(3))
    assert history == [["What is it?", r1]]
    r2, history = inference(model, template, "And the colour?", history, images=[image, None],
                            generation_config=greedy(3))
    assert len(history) == 2 and history[1][1] == r2
    inference(model, template, "Compare.", history, images=[image, None, image], generation_config=greedy(3))
    with pytest.raises(TemplateInputError, match="one entry per turn"):
        inference(model, template, "More?", history, images=[image], generation_config=greedy(3))


@pytest.mark.real_tokenizer
def test_cogvlm_dialogue_needs_exactly_one_image(tiny, image) -> None:
    model, template, _ = tiny("cogvlm-17b-instruct")
    response, history = inference(model, template, "Describe.", images=[image], generation_config=greedy(3))
    again, _ = inference(model, template, "More.", history, images=[image], generation_config=greedy(3))
    assert isinstance(again, str)
    with pytest.raises(TemplateInputError, match="at most 1 image"):
        inference(model, template, "Two?", images=[image, image], generation_config=greedy(3))
    with pytest.raises(CollateError, match="no image"):
        inference(model, template, "None?", generation_config=greedy(3))
    with pytest.raises(TemplateInputError, match="system"):
        inference(model, template, "Sys?", system="Be brief.", images=[image], generation_config=greedy(3))


@pytest.mark.real_tokenizer
@pytest.mark.parametrize("model_type,inline", [("qwen-vl-chat", "<img>{}</img>"),
                                               ("internlm-xcomposer2-7b-chat", "<img>{}</img>")])
def test_inline_img_tags_equal_the_images_argument(tiny, image, model_type, inline) -> None:
    model, template, _ = tiny(model_type)
    tagged, _ = inference(model, template, inline.format(image) + "What is it?", generation_config=greedy(6))
    column, _ = inference(model, template, "What is it?", images=[image], generation_config=greedy(6))
    plain, _ = inference(model, template, "What is it?", generation_config=greedy(6))
    assert tagged == column
    assert tagged != plain or model_type == "qwen-vl-chat"  # (the image changes the tiny model's answer)


# ---- the seeds' 单样本推理 snippets, call for call ---------------------------------------------------------------
SEED_QUERIES = {  # model_type -> (first query, images for call 1, second query, images for call 2, pass history)
    ModelType.qwen_vl_chat: ("Picture 1:<img>{img}</img>\n距离各城市多远？", None, "距离最远的城市是哪？", None, True),
    ModelType.internlm_xcomposer2_7b_chat: ("<img>{img}</img>距离各城市多远？", None, "距离最远的城市是哪？", None, True),
    ModelType.yi_vl_6b_chat: ("距离各城市多远？", 1, "距离最远的城市是哪？", 2, True),
    ModelType.cogvlm_17b_instruct: ("每个城市的距离分别是多少?", 1, "哪个城市距离最远?", 1, False),
    "llava1d6-mistral-7b-instruct": ("How far is it from each city?", 1, "Which city is the farthest?", 1, False),
}


@pytest.mark.real_tokenizer
@pytest.mark.parametrize("model_type", list(SEED_QUERIES))
def test_seed_single_sample_snippets(tiny, image, monkeypatch, capsys, model_type) -> None:
    model, template, _ = tiny(model_type)
    monkeypatch.setattr(model.generation_config, "max_new_tokens", 8)  # the seeds set 256
    q1, n1, q2, n2, with_history = SEED_QUERIES[model_type]
    images = [image]
    query = q1.format(img=image)
    if n1 is None:
        response, history = inference(model, template, query)
    else:
        response, history = inference(model, template, query, images=images)
    print(f"query: {query}")
    print(f"response: {response}")
    query = q2
    if n2 == 2:
        images = images * 2
    if with_history and n2 is None:
        gen = inference_stream(model, template, query, history)
    elif with_history:
        gen = inference_stream(model, template, query, history, images=images)
    else:
        gen = inference_stream(model, template, query, images=images)
    print_idx = 0
    print(f"query: {query}\nresponse: ", end="")
    for response2, history2 in gen:  # noqa: B007 (the seeds' loop; history2 is read after it)
        delta = response2[print_idx:]
        print(delta, end="", flush=True)
        print_idx = len(response2)
    print()
    out = capsys.readouterr().out
    assert f"response: {response}\n" in out and out.endswith(f"response: {response2}\n")
    if with_history:
        assert history2 == [[q1.format(img=image), response], [q2, response2]]
    else:
        assert history2 == [[q2, response2]]


# ---- generation config, stop words, errors -------------------------------------------------------------------------
def test_generation_defaults_and_greedy() -> None:
    config = get_generation_config()
    assert {k: getattr(config, k) for k in DEFAULT_GENERATION} == {
        "max_new_tokens": 2048, "do_sample": True, "temperature": 0.3, "top_k": 20, "top_p": 0.7,
        "repetition_penalty": 1.0, "num_beams": 1}
    zero = get_generation_config(temperature=0)
    assert (zero.do_sample, zero.temperature, zero.top_p, zero.top_k) == (False, 1.0, 1.0, 50)
    assert max_model_len(SimpleNamespace(seq_length=2048, max_position_embeddings=8192)) == 2048
    assert max_model_len(SimpleNamespace(text_config=SimpleNamespace(max_position_embeddings=4096))) == 4096
    assert max_model_len(SimpleNamespace()) is None


@pytest.mark.real_tokenizer
def test_stop_words_are_template_suffix_and_eos(tokenizer_templates) -> None:
    assert resolve_stop_words(tokenizer_templates["yi-vl-6b-chat"]) == ["\n###", "<|endoftext|>"]
    assert resolve_stop_words(tokenizer_templates["llava1d6-mistral-7b-instruct"]) == ["</s>"]
    assert resolve_stop_words(tokenizer_templates["qwen-vl-chat"], ["Observation:"]) == ["Observation:", "<|im_end|>"]


@pytest.mark.real_tokenizer
def test_sampling_temperature_zero_and_beam_search(tiny) -> None:
    model, template, _ = tiny("qwen-vl-chat")
    sampled = get_generation_config(max_new_tokens=4)
    assert isinstance(inference(model, template, "hi", generation_config=sampled)[0], str)
    from transformers import GenerationConfig

    raw = GenerationConfig(max_new_tokens=4, do_sample=True, temperature=0)  # ms-swift: temperature 0 -> greedy
    assert inference(model, template, "hi", generation_config=raw)[0] == inference(
        model, template, "hi", generation_config=greedy(4))[0]
    beams = get_generation_config(max_new_tokens=3, num_beams=2, temperature=0)
    assert isinstance(inference(model, template, "hi", generation_config=beams)[0], str)
    with pytest.raises(ValueError, match="does not support beam search"):
        collect(inference_stream(model, template, "hi", generation_config=beams))


@pytest.mark.real_tokenizer
def test_bad_arguments_and_long_prompts(tiny, tmp_path) -> None:
    model, template, _ = tiny("qwen-vl-chat")
    with pytest.raises(TypeError, match="nonsense"):
        inference(model, template, "hi", nonsense=1)
    assert isinstance(inference(model, template, "hi", truncation_strategy="delete", generation_config=greedy(2))[0], str)
    short = get_template("qwen-vl", template.tokenizer, max_length=8)
    with pytest.raises(SequenceTooLongError):
        inference(model, short, "a rather long question that does not fit", generation_config=greedy(2))



@pytest.mark.real_tokenizer
def test_max_new_tokens_is_capped_by_the_model_length(tiny, monkeypatch) -> None:
    model, template, _ = tiny("qwen-vl-chat")
    info = {}
    inference(model, template, "hi", generation_config=greedy(1), generation_info=info)
    prompt = info["num_prompt_tokens"]
    monkeypatch.setattr(model.config, "seq_length", prompt + 3)
    info = {}
    inference(model, template, "hi", generation_config=get_generation_config(max_new_tokens=10**6, temperature=0,
                                                                            repetition_penalty=1.0),
              stop_words=["never-appears"], generation_info=info)
    assert info["num_generated_tokens"] <= 3  # capped (ms-swift) instead of failing
    monkeypatch.setattr(model.config, "seq_length", prompt)
    with pytest.raises(ValueError, match="no room left"):
        inference(model, template, "hi", generation_config=greedy(4))


@pytest.mark.real_tokenizer
def test_verbose_prints_prompt_with_image_spans(tiny, image, capsys) -> None:
    model, template, _ = tiny("yi-vl-6b-chat")
    response, _ = inference(model, template, "What?", images=[image], generation_config=greedy(4), verbose=True)
    out = capsys.readouterr().out
    assert out.startswith("[PROMPT]") and "[-200 * 1024]" in out and out.endswith(f"[OUTPUT]{response}\n")
    streamed, _ = inference(model, template, "What?", images=[image], generation_config=greedy(4), verbose=True,
                            stream=True)
    assert streamed == response and capsys.readouterr().out.endswith(f"[OUTPUT]{response}\n")


@pytest.mark.real_tokenizer
def test_closing_a_stream_stops_generation(tiny) -> None:
    model, template, _ = tiny("yi-vl-6b-chat")
    gen = inference_stream(model, template, "hi", generation_config=greedy(2000))
    next(gen)
    gen.close()  # joins the worker: it stops at its next step
    assert not any(t.name == "vlmref-generate" for t in threading.enumerate())


def test_package_exports_the_api_lazily() -> None:
    assert vlmref.inference is inference and vlmref.inference_stream is inference_stream
    assert {"inference", "inference_stream"} <= set(vlmref.__all__)
