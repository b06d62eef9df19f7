"""Where the upstream code that produces oracle data lives, and how to lay it out in a scratch folder.

The code itself is never committed. Bring each repository with the search tool's ``fetch`` (a bare git
directory), then extract the pinned files into ``$VLMREF_UPSTREAM_DIR``::

    python scripts/oracle/upstream.py extract --mirrors /work/.mirror --out /work/scratch/upstream
    export VLMREF_UPSTREAM_DIR=/work/scratch/upstream     # qwen_vl/tokenization_qwen.py, cogvlm/..., ...

Each entry: destination folder -> (GitHub repo, commit, folder in the repo, file names). Line ends are made LF
(the Qwen-VL mirror has CRLF). Sources: ../shared/spec/upstream-sources.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

UPSTREAM: dict[str, tuple[str, str, str, tuple[str, ...]]] = {
    "qwen_vl": (
        "x1ngzai/Qwen-VL-Chat-Int4",
        "1cd721a27dd000fc4cf688c6ad58e614da1d600d",
        "",
        ("configuration_qwen.py", "modeling_qwen.py", "visual.py", "tokenization_qwen.py", "qwen_generation_utils.py",
         "config.json", "tokenizer_config.json", "generation_config.json"),
    ),
    # THUDM/cogvlm-chat-hf remote code (unmodified copy in MMMM's first commit; ../shared/spec/upstream-sources.md)
    "cogvlm": (
        "function2-llx/MMMM",
        "94dea139283280fccefe3fe42de7dec8f0cc193c",
        "mmmm/model/cogvlm",
        ("configuration_cogvlm.py", "modeling_cogvlm.py", "visual.py"),
    ),
    # Yi-VL's llava package (VL/llava/...); extracted with its folder structure under yi_vl/llava/
    "yi_vl": (
        "01-ai/Yi",
        "f73194cc16e82df438bc01240b8e4b622209f3eb",
        "VL",
        ("llava/__init__.py", "llava/conversation.py", "llava/mm_utils.py", "llava/model/__init__.py",
         "llava/model/clip_encoder/builder.py", "llava/model/clip_encoder/clip_encoder.py",
         "llava/model/constants.py", "llava/model/llava_arch.py", "llava/model/llava_llama.py",
         "llava/model/multimodal_projector/builder.py"),
    ),
    # lmms-lab LLaVA-NeXT's llava package: the modules llava_llama / llava_qwen import (builder, arch, encoders)
    "llava_next_lmms": (
        "LLaVA-VL/LLaVA-NeXT",
        "df179663ae8b83207df100a1f7af24caec633ff9",
        "",
        ("llava/__init__.py", "llava/constants.py", "llava/conversation.py", "llava/mm_utils.py", "llava/utils.py",
         "llava/model/__init__.py", "llava/model/llava_arch.py", "llava/model/builder.py",
         "llava/model/language_model/llava_llama.py", "llava/model/language_model/llava_qwen.py",
         "llava/model/multimodal_encoder/builder.py", "llava/model/multimodal_encoder/clip_encoder.py",
         "llava/model/multimodal_projector/builder.py", "llava/model/multimodal_projector/pooler_projector.py",
         "llava/model/multimodal_resampler/builder.py",
         # imported by the two builders (unused here, but the imports must resolve)
         "llava/model/multimodal_encoder/imagebind.py", "llava/model/multimodal_encoder/open_clip_encoder.py",
         "llava/model/multimodal_encoder/hf_vision.py", "llava/model/multimodal_encoder/siglip_encoder.py",
         "llava/model/multimodal_encoder/mlcd_encoder.py", "llava/model/multimodal_encoder/mlcd/vit_rope2d_hf.py",
         "llava/model/multimodal_resampler/masked_drop.py", "llava/model/multimodal_resampler/spatial_pool.py",
         "llava/model/multimodal_resampler/perceiver.py", "llava/model/multimodal_resampler/qformer.py"),
    ),
    # InternLM-XComposer-2.5 (OmniLive base model: IXC-2.5 + video_mem_proj)
    "xcomposer2d5": (
        "InternLM/InternLM-XComposer",
        "0f70c3e3911189de1869396b4017714c31821e3a",
        "InternLM-XComposer-2.5-OmniLive/internlm-xcomposer2d5-ol-7b/base",
        ("build_mlp.py", "configuration_internlm_xcomposer2.py", "ixc_utils.py", "modeling_internlm2.py",
         "modeling_internlm_xcomposer2.py", "tokenization_internlm2.py"),
    ),
}

# InternLM-XComposer2's own tokenizer class is not public as unmodified hub code; the XComposer-2.5 OmniLive base
# model ships InternLM2's tokenizer class and the same tokenizer.model (sha256 f868398f...).
UPSTREAM["internlm2_tokenizer"] = (
    "InternLM/InternLM-XComposer",
    "0f70c3e3911189de1869396b4017714c31821e3a",
    "InternLM-XComposer-2.5-OmniLive/internlm-xcomposer2d5-ol-7b/base",
    ("tokenization_internlm2.py",),
)

# Qwen-7B(-Chat)'s own tokenizer (no Qwen-VL image tokens) for the text template 'qwen': a mirror of the hub repo at
# its final revision (Dec 2023); Qwen-7B-Chat's tokenization_qwen.py is the same code (not checked byte for byte).
UPSTREAM["qwen_7b"] = (
    "zhangningboo/Qwen-7B",
    "ffe04dd57f85293043ba999a2c0daa788d6182e9",
    "",
    ("tokenization_qwen.py", "tokenizer_config.json"),
)

ENV = "VLMREF_UPSTREAM_DIR"


def upstream_dir(name: str) -> Path:
    """The extracted folder for ``name``; a clear error when ``$VLMREF_UPSTREAM_DIR`` is unset or lacks it."""
    root = os.environ.get(ENV)
    if not root:
        raise SystemExit(f"error: set {ENV} to the folder written by 'python scripts/oracle/upstream.py extract'")
    folder = Path(root) / name
    if not folder.is_dir():
        repo, commit, _, _ = UPSTREAM[name]
        raise SystemExit(f"error: {folder} is missing: fetch github:{repo} and extract it ({repo} @ {commit[:12]})")
    return folder


def _git_dir(mirrors: Path, repo: str) -> Path:
    return mirrors / repo.replace("/", "+") / "repo"


def extract(mirrors: Path, out: Path, names: list[str] | None = None) -> None:
    for name, (repo, commit, folder, files) in UPSTREAM.items():
        if names and name not in names:
            continue
        git_dir = _git_dir(mirrors, repo)
        if not git_dir.is_dir():
            raise SystemExit(f"error: {git_dir} not found: fetch github:{repo} first")
        dest = out / name
        dest.mkdir(parents=True, exist_ok=True)
        for file in files:
            path = f"{folder}/{file}" if folder else file
            blob = subprocess.run(
                ["git", "--git-dir", str(git_dir), "show", f"{commit}:{path}"], check=True, capture_output=True
            ).stdout
            target = dest / file  # keeps sub-folders (packages such as llava/)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(blob.replace(b"\r\n", b"\n"))
        (dest / "UPSTREAM").write_text(f"{repo} @ {commit} {folder or '.'}\n")
        print(f"{name}: {len(files)} files from {repo} @ {commit[:12]} -> {dest}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    ex = sub.add_parser("extract", help="write the pinned upstream files into OUT/<name>/")
    ex.add_argument("--mirrors", type=Path, default=Path("/work/.mirror"))
    ex.add_argument("--out", type=Path, default=Path(os.environ.get(ENV, "/work/scratch/upstream")))
    ex.add_argument("names", nargs="*")
    args = parser.parse_args(argv)
    extract(args.mirrors, args.out, args.names)
    return 0


if __name__ == "__main__":
    sys.exit(main())
