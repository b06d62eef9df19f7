"""Tokenizers as ms-swift 2.2.0 loads them, and minimal model stand-ins for its ``use_model=True`` templates.

Tokenizers: the real files from ``../shared/tokenizers`` plus each hub repo's tokenizer_config facts (``CONFIGS``,
with sources), loaded the way swift 2.2.0 does: ``AutoTokenizer.from_pretrained(dir, trust_remote_code=True)``
(a fast tokenizer where one exists), Qwen-VL's and InternLM2's own tokenizer classes from their model repositories.

Stand-ins supply only what the templates read; they never decide an id. Image tensors are placeholders: the
oracle pins ids and labels, not pixels (the model oracle compares pixels).
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path
from types import ModuleType, SimpleNamespace

from upstream import upstream_dir

_LLAMA_COMMON = {"clean_up_tokenization_spaces": False, "sp_model_kwargs": {}, "tokenizer_class": "LlamaTokenizer"}


def _added(content: str) -> dict:
    """A special token as tokenizer_config.json files of transformers 4.3x spell it."""
    return {"__type": "AddedToken", "content": content, "lstrip": False, "normalized": False, "rstrip": False,
            "single_word": False}


# special_tokens_map.json written next to the config (vicuna-7b-v1.5's, 438 B: its pad is <unk>)
SPECIAL_TOKENS_MAPS: dict[str, dict] = {
    "cogvlm": {"bos_token": {k: v for k, v in _added("<s>").items() if k != "__type"},
               "eos_token": {k: v for k, v in _added("</s>").items() if k != "__type"},
               "pad_token": "<unk>",
               "unk_token": {k: v for k, v in _added("<unk>").items() if k != "__type"}},
}


def _special(content: str) -> dict:
    """An ``added_tokens_decoder`` entry as transformers writes a special, unnormalized added token."""
    return {"content": content, "special": True, "lstrip": False, "rstrip": False, "normalized": False,
            "single_word": False}


# Yi's special pieces that Yi-*-Chat's tokenizer_config.json (../shared/tokenizers/yi) declares as added tokens
YI_ADDED = {0: "<unk>", 1: "<|startoftext|>", 2: "<|endoftext|>", 6: "<|im_start|>", 7: "<|im_end|>", 8: "<|im_sep|>"}

# template -> (shared tokenizer folder, files to take, tokenizer_config.json to write or None to keep the file's)
CONFIGS: dict[str, tuple[str, tuple[str, ...], dict | None, str]] = {
    # vicuna-7b-v1.5 ships no tokenizer.json. Its tokenizer_config.json (749 B) and special_tokens_map.json (438 B)
    # are rebuilt from their known fields; serialised as transformers writes them (indent 2, AddedToken dicts with
    # normalized false, trailing newline) they are 749 and 438 bytes, the sizes listed for the repo's files in
    # PaddleMIX's copy (paddlenlp community models, paddlemix/llava/vicuna-7b-v1.5). legacy true, normalized true
    # or a pad written into the config would each change those sizes.
    "cogvlm": ("llama2", ("tokenizer.model",), {
        **_LLAMA_COMMON, "add_bos_token": True, "add_eos_token": False, "legacy": False,
        "bos_token": _added("<s>"), "eos_token": _added("</s>"), "unk_token": _added("<unk>"), "pad_token": None,
        "model_max_length": 4096, "padding_side": "right",
    }, "lmsys/vicuna-7b-v1.5 tokenizer_config.json + special_tokens_map.json (pad <unk>), as AI-ModelScope/"
       "vicuna-7b-v1.5 that swift's CogVLM loader reads; rebuilt, byte sizes 749/438 checked"),
    # Yi-VL-6B ships no tokenizer.json; its added tokens are Yi-Chat's (0, 1, 2 and 6/7/8 <|im_start|>...), so the
    # real Yi-Chat files (legacy true, pad <unk>) stand for it. Yi-VL-6B's own tokenizer_config.json was not found.
    "yi-vl": ("yi", ("tokenizer.model", "tokenizer_config.json", "special_tokens_map.json"), None,
              "01-ai/Yi-VL-6B: the Yi-*-Chat tokenizer_config.json/special_tokens_map.json of ../shared/tokenizers/yi"),
    "llava-mistral": ("mistral", ("tokenizer.model", "tokenizer.json", "special_tokens_map.json"), {
        **_LLAMA_COMMON, "add_bos_token": True, "add_eos_token": False, "legacy": True,
        "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>",
        "added_tokens_decoder": {
            "32000": _special("<image>"),
            "32001": _special("<pad>"),
        },
    }, "llava-hf/llava-v1.6-mistral-7b-hf tokenizer_config.json"),
    "llava-yi": ("yi", ("tokenizer.model",), {
        **_LLAMA_COMMON, "add_bos_token": False, "add_eos_token": False, "legacy": True,
        "bos_token": "<|startoftext|>", "eos_token": "<|im_end|>", "unk_token": "<unk>", "pad_token": "<pad>",
        "added_tokens_decoder": {
            **{str(i): _special(t) for i, t in YI_ADDED.items()},
            "64000": _special("<image>"),
            "64001": _special("<pad>"),
        },
    }, "llava-hf/llava-v1.6-34b-hf tokenizer_config.json (its tokenizer.json, if any, not found: converted here from "
       "the Yi sentencepiece model with legacy true; Yi's added tokens 0-2 and 6-8 as in Yi-*-Chat's config)"),
    "llama-llava-next": ("llama3", ("tokenizer.json", "tokenizer_config.json"), None,
                         "lmms-lab/llama3-llava-next-8b (Meta-Llama-3-8B-Instruct tokenizer files)"),
    "llava-qwen-instruct": ("qwen1.5", ("tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json"), None,
                            "lmms-lab/llava-next-72b (Qwen1.5-72B-Chat tokenizer files)"),
}


def _folder(name: str, root: Path, files: tuple[str, ...], config: dict | None) -> Path:
    folder = Path(tempfile.mkdtemp(prefix=f"oracle-tok-{name}-"))
    for file in files:
        shutil.copy(root / file, folder / file)  # scratch copy, deleted with the temp dir; never committed
    if config is not None:
        (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return folder


def _import(folder: Path, module: str) -> ModuleType:
    sys.path.insert(0, str(folder))
    try:
        return __import__(module)
    finally:
        sys.path.remove(str(folder))


def swift_tokenizer(template_type: str, tok_root: Path):
    """(tokenizer, description) as ms-swift 2.2.0 gets it for the model of ``template_type``."""
    if template_type in ("qwen", "qwen-vl"):
        code = upstream_dir("qwen_vl" if template_type == "qwen-vl" else "qwen_7b")
        folder = _folder("qwen", tok_root / "qwen", ("qwen.tiktoken",), None)
        shutil.copy(code / "tokenizer_config.json", folder / "tokenizer_config.json")
        module = _import(code, "tokenization_qwen")
        sys.modules.pop("tokenization_qwen", None)  # qwen and qwen-vl each get their own module
        cls = module.QWenTokenizer
        if template_type == "qwen-vl":
            cls.IMAGE_ST = ()  # ms-swift 2.2.0 get_model_tokenizer_qwen_vl sets this too
        tok = cls.from_pretrained(str(folder))
        return tok, {"class": f"QWenTokenizer ({code.name}/tokenization_qwen.py)", "files": "qwen/qwen.tiktoken",
                     "source": (code / "UPSTREAM").read_text().strip()}
    if template_type == "internlm-xcomposer2":
        code = upstream_dir("internlm2_tokenizer")
        cls = _import(code, "tokenization_internlm2").InternLM2Tokenizer
        tok = cls(vocab_file=str(tok_root / "internlm2" / "tokenizer.model"))
        return tok, {"class": "InternLM2Tokenizer (slow, sentencepiece)", "files": "internlm2/tokenizer.model",
                     "source": (code / "UPSTREAM").read_text().strip()}
    from transformers import AutoTokenizer

    family, files, config, source = CONFIGS[template_type]
    folder = _folder(template_type, tok_root / family, files, config)
    if template_type in SPECIAL_TOKENS_MAPS:
        (folder / "special_tokens_map.json").write_text(json.dumps(SPECIAL_TOKENS_MAPS[template_type], indent=2) + "\n")
    tok = AutoTokenizer.from_pretrained(str(folder), trust_remote_code=True)
    if tok.pad_token is None:  # ms-swift 2.2.0 get_model_tokenizer: pad := eos
        tok.pad_token = tok.eos_token
    info = {"class": type(tok).__name__, "files": f"{family}/" + ",".join(files), "config_source": source,
            "legacy": getattr(tok, "legacy", None)}
    if config is not None:
        info["tokenizer_config"] = config
    return tok, info


# ---- model stand-ins ----------------------------------------------------------------------------------------------
COGVLM_VISION_TOKENS = (490 // 14) * (490 // 14) + 2  # cogvlm-chat-hf config vision_config image_size 490, patch 14
XCOMPOSER2_IMAGE_ROWS = 256  # internlm-xcomposer2-7b: CLIP ViT-L/14 at 224 px -> 16 x 16 rows per image
IMAGE_ROW = -200.0


class _ImageProcessor:
    image_mean = (0.48145466, 0.4578275, 0.40821073)

    def __call__(self, images, return_tensors="pt"):
        return self.preprocess(images, return_tensors)

    def preprocess(self, images, return_tensors="pt"):
        import torch
        from transformers import BatchFeature

        n = len(images) if isinstance(images, list) else 1
        return BatchFeature({"pixel_values": torch.zeros(n, 3, 2, 2), "image_sizes": torch.zeros(n, 2)})


def _install_llava_mm_utils() -> None:
    """``from llava.mm_utils import expand2square, process_images`` (Yi-VL, LLaVA-NeXT templates): placeholders."""
    import torch

    llava = sys.modules.setdefault("llava", ModuleType("llava"))
    mm = ModuleType("llava.mm_utils")
    mm.expand2square = lambda image, background: image
    mm.process_images = lambda images, processor, config: torch.zeros(len(images), 3, 2, 2)
    llava.mm_utils = mm
    sys.modules["llava.mm_utils"] = mm


def model_stand_in(template_type: str, tokenizer):
    import torch

    if template_type == "cogvlm":
        from PIL import Image

        def build_conversation_input_ids(tok, *, query, history=None, images=None, template_version=None):
            assert images is None or len(images) <= 1
            if images and not isinstance(images[0], Image.Image):  # the real code's Resize fails the same way
                raise TypeError(f"Unexpected type {type(images[0])}")
            n = COGVLM_VISION_TOKENS if images else 0
            return {"token_type_ids": torch.tensor([0] + [1] * n), "images": [torch.zeros(3, 2, 2)] if n else []}

        return SimpleNamespace(dtype=torch.float32, build_conversation_input_ids=build_conversation_input_ids)
    if template_type == "internlm-xcomposer2":
        embed = lambda ids: ids.to(torch.float32).unsqueeze(-1)  # noqa: E731 - one row per id, holding the id
        return SimpleNamespace(
            dtype=torch.float32,
            device="cpu",
            vis_processor=lambda image: torch.zeros(3, 2, 2),
            encode_img=lambda images: torch.full((images.shape[0], XCOMPOSER2_IMAGE_ROWS, 1), IMAGE_ROW),
            model=SimpleNamespace(tok_embeddings=embed),
        )
    if template_type in ("yi-vl", "llama-llava-next", "llava-qwen-instruct"):
        _install_llava_mm_utils()
        inner = SimpleNamespace(dtype=torch.float32, vision_tower=SimpleNamespace(image_processor=_ImageProcessor()))
        return SimpleNamespace(dtype=torch.float32, model=inner, config=SimpleNamespace())
    if template_type in ("llava-mistral", "llava-yi"):
        tokenizer.processor = SimpleNamespace(image_processor=_ImageProcessor())
        return SimpleNamespace(dtype=torch.float32)
    return None
