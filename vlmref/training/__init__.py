"""The training library of ``vlmref sft``: the components a run is made of, each usable on its own (torchtune-style:
the library apart from the recipe, ``vlmref.llm.sft``, which wires them).

::

    from vlmref.training import Plan, build_optimizer, prepare_model_for_training, train_step
    model = prepare_model_for_training(model, args)          # gradient checkpointing, LoRA or full
    optimizer = build_optimizer(model, args)
    train_step(model, [batch], optimizer=optimizer, scheduler=scheduler, max_grad_norm=args.max_grad_norm)

Modules: ``run_dir`` (the versioned output folder), ``device_map`` (where the model loads), ``lora`` (targets and
wrapping), ``model_prep`` (the model made trainable), ``plan`` (rows per rank, steps per epoch), ``optim`` (AdamW,
schedule, DDP), ``deepspeed_config`` ("auto" values, the engine), ``step`` (one optimizer step), ``evaluate`` (eval
loss/accuracy), ``state`` (the training state, ``trainer_state.json``), ``metrics`` (memory, progress),
``checkpoint`` (atomic checkpoints, rotation, RNG state), ``resume`` (reading a checkpoint back).

The library imports ``vlmref.llm``'s lower modules (``dist``, ``sft_args``, ``safe_state``), ``models`` and
``utils``, never the recipe (``vlmref.llm.sft``), the commands (``vlmref.cli``) or ``vlmref.memory``.
"""

from __future__ import annotations

from .checkpoint import CheckpointPayload, CheckpointWriter, save_checkpoint
from .deepspeed_config import fill_deepspeed_config, init_deepspeed
from .device_map import sft_model_kwargs
from .evaluate import EvalSums, evaluate
from .lora import add_lora, group_module_names, lora_module_names, resolve_lora_target_modules
from .metrics import peak_memory
from .model_prep import first_float_dtype, prepare_model_for_training
from .optim import build_optimizer, build_scheduler, decay_parameter_names, warmup_steps, wrap_ddp
from .plan import Plan, epoch_order
from .run_dir import make_run_dir, next_version_dir
from .state import TrainState, Window, trainer_state_dict
from .step import StepResult, forward_with_accuracy, train_step

__all__ = [
    "CheckpointPayload", "CheckpointWriter", "EvalSums", "Plan", "StepResult", "TrainState", "Window", "add_lora",
    "build_optimizer", "build_scheduler", "decay_parameter_names", "epoch_order", "evaluate", "fill_deepspeed_config",
    "first_float_dtype", "forward_with_accuracy", "group_module_names", "init_deepspeed", "lora_module_names",
    "make_run_dir", "next_version_dir", "peak_memory", "prepare_model_for_training", "resolve_lora_target_modules",
    "save_checkpoint", "sft_model_kwargs", "train_step", "trainer_state_dict", "warmup_steps", "wrap_ddp",
]
