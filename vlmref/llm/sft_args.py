"""``SftArguments``: ms-swift 2.2.0's ``swift sft`` flags, names and defaults, and the flag parser ``vlmref sft`` uses.

::

    args = parse_sft_args(['--model_type', 'qwen-vl-chat', '--dataset', 'coco-en-mini-sample#4',
                           '--model_id_or_path', '/tmp/tiny-qwen-vl', '--max_steps', '2'])
    args.resolve(world_size=1)        # AUTO values -> concrete ones (dtype, learning_rate, gradient_accumulation_steps ...)

Defaults are ms-swift 2.2.0's ``SftArguments`` (argument.py L434-1046, spec section B.1). ``None`` fields are
resolved by ``resolve`` the way ms-swift's ``__post_init__`` does:

* ``learning_rate`` None -> 1e-4 (lora) / 1e-5 (full); ``gradient_accumulation_steps`` None ->
  ``ceil(16 / batch_size / world_size)``; ``save_steps`` None -> ``eval_steps``; ``eval_batch_size`` None ->
  ``batch_size``; ``gradient_checkpointing`` None -> the registry's default (False for CogVLM);
  ``add_output_dir_suffix`` None -> True; ``save_total_limit`` -1 -> unlimited; ``max_length`` -1 -> no limit.
* ``dtype`` AUTO -> fp32 on CPU (fp16 refused there); on a GPU bf16 when supported, else fp16; fp16 with
  ``--sft_type full`` -> fp32 (warning), as ms-swift.
* ``--deepspeed default-zero2|default-zero3|zero3-offload|PATH.json`` -> the config dict (``vlmref/llm/ds_config``).
* ``--template_profile official|swift-2.2.0`` (vlmref): ms-swift 2.2.0's exact ids with the second, markers it left
  for the model expanded model-side (``vlmref.templates.media.ModelSideMedia``); refused for a template it lacks.
* ``--lora_target_modules``: a comma-separated single value is split; ``AUTO`` -> ``DEFAULT``. ``DEFAULT``/``ALL``
  are expanded against the loaded model in ``sft`` (``resolve_lora_target_modules``).

Flags are parsed like HfArgumentParser: ``--flag value`` or ``--flag=value``; booleans take ``true``/``false``
(also ``1/0``, ``yes/no``; a bare ``--flag`` means true); list flags take several values; Optional flags take
``None``. A first argument ending in ``.json`` is read as a file of defaults (ms-swift's ``parse_args``). Blank
arguments (a shell line ending in a backslash followed by spaces passes ``' '``, as in the CogVLM seed) are ignored.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import math
import os
import sys
import textwrap
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from ..flags import or_none, parse_bool  # noqa: F401 - parse_bool: re-exported

DS_CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ds_config")
DEEPSPEED_NAMES = {"default-zero2": "zero2.json", "default-zero3": "zero3.json", "zero3-offload": "zero3.json"}
SFT_TYPES = ("lora", "full")
UPSTREAM_ONLY_SFT_TYPES = ("longlora", "adalora", "ia3", "llamapro", "adapter", "vera", "boft")

# ms-swift 2.2.0 flags vlmref accepts and ignores (the behaviour they select is fixed in vlmref), with the reason
IGNORED_FLAGS = {
    "use_flash_attn": "vlmref's models always use torch SDPA attention",
    "lazy_tokenize": "vlmref always encodes lazily, one sample at a time, and never substitutes a row",
    "preprocess_num_proc": "samples are encoded lazily in the training process",
    "dataloader_num_workers": "samples are encoded and collated in the training process",
    "dataloader_pin_memory": "batches are built in the training process",
    "report_to": "metrics go to logging.jsonl (no tensorboard writer)",
    "logging_dir": "metrics go to <run dir>/logging.jsonl",
    "tuner_backend": "LoRA always uses peft (ms-swift's default backend)",
    "check_model_is_latest": "no hub check",
    "acc_strategy": "train/eval accuracy is token accuracy (ms-swift's default 'token')",
    "save_on_each_node": "checkpoints are written by rank 0 (DeepSpeed shards by every rank) into the run dir",
}
# ms-swift 2.2.0 flags that select behaviour vlmref does not implement
UNSUPPORTED_FLAGS = (
    "quant_method", "quantization_bit", "bnb_4bit_comp_dtype", "bnb_4bit_quant_type", "bnb_4bit_use_double_quant",
    "hqq_axis", "packing", "sequence_parallel_size", "neftune_noise_alpha", "use_galore", "lisa_activated_layers",
    "freeze_parameters", "additional_trainable_parameters", "lora_modules_to_save", "lora_lr_ratio", "use_rslora",
    "use_dora", "lora_dtype", "init_lora_weights", "rope_scaling", "fsdp", "fsdp_config", "push_to_hub",
    "hub_model_id", "predict_with_generate", "custom_register_path", "custom_dataset_info", "model_revision",
    "device_map_config_path", "gpu_memory_fraction", "self_cognition_sample", "model_name", "model_author",
    "use_loss_scale", "loss_scale_config_path", "test_oom_error", "train_dataset_sample", "val_dataset_sample",
)


class SftArgumentError(ValueError):
    """A flag or value ``vlmref sft`` cannot take; the message names the flag."""


@dataclass
class SftArguments:
    # model
    model_type: str | None = None
    model_id_or_path: str | None = None
    tokenizer_id_or_path: str | None = None  # vlmref: the tokenizer's folder/hub id when the model has none (CogVLM)
    sft_type: str = "lora"  # lora | full (ms-swift's other tuners are refused in resolve() with a message)
    template_type: str = "AUTO"
    # vlmref: official | swift-2.2.0 (ms-swift 2.2.0's exact ids; markers it left for the model expanded model-side)
    template_profile: str = "official"
    output_dir: str = "output"
    add_output_dir_suffix: bool | None = None
    ddp_backend: Literal["nccl", "gloo", "mpi", "ccl", "hccl"] | None = None
    ddp_find_unused_parameters: bool | None = None
    ddp_broadcast_buffers: bool | None = None
    seed: int = 42
    resume_from_checkpoint: str | None = None
    resume_only_model: bool = False
    dtype: Literal["bf16", "fp16", "fp32", "AUTO"] = "AUTO"
    # data
    dataset: list[str] = field(default_factory=list)
    val_dataset: list[str] = field(default_factory=list)
    dataset_seed: int = 42
    dataset_test_ratio: float = 0.01
    system: str | None = None
    max_length: int = 2048
    truncation_strategy: Literal["delete", "truncation_left", "ignore"] = "delete"
    # vlmref: false (default) = ms-swift 2.2.0's budget, max_length bounds the text and image positions come on top;
    # true = max_length bounds the whole sequence the model sees (image positions included)
    max_length_counts_images: bool = False
    check_dataset_strategy: Literal["none", "discard", "error", "warning"] = "none"
    # lora
    lora_target_modules: list[str] = field(default_factory=lambda: ["DEFAULT"])
    lora_target_regex: str | None = None  # ms-swift >= 2.2.5; full-match regex on module names (peft)
    lora_rank: int = 8
    lora_alpha: int = 32
    lora_dropout_p: float = 0.05
    lora_bias_trainable: Literal["none", "all"] = "none"
    # training
    gradient_checkpointing: bool | None = None
    deepspeed: str | None = None
    batch_size: int = 1
    eval_batch_size: int | None = None
    num_train_epochs: int = 1
    max_steps: int = -1
    optim: Literal["adamw_torch"] = "adamw_torch"
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    learning_rate: float | None = None
    weight_decay: float = 0.1
    gradient_accumulation_steps: int | None = None
    max_grad_norm: float = 0.5
    lr_scheduler_type: Literal["cosine", "linear", "constant", "constant_with_warmup"] = "cosine"
    warmup_ratio: float = 0.05
    evaluation_strategy: Literal["steps", "no"] = "steps"
    eval_steps: int = 50
    save_strategy: Literal["steps", "no"] | None = None
    save_steps: int | None = None
    save_only_model: bool | None = None
    save_total_limit: int = 2
    logging_steps: int = 5
    dataloader_drop_last: bool = False
    disable_tqdm: bool = False
    save_safetensors: bool = True
    # generation config written into checkpoints (ms-swift sft.py L120-133)
    max_new_tokens: int = 2048
    do_sample: bool = True
    temperature: float = 0.3
    top_k: int = 20
    top_p: float = 0.7
    repetition_penalty: float = 1.0
    num_beams: int = 1

    # ---- set by resolve() ---------------------------------------------------------------------------------------
    def resolve(self, world_size: int = 1, rank: int = 0, *, cuda: bool | None = None,
                bf16_supported: bool | None = None, log: Any = print) -> SftArguments:
        """Fill every AUTO/None value as ms-swift's ``__post_init__`` does (see module docstring). Idempotent."""
        from ..models.model_types import MODELS
        from ..templates.meta import template_profile_error

        if getattr(self, "_resolved", False):
            return self
        if self.resume_from_checkpoint is not None:
            self._import_from_checkpoint()
        if not self.model_type:
            raise SftArgumentError("--model_type is required (e.g. --model_type qwen-vl-chat)")
        if self.model_type not in MODELS:
            raise SftArgumentError(f"unknown --model_type {self.model_type!r}; known: {', '.join(MODELS.names())}")
        meta = MODELS.get(self.model_type)
        self.model_type = meta.model_type  # canonical (seed) name; ms-swift 2.2.0 names are aliases
        if self.sft_type not in SFT_TYPES:
            kind = "an ms-swift 2.2.0 tuner" if self.sft_type in UPSTREAM_ONLY_SFT_TYPES else "unknown"
            raise SftArgumentError(f"--sft_type {self.sft_type!r} ({kind}) is not implemented by vlmref: use lora or full")
        self.dataset = _split_list(self.dataset)
        self.val_dataset = _split_list(self.val_dataset)
        if not self.dataset:
            raise SftArgumentError("--dataset is required (dataset names, name#N, or .json/.jsonl/.csv files)")
        if self.val_dataset:
            self.dataset_test_ratio = 0.0
        if self.truncation_strategy == "ignore":
            self.truncation_strategy = "delete"
        if self.template_type in ("AUTO", None):
            self.template_type = meta.template
        problem = template_profile_error(self.template_type, self.template_profile, self.max_length_counts_images)
        if problem:
            raise SftArgumentError(problem)
        self.lora_target_modules = normalize_lora_target_modules(self.lora_target_modules)
        if self.optim != "adamw_torch":
            raise SftArgumentError(f"--optim {self.optim!r}: vlmref implements adamw_torch only")
        if not self.save_safetensors:
            raise SftArgumentError("--save_safetensors false: vlmref writes safetensors only")
        self._resolve_dtype(cuda, bf16_supported, log)
        if self.sft_type == "lora":
            self.learning_rate = 1e-4 if self.learning_rate is None else self.learning_rate
            if self.save_only_model is None:
                self.save_only_model = False
        else:
            self.learning_rate = 1e-5 if self.learning_rate is None else self.learning_rate
            if self.save_only_model is None:
                self.save_only_model = True
        if self.batch_size < 1:
            raise SftArgumentError(f"--batch_size must be >= 1, got {self.batch_size}")
        self.eval_batch_size = self.eval_batch_size or self.batch_size
        if self.save_steps is None:
            self.save_steps = self.eval_steps
        if self.save_strategy is None:
            self.save_strategy = self.evaluation_strategy
        if self.gradient_accumulation_steps is None:
            self.gradient_accumulation_steps = math.ceil(16 / self.batch_size / world_size)
        for name in ("eval_steps", "save_steps", "logging_steps", "gradient_accumulation_steps"):
            if getattr(self, name) < 1:
                raise SftArgumentError(f"--{name} must be >= 1, got {getattr(self, name)}")
        if self.max_length is not None and self.max_length <= 0:
            self.max_length = None
        if self.gradient_checkpointing is None:
            self.gradient_checkpointing = meta.gradient_checkpointing
        elif self.gradient_checkpointing and not meta.gradient_checkpointing:
            log(f"note: ms-swift 2.2.0 registers {self.model_type} without gradient checkpointing; vlmref's model "
                "supports it, so --gradient_checkpointing true is honoured")
        if self.add_output_dir_suffix is None:
            self.add_output_dir_suffix = True
        if self.deepspeed is not None:
            self.deepspeed_config = load_deepspeed_config(self.deepspeed)
        else:
            self.deepspeed_config = None
        self.data_seed = self.seed  # the data order's seed: the same on every rank
        if world_size > 1:
            self.seed += rank  # ms-swift: different dropout per rank
        self.world_size = world_size
        self._resolved = True
        return self

    def _resolve_dtype(self, cuda: bool | None, bf16_supported: bool | None, log: Any) -> None:
        import torch

        cuda = torch.cuda.is_available() if cuda is None else cuda
        if not cuda:
            if self.dtype == "AUTO":
                self.dtype = "fp32"
            if self.dtype == "fp16":
                raise SftArgumentError("--dtype fp16: the CPU does not support matrix multiplication with fp16 "
                                       "(ms-swift refuses it too); use fp32 or bf16")
        elif self.dtype == "AUTO":
            if bf16_supported is None:
                bf16_supported = torch.cuda.is_bf16_supported()
            self.dtype = "bf16" if bf16_supported else "fp16"
        if self.dtype == "fp16" and self.sft_type == "full":
            log("warning: full-parameter fine-tuning does not support fp16 (prone to NaN); using fp32 + AMP, which "
                "takes about twice the memory of bf16 (as ms-swift 2.2.0)")
            self.dtype = "fp32"
        self.fp16 = self.dtype == "fp16"
        self.bf16 = self.dtype == "bf16"

    def _import_from_checkpoint(self) -> None:
        """ms-swift ``load_from_checkpoint``: model_type, model_id_or_path and dtype (if AUTO) from the checkpoint."""
        path = os.path.join(self.resume_from_checkpoint, "sft_args.json")
        if not os.path.isdir(self.resume_from_checkpoint):
            raise SftArgumentError(f"--resume_from_checkpoint {self.resume_from_checkpoint!r} is not a folder")
        if not os.path.isfile(path):
            return
        with open(path, encoding="utf-8") as f:
            saved = json.load(f)
        if self.model_type is None:
            self.model_type = saved.get("model_type")
        if self.model_id_or_path is None:
            self.model_id_or_path = saved.get("model_id_or_path")
        if self.dtype == "AUTO" and saved.get("dtype"):
            self.dtype = saved["dtype"]

    @property
    def torch_dtype(self):
        import torch

        return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[self.dtype]

    def to_dict(self) -> dict[str, Any]:
        """Every field, JSON-safe (non-JSON values as ``repr``, like ms-swift's ``check_json_format``)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for extra in ("deepspeed_config", "world_size", "data_seed", "lora_target_module_names"):
            if hasattr(self, extra):
                out[extra] = getattr(self, extra)
        return _json_safe(out)


# `vlmref sft --help`: one line per SftArguments field (ms-swift 2.2.0's meaning; "vlmref:" marks vlmref's own flags).
# The default and the choices are added from the dataclass (tests/test_cli_flags.py: one entry per field, no other).
SFT_HELP: dict[str, str] = {
    "model_type": "the model (seed name or ms-swift 2.2.0 alias; vlmref list models); required unless "
                  "resume_from_checkpoint names it",
    "model_id_or_path": "local model folder or hub id; None: the model type's hub id",
    "tokenizer_id_or_path": "vlmref: the tokenizer's folder or hub id when the model folder has none (CogVLM)",
    "sft_type": "lora: train LoRA adapters; full: train every parameter (ms-swift's other tuners are refused)",
    "template_type": "the chat template; AUTO: the model type's (vlmref list templates)",
    "template_profile": "vlmref: official = corrected templates; swift-2.2.0 = ms-swift 2.2.0's exact ids, markers "
                        "it left for the model expanded model-side",
    "output_dir": "where runs go",
    "add_output_dir_suffix": "put each run in <output_dir>/<model_type>/v<N>-<YYYYMMDD-HHMMSS>; None: true",
    "ddp_backend": "torch.distributed backend under torchrun (NPROC_PER_NODE); None: nccl on GPU, gloo on CPU",
    "ddp_find_unused_parameters": "DDP find_unused_parameters; None: true (vlmref; ms-swift: not "
                                  "gradient_checkpointing, which fails LLaVA/Yi-VL at step 2)",
    "ddp_broadcast_buffers": "DDP broadcast_buffers; None: not gradient_checkpointing",
    "seed": "global seed (LoRA init, dropout); each rank adds its rank under DDP",
    "resume_from_checkpoint": "a checkpoint-N folder to continue training from (model_type, model_id_or_path and "
                              "dtype come from its sft_args.json when not given)",
    "resume_only_model": "with resume_from_checkpoint: load the weights only; optimizer, scheduler and data "
                         "position start afresh",
    "dtype": "weights and compute dtype; AUTO: bf16 on a GPU that has it, else fp16; fp32 on CPU (fp16 with "
             "--sft_type full -> fp32)",
    "dataset": "training data, at least one: dataset names, name#N (N rows) or .json/.jsonl/.csv files; "
               "several values or one comma-separated",
    "val_dataset": "validation data used whole (then dataset_test_ratio is 0)",
    "dataset_seed": "seed of the train/validation split and of name#N sampling",
    "dataset_test_ratio": "share of each dataset held out for validation",
    "system": "system prompt; '' = none; None: the template's default",
    "max_length": "longest sample in tokens (text tokens: image positions come on top, see "
                  "max_length_counts_images); -1: no limit",
    "truncation_strategy": "a sample over max_length: delete = drop it (ignore is an alias); truncation_left = "
                           "keep its last max_length tokens",
    "max_length_counts_images": "vlmref: true = max_length bounds the whole sequence the model sees, image positions "
                                "included; false = ms-swift 2.2.0's text budget",
    "check_dataset_strategy": "rows breaking the model's rules: none = list them and stop before training; error = "
                              "stop at the first; warning = list and keep them; discard = drop them, each counted",
    "lora_target_modules": "modules LoRA wraps: DEFAULT (the model's list), ALL (every Linear but the output head) "
                           "or module names; AUTO = DEFAULT",
    "lora_target_regex": "full-match regex on module names, instead of lora_target_modules (ms-swift >= 2.2.5)",
    "lora_rank": "LoRA rank r",
    "lora_alpha": "LoRA alpha (the update is scaled by alpha / r)",
    "lora_dropout_p": "dropout on the LoRA input",
    "lora_bias_trainable": "none: biases frozen; all: every bias trained",
    "gradient_checkpointing": "recompute activations in the backward pass (less memory, slower); None: the model's "
                              "registry default (false for CogVLM)",
    "deepspeed": "DeepSpeed ZeRO config: ms-swift's default-zero2 / default-zero3 / zero3-offload (parameters "
                 "offloaded to CPU) or a JSON file; run under torchrun (NPROC_PER_NODE)",
    "batch_size": "training samples per device per micro-batch",
    "eval_batch_size": "validation batch size; None: batch_size",
    "num_train_epochs": "passes over the training set (unless max_steps)",
    "max_steps": "stop after this many optimizer steps; -1: num_train_epochs decides",
    "optim": "optimizer (vlmref implements adamw_torch only)",
    "adam_beta1": "AdamW beta1",
    "adam_beta2": "AdamW beta2",
    "adam_epsilon": "AdamW epsilon",
    "learning_rate": "peak learning rate; None: 1e-4 for lora, 1e-5 for full",
    "weight_decay": "AdamW weight decay",
    "gradient_accumulation_steps": "micro-batches per optimizer step; None: ceil(16 / batch_size / world_size)",
    "max_grad_norm": "gradient clipping (global norm)",
    "lr_scheduler_type": "learning-rate schedule after the warmup",
    "warmup_ratio": "share of the optimizer steps with a linear warmup",
    "evaluation_strategy": "steps: evaluate every eval_steps and at the end; no: never",
    "eval_steps": "evaluate every N optimizer steps",
    "save_strategy": "steps: save a checkpoint every save_steps and at the end; no: never; None: "
                     "evaluation_strategy",
    "save_steps": "save every N optimizer steps; None: eval_steps",
    "save_only_model": "checkpoints without optimizer, scheduler and RNG state (no exact resume); None: false for "
                       "lora, true for full",
    "save_total_limit": "checkpoints kept (older ones deleted, the best eval_loss kept); -1: all",
    "logging_steps": "log loss, accuracy and learning rate every N steps (logging.jsonl)",
    "dataloader_drop_last": "drop each epoch's last incomplete batch",
    "disable_tqdm": "no progress bars",
    "save_safetensors": "write weights as safetensors (vlmref writes safetensors only: false is refused)",
    "max_new_tokens": "new tokens at most",
    "do_sample": "sample (false: greedy)",
    "temperature": "sampling temperature",
    "top_k": "top-k sampling",
    "top_p": "nucleus sampling",
    "repetition_penalty": "repetition penalty",
    "num_beams": "beam search width",
}
# choices of the str fields that resolve() checks (so that a tuner ms-swift has gets its own message)
SFT_CHOICES: dict[str, tuple[str, ...]] = {
    "sft_type": SFT_TYPES,
    "template_profile": ("official", "swift-2.2.0"),
    "deepspeed": (*DEEPSPEED_NAMES, "PATH.json"),
}
# argument groups of `vlmref sft --help`: the first field of each
SFT_GROUPS = {"model_type": "model", "dataset": "data", "lora_target_modules": "LoRA (--sft_type lora)",
              "gradient_checkpointing": "training",
              "max_new_tokens": "generation config (generation_config.json in every checkpoint)"}

def _json_safe(obj: Any) -> Any:
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, (list, tuple)):
        return [_json_safe(x) for x in obj]
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    return repr(obj)


def _split_list(values: Any) -> list[str]:
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    values = [v for v in values if v is not None and str(v).strip()]
    if len(values) == 1 and "," in values[0]:
        values = values[0].split(",")
    return [str(v).strip() for v in values if str(v).strip()]


def normalize_lora_target_modules(values: Any) -> list[str]:
    """ms-swift's ``_prepare_target_modules`` before expansion: split one comma value, ``AUTO`` -> ``DEFAULT``."""
    values = _split_list(values)
    out = ["DEFAULT" if v.upper() == "AUTO" else (v.upper() if v.upper() in ("DEFAULT", "ALL") else v) for v in values]
    if "EMBEDDING" in out:
        raise SftArgumentError("--lora_target_modules EMBEDDING is not implemented by vlmref")
    return list(dict.fromkeys(out)) or ["DEFAULT"]


