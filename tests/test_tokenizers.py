"""Tests for vlmref.tokenizers: exact ids on the real tokenizer files (see shared/tokenizers/SOURCES.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from vlmref.tokenizers import load_tokenizer, shared_tokenizers_dir

real = pytest.mark.real_tokenizer
STRINGS = [
    "Hello world",
    "This is a test sentence.",
    "  leading spaces\n\nand 中文 🙂 emoji",
    " x\n\n\ny  ",
    "<|im_start|>user\nhi<|im_end|>\n",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>",
    "<s>[INST] hi [/INST] ok</s>",
    "12345 don't",
]


def family(name: str) -> Path:
    root = shared_tokenizers_dir()
    if root is None:
        pytest.skip("real tokenizer files not found: set VLMREF_TOKENIZERS_DIR or provide ../shared/tokenizers")
    path = root / name
    if not path.is_dir():
        pytest.skip(f"real tokenizer folder missing: {path}")
    return path


def sp_raw(name: str):
    import sentencepiece as spm

    return spm.SentencePieceProcessor(model_file=str(family(name) / "tokenizer.model"))


# -- light checks (no real files) -----------------------------------------------------------------------
def test_import_is_light():
    code = "import sys, vlmref.tokenizers; print('transformers' in sys.modules or 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_shared_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("VLMREF_TOKENIZERS_DIR", str(tmp_path))
    assert shared_tokenizers_dir() == tmp_path


def test_unknown_kind(tmp_path):
    with pytest.raises(ValueError, match="unknown tokenizer kind"):
        load_tokenizer("bpe", tmp_path)


# -- sentencepiece ----------------------------------------------------------------------------------------
@real
@pytest.mark.parametrize(
    "name, ids", [("llama2", [15043, 3186]), ("yi", [25102, 1504]), ("mistral", [22557, 1526]), ("internlm2", None)]
)
def test_sentencepiece_hello(name, ids):
    tok = load_tokenizer("sentencepiece", family(name))
    got = tok.encode("Hello world", add_special_tokens=False)
    assert got == sp_raw(name).encode("Hello world")
    if ids is not None:
        assert got == ids
    assert tok("Hello world", add_special_tokens=False, return_attention_mask=False)["input_ids"] == got


@real
def test_sentencepiece_specials():
    intern = load_tokenizer("sentencepiece", family("internlm2"))
    assert intern.encode("[UNUSED_TOKEN_146]user\n", add_special_tokens=False) == [92543, 1008, 364]
    assert intern.encode("Hello world", add_special_tokens=False) == [9843, 2028]
    for name in ("llama2", "mistral"):
        tok = load_tokenizer("sentencepiece", family(name))
        assert tok.encode("<s>[INST] hi", add_special_tokens=False) == [1] + sp_raw(name).encode("[INST] hi")
        assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (1, 2, 2)  # pad := eos
        assert tok.convert_tokens_to_ids("<unk>") == 0 and len(tok) == 32000
    mistral = load_tokenizer("sentencepiece", family("mistral"))
    expected = [733, 16289, 28793, 264, 733, 28748, 16289, 28793, 287]
    assert mistral.encode("[INST] a [/INST] b", add_special_tokens=False) == expected


@real
def test_sentencepiece_yi_config():
    tok = load_tokenizer("sentencepiece", family("yi"))
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == ("<|startoftext|>", "<|endoftext|>", "<unk>")
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (1, 2, 0)
    assert tok.encode("<|im_start|>user\n", add_special_tokens=False)[0] == 6
    assert tok.convert_ids_to_tokens([6, 7, 8]) == ["<|im_start|>", "<|im_end|>", "<|im_sep|>"]


@real
@pytest.mark.parametrize("name", ["llama2", "yi", "mistral", "internlm2"])
def test_sentencepiece_decode(name):
    tok = load_tokenizer("sentencepiece", family(name))
    text = "Hello  world\n\n中文 🙂 end"
    ids = tok.encode(text, add_special_tokens=False)
    assert tok.decode(ids) == tok.decode(ids, skip_special_tokens=True) == text
    bos = tok.bos_token
    assert tok.decode(tok.encode(bos + "hi", add_special_tokens=False)) == bos + "hi"
    assert tok.decode(tok.encode(bos + "hi", add_special_tokens=False), skip_special_tokens=True) == "hi"


@real
def test_sentencepiece_add_tokens_mistral():
    tok = load_tokenizer("sentencepiece", family("mistral"), special={"add_tokens": ["<image>"]})
    assert tok.convert_tokens_to_ids("<image>") == 32000 and len(tok) == 32001
    ids = tok.encode("<image>\nhi", add_special_tokens=False)
    assert ids == [32000] + sp_raw("mistral").encode("\nhi")
    assert tok.convert_ids_to_tokens(32000) == "<image>"


# -- tokenizer.json -----------------------------------------------------------------------------------------
@real
@pytest.mark.parametrize("name", ["mistral", "llama3", "qwen1.5"])
def test_tokenizer_json_matches_raw(name):
    from tokenizers import Tokenizer

    path = family(name)
    raw = Tokenizer.from_file(str(path / "tokenizer.json"))
    tok = load_tokenizer("tokenizer_json", path)
    for text in STRINGS:
        assert tok.encode(text, add_special_tokens=False) == raw.encode(text, add_special_tokens=False).ids, text


@real
def test_tokenizer_json_checks():
    llama3 = load_tokenizer("tokenizer_json", family("llama3"))
    assert llama3.encode("This is a test sentence.", add_special_tokens=False) == [2028, 374, 264, 1296, 11914, 13]
    assert (llama3.bos_token_id, llama3.eos_token_id, llama3.pad_token_id) == (128000, 128001, 128001)
    assert llama3.convert_tokens_to_ids("<|eot_id|>") == 128009
    qwen = load_tokenizer("tokenizer_json", family("qwen1.5"))
    assert qwen.encode("Hello world", add_special_tokens=False) == [9707, 1879]
    assert qwen.convert_tokens_to_ids("<|im_start|>") == 151644
    assert (qwen.bos_token_id, qwen.eos_token_id, qwen.pad_token_id) == (None, 151645, 151643)
    mistral = load_tokenizer("tokenizer_json", family("mistral"))
    assert mistral.encode("Hello world", add_special_tokens=False) == [22557, 1526]
    assert (mistral.bos_token_id, mistral.eos_token_id, mistral.pad_token_id) == (1, 2, 2)


@real
@pytest.mark.parametrize("name, new_id", [("mistral", 32000), ("llama3", 128256), ("qwen1.5", 151646)])
def test_tokenizer_json_add_tokens(name, new_id):
    tok = load_tokenizer("tokenizer_json", family(name), special={"add_tokens": ["<image>"]})
    assert tok.convert_tokens_to_ids("<image>") == new_id and len(tok) == new_id + 1
    assert tok.encode("<image>\nhi", add_special_tokens=False)[0] == new_id
    assert tok.decode([new_id]) == "<image>"


# -- qwen / qwen-vl -----------------------------------------------------------------------------------------
@real
@pytest.mark.parametrize("kind", ["qwen", "qwen-vl"])
def test_qwen_basics(kind):
    tok = load_tokenizer(kind, family("qwen"))
    assert tok.encode("Hello world", add_special_tokens=False) == [9707, 1879]
    specials = {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645}
    specials.update({"<|extra_0|>": 151646, "<|extra_204|>": 151850})
    for text, idx in specials.items():
        assert tok.convert_tokens_to_ids(text) == idx
        assert tok.encode(f"a{text}b", add_special_tokens=False)[1] == idx
    eos = 151645 if kind == "qwen-vl" else 151643
    assert (tok.eos_token_id, tok.pad_token_id, tok.bos_token_id) == (eos, eos, None)
    assert len(tok) == (151860 if kind == "qwen-vl" else 151851)
    text = "<|im_start|>user\n12345 中文🙂 don't<|im_end|>\n"
    ids = tok(text, add_special_tokens=False, return_attention_mask=False)["input_ids"]
    assert ids[0] == 151644 and tok.decode(ids) == text
    assert tok.decode(ids, skip_special_tokens=True) == "user\n12345 中文🙂 don't\n"
    assert tok.encode("e\u0301", add_special_tokens=False) == tok.encode("é", add_special_tokens=False)  # NFC
    assert tok.decode([tok.encode("🙂", add_special_tokens=False)[0]]) in ("🙂", "\ufffd")  # byte token ok


@real
def test_qwen_vl_tags():
    tok = load_tokenizer("qwen-vl", family("qwen"))
    names = ["<ref>", "</ref>", "<box>", "</box>", "<quad>", "</quad>", "<img>", "</img>", "<imgpad>"]
    assert tok.convert_tokens_to_ids(names) == list(range(151851, 151860))
    url = "https://x.y/猫.jpg"
    ids = tok.encode(f"Picture 1:<img>{url}</img>\nhi", add_special_tokens=False)
    start = ids.index(151857)
    span = ids[start : start + 258]
    content = list(url.encode("utf-8"))
    assert span == [151857] + content + [151859] * (256 - len(content)) + [151858]
    assert ids[:start] == tok.encode("Picture 1:", add_special_tokens=False)
    assert ids[start + 258 :] == tok.encode("\nhi", add_special_tokens=False)
    assert tok.decode(ids) == f"Picture 1:<img>{url}</img>\nhi"
    two = tok.encode("<img>a</img><img></img>", add_special_tokens=False)
    assert len(two) == 516 and two[1] == ord("a") and two[259] == 151859
    assert len(tok.encode("<img>" + "x" * 256 + "</img>", add_special_tokens=False)) == 258
    with pytest.raises(ValueError, match=r"The content in <img>..</img> is too long"):
        tok.encode("<img>" + "x" * 257 + "</img>", add_special_tokens=False)
    with pytest.raises(ValueError, match="Unclosed image token"):
        tok.encode("<img>abc", add_special_tokens=False)
    plain = load_tokenizer("qwen", family("qwen"))
    assert plain.convert_tokens_to_ids("<img>") is None  # Qwen-7B has no VL tags


@real
@pytest.mark.parametrize("kind, new_id", [("qwen", 151851), ("qwen-vl", 151860)])
def test_qwen_add_tokens(kind, new_id):
    tok = load_tokenizer(kind, family("qwen"), special={"add_tokens": ["<image>"], "pad": "<|extra_0|>"})
    assert tok.encode("<image>\nhi", add_special_tokens=False) == [new_id, 198, 6023]
    assert tok.pad_token_id == 151646 and tok.decode([new_id]) == "<image>"


# -- save / reload ------------------------------------------------------------------------------------------
@real
@pytest.mark.parametrize(
    "kind, name",
    [
        ("sentencepiece", "llama2"),
        ("sentencepiece", "yi"),
        ("sentencepiece", "mistral"),
        ("sentencepiece", "internlm2"),
        ("tokenizer_json", "mistral"),
        ("tokenizer_json", "llama3"),
        ("tokenizer_json", "qwen1.5"),
        ("qwen", "qwen"),
        ("qwen-vl", "qwen"),
    ],
)
def test_save_reload(kind, name, tmp_path):
    special = {"add_tokens": ["<image>", "<video>"]}
    tok = load_tokenizer(kind, family(name), special=special)
    tok.save_pretrained(tmp_path)
    again = load_tokenizer(kind, tmp_path)
    texts = [*STRINGS, "<image>\nDescribe<video> it."]
    if kind == "qwen-vl":
        texts.append("Picture 1:<img>a.jpg</img>\n")
    for text in texts:
        ids = tok.encode(text, add_special_tokens=False)
        assert again.encode(text, add_special_tokens=False) == ids, text
        assert again(text)["input_ids"] == tok(text)["input_ids"]
    assert len(again) == len(tok)
    for attr in ("bos_token_id", "eos_token_id", "pad_token_id", "bos_token", "eos_token", "pad_token"):
        assert getattr(again, attr) == getattr(tok, attr), attr
    assert again.convert_tokens_to_ids(["<image>", "<video>"]) == tok.convert_tokens_to_ids(["<image>", "<video>"])


# -- the templates' fast path: same ids as encode(add_special_tokens=False) -----------------------------
_PIECES = [*STRINGS, "[UNUSED_TOKEN_146]", "[UNUSED_TOKEN_145]\n", "<image>", "<|im_sep|>", "<unk>", "</s>", "<pad>",
           "<img>images/a.png</img>", " ", "\n", "\t", "你好", "😀", "▁x", "<<SYS>>", "<|endoftext|>"]


@real
@pytest.mark.parametrize("model_type", ["cogvlm-17b-instruct", "qwen-vl-chat", "internlm-xcomposer2-7b-chat",
                                        "yi-vl-6b-chat", "llava1d6-mistral-7b-instruct", "llava1d6-yi-34b-instruct",
                                        "llama3-llava-next-8b", "llava-next-72b"])
def test_template_fast_encode_equals_encode(model_type):
    """Template._plain_encoder (encode_plain / the fast backend) gives exactly tokenizer.encode's ids."""
    from hypothesis import given
    from hypothesis import strategies as st

    from vlmref.models.loader import get_model_tokenizer
    from vlmref.models.model_types import MODELS
    from vlmref.templates import get_template

    folder = family(MODELS.get(model_type).tokenizer.family)
    _, tok = get_model_tokenizer(model_type, load_model=False, model_id_or_path=folder)
    encode = get_template(MODELS.get(model_type).template, tok)._plain_encoder()

    @given(st.lists(st.one_of(st.sampled_from(_PIECES), st.text(max_size=6)), max_size=6).map("".join))
    def check(text):
        try:
            expected = list(tok.encode(text, add_special_tokens=False))
            tok.encode(text, add_special_tokens=False, split_special_tokens=True)  # leaves state in HF backends
        except ValueError:  # Qwen-VL refuses malformed <img> markup; the fast path must refuse it too
            with pytest.raises(ValueError):
                encode(text)
            return
        assert encode(text) == expected
        assert encode(text) == expected  # cached the second time

    check()


