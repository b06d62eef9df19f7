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

Flags are the dataclass's fields, parsed by ``vlmref.arguments`` (HfArgumentParser's contract): ``--flag value`` or
``--flag=value``; booleans take ``true``/``false`` (also ``1/0``, ``yes/no``; a bare ``--flag`` means true); list flags
take several values; Optional flags take ``None``. A first argument ending in ``.json``/``.yaml``/``.yml`` (or
``--args_file FILE``) is a file of flag values (ms-swift's ``parse_args``). Blank arguments (a shell line ending in a
backslash followed by spaces passes ``' '``, as in the CogVLM seed) are ignored.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import textwrap
import typing
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from ..arguments import ArgumentsError, DataclassArgumentParser, arg, flag_fields
from ..flags import parse_bool  # noqa: F401 - parse_bool: re-exported

DS_CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ds_config")
DEEPSPEED_NAMES = {"default-zero2": "zero2.json", "default-zero3": "zero3.json", "zero3-offload": "zero3.json"}
SFT_TYPES = ("lora", "full")
DEEPSPEED_METAVAR = "{" + ",".join((*DEEPSPEED_NAMES, "PATH.json")) + "}"
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


class SftArgumentError(ArgumentsError):
    """A flag or value ``vlmref sft`` cannot take; the message names the flag."""