def load_deepspeed_config(value: str | dict) -> dict[str, Any]:
    """``default-zero2`` / ``default-zero3`` / ``zero3-offload`` (the shipped files) or a path to a JSON file."""
    if isinstance(value, dict):
        return json.loads(json.dumps(value))
    if value in DEEPSPEED_NAMES:
        with open(os.path.join(DS_CONFIG_DIR, DEEPSPEED_NAMES[value]), encoding="utf-8") as f:
            config = json.load(f)
        if value == "zero3-offload":  # ms-swift's zero3_offload.json: zero3 with the parameters offloaded to CPU
            config["zero_optimization"]["offload_param"]["device"] = "cpu"
        return config
    if os.path.isfile(value):
        with open(value, encoding="utf-8") as f:
            return json.load(f)
    raise SftArgumentError(f"--deepspeed {value!r}: not one of {', '.join(DEEPSPEED_NAMES)} and not a JSON file")


# ---- flag parser ---------------------------------------------------------------------------------------------------
SFT_USAGE = "%(prog)s [args.json] --model_type MODEL_TYPE --dataset DATASET [DATASET ...] [flag ...]"


def sft_epilog() -> str:
    """The end of ``vlmref sft --help``: value syntax, then the ms-swift flags accepted and ignored (with why)."""
    width = max(len(n) for n in IGNORED_FLAGS) + 4
    lines = ["booleans: --flag true|false (also 1/0, yes/no); a bare --flag is true. Optional flags take None.",
             "lists: several values or one comma-separated. A first argument ending in .json is a file of flag",
             "values (ms-swift's parse_args); flags after it override it.", "",
             "ms-swift 2.2.0 flags accepted and ignored:"]
    lines += [f"  --{name.ljust(width - 2)}{reason}" for name, reason in IGNORED_FLAGS.items()]
    refused = textwrap.wrap(", ".join(f"--{n}" for n in UNSUPPORTED_FLAGS), 110, initial_indent="  ",
                            subsequent_indent="  ")
    return "\n".join(lines + ["", "ms-swift 2.2.0 flags vlmref does not implement (refused):", *refused])


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """argparse flags for every ``SftArguments`` field (names and defaults as ms-swift 2.2.0, help ``SFT_HELP``)."""
    from ..flags import FlagParser, add_bool_flag, show_default

    p = parser or FlagParser(prog="vlmref sft", allow_abbrev=False)
    p.description = p.description or "Fine-tune a model with ms-swift 2.2.0's swift sft flags."
    p.usage, p.epilog, p.formatter_class = SFT_USAGE, sft_epilog(), argparse.RawDescriptionHelpFormatter
    hints = typing.get_type_hints(SftArguments)
    group: Any = p
    for f in dataclasses.fields(SftArguments):
        group = p.add_argument_group(SFT_GROUPS[f.name]) if f.name in SFT_GROUPS else group
        kind = hints[f.name]
        optional = False
        if typing.get_origin(kind) in (typing.Union, types.UnionType):
            inner = [a for a in typing.get_args(kind) if a is not type(None)]
            optional, kind = True, inner[0]
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        if kind is bool:
            add_bool_flag(group, f"--{f.name}", default, SFT_HELP[f.name], allow_none=optional, dest=f.name)
            continue
        kw: dict[str, Any] = {"default": default, "dest": f.name,
                              "help": f"{SFT_HELP[f.name]} (default: {show_default(default)})"}
        if typing.get_origin(kind) is Literal:
            choices = list(typing.get_args(kind))
            kw.update(type=or_none(str) if optional else str, choices=choices + ([None] if optional else []))
        elif typing.get_origin(kind) is list:
            kw.update(type=str, nargs="+")
        elif kind in (int, float, str):
            kw.update(type=or_none(kind) if optional else kind)
        else:  # pragma: no cover - a field type the parser does not know
            raise TypeError(f"SftArguments.{f.name}: unsupported type {kind}")
        if f.name in SFT_CHOICES:
            kw["metavar"] = "{" + ",".join(SFT_CHOICES[f.name]) + "}"
        group.add_argument(f"--{f.name}", **kw)
    for name in IGNORED_FLAGS:  # listed once, with the reason, in the epilog
        p.add_argument(f"--{name}", dest=f"ignored__{name}", nargs="*", default=None, help=argparse.SUPPRESS)
    return p


