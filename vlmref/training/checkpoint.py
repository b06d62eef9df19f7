"""Checkpoints of ``vlmref sft``: written atomically from an explicit ``CheckpointPayload``, rotated to
``save_total_limit``; the RNG state helpers a resume needs.

::

    from vlmref.training.checkpoint import CheckpointPayload, save_checkpoint
    payload = CheckpointPayload(run_dir, step=4, model=model, tokenizer=tokenizer, args=args,
                                trainer_state=trainer_state_dict(state, plan, args, 1), dist=dist,
                                optimizer=optimizer, scheduler=scheduler)
    save_checkpoint(payload)   # '<run_dir>/checkpoint-4' (older ones beyond --save_total_limit deleted)

A run killed during a save leaves at most a ``.tmp-*`` folder; every ``checkpoint-*`` folder is complete. The best
checkpoint (lowest eval_loss, ``trainer_state['best_model_checkpoint']``) survives the rotation.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..llm.safe_state import save_rng_state
from ..llm.sft_args import SftArguments
from ..utils import chmod_per_umask
from .dist import DistSetting, barrier

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


def write_json(path: str, data: Any) -> None:
    """Indented UTF-8 JSON, written atomically, with the umask's file mode (mkstemp would leave 0600)."""
    from ..utils import atomic_write_bytes

    atomic_write_bytes(path, (json.dumps(data, ensure_ascii=False, indent=2) + "\n").encode("utf-8"))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)  # mkstemp creates 0600; checkpoints are shared files


# ---- rotation --------------------------------------------------------------------------------------------------------
def list_checkpoints(run_dir: str) -> list[str]:
    """The ``checkpoint-<N>`` folders of ``run_dir``, by step."""
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


# ---- RNG state -------------------------------------------------------------------------------------------------------
def rng_file(dist: DistSetting) -> str:
    """``rng_state.pth`` (one process) or ``rng_state_<rank>.pth``."""
    return f"rng_state_{dist.rank}.pth" if dist.is_dist else "rng_state.pth"