@dataclass
class SftArguments:
    """``swift sft``'s flags; each field's help is ``vlmref sft --help``'s ("vlmref:" marks vlmref's own flags)."""

    # argument groups of `vlmref sft --help`: the first field of each
    ARGUMENT_GROUPS: ClassVar[dict[str, str]] = {
        "model_type": "model", "dataset": "data", "lora_target_modules": "LoRA (--sft_type lora)",
        "gradient_checkpointing": "training",
        "max_new_tokens": "generation config (generation_config.json in every checkpoint)"}
    IGNORED_FLAGS: ClassVar[dict[str, str]] = IGNORED_FLAGS
    REFUSED_FLAGS: ClassVar[dict[str, str]] = {
        name: "an ms-swift 2.2.0 flag vlmref does not implement" for name in UNSUPPORTED_FLAGS}

    # model
    model_type: str | None = arg(None, "the model (seed name or ms-swift 2.2.0 alias; vlmref list models); required "
                                       "unless resume_from_checkpoint names it")
    model_id_or_path: str | None = arg(None, "local model folder or hub id; None: the model type's hub id")
    tokenizer_id_or_path: str | None = arg(None, "vlmref: the tokenizer's folder or hub id when the model folder has "
                                                 "none (CogVLM)")
    sft_type: str = arg("lora", "lora: train LoRA adapters; full: train every parameter (ms-swift's other tuners are "
                                "refused)", metavar="{" + ",".join(SFT_TYPES) + "}")
    template_type: str = arg("AUTO", "the chat template; AUTO: the model type's (vlmref list templates)")
    # vlmref: official | swift-2.2.0 (ms-swift 2.2.0's exact ids; markers it left for the model expanded model-side)
    template_profile: str = arg("official", "vlmref: official = corrected templates; swift-2.2.0 = ms-swift 2.2.0's "
                                            "exact ids, markers it left for the model expanded model-side",
                                metavar="{official,swift-2.2.0}")
    output_dir: str = arg("output", 'where runs go')
    add_output_dir_suffix: bool | None = arg(None, "put each run in "
                                                   "<output_dir>/<model_type>/v<N>-<YYYYMMDD-HHMMSS>; None: true")
    ddp_backend: Literal["nccl", "gloo", "mpi", "ccl", "hccl"] | None = arg(None, "torch.distributed backend under "
                                                                                  "torchrun (NPROC_PER_NODE); None: "
                                                                                  "nccl on GPU, gloo on CPU")
    ddp_find_unused_parameters: bool | None = arg(None, "DDP find_unused_parameters; None: true (vlmref; ms-swift: "
                                                        "not gradient_checkpointing, which fails LLaVA/Yi-VL at step "
                                                        "2)")
    ddp_broadcast_buffers: bool | None = arg(None, 'DDP broadcast_buffers; None: not gradient_checkpointing')
    seed: int = arg(42, 'global seed (LoRA init, dropout); each rank adds its rank under DDP')
    resume_from_checkpoint: str | None = arg(None, "a checkpoint-N folder to continue training from (model_type, "
                                                   "model_id_or_path and dtype come from its sft_args.json when not "
                                                   "given)")
    resume_only_model: bool = arg(False, "with resume_from_checkpoint: load the weights only; optimizer, scheduler "
                                         "and data position start afresh")
    dtype: Literal["bf16", "fp16", "fp32", "AUTO"] = arg("AUTO", "weights and compute dtype; AUTO: bf16 on a GPU "
                                                                 "that has it, else fp16; fp32 on CPU (fp16 with "
                                                                 "--sft_type full -> fp32)")
    # data
    dataset: list[str] = arg(factory=list, help="training data, at least one: dataset names, name#N (N rows) or "
                                                ".json/.jsonl/.csv files; several values or one comma-separated")
    val_dataset: list[str] = arg(factory=list, help='validation data used whole (then dataset_test_ratio is 0)')
    dataset_seed: int = arg(42, 'seed of the train/validation split and of name#N sampling')
    dataset_test_ratio: float = arg(0.01, 'share of each dataset held out for validation')
    system: str | None = arg(None, "system prompt; '' = none; None: the template's default")
    max_length: int = arg(2048, "longest sample in tokens (text tokens: image positions come on top, see "
                                "max_length_counts_images); -1: no limit")
    truncation_strategy: Literal["delete", "truncation_left", "ignore"] = arg("delete", "a sample over max_length: "
                                                                                        "delete = drop it (ignore is "
                                                                                        "an alias); truncation_left "
                                                                                        "= keep its last max_length "
                                                                                        "tokens")
    # vlmref: false (default) = ms-swift 2.2.0's budget, max_length bounds the text and image positions come on top;
    # true = max_length bounds the whole sequence the model sees (image positions included)
    max_length_counts_images: bool = arg(False, "vlmref: true = max_length bounds the whole sequence the model sees, "
                                                "image positions included; false = ms-swift 2.2.0's text budget")
    check_dataset_strategy: Literal["none", "discard", "error", "warning"] = arg("none", "rows breaking the model's "
                                                                                         "rules: none = list them "
                                                                                         "and stop before training; "
                                                                                         "error = stop at the first; "
                                                                                         "warning = list and keep "
                                                                                         "them; discard = drop them, "
                                                                                         "each counted")
    # lora
    lora_target_modules: list[str] = arg(factory=lambda: ["DEFAULT"], help="modules LoRA wraps: DEFAULT (the model's "
                                                                           "list), ALL (every Linear but the output "
                                                                           "head) or module names; AUTO = DEFAULT")
    lora_target_regex: str | None = arg(None, "full-match regex on module names, instead of lora_target_modules "
                                              "(ms-swift >= 2.2.5)")
    lora_rank: int = arg(8, 'LoRA rank r')
    lora_alpha: int = arg(32, 'LoRA alpha (the update is scaled by alpha / r)')
    lora_dropout_p: float = arg(0.05, 'dropout on the LoRA input')
    lora_bias_trainable: Literal["none", "all"] = arg("none", 'none: biases frozen; all: every bias trained')
    # training
    gradient_checkpointing: bool | None = arg(None, "recompute activations in the backward pass (less memory, "
                                                    "slower); None: the model's registry default (false for CogVLM)")
    deepspeed: str | None = arg(None, "DeepSpeed ZeRO config: ms-swift's default-zero2 / default-zero3 / "
                                      "zero3-offload (parameters offloaded to CPU) or a JSON file; run under "
                                      "torchrun (NPROC_PER_NODE)", metavar=DEEPSPEED_METAVAR)
    batch_size: int = arg(1, 'training samples per device per micro-batch')
    eval_batch_size: int | None = arg(None, 'validation batch size; None: batch_size')
    num_train_epochs: int = arg(1, 'passes over the training set (unless max_steps)')
    max_steps: int = arg(-1, 'stop after this many optimizer steps; -1: num_train_epochs decides')
    optim: Literal["adamw_torch"] = arg("adamw_torch", 'optimizer (vlmref implements adamw_torch only)')
    adam_beta1: float = arg(0.9, 'AdamW beta1')
    adam_beta2: float = arg(0.999, 'AdamW beta2')
    adam_epsilon: float = arg(1e-8, 'AdamW epsilon')
    learning_rate: float | None = arg(None, 'peak learning rate; None: 1e-4 for lora, 1e-5 for full')
    weight_decay: float = arg(0.1, 'AdamW weight decay')
    gradient_accumulation_steps: int | None = arg(None, "micro-batches per optimizer step; None: ceil(16 / "
                                                        "batch_size / world_size)")
    max_grad_norm: float = arg(0.5, 'gradient clipping (global norm)')
    lr_scheduler_type: Literal["cosine", "linear", "constant", "constant_with_warmup"] = arg("cosine", "learning-rate "
                                                                                                       "schedule "
                                                                                                       "after the "
                                                                                                       "warmup")
    warmup_ratio: float = arg(0.05, 'share of the optimizer steps with a linear warmup')
    evaluation_strategy: Literal["steps", "no"] = arg("steps", "steps: evaluate every eval_steps and at the end; no: "
                                                               "never")
    eval_steps: int = arg(50, 'evaluate every N optimizer steps')
    save_strategy: Literal["steps", "no"] | None = arg(None, "steps: save a checkpoint every save_steps and at the "
                                                             "end; no: never; None: evaluation_strategy")
    save_steps: int | None = arg(None, 'save every N optimizer steps; None: eval_steps')
    save_only_model: bool | None = arg(None, "checkpoints without optimizer, scheduler and RNG state (no exact "
                                             "resume); None: false for lora, true for full")
    save_total_limit: int = arg(2, 'checkpoints kept (older ones deleted, the best eval_loss kept); -1: all')
    logging_steps: int = arg(5, 'log loss, accuracy and learning rate every N steps (logging.jsonl)')
    dataloader_drop_last: bool = arg(False, "drop each epoch's last incomplete batch")
    disable_tqdm: bool = arg(False, 'no progress bars')
    save_safetensors: bool = arg(True, "write weights as safetensors (vlmref writes safetensors only: false is "
                                       "refused)")
    # generation config written into checkpoints (ms-swift sft.py L120-133)
    max_new_tokens: int = arg(2048, 'new tokens at most')
    do_sample: bool = arg(True, 'sample (false: greedy)')
    temperature: float = arg(0.3, 'sampling temperature')
    top_k: int = arg(20, 'top-k sampling')
    top_p: float = arg(0.7, 'nucleus sampling')
    repetition_penalty: float = arg(1.0, 'repetition penalty')
    num_beams: int = arg(1, 'beam search width')

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
SFT_USAGE = "%(prog)s [args.json|args.yaml] --model_type MODEL_TYPE --dataset DATASET [DATASET ...] [flag ...]"