# ids transformers 4.41.2's LlamaTokenizerFast gave for these files (converted from tokenizer.model, as ms-swift
# 2.2.0's AutoTokenizer loads them; read in the oracle venv of nox -s oracle)
_FAST_4_41 = {
    ("yi", "every_chunk"): [("This is", [1117, 620]), (" x", [141, 59607]),
                            ("\n### Human: hi", [59568, 144, 8308, 10427, 59601, 22519])],
    ("llama2", "first_chunk"): [(" world", [3186]), ("   ", [1678]), ("a b", [263, 289]), ("x</s> y", [921, 2, 343])],
}


@real
@pytest.mark.parametrize(("name", "policy"), list(_FAST_4_41))
def test_sentencepiece_prefix_policy_matches_transformers_4_41_fast(name, policy):
    tok = load_tokenizer("sentencepiece", family(name), prefix_policy=policy)
    for text, ids in _FAST_4_41[(name, policy)]:
        assert tok.encode_plain(text) == ids, text
        assert tok.encode(text, add_special_tokens=False) == ids, text
    default = load_tokenizer("sentencepiece", family(name))
    assert any(default.encode_plain(t) != ids for t, ids in _FAST_4_41[(name, policy)])  # the policy matters


def test_prefix_policy_is_checked(tmp_path):
    with pytest.raises(ValueError, match="sentencepiece tokenizers"):
        load_tokenizer("tokenizer_json", tmp_path, prefix_policy="every_chunk")