def get_rng_state() -> dict[str, Any]:
    """This process's python / numpy / torch CPU (and CUDA) RNG states."""
    import numpy as np
    import torch

    state = {"python": random.getstate(), "numpy": np.random.get_state(), "cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what ``get_rng_state`` (or ``safe_state.load_rng_state``) returned."""
    import numpy as np
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ---- the writer ------------------------------------------------------------------------------------------------------
@dataclass
class CheckpointPayload:
    """What one checkpoint is written from (the same on every rank; each rank writes its part).

    ``run_dir``: the folder ``checkpoint-<step>/`` goes to. ``model``: the model whose ``save_pretrained`` writes the
    weights (the peft model under LoRA: the adapter). ``args``: the run's flags (``sft_args.json``; ``sft_type``,
    ``save_only_model``, ``save_total_limit``, the base folder ``model_id_or_path`` whose tokenizer files or
    ``configuration.json`` are copied, the generation defaults). ``tokenizer``: its bos/eos/pad ids go to
    ``generation_config.json``. ``trainer_state``: the ``trainer_state.json`` content (its ``best_model_checkpoint``
    survives rotation). ``optimizer``/``scheduler``: saved without DeepSpeed unless ``save_only_model``. ``engine``:
    the DeepSpeed engine, which saves its own state. The RNG state saved is the process's at write time.
    """

    run_dir: str
    step: int
    model: Any
    tokenizer: Any
    args: SftArguments
    trainer_state: dict[str, Any]
    dist: DistSetting
    optimizer: Any = None
    scheduler: Any = None
    engine: Any = None
    log: Callable[[str], None] = print
    writer: bool | None = None  # this rank writes the shared files (``run_dir.prepare_run_dir``); None: rank 0

    @property
    def writes_files(self) -> bool:
        return self.dist.is_master if self.writer is None else self.writer


class CheckpointWriter:
    """Writes ``checkpoint-<step>/`` atomically: everything goes to ``.tmp-checkpoint-<step>/`` in the run dir (every
    rank writes its part: its RNG state and, under DeepSpeed, its ZeRO shards), then rank 0 fsyncs and renames it with
    one ``os.replace``. On several nodes without shared storage each node writes and renames its own copy
    (``payload.writer``); a rank's RNG state is in its node's copy. A run killed during a save leaves at most a ``.tmp-*`` folder; every ``checkpoint-*`` folder is
    complete. Contents:

    * LoRA: ``adapter_config.json`` + ``adapter_model.safetensors`` (peft), ``configuration.json`` (ms-swift's
      ``adapter_cfg``). Full: the model's ``save_pretrained`` output (config.json + safetensors), the tokenizer files
      and ``vlmref_processor.json`` copied from the base model folder.
    * Both: ``sft_args.json``, ``generation_config.json`` (bos/eos/pad + ms-swift's generation defaults),
      ``trainer_state.json``, ``rng_state[_<rank>].pth``; without DeepSpeed ``optimizer.pt`` + ``scheduler.pt``
      (skipped with ``--save_only_model true``, ms-swift's default for full); with DeepSpeed its
      ``global_step<N>/`` state (+ ``latest``), written by ``engine.save_checkpoint``.

    ``CheckpointWriter(payload).write()`` -> the checkpoint folder. A collective: call on every rank.
    """

    def __init__(self, payload: CheckpointPayload) -> None:
        self.payload = payload

    def write(self) -> str:
        import torch

        p = self.payload
        dist, args, engine, step = p.dist, p.args, p.engine, p.step
        name = f"checkpoint-{step}"
        final_dir = os.path.join(p.run_dir, name)
        tmp = os.path.join(p.run_dir, f".tmp-{name}")
        writer = p.writes_files  # rank 0, and the first rank of a node with storage of its own
        if writer:
            if os.path.exists(tmp):
                shutil.rmtree(tmp)
            os.makedirs(tmp)
        barrier()
        state_dict = None
        if engine is not None:
            engine.save_checkpoint(tmp, tag=f"global_step{step}", exclude_frozen_parameters=args.sft_type == "lora")
            if engine.zero_optimization_stage() == 3:
                state_dict = engine._zero3_consolidated_16bit_state_dict(
                    exclude_frozen_parameters=args.sft_type == "lora")
        save_rng_state(os.path.join(tmp, rng_file(dist)))  # tensors and numbers only (safe_state)
        if writer:
            self._write_model(tmp, state_dict)
            if engine is None and not args.save_only_model:
                torch.save(p.optimizer.state_dict(), os.path.join(tmp, "optimizer.pt"))
                torch.save(p.scheduler.state_dict(), os.path.join(tmp, "scheduler.pt"))
            _save_hook(step, tmp)
            write_json(os.path.join(tmp, "sft_args.json"), args.to_dict())
            write_json(os.path.join(tmp, "trainer_state.json"), p.trainer_state)
        barrier()
        if writer:
            chmod_per_umask(tmp)  # save_pretrained writes 0600 files: checkpoints get the umask's modes
            _fsync_tree(tmp)
            if os.path.exists(final_dir):  # only when a run dir is reused (--add_output_dir_suffix false)
                remove_dir_atomically(final_dir)
            os.replace(tmp, final_dir)
            p.log(f"Saving model checkpoint to {final_dir}")
        barrier()
        return final_dir

    def _write_model(self, out: str, state_dict: dict[str, Any] | None) -> None:
        p = self.payload
        args = p.args
        kw = {"safe_serialization": True}
        if state_dict is not None:
            kw["state_dict"] = state_dict
        p.model.save_pretrained(out, **kw)
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
            write_json(os.path.join(out, "configuration.json"), cfg)
        tok = p.tokenizer
        write_json(os.path.join(out, "generation_config.json"), {
            "bos_token_id": getattr(tok, "bos_token_id", None), "eos_token_id": tok.eos_token_id,
            "pad_token_id": tok.pad_token_id, "max_new_tokens": args.max_new_tokens, "do_sample": args.do_sample,
            "temperature": args.temperature, "top_k": args.top_k, "top_p": args.top_p,
            "repetition_penalty": args.repetition_penalty, "num_beams": args.num_beams})


def save_checkpoint(payload: CheckpointPayload) -> str:
    """Write ``checkpoint-<step>/`` (``CheckpointWriter``), then (rank 0) delete the checkpoints beyond
    ``args.save_total_limit``, keeping ``trainer_state['best_model_checkpoint']``. A collective: call on every rank."""
    final_dir = CheckpointWriter(payload).write()
    limit = payload.args.save_total_limit
    if payload.writes_files:
        for old in checkpoints_to_delete(list_checkpoints(payload.run_dir), limit,
                                         payload.trainer_state.get("best_model_checkpoint")):
            remove_dir_atomically(old)
            payload.log(f"deleted {old} (save_total_limit {limit})")
    barrier()
    return final_dir
