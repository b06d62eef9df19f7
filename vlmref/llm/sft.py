"""``vlmref sft``: LoRA or full fine-tuning with ms-swift 2.2.0's flags, defaults and output layout.

::

    from vlmref.llm.sft import llm_sft
    from vlmref.llm.sft_args import parse_sft_args
    result = llm_sft(parse_sft_args(['--model_type', 'qwen-vl-chat', '--dataset', 'coco-en-mini-sample#4']))
    result['last_model_checkpoint']   # output/qwen-vl-chat/v0-20260101-120000/checkpoint-1

The run, in order: installed packages -> distributed setup (torchrun env; gloo on CPU, nccl on GPU; DeepSpeed's
communicator with ``--deepspeed``) -> the checks that need no model (``sft_precheck``: paths; every row's format,
rules, markup and images, ms-swift's train/val split; the hub snapshot) -> model and tokenizer
(``get_model_tokenizer``, dtype per ``--dtype``, ``device_map`` as ms-swift sft.py L44-62) -> LoRA (peft, targets
resolved and logged) or full -> gradient checkpointing -> the length check (not under ``none``; the report is
printed) -> the first sample printed with its label mask -> run dir ``<output_dir>/<model_type>/v<N>-<stamp>`` ->
training.

The training loop is vlmref's own (no HF Trainer):

* Data: each epoch is a permutation of the train rows (``torch.randperm`` seeded with ``seed + epoch``; the same on
  every rank), padded by repetition to a multiple of the world size and dealt round-robin to the ranks (as
  ``DistributedSampler``), cut into micro-batches of ``batch_size``. Samples are encoded lazily with the template
  (``encode_sample``): a bad or too-long row stops the run with an error naming it; no row is ever replaced by
  another (ms-swift's lazy dataset silently substitutes a random row). Batches are right-padded (``DataCollator``).
* Updates: ``gradient_accumulation_steps`` micro-batches per optimizer step; an epoch has
  ``ceil(micro_batches / gradient_accumulation_steps)`` steps, the last one taking the remainder (as transformers
  >= 4.46). The loss of a step is the mean of its micro-batch losses (each the model's token-mean loss).
  AdamW (betas 0.9/0.999, eps 1e-8, ``weight_decay`` except biases and norm weights, as HF Trainer), the
  ``lr_scheduler_type`` schedule (cosine) with ``ceil(max_steps * warmup_ratio)`` warmup steps, clipping at
  ``max_grad_norm``. DDP (``torch.distributed``) when WORLD_SIZE > 1.
* ``--deepspeed``: ``deepspeed.initialize`` with the config's "auto" values filled as HF Trainer fills them; the
  optimizer and scheduler are DeepSpeed's, built from the config (so ``default-zero2/3`` train with DeepSpeed's
  ``WarmupDecayLR``, warm-up then linear decay, as ms-swift 2.2.0 through HF Trainer does). On CPU the AdamW entry gets
  ``"torch_adam": true`` (torch's AdamW instead of a JIT-compiled fused kernel) and pinned-memory offload is
  switched off; both adjustments are logged.
* Eval loss/accuracy on the validation rows every ``eval_steps`` and at the last step; checkpoints every
  ``save_steps`` and at the last step, written atomically (see ``CheckpointWriter``), rotated to
  ``save_total_limit`` with the best (lowest eval_loss) checkpoint kept.
* ``--resume_from_checkpoint DIR`` restores the weights (adapter or full), optimizer, scheduler, every rank's RNG
  state and the data position (derived from ``global_step``; also recorded in ``trainer_state.json``), so a resumed
  run continues with exactly the losses of an uninterrupted one (fp32 on CPU: bit-identical, tested).

LoRA targets (a choice, documented): ``DEFAULT`` is the registry's list matched the way ms-swift 2.2.0 matches it,
by peft suffix matching on the whole model. For Yi-VL and every LLaVA model ``['q_proj', 'k_proj', 'v_proj']`` thus
also wraps the CLIP vision tower's q/k/v (LLaVA-NeXT/llava-hf: 72 CLIP + the LLM's; Yi-VL-6B: 96 + 96), although the
seeds say "LLM only": vlmref keeps this because the seeds' memory figures were measured with it. The vision-tower
adapters do train (the towers run with grad), except the last CLIP layer's, whose output is never used (the features
come from layer -2): those stay zero, and DDP therefore runs with ``find_unused_parameters=True``. CogVLM, Qwen-VL and XComposer2 DEFAULTs
only match LLM modules. ``ALL`` is every Linear except the output head (``lm_head`` / InternLM2's ``output``).
The resolved suffix list and every wrapped module (grouped) are logged at start and stored in ``sft_args.json``
(``lora_target_modules``, ``lora_target_module_names``). To restrict LoRA to the LLM, pass ms-swift >= 2.2.5's
``--lora_target_regex`` (full match on module names), e.g. ``'.*language_model.*[.](q_proj|k_proj|v_proj)'``.

Outputs (run dir): ``sft_args.json``, ``logging.jsonl`` (one JSON object per logging step, per evaluation, and a final
record), ``checkpoint-<step>/``; see ``write_checkpoint_files`` for a checkpoint's contents.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .dist import (  # noqa: F401  (re-exported: tests and tools import them from here)
    DistSetting,
    Logger,
    _all_gather_object,
    _all_reduce_sum,
    _barrier,
    _broadcast_object,
    get_dist_setting,
    init_distributed,
)
from .safe_state import load_plain, load_rng_state, safe_deepspeed_loads
from .sample_view import format_example, safe_decode  # noqa: F401  (the first-sample view)
from .sft_args import SftArgumentError, SftArguments
from .sft_checkpoint import (  # noqa: F401
    CHECKPOINT_RE,
    SAVE_HOOK_ENV,
    CheckpointWriter,
    checkpoints_to_delete,
    get_rng_state,
    list_checkpoints,
    remove_dir_atomically,
    rng_file,
    set_rng_state,
)

GIB = 1024**3


# ---- run dir, model kwargs, LoRA targets -------------------------------------------------------------------------
def next_version_dir(work_dir: str, now: float | None = None) -> str:
    """``<work_dir>/v<N>-<YYYYMMDD-HHMMSS>`` with N = 1 + the largest existing ``v<N>`` prefix (first: v0)."""
    versions = [-1]
    if os.path.isdir(work_dir):
        for name in os.listdir(work_dir):
            m = re.match(r"v(\d+)", name)
            if m:
                versions.append(int(m.group(1)))
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    return os.path.join(work_dir, f"v{max(versions) + 1}-{stamp}")


def make_run_dir(args: SftArguments, dist: DistSetting) -> str:
    if args.add_output_dir_suffix:
        run_dir = next_version_dir(os.path.join(args.output_dir, args.model_type)) if dist.is_master else None
        run_dir = _broadcast_object(run_dir)
    else:
        run_dir = args.output_dir
    if dist.is_master:
        os.makedirs(run_dir, exist_ok=True)
    _barrier()
    return os.path.abspath(run_dir)


def sft_model_kwargs(args: SftArguments, dist: DistSetting, cuda_count: int | None = None) -> dict[str, Any]:
    """ms-swift sft.py L44-62: zero3 -> no device_map; DDP -> the local GPU; 1 GPU -> cuda:0; several -> 'auto'."""
    import torch

    cuda_count = torch.cuda.device_count() if cuda_count is None else cuda_count
    zero3 = bool(args.deepspeed_config) and args.deepspeed_config.get("zero_optimization", {}).get("stage") == 3
    if zero3:
        return {"device_map": None}
    kwargs: dict[str, Any] = {"low_cpu_mem_usage": True}
    if cuda_count == 0:
        return kwargs
    mp = dist.is_dist and cuda_count > dist.local_world_size  # DDP + model parallel (e.g. 2 ranks over 4 GPUs)
    if dist.is_dist and not mp:
        kwargs["device_map"] = {"": dist.local_rank}
    elif cuda_count == 1:
        kwargs["device_map"] = "cuda:0"
    elif dist.is_dist:  # DDP + MP: this rank's share of the GPUs
        per = cuda_count // dist.local_world_size
        kwargs["device_map"] = "auto"
        kwargs["max_memory"] = {i: torch.cuda.get_device_properties(i).total_memory if
                                dist.local_rank * per <= i < (dist.local_rank + 1) * per else 0
                                for i in range(cuda_count)}
    else:
        kwargs["device_map"] = "auto"
    if args.deepspeed_config and "device_map" in kwargs and kwargs["device_map"] == "auto":
        raise SftArgumentError(f"DeepSpeed is not compatible with MP. n_gpu: {cuda_count}, "
                               f"local_world_size: {dist.local_world_size}.")
    return kwargs


def resolve_lora_target_modules(model: Any, model_type: str, targets: Iterable[str]) -> list[str]:
    """``DEFAULT`` -> the registry's list, ``ALL`` -> ``find_all_linears`` (every Linear but the output head), other
    entries kept; order kept, duplicates dropped (ms-swift ``_prepare_target_modules`` + tuner.py)."""
    from ..models.info import resolve_lora_targets

    out: list[str] = []
    for t in targets:
        out += resolve_lora_targets(model, model_type, t) if t in ("DEFAULT", "ALL") else [t]
    return list(dict.fromkeys(out))


def lora_module_names(model: Any, targets: list[str] | None = None, regex: str | None = None) -> list[str]:
    """Qualified names of the Linear modules peft wraps: suffix matching for a list, full match for a regex."""
    import torch

    names = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    if regex is not None:
        return [n for n in names if re.fullmatch(regex, n)]
    return [n for n in names if any(n == t or n.endswith("." + t) for t in targets or [])]


def group_module_names(names: list[str]) -> list[str]:
    """``model.layers.0.q_proj`` ... -> ``model.layers.*.q_proj (32)``: a short view of a long module list."""
    groups: dict[str, int] = {}
    for n in names:
        key = re.sub(r"\.\d+(?=\.|$)", ".*", n)
        groups[key] = groups.get(key, 0) + 1
    return [f"{k} ({v})" for k, v in groups.items()]


# ---- data ----------------------------------------------------------------------------------------------------------
def epoch_order(n: int, epoch: int, seed: int, world_size: int, rank: int, shuffle: bool = True) -> list[int]:
    """This rank's row indices for ``epoch``: a seeded permutation, padded by repetition to a multiple of the world
    size, dealt round-robin (``DistributedSampler`` semantics; ``seed`` is the same on every rank)."""
    import torch

    if n == 0:
        return []
    if shuffle:
        g = torch.Generator()
        g.manual_seed(seed + epoch)
        order = torch.randperm(n, generator=g).tolist()
    else:
        order = list(range(n))
    total = math.ceil(n / world_size) * world_size
    while len(order) < total:
        order += order[: total - len(order)]
    return order[rank:total:world_size]


@dataclass
class Plan:
    """How many micro-batches and optimizer steps the run has (the same on every rank)."""

    n_train: int
    micro_batches_per_epoch: int
    updates_per_epoch: int
    max_steps: int
    num_train_epochs: int
    gas: int

    @classmethod
    def make(cls, n_train: int, args: SftArguments, world_size: int) -> Plan:
        per_rank = math.ceil(n_train / world_size)
        micro = per_rank // args.batch_size if args.dataloader_drop_last else math.ceil(per_rank / args.batch_size)
        if micro == 0:
            raise SftArgumentError(f"the training split has {n_train} row(s): not one batch of {args.batch_size} per "
                                   f"rank (world size {world_size})")
        updates = math.ceil(micro / args.gradient_accumulation_steps)
        max_steps = args.max_steps if args.max_steps > 0 else args.num_train_epochs * updates
        return cls(n_train, micro, updates, max_steps, math.ceil(max_steps / updates), args.gradient_accumulation_steps)

    def micro_range(self, step: int) -> tuple[int, int, int]:
        """(epoch, first micro-batch, end micro-batch) of optimizer step ``step`` (0-based)."""
        epoch, k = divmod(step, self.updates_per_epoch)
        start = k * self.gas
        return epoch, start, min(start + self.gas, self.micro_batches_per_epoch)

    def epoch_float(self, step_done: int) -> float:
        """Epochs completed after ``step_done`` optimizer steps (fractional)."""
        epoch, _, end = self.micro_range(step_done - 1)
        return epoch + end / self.micro_batches_per_epoch


# ---- optimizer / scheduler / DeepSpeed config --------------------------------------------------------------------
def decay_parameter_names(model: Any) -> set[str]:
    """Parameters that get weight decay: all but biases and the weights of norm layers (HF Trainer)."""
    import torch

    out: set[str] = set()
    for mod_name, module in model.named_modules():
        is_norm = isinstance(module, torch.nn.LayerNorm) or "norm" in type(module).__name__.lower()
        for p_name, _ in module.named_parameters(recurse=False):
            full = f"{mod_name}.{p_name}" if mod_name else p_name
            if not is_norm and not p_name.endswith("bias") and not re.search(r"(^|[._])(layer)?norm", full.lower()):
                out.add(full)
    return out


def build_optimizer(model: Any, args: SftArguments):
    import torch

    decay = decay_parameter_names(model)
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [{"params": [p for n, p in params if n in decay], "weight_decay": args.weight_decay},
              {"params": [p for n, p in params if n not in decay], "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=args.learning_rate,
                             betas=(args.adam_beta1, args.adam_beta2), eps=args.adam_epsilon)


def warmup_steps(max_steps: int, warmup_ratio: float) -> int:
    return math.ceil(max_steps * warmup_ratio)


def build_scheduler(optimizer: Any, args: SftArguments, max_steps: int):
    from transformers import get_scheduler

    return get_scheduler(args.lr_scheduler_type, optimizer, num_warmup_steps=warmup_steps(max_steps, args.warmup_ratio),
                         num_training_steps=max_steps)


def _hidden_size(model: Any) -> int | None:
    config = getattr(model, "config", None)
    for c in (config, getattr(config, "text_config", None), getattr(config, "llm_config", None)):
        if c is not None and getattr(c, "hidden_size", None):
            return int(c.hidden_size)
    return None


def fill_deepspeed_config(config: dict[str, Any], args: SftArguments, model: Any, max_steps: int, world_size: int,
                          cpu: bool, log: Callable[[str], None]) -> dict[str, Any]:
    """Replace the config's ``"auto"`` values as HF Trainer does (``trainer_config_process/finalize``); a non-auto
    value that disagrees with the flags is an error. On CPU: ``torch_adam`` and no pinned-memory offload (logged)."""
    config = json.loads(json.dumps(config))
    mismatches: list[str] = []

    def fill(path: str, value: Any, must_match: bool = True) -> None:
        node = config
        *parents, key = path.split(".")
        for p in parents:
            if p not in node:
                return
            node = node[p]
        if key not in node:
            return
        if node[key] == "auto":
            node[key] = value
        elif must_match and node[key] != value:
            mismatches.append(f"- ds {path}={node[key]} vs vlmref {value}")

    gas = args.gradient_accumulation_steps
    fill("train_micro_batch_size_per_gpu", args.batch_size)
    fill("gradient_accumulation_steps", gas)
    fill("train_batch_size", args.batch_size * gas * world_size)
    fill("gradient_clipping", args.max_grad_norm)
    fill("optimizer.params.lr", args.learning_rate)
    fill("optimizer.params.betas", [args.adam_beta1, args.adam_beta2])
    fill("optimizer.params.eps", args.adam_epsilon)
    fill("optimizer.params.weight_decay", args.weight_decay)
    fill("scheduler.params.warmup_min_lr", 0, must_match=False)
    fill("scheduler.params.warmup_max_lr", args.learning_rate)
    fill("scheduler.params.total_num_steps", max_steps)
    fill("scheduler.params.warmup_num_steps", max(1, warmup_steps(max_steps, args.warmup_ratio)))
    fill("fp16.enabled", bool(args.fp16))
    fill("bf16.enabled", bool(args.bf16))
    zero = config.get("zero_optimization", {})
    if any(zero.get(k) == "auto" for k in ("reduce_bucket_size", "stage3_prefetch_bucket_size",
                                             "stage3_param_persistence_threshold")):
        hidden = _hidden_size(model)
        if hidden is None:
            raise SftArgumentError("the model config has no hidden_size to fill the DeepSpeed 'auto' bucket sizes; "
                                   "give them numeric values in the JSON config")
        fill("zero_optimization.reduce_bucket_size", hidden * hidden, must_match=False)
        if zero.get("stage") == 3:
            fill("zero_optimization.stage3_prefetch_bucket_size", int(0.9 * hidden * hidden), must_match=False)
            fill("zero_optimization.stage3_param_persistence_threshold", 10 * hidden, must_match=False)
    config.setdefault("checkpoint", {})["use_node_local_storage"] = True  # ms-swift: save_on_each_node=True
    if mismatches:
        raise SftArgumentError("DeepSpeed config values disagree with the flags (set them to \"auto\"):\n"
                               + "\n".join(mismatches))
    if cpu:
        opt = config.get("optimizer", {})
        if opt.get("type", "").lower() in ("adam", "adamw") and "torch_adam" not in opt.get("params", {}):
            opt.setdefault("params", {})["torch_adam"] = True
            log("DeepSpeed on CPU: optimizer.params.torch_adam = true (torch.optim.AdamW; DeepSpeed's fused Adam "
                "would need a JIT-compiled CPU kernel)")
        for key in ("offload_optimizer", "offload_param"):
            if zero.get(key, {}).get("pin_memory"):
                zero[key]["pin_memory"] = False
                log(f"DeepSpeed on CPU: zero_optimization.{key}.pin_memory = false (pinned memory needs a GPU)")
    return config


# ---- memory ----------------------------------------------------------------------------------------------------------
def peak_memory(dist: DistSetting) -> dict[str, Any]:
    """Peak memory PER DEVICE, gathered from every rank (a collective: call on all ranks at the same point).

    GPU: ``torch.cuda.max_memory_reserved`` of each visible device, keyed ``rank<r>/cuda:<i>``. CPU: the peak resident
    set size of each rank's process (``resource.getrusage(RUSAGE_SELF).ru_maxrss``, whole-process lifetime, model
    loading included), keyed ``rank<r>/cpu``. Never summed over devices or ranks.
    """
    import torch

    if torch.cuda.is_available():
        mine = {f"rank{dist.rank}/cuda:{i}": round(torch.cuda.max_memory_reserved(i) / GIB, 4)
                for i in range(torch.cuda.device_count()) if torch.cuda.max_memory_reserved(i) > 0}
        measure = "torch.cuda.max_memory_reserved per device"
    else:
        import resource

        rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        mine = {f"rank{dist.rank}/cpu": round(rss_kib * 1024 / GIB, 4)}
        measure = "peak RSS of each rank's process (getrusage ru_maxrss), CPU"
    per_device: dict[str, float] = {}
    for part in _all_gather_object(mine):
        per_device.update(part)
    return {"measure": measure, "unit": "GiB", "per_device": per_device}


def _format_time(seconds: float) -> str:
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h {m}m {s}s" if h else f"{m}m {s}s"


# ---- training state ------------------------------------------------------------------------------------------------
@dataclass
class Window:
    """Sums since the last logging step (kept in trainer_state.json, so a resumed run logs the same losses)."""

    loss: float = 0.0
    steps: int = 0
    correct: float = 0.0
    total: float = 0.0
    tokens: float = 0.0
    samples: float = 0.0
    train_time: float = 0.0


@dataclass
class TrainState:
    global_step: int = 0
    best_metric: float | None = None
    best_model_checkpoint: str | None = None
    last_model_checkpoint: str | None = None
    log_history: list[dict[str, Any]] = field(default_factory=list)
    window: Window = field(default_factory=Window)
    last_eval: dict[str, Any] | None = None


# ---- the run --------------------------------------------------------------------------------------------------------
def llm_sft(args: SftArguments) -> dict[str, Any]:
    """Run ``vlmref sft`` with ``args`` (see the module docstring); returns the run summary (also the last line of
    logging.jsonl): run dir, last/best checkpoint, best metric, global_step, log history, memory, train time."""
    return SftRun(args).run()


class SftRun:
    def __init__(self, args: SftArguments) -> None:
        self.args = args
        self.dist = get_dist_setting()
        self.log = Logger(self.dist)
        self.engine = None  # DeepSpeed engine
        self.ddp = None
        self.scaler = None

    # -- setup ---------------------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        import torch

        from ..utils import seed_everything
        from .sft_precheck import check_extras, check_local_paths, precheck_rows, resolve_model_source

        args, dist = self.args, self.dist
        check_extras(args.sft_type, args.deepspeed)
        check_local_paths(args)
        init_distributed(args, dist, self.log)
        args.resolve(dist.world_size, dist.rank, log=self.log)
        seed_everything(args.seed, verbose=False)
        self.log(f"Global seed set to {args.seed}")
        self.device = torch.device(f"cuda:{dist.local_rank}" if torch.cuda.is_available() else "cpu")
        # everything else that needs no model first: every row's format/rules/images, the hub (see sft_precheck)
        self.data = precheck_rows(args, self.log, quiet=not dist.is_master)
        resolve_model_source(args, self.log)
        self._load_model()
        self._load_data()
        # made once the model and the first sample are known to work (a run that fails earlier leaves no folder)
        self.run_dir = make_run_dir(args, dist)
        self.log(f"output_dir: {self.run_dir}")
        self.plan = Plan.make(len(self.train), args, dist.world_size)
        self.log(f"train rows: {len(self.train)}, val rows: {len(self.val)}; per rank: "
                 f"{self.plan.micro_batches_per_epoch} micro-batch(es) of {args.batch_size} per epoch, "
                 f"gradient_accumulation_steps {args.gradient_accumulation_steps} -> {self.plan.updates_per_epoch} "
                 f"step(s) per epoch, max_steps {self.plan.max_steps}, epochs {self.plan.num_train_epochs}")
        self._prepare_optimization()
        self.state = TrainState()
        resume_rng = self._resume() if args.resume_from_checkpoint else None
        if dist.is_master:
            self._write_json(os.path.join(self.run_dir, "sft_args.json"), args.to_dict())
        self.log(f"The logging file will be saved in: {os.path.join(self.run_dir, 'logging.jsonl')}")
        if resume_rng is not None:
            set_rng_state(resume_rng)
        result = self._train()
        _barrier()
        return result

    def _load_model(self) -> None:
        import torch

        from ..models.loader import get_model_tokenizer, load_pretrained_model, resolve_model_dir
        from ..models.registry import MODELS

        args, dist = self.args, self.dist
        self.meta = MODELS.get(args.model_type)
        base_dir = resolve_model_dir(args.model_type, args.model_id_or_path)
        args.model_id_or_path = os.path.abspath(str(base_dir))
        kwargs = sft_model_kwargs(args, dist)
        self.log(f"model_kwargs: {kwargs}, dtype: {args.dtype}")
        full_resume = (args.resume_from_checkpoint and args.sft_type == "full" and args.deepspeed is None)
        model, tokenizer = get_model_tokenizer(args.model_type, args.torch_dtype, kwargs, load_model=not full_resume,
                                               model_id_or_path=args.model_id_or_path,
                                               tokenizer_id_or_path=args.tokenizer_id_or_path)
        if full_resume:  # a full checkpoint folder is a complete model
            model = load_pretrained_model(args.model_type, args.resume_from_checkpoint, args.torch_dtype, **kwargs)
            self.log(f"loaded the full model weights from {args.resume_from_checkpoint}")
        if not any(p.is_cuda for p in model.parameters()) and torch.cuda.is_available() and "device_map" not in kwargs:
            model.to(self.device)
        self.tokenizer = tokenizer
        model.config.use_cache = False if args.gradient_checkpointing else getattr(model.config, "use_cache", None)
        if args.gradient_checkpointing:
            enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
            enable()
            model.enable_input_require_grads()
            self.log("gradient_checkpointing: on (model.config.use_cache = False, enable_input_require_grads)")
        else:
            self.log("gradient_checkpointing: off")
        if args.sft_type == "lora":
            model = self._add_lora(model)
        else:
            for p in model.parameters():
                p.requires_grad_(True)
        n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
        n_all = sum(p.numel() for p in model.parameters())
        self.log(f"trainable parameters: {n_train:,} of {n_all:,} ({100 * n_train / max(n_all, 1):.4f}%)")
        self.model = model
        self.model_dtype = next(p.dtype for p in model.parameters() if p.is_floating_point())

    def _add_lora(self, model: Any) -> Any:
        from peft import LoraConfig, get_peft_model

        args = self.args
        targets = resolve_lora_target_modules(model, args.model_type, args.lora_target_modules)
        names = lora_module_names(model, targets, args.lora_target_regex)
        if not names:
            raise SftArgumentError(f"--lora_target_modules {targets} (regex {args.lora_target_regex!r}) matches no "
                                   f"Linear module of {args.model_type}")
        args.lora_target_modules = targets
        args.lora_target_module_names = names
        self.log(f"lora_target_modules: {targets}" + (f", lora_target_regex: {args.lora_target_regex!r}"
                                                       if args.lora_target_regex else ""))
        self.log(f"LoRA wraps {len(names)} Linear module(s): " + "; ".join(group_module_names(names)))
        config = LoraConfig(r=args.lora_rank, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout_p,
                            target_modules=args.lora_target_regex or targets, bias=args.lora_bias_trainable,
                            task_type="CAUSAL_LM")
        from ..noise import quiet_known_warnings

        with quiet_known_warnings():  # peft reads transformers' deprecated is_gradient_checkpointing
            return get_peft_model(model, config)

    def _load_data(self) -> None:
        from ..datasets.rules import RowChecker
        from ..templates import get_template
        from .inference import profile_tokenizer, template_kwargs_for
        from .sft_precheck import check_split_lengths

        args = self.args
        self.tokenizer = profile_tokenizer(self.tokenizer, args.template_type, args.template_profile)
        self.template = get_template(args.template_type, self.tokenizer, default_system=args.system,
                                     max_length=args.max_length, truncation_strategy=args.truncation_strategy,
                                     max_length_counts_images=args.max_length_counts_images,
                                     profile=args.template_profile, **template_kwargs_for(args.model_type, self.model))
        # the rows were checked before the model loaded; the tokenized length needs the tokenizer (none: on encode)
        loaded = check_split_lengths(self.data, self.template, args, quiet=not self.dist.is_master)
        self.train, self.val = loaded.train, loaded.val
        self.log(loaded.report.summary())
        self.dataset_report = loaded.report
        if not self.train:
            raise SftArgumentError("the training split is empty (check --dataset and --check_dataset_strategy)")
        self.checker = RowChecker(args.model_type)
        from ..datasets.collate import DataCollator

        self.collator = DataCollator(args.model_type, self.tokenizer, padding_side="right")
        first = self.encode(self.train[0])
        if self.dist.is_master:
            self.log("first training sample:\n" + format_example(self.tokenizer, first, self.template))

    def encode(self, sample: Any) -> dict[str, Any]:
        from .sft_precheck import encode_row

        return encode_row(self.template, sample, self.checker)

    def _prepare_optimization(self) -> None:
        import torch

        args, dist = self.args, self.dist
        if args.deepspeed_config is not None:
            import deepspeed

            config = fill_deepspeed_config(args.deepspeed_config, args, self.model, self.plan.max_steps,
                                           dist.world_size, cpu=not torch.cuda.is_available(), log=self.log)
            args.deepspeed_config = config
            params = [p for p in self.model.parameters() if p.requires_grad]
            self.engine, self.optimizer, _, self.scheduler = deepspeed.initialize(
                model=self.model, model_parameters=params, config=config)
            self.log(f"DeepSpeed ZeRO stage {config.get('zero_optimization', {}).get('stage', 0)}: optimizer "
                     f"{type(self.optimizer).__name__}, scheduler {type(self.scheduler).__name__}")
            return
        self.optimizer = build_optimizer(self.model, args)
        self.scheduler = build_scheduler(self.optimizer, args, self.plan.max_steps)
        if args.fp16 and torch.cuda.is_available():
            self.scaler = torch.amp.GradScaler("cuda")
        if dist.is_dist:
            from torch.nn.parallel import DistributedDataParallel

            find_unused = args.ddp_find_unused_parameters
            broadcast = args.ddp_broadcast_buffers
            if find_unused is None:
                # ms-swift: `not gradient_checkpointing`. vlmref: always True, because every LLaVA/Yi-VL model leaves
                # the last CLIP layer unused (features come from layer -2): with False, DDP fails on step 2 with
                # "Expected to have finished reduction in the prior iteration" (LoRA DEFAULT wraps that layer's q/k/v)
                find_unused = True
            if broadcast is None:
                broadcast = not args.gradient_checkpointing
            device_ids = [dist.local_rank] if torch.cuda.is_available() else None
            import inspect

            sync = ("forward_sync_buffers" if "forward_sync_buffers" in
                    inspect.signature(DistributedDataParallel.__init__).parameters else "broadcast_buffers")
            self.ddp = DistributedDataParallel(self.model, device_ids=device_ids, find_unused_parameters=find_unused,
                                               **{sync: broadcast})

    @property
    def forward_module(self) -> Any:
        return self.engine or self.ddp or self.model

    # -- resume ----------------------------------------------------------------------------------------------------
    def _resume(self) -> dict[str, Any] | None:
        args, dist = self.args, self.dist
        ckpt = args.resume_from_checkpoint
        state_path = os.path.join(ckpt, "trainer_state.json")
        saved = json.load(open(state_path, encoding="utf-8")) if os.path.isfile(state_path) else {}
        if self.engine is not None:
            tag = f"global_step{saved.get('global_step')}"
            safe_deepspeed_loads(self.engine)  # DeepSpeed itself would torch.load(weights_only=False)
            load_path, _ = self.engine.load_checkpoint(ckpt, tag=tag, load_module_strict=args.sft_type == "full",
                                                       load_optimizer_states=not args.resume_only_model,
                                                       load_lr_scheduler_states=not args.resume_only_model,
                                                       load_module_only=args.resume_only_model)
            if load_path is None:
                raise SftArgumentError(f"{ckpt}: no DeepSpeed state {tag}/ (was it written by a --deepspeed run?)")
        elif args.sft_type == "lora":
            self._load_adapter(ckpt)
        if args.resume_only_model:
            self.log(f"resume_only_model: weights from {ckpt}; optimizer, scheduler, data position start afresh")
            return None
        if not saved:
            raise SftArgumentError(f"{ckpt}: no trainer_state.json, cannot resume the training state")
        self._check_resume_compatible(saved)
        if self.engine is None:
            opt_path, sch_path = os.path.join(ckpt, "optimizer.pt"), os.path.join(ckpt, "scheduler.pt")
            if os.path.isfile(opt_path):
                self.optimizer.load_state_dict(load_plain(opt_path))
            else:
                self.log(f"warning: {ckpt} has no optimizer.pt (saved with --save_only_model true, ms-swift's default "
                         "for full): the AdamW moments restart from zero, so the losses will differ from an "
                         "uninterrupted run; train with --save_only_model false for an exact resume")
            if os.path.isfile(sch_path):
                self.scheduler.load_state_dict(load_plain(sch_path))
            else:
                for _ in range(saved["global_step"]):
                    self.scheduler.step()
        st = self.state
        st.global_step = int(saved["global_step"])
        st.best_metric = saved.get("best_metric")
        st.best_model_checkpoint = saved.get("best_model_checkpoint")
        st.last_model_checkpoint = saved.get("last_model_checkpoint")
        st.log_history = list(saved.get("log_history", []))
        st.window = Window(**saved.get("window", {}))
        st.window.train_time = 0.0
        self.log(f"resumed from {ckpt} at global_step {st.global_step} (epoch {saved.get('epoch')}); data position: "
                 f"{saved.get('data_position')}")
        rng_path = os.path.join(ckpt, rng_file(dist))
        if not os.path.isfile(rng_path):
            self.log(f"warning: {rng_path} missing: dropout and other random draws will differ from the original run")
            return None
        return load_rng_state(rng_path)

    def _check_resume_compatible(self, saved: dict[str, Any]) -> None:
        args = self.args
        now = {"world_size": self.dist.world_size, "batch_size": args.batch_size,
               "gradient_accumulation_steps": args.gradient_accumulation_steps, "n_train": self.plan.n_train}
        diff = {k: (saved.get(k), v) for k, v in now.items() if saved.get(k) is not None and saved.get(k) != v}
        if diff:
            self.log(f"warning: resuming with a different data layout {diff} (saved, now): the data position is "
                     "recomputed from global_step and the sample order differs from the original run")

    def _load_adapter(self, ckpt: str) -> None:
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        config_path = os.path.join(ckpt, "adapter_config.json")
        weights = os.path.join(ckpt, "adapter_model.safetensors")
        if not os.path.isfile(weights):
            raise SftArgumentError(f"{ckpt}: no adapter_model.safetensors (not a LoRA checkpoint?)")
        saved = json.load(open(config_path, encoding="utf-8"))
        now = self.model.peft_config["default"]
        saved_targets = saved.get("target_modules")
        now_targets = now.target_modules
        if isinstance(saved_targets, list) and not isinstance(now_targets, str):
            if set(saved_targets) != set(now_targets) or saved.get("r") != now.r:
                raise SftArgumentError(f"{ckpt}: the adapter (r={saved.get('r')}, targets {sorted(saved_targets)}) "
                                       f"does not match this run (r={now.r}, targets {sorted(now_targets)})")
        result = set_peft_model_state_dict(self.model, load_file(weights))
        unexpected = getattr(result, "unexpected_keys", [])
        if unexpected:
            raise SftArgumentError(f"{ckpt}: adapter keys not in the model: {unexpected[:5]}")
        self.log(f"loaded the LoRA adapter from {ckpt}")

    # -- the loop --------------------------------------------------------------------------------------------------
    def _micro_batches(self, step: int) -> list[list[int]]:
        epoch, start, end = self.plan.micro_range(step)
        if getattr(self, "_order_epoch", None) != epoch:
            self._order = epoch_order(len(self.train), epoch, self.args.data_seed, self.dist.world_size,
                                      self.dist.rank)
            self._order_epoch = epoch
        bs = self.args.batch_size
        return [self._order[i * bs:(i + 1) * bs] for i in range(start, end)]

    def _batch(self, samples: list[Any]) -> dict[str, Any]:
        encoded = [self.encode(s) for s in samples]
        batch = self.collator(encoded)
        from ..utils import to_device

        return {k: to_device(v, self.device, self.model_dtype) for k, v in batch.items()}

    def _forward(self, batch: dict[str, Any]):
        import contextlib

        import torch

        ctx = contextlib.nullcontext()
        if torch.cuda.is_available() and (self.args.fp16 or self.args.bf16) and self.engine is None:
            ctx = torch.autocast("cuda", dtype=torch.float16 if self.args.fp16 else torch.bfloat16)
        with ctx:
            out = self.forward_module(**batch)
        labels = batch["labels"]
        with torch.no_grad():
            pred = out.logits[:, :-1].argmax(-1)
            gold = labels[:, 1:].to(pred.device)
            mask = gold != -100
            correct = float(((pred == gold) & mask).sum())
        return out.loss, correct, float(mask.sum())

    def _train_step(self, step: int) -> float | None:
        """One optimizer step (``step`` 0-based); returns the grad norm."""
        import contextlib

        import torch

        micro = self._micro_batches(step)
        n = len(micro)
        w = self.state.window
        step_loss = 0.0
        for i, idx in enumerate(micro):
            batch = self._batch([self.train[j] for j in idx])
            last = i == n - 1
            sync = contextlib.nullcontext() if (self.ddp is None or last) else self.ddp.no_sync()
            with sync:
                if self.engine is not None:
                    self.engine.set_gradient_accumulation_boundary(last)
                loss, correct, total = self._forward(batch)
                scaled = loss / n
                if self.engine is not None:
                    self.engine.backward(scaled, scale_wrt_gas=False)
                    self.engine.step()
                elif self.scaler is not None:
                    self.scaler.scale(scaled).backward()
                else:
                    scaled.backward()
            step_loss += float(loss.detach()) / n
            w.correct += correct
            w.total += total
            w.tokens += float(batch["attention_mask"].sum())
            w.samples += len(idx)
        if self.engine is not None:
            norm = self.engine.get_global_grad_norm()
        else:
            params = [p for p in self.model.parameters() if p.requires_grad]
            if self.scaler is not None:
                self.scaler.unscale_(self.optimizer)
            norm = (torch.nn.utils.clip_grad_norm_(params, self.args.max_grad_norm) if self.args.max_grad_norm > 0
                    else None)
            if self.scaler is not None:
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
        w.loss += step_loss
        w.steps += 1
        self._run_loss_sum += step_loss
        self._run_steps += 1
        return None if norm is None else float(norm)

    def _current_lr(self) -> float:
        if self.engine is not None:
            return float(self.engine.get_lr()[0])
        return float(self.scheduler.get_last_lr()[0])

    def _train(self) -> dict[str, Any]:
        st = self.state
        self._run_loss_sum, self._run_steps = 0.0, 0
        self._start = time.time()
        self._started_at_step = st.global_step
        self._bar = self._progress_bar()
        self.forward_module.train()
        try:
            self._train_loop()
        finally:  # an error is printed after the bar, never inside it
            if self._bar is not None:
                self._bar.close()
                self.log.bar = None
        return self._finish()

    def _train_loop(self) -> None:
        args, plan, st = self.args, self.plan, self.state
        while st.global_step < plan.max_steps:
            t0 = time.time()
            grad_norm = self._train_step(st.global_step)
            st.global_step += 1
            st.window.train_time += time.time() - t0
            if self._bar is not None:
                self._bar.update(1)
            step = st.global_step
            if step == 1 or step % args.logging_steps == 0:
                self._log_train(grad_norm)
            final = step == plan.max_steps
            evaluated = None
            if self.val and args.evaluation_strategy == "steps" and (step % args.eval_steps == 0 or final):
                evaluated = self._evaluate()
            if args.save_strategy == "steps" and (step % args.save_steps == 0 or final):
                self._save(evaluated)

    def _progress_bar(self):
        if not self.dist.is_master or self.args.disable_tqdm:
            return None
        try:
            from tqdm import tqdm
        except ImportError:  # pragma: no cover - tqdm ships with transformers
            bar = SimpleBar(self.plan.max_steps, self.state.global_step)
        else:
            bar = tqdm(desc="Train", total=self.plan.max_steps, initial=self.state.global_step, dynamic_ncols=True)
        self.log.bar = bar
        return bar

    def _progress_fields(self) -> dict[str, Any]:
        st, plan = self.state, self.plan
        elapsed = time.time() - self._start
        done = (st.global_step - self._started_at_step) / max(plan.max_steps - self._started_at_step, 1)
        out = {"global_step/max_steps": f"{st.global_step}/{plan.max_steps}",
               "percentage": f"{100 * st.global_step / plan.max_steps:.2f}%", "elapsed_time": _format_time(elapsed)}
        if done > 0:
            out["remaining_time"] = _format_time(elapsed / done - elapsed)
        return out

    def _log_train(self, grad_norm: float | None) -> None:
        st = self.state
        w = st.window
        loss, steps, correct, total, tokens, samples = _all_reduce_sum(
            [w.loss, w.steps, w.correct, w.total, w.tokens, w.samples])
        train_time = max(_all_reduce_sum([w.train_time])[0] / self.dist.world_size, 1e-9)
        world = self.dist.world_size
        record = {
            "loss": round(loss / max(steps, 1), 8),
            "acc": round(correct / max(total, 1), 8),
            "grad_norm": None if grad_norm is None else round(grad_norm, 8),
            "learning_rate": self._current_lr(),
            "epoch": round(self.plan.epoch_float(st.global_step), 6),
            "step": st.global_step,
            "tokens_per_second": round(tokens / train_time, 3),
            "samples_per_second": round(samples / train_time, 3),
            "train_speed(iter/s)": round(steps / world / train_time, 6),
            "memory": peak_memory(self.dist),
            **self._progress_fields(),
        }
        st.window = Window()
        self._emit(record)

    def _emit(self, record: dict[str, Any]) -> None:
        self.state.log_history.append(record)
        if not self.dist.is_master:
            return
        with open(os.path.join(self.run_dir, "logging.jsonl"), "a", encoding="utf-8") as f:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
        short = {k: v for k, v in record.items() if k not in ("memory", "log_history")}
        self.log(json.dumps(short, ensure_ascii=False))

    def _evaluate(self) -> dict[str, Any]:
        import torch

        t0 = time.time()
        module = self.forward_module
        module.eval()
        world, rank, n_val = self.dist.world_size, self.dist.rank, len(self.val)
        mine = list(range(rank, n_val, world))  # this rank's rows
        per_rank = math.ceil(n_val / world)
        bs = self.args.eval_batch_size
        loss_sum = n_rows = correct = total = 0.0
        n_batches = 0
        with torch.no_grad():
            # every rank runs the same number of forwards (ZeRO-3 gathers parameters collectively); a rank with no
            # row left runs the first row again and does not count it
            for b in range(0, per_rank, bs):
                rows = mine[b:b + bs]
                batch = self._batch([self.val[j] for j in (rows or [0])])
                loss, c, t = self._forward(batch)
                n_batches += 1
                if rows:
                    loss_sum += float(loss) * len(rows)
                    n_rows += len(rows)
                    correct += c
                    total += t
        loss_sum, n_rows, correct, total, n_batches = _all_reduce_sum([loss_sum, n_rows, correct, total, n_batches])
        module.train()
        runtime = time.time() - t0
        record = {"eval_loss": round(loss_sum / max(n_rows, 1), 8), "eval_acc": round(correct / max(total, 1), 8),
                  "eval_runtime": round(runtime, 4), "eval_samples_per_second": round(n_rows / runtime, 3),
                  "eval_steps_per_second": round(n_batches / self.dist.world_size / runtime, 3),
                  "epoch": round(self.plan.epoch_float(self.state.global_step), 6), "step": self.state.global_step,
                  **self._progress_fields()}
        self.state.last_eval = record
        self._emit(record)
        return record

    # -- saving ----------------------------------------------------------------------------------------------------
    def _save(self, evaluated: dict[str, Any] | None) -> None:
        st = self.state
        name = f"checkpoint-{st.global_step}"
        final_dir = os.path.join(self.run_dir, name)
        if evaluated is not None:
            metric = evaluated["eval_loss"]
            if st.best_metric is None or st.best_model_checkpoint is None or metric < st.best_metric:
                st.best_metric, st.best_model_checkpoint = metric, final_dir
        st.last_model_checkpoint = final_dir
        CheckpointWriter(self).write(st.global_step)
        if self.dist.is_master:
            for old in checkpoints_to_delete(list_checkpoints(self.run_dir), self.args.save_total_limit,
                                             st.best_model_checkpoint):
                remove_dir_atomically(old)
                self.log(f"deleted {old} (save_total_limit {self.args.save_total_limit})")
        _barrier()

    def trainer_state(self) -> dict[str, Any]:
        st, plan, args = self.state, self.plan, self.args
        epoch, start, _ = plan.micro_range(st.global_step) if st.global_step < plan.max_steps else (None, None, None)
        return {
            "global_step": st.global_step, "max_steps": plan.max_steps,
            "epoch": plan.epoch_float(st.global_step) if st.global_step else 0.0,
            "num_train_epochs": plan.num_train_epochs, "logging_steps": args.logging_steps,
            "eval_steps": args.eval_steps, "save_steps": args.save_steps, "train_batch_size": args.batch_size,
            "batch_size": args.batch_size, "gradient_accumulation_steps": args.gradient_accumulation_steps,
            "world_size": self.dist.world_size, "n_train": plan.n_train, "data_seed": args.data_seed,
            "data_position": {"epoch": epoch, "micro_batch": start, "micro_batches_per_epoch":
                              plan.micro_batches_per_epoch, "updates_per_epoch": plan.updates_per_epoch},
            "best_metric": st.best_metric, "best_model_checkpoint": st.best_model_checkpoint,
            "last_model_checkpoint": st.last_model_checkpoint,
            "window": vars(st.window), "log_history": st.log_history,
        }

    def _finish(self) -> dict[str, Any]:
        st = self.state
        runtime = time.time() - self._start
        steps = st.global_step - self._started_at_step
        samples = steps * self.args.batch_size * self.args.gradient_accumulation_steps * self.dist.world_size
        record = {
            "train_runtime": round(runtime, 4),
            "train_samples_per_second": round(samples / runtime, 3),
            "train_steps_per_second": round(steps / runtime, 3),
            "train_loss": round(self._run_loss_sum / max(self._run_steps, 1), 8) if self._run_steps else None,
            "epoch": round(self.plan.epoch_float(st.global_step), 6) if st.global_step else 0.0,
            "global_step": st.global_step,
            "last_model_checkpoint": st.last_model_checkpoint,
            "best_model_checkpoint": st.best_model_checkpoint,
            "best_metric": st.best_metric,
            "memory": peak_memory(self.dist),
            "output_dir": self.run_dir,
        }
        self._emit(record)
        self.log(f"last_model_checkpoint: {st.last_model_checkpoint}")
        self.log(f"best_model_checkpoint: {st.best_model_checkpoint}")
        return {**record, "log_history": st.log_history, "dataset_info": self.dataset_report.splits}

    @staticmethod
    def _write_json(path: str, data: Any) -> None:
        from ..utils import atomic_write_bytes

        atomic_write_bytes(path, (json.dumps(data, ensure_ascii=False, indent=2) + "\n").encode("utf-8"))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(path, 0o666 & ~umask)  # mkstemp creates 0600; checkpoints are shared files


class SimpleBar:  # pragma: no cover - used only without tqdm
    """A one-line progress bar for when tqdm is missing."""

    def __init__(self, total: int, initial: int = 0) -> None:
        self.total, self.n = total, initial

    def update(self, k: int = 1) -> None:
        self.n += k
        print(f"\rTrain: {self.n}/{self.total}", end="", file=sys.stderr, flush=True)

    def write(self, line: str) -> None:
        print(f"\r{line}", file=sys.stderr, flush=True)

    def close(self) -> None:
        print(file=sys.stderr, flush=True)
