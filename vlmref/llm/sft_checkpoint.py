"""Checkpoints of ``vlmref sft``: atomic writes (``.tmp-checkpoint-N`` then one ``os.replace``), rotation, RNG state.

A run killed during a save leaves at most a ``.tmp-*`` folder; every ``checkpoint-*`` folder is complete.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import time
from typing import TYPE_CHECKING, Any

from ..utils import chmod_per_umask
from .dist import DistSetting, _barrier
from .safe_state import save_rng_state

if TYPE_CHECKING:
    from .sft import SftRun

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
SAVE_HOOK_ENV = "VLMREF_TEST_SAVE_HOOK"  # tests: "<step>:sleep:<seconds>" or "<step>:abort" in the middle of a save

def _save_hook(step: int, tmp_dir: str) -> None:
    """Test hook: ``VLMREF_TEST_SAVE_HOOK=<step>:sleep:<s>`` or ``<step>:abort`` stops a save half-way."""
    spec = os.environ.get(SAVE_HOOK_ENV)
    if not spec:
        return
    parts = spec.split(":")
    if int(parts[0]) != step:
        return
    with open(os.path.join(tmp_dir, "HOOK_REACHED"), "w") as f:
        f.write(str(os.getpid()))
    if parts[1] == "abort":
        os._exit(70)
    time.sleep(float(parts[2]))


def _fsync_tree(path: str) -> None:
    for root, _dirs, files in os.walk(path):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def list_checkpoints(run_dir: str) -> list[str]:
    found = []
    for name in os.listdir(run_dir):
        m = CHECKPOINT_RE.match(name)
        if m and os.path.isdir(os.path.join(run_dir, name)):
            found.append((int(m.group(1)), os.path.join(run_dir, name)))
    return [p for _, p in sorted(found)]


def checkpoints_to_delete(checkpoints: list[str], limit: int | None, best: str | None) -> list[str]:
    """HF Trainer ``_rotate_checkpoints``: keep the newest ``limit``; the best one is moved to the second-newest place
    so it survives (with limit 1 and best != last, two are kept)."""
    if limit is None or limit <= 0 or len(checkpoints) <= limit:
        return []
    order = list(checkpoints)
    if best is not None and best in order:
        i = order.index(best)
        for j in range(i, len(order) - 2):
            order[j], order[j + 1] = order[j + 1], order[j]
    if best is not None and limit == 1 and order[-1] != best:
        limit = 2
    return order[: max(len(order) - limit, 0)]


def remove_dir_atomically(path: str) -> None:
    """Rename out of the ``checkpoint-*`` namespace first, then delete: a kill mid-delete leaves no half checkpoint."""
    parent, name = os.path.split(path)
    trash = os.path.join(parent, f".deleting-{name}")
    if os.path.exists(trash):
        shutil.rmtree(trash, ignore_errors=True)
    os.replace(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


def rng_file(dist: DistSetting) -> str:
    return f"rng_state_{dist.rank}.pth" if dist.is_dist else "rng_state.pth"


def get_rng_state() -> dict[str, Any]:
    import numpy as np
    import torch

    state = {"python": random.getstate(), "numpy": np.random.get_state(), "cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    import numpy as np
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ---- the writer ----------------------------------------------------------------------------------------------------
class CheckpointWriter:
    """Writes ``checkpoint-<step>/`` atomically: everything goes to ``.tmp-checkpoint-<step>/`` in the run dir (every
    rank writes its part: its RNG state and, under DeepSpeed, its ZeRO shards), then rank 0 fsyncs and renames it with
    one ``os.replace``. A run killed during a save leaves at most a ``.tmp-*`` folder; every ``checkpoint-*`` folder is
    complete. Contents:

    * LoRA: ``adapter_config.json`` + ``adapter_model.safetensors`` (peft), ``configuration.json`` (ms-swift's
      ``adapter_cfg``). Full: the model's ``save_pretrained`` output (config.json + safetensors), the tokenizer files
      and ``vlmref_processor.json`` copied from the base model folder.
    * Both: ``sft_args.json``, ``generation_config.json`` (bos/eos/pad + ms-swift's generation defaults),
      ``trainer_state.json``, ``rng_state[_<rank>].pth``; without DeepSpeed ``optimizer.pt`` + ``scheduler.pt``
      (skipped with ``--save_only_model true``, ms-swift's default for full); with DeepSpeed its
      ``global_step<N>/`` state (+ ``latest``), written by ``engine.save_checkpoint``.
    """

    def __init__(self, run: SftRun) -> None:
        self.run = run

    def write(self, step: int) -> str:
        import torch

        run, dist, args = self.run, self.run.dist, self.run.args
        name = f"checkpoint-{step}"
        final_dir = os.path.join(run.run_dir, name)
        tmp = os.path.join(run.run_dir, f".tmp-{name}")
        if dist.is_master:
            if os.path.exists(tmp):
                shutil.rmtree(tmp)
            os.makedirs(tmp)
        _barrier()
        state_dict = None
        if run.engine is not None:
            run.engine.save_checkpoint(tmp, tag=f"global_step{step}",
                                       exclude_frozen_parameters=args.sft_type == "lora")
            if run.engine.zero_optimization_stage() == 3:
                state_dict = run.engine._zero3_consolidated_16bit_state_dict(
                    exclude_frozen_parameters=args.sft_type == "lora")
        save_rng_state(os.path.join(tmp, rng_file(dist)))  # tensors and numbers only (safe_state)
        if dist.is_master:
            self._write_model(tmp, state_dict)
            if run.engine is None and not args.save_only_model:
                torch.save(run.optimizer.state_dict(), os.path.join(tmp, "optimizer.pt"))
                torch.save(run.scheduler.state_dict(), os.path.join(tmp, "scheduler.pt"))
            _save_hook(step, tmp)
            run._write_json(os.path.join(tmp, "sft_args.json"), args.to_dict())
            run._write_json(os.path.join(tmp, "trainer_state.json"), run.trainer_state())
        _barrier()
        if dist.is_master:
            chmod_per_umask(tmp)  # save_pretrained writes 0600 files: checkpoints get the umask's modes
            _fsync_tree(tmp)
            if os.path.exists(final_dir):  # only when a run dir is reused (--add_output_dir_suffix false)
                remove_dir_atomically(final_dir)
            os.replace(tmp, final_dir)
            run.log(f"Saving model checkpoint to {final_dir}")
        _barrier()
        return final_dir

    def _write_model(self, out: str, state_dict: dict[str, Any] | None) -> None:
        run, args = self.run, self.run.args
        model = run.model
        kw = {"safe_serialization": True}
        if state_dict is not None:
            kw["state_dict"] = state_dict
        model.save_pretrained(out, **kw)
        base = args.model_id_or_path
        if args.sft_type == "full":
            from ..models.tiny import TOKENIZER_FILES

            for fname in (*TOKENIZER_FILES, "vlmref_processor.json"):
                src = os.path.join(base, fname)
                if os.path.isfile(src):
                    shutil.copyfile(src, os.path.join(out, fname))
        else:
            cfg_path = os.path.join(base, "configuration.json")
            cfg = json.load(open(cfg_path, encoding="utf-8")) if os.path.isfile(cfg_path) else {}
            cfg["adapter_cfg"] = {"model_id_or_path": base, "model_revision": None, "sft_type": args.sft_type,
                                  "tuner_backend": "peft", "template_type": args.template_type, "dtype": args.dtype,
                                  "system": args.system}
            run._write_json(os.path.join(out, "configuration.json"), cfg)
        tok = run.tokenizer
        run._write_json(os.path.join(out, "generation_config.json"), {
            "bos_token_id": getattr(tok, "bos_token_id", None), "eos_token_id": tok.eos_token_id,
            "pad_token_id": tok.pad_token_id, "max_new_tokens": args.max_new_tokens, "do_sample": args.do_sample,
            "temperature": args.temperature, "top_k": args.top_k, "top_p": args.top_p,
            "repetition_penalty": args.repetition_penalty, "num_beams": args.num_beams})

