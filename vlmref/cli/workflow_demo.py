"""``vlmref demo --workflow``: the seeds' workflow end to end on a tiny model, on any machine.

create-tiny -> ``vlmref sft`` (LoRA, DEFAULT targets) on the offline ``coco-en-2-mini-sample`` -> ``vlmref export
--merge_lora true`` -> ``inference()`` on the merged model; prints the seed-style commands it ran and where every
artefact went::

    [1/4] tiny checkpoint   demo_out/tiny-llava1d6-mistral-7b-instruct
    [2/4] vlmref sft ...    demo_out/output/llava1d6-mistral-7b-instruct/v0-.../checkpoint-12
    [3/4] vlmref export ... demo_out/output/.../checkpoint-12-merged
    [4/4] inference         'a red circle on a white background'
"""

from __future__ import annotations

import glob
import os
import shlex
from pathlib import Path

DEFAULT_MODEL_TYPE = "llava1d6-mistral-7b-instruct"
DATASET = "coco-en-2-mini-sample#4"


def latest_checkpoint(output_dir: Path, model_type: str) -> Path:
    found = glob.glob(str(output_dir / model_type / "v*" / "checkpoint-*"))
    found = [p for p in found if not p.endswith("-merged") and os.path.isdir(p)]
    if not found:
        raise FileNotFoundError(f"no checkpoint under {output_dir / model_type}")
    return Path(max(found, key=lambda p: (os.path.getmtime(p), int(p.rsplit("-", 1)[-1]))))


def run_workflow_demo(out_dir: str | os.PathLike = "demo_out", model_type: str = DEFAULT_MODEL_TYPE,
                      max_steps: int = 12) -> int:
    from ..llm.ckpt import load_from_ckpt
    from ..llm.inference import inference
    from ..models.model_types import MODELS
    from ..models.tiny import create_tiny_checkpoint
    from ..templates import get_template
    from . import export, sft

    out = Path(out_dir).resolve()
    tiny = out / f"tiny-{model_type}"
    print(f"[1/4] tiny checkpoint: vlmref create-tiny --model_type {model_type} --out {tiny}")
    create_tiny_checkpoint(model_type, tiny, overwrite=True)

    output_dir = out / "output"
    sft_argv = ["--model_type", model_type, "--model_id_or_path", str(tiny), "--dataset", DATASET,
                "--max_steps", str(max_steps), "--learning_rate", "5e-3", "--gradient_accumulation_steps", "1",
                "--dataset_test_ratio", "0.25", "--eval_steps", str(max_steps), "--logging_steps", "2",
                "--output_dir", str(output_dir)]
    print(f"[2/4] vlmref sft {shlex.join(sft_argv)}")
    if sft.main(sft_argv) != 0:
        return 1
    ckpt = latest_checkpoint(output_dir, MODELS.canonical(model_type))
    print(f"      checkpoint: {ckpt}\n      training log: {ckpt.parent / 'logging.jsonl'}")

    export_argv = ["--ckpt_dir", str(ckpt), "--merge_lora", "true", "--overwrite"]
    print(f"[3/4] vlmref export {shlex.join(export_argv)}")
    if export.main(export_argv) != 0:
        return 1
    merged = Path(str(ckpt) + "-merged")
    print(f"      merged model: {merged}")

    model, tokenizer, sft_args = load_from_ckpt(str(merged))
    template = get_template(sft_args["template_type"], tokenizer, default_system=sft_args.get("system"),
                            **MODELS.get(model_type).media_options)
    from ..datasets.named import load_named_dataset

    row = load_named_dataset(DATASET)[0]
    model.generation_config.max_new_tokens = 16
    model.generation_config.do_sample = False
    response, _ = inference(model, template, row["query"], images=row["images"])
    print(f"[4/4] inference on {row['images'][0]}\n      query: {row['query']!r}\n      response: {response!r}\n"
          f"      (label: {row['response']!r}; a tiny random model after {max_steps} steps, so expect noise)")
    print(f"\nEverything is under {out}. Interactive chat with the merged model:\n"
          f"  vlmref infer --ckpt_dir {shlex.quote(str(merged))}\n"
          f"Evaluate it on the validation split it was trained without:\n"
          f"  vlmref infer --ckpt_dir {shlex.quote(str(merged))} --load_dataset_config true")
    return 0