def _single_value_flags() -> set[str]:
    hints = typing.get_type_hints(SftArguments)
    out = set()
    for f in dataclasses.fields(SftArguments):
        kinds = [k for k in typing.get_args(hints[f.name]) if k is not type(None)] or [hints[f.name]]
        if kinds[0] is not bool and typing.get_origin(kinds[0]) is not list:
            out.add(f"--{f.name}")
    return out


def clean_argv(argv: list[str]) -> list[str]:
    """Drop blank arguments (``'\\ '`` at the end of a shell line) that a copied seed command passes; a blank that is
    a flag's value is kept: ``['--system', '', ' ']`` -> ``['--system', '']`` (no system prompt)."""
    single = _single_value_flags()
    return [a for i, a in enumerate(argv) if a.strip() or (i > 0 and argv[i - 1] in single)]


def args_from_namespace(ns: argparse.Namespace, log: Any = print) -> SftArguments:
    values = vars(ns)
    for name, reason in IGNORED_FLAGS.items():
        if values.get(f"ignored__{name}") is not None:
            log(f"note: --{name} is accepted for ms-swift compatibility and ignored: {reason}")
    names = {f.name for f in dataclasses.fields(SftArguments)}
    return SftArguments(**{k: v for k, v in values.items() if k in names})


def parse_sft_args(argv: list[str] | None = None, log: Any = print) -> SftArguments:
    """Parse ``vlmref sft`` flags (see the module docstring). Unknown flags raise ``SftArgumentError``."""
    argv = clean_argv(list(sys.argv[1:] if argv is None else argv))
    parser = build_parser()
    if argv and argv[0].endswith(".json") and not argv[0].startswith("-"):
        parser.set_defaults(**read_args_file(argv[0], parser))
        argv = argv[1:]
    ns, unknown = parser.parse_known_args(argv)
    check_unknown(unknown, parser)
    return args_from_namespace(ns, log)