def sft_epilog() -> str:
    """The end of ``vlmref sft --help``: value syntax, then the ms-swift flags accepted and ignored (with why)."""
    width = max(len(n) for n in IGNORED_FLAGS) + 4
    lines = ["booleans: --flag true|false (also 1/0, yes/no); a bare --flag is true. Optional flags take None.",
             "lists: several values or one comma-separated. A first argument ending in .json/.yaml/.yml (or",
             "--args_file FILE) is a file of flag values (ms-swift's parse_args); flags after it override it.", "",
             "ms-swift 2.2.0 flags accepted and ignored:"]
    lines += [f"  --{name.ljust(width - 2)}{reason}" for name, reason in IGNORED_FLAGS.items()]
    refused = textwrap.wrap(", ".join(f"--{n}" for n in UNSUPPORTED_FLAGS), 110, initial_indent="  ",
                            subsequent_indent="  ")
    return "\n".join(lines + ["", "ms-swift 2.2.0 flags vlmref does not implement (refused):", *refused])


def build_parser(parser: DataclassArgumentParser | None = None) -> DataclassArgumentParser:
    """The ``vlmref sft`` flags: every ``SftArguments`` field (``vlmref.arguments``), usage and epilog."""
    p = parser or DataclassArgumentParser(prog="vlmref sft")
    p.description = p.description or "Fine-tune a model with ms-swift 2.2.0's swift sft flags."
    p.usage, p.epilog, p.formatter_class = SFT_USAGE, sft_epilog(), argparse.RawDescriptionHelpFormatter
    return p.add_dataclass(SftArguments)


def _single_value_flags() -> set[str]:
    return {f"--{f.name}" for f, kind, _ in flag_fields(SftArguments)
            if kind is not bool and typing.get_origin(kind) is not list}


def clean_argv(argv: list[str]) -> list[str]:
    """Drop blank arguments (``'\\ '`` at the end of a shell line) that a copied seed command passes; a blank that is
    a flag's value is kept: ``['--system', '', ' ']`` -> ``['--system', '']`` (no system prompt)."""
    single = _single_value_flags()
    return [a for i, a in enumerate(argv) if a.strip() or (i > 0 and argv[i - 1] in single)]


def parse_sft_args(argv: list[str] | None = None, log: Any = print) -> SftArguments:
    """Parse ``vlmref sft`` flags (see the module docstring). Unknown flags raise ``SftArgumentError``."""
    argv = clean_argv(list(sys.argv[1:] if argv is None else argv))
    try:
        (args,) = build_parser().parse_args_into_dataclasses(argv, log=log)
    except ArgumentsError as err:
        raise SftArgumentError(str(err)) from None
    return args
