"""What ``vlmref sft`` does to a loaded model before training: ``use_cache``, gradient checkpointing, LoRA or every
parameter trainable; the same code for a real run and (later) the memory predictor.

::

    from vlmref.models.loader import get_model_tokenizer
    from vlmref.training.model_prep import first_float_dtype, prepare_model_for_training
    model, tokenizer = get_model_tokenizer(args.model_type, args.torch_dtype, {})
    model = prepare_model_for_training(model, args)   # a peft model under --sft_type lora
    first_float_dtype(model)                           # the dtype batches are cast to, e.g. torch.bfloat16

``args`` must be resolved (``SftArguments.resolve``: ``gradient_checkpointing`` is a bool then).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..llm.sft_args import SftArguments
from .lora import add_lora


def prepare_model_for_training(model: Any, args: SftArguments, log: Callable[[str], None] = print) -> Any:
    """Prepare ``model`` (already loaded and placed) for training as ``vlmref sft`` does, in this order:

    * ``model.config.use_cache = False`` with gradient checkpointing (else left as it is);
    * ``--gradient_checkpointing``: the model's ``activation_checkpointing_enable`` (XComposer2) or
      ``gradient_checkpointing_enable``, then ``enable_input_require_grads`` (so frozen embeddings still let
      gradients reach the checkpointed blocks);
    * ``--sft_type lora``: peft LoRA (``add_lora``: resolved targets recorded in ``args`` and logged); ``full``:
      every parameter ``requires_grad``;
    * the trainable-parameter count is logged.

    Returns the model to train (the peft wrapper under LoRA).
    """
    model.config.use_cache = False if args.gradient_checkpointing else getattr(model.config, "use_cache", None)
    if args.gradient_checkpointing:
        enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
        enable()
        model.enable_input_require_grads()
        log("gradient_checkpointing: on (model.config.use_cache = False, enable_input_require_grads)")
    else:
        log("gradient_checkpointing: off")
    if args.sft_type == "lora":
        model = add_lora(model, args, log)
    else:
        for p in model.parameters():
            p.requires_grad_(True)
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    n_all = sum(p.numel() for p in model.parameters())
    log(f"trainable parameters: {n_train:,} of {n_all:,} ({100 * n_train / max(n_all, 1):.4f}%)")
    return model


def first_float_dtype(model: Any) -> Any:
    """The dtype of the model's first floating-point parameter: what floating batch tensors are cast to."""
    return next(p.dtype for p in model.parameters() if p.is_floating_point())