def read_args_file(path: str, parser: argparse.ArgumentParser) -> dict[str, Any]:
    """A JSON object of flag values (``{"model_type": "qwen-vl-chat", "dataset": ["d.jsonl"]}``) -> parser defaults."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as e:
        raise SftArgumentError(f"{path}: cannot read the arguments file ({e.strerror or e})") from None
    except json.JSONDecodeError as e:
        raise SftArgumentError(f"{path}:{e.lineno}: expected a JSON object of flag values; found invalid JSON "
                               f"({e.msg})") from None
    if not isinstance(data, dict):
        raise SftArgumentError(f"{path}: expected a JSON object of flag values; found a {type(data).__name__}")
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key in IGNORED_FLAGS:
            out[f"ignored__{key}"] = [str(value)]
            continue
        try:
            check_unknown([f"--{key}"] if not any(a.dest == key for a in parser._actions) else [], parser)
        except SftArgumentError as e:
            raise SftArgumentError(f"{path}: key {key!r}: {str(e).split(': ', 1)[-1]}") from None
        out[key] = value
    return out


def check_unknown(unknown: list[str], parser: argparse.ArgumentParser) -> None:
    if not unknown:
        return
    flags = [u for u in unknown if u.startswith("--")]
    known = [a.option_strings[0][2:] for a in parser._actions if a.option_strings and a.help != argparse.SUPPRESS]
    problems = []
    for flag in flags or unknown:
        name = flag[2:].split("=", 1)[0] if flag.startswith("--") else flag
        if name in UNSUPPORTED_FLAGS:
            problems.append(f"--{name} (an ms-swift 2.2.0 flag vlmref does not implement)")
            continue
        close = difflib.get_close_matches(name, known, n=1)
        problems.append(f"{flag}" + (f" (did you mean --{close[0]}?)" if close else ""))
    raise SftArgumentError("unrecognised argument(s): " + "; ".join(problems))
