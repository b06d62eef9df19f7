"""What a memory prediction (``vlmref memory``) or a GPU measurement (``vlmref bench``) runs, as data.

>>> s = MemoryScenario("qwen-vl-chat", "sft", text_tokens=64)
>>> s.label()
'qwen-vl-chat sft lora bf16 1x1 GPU, 1 image 480x640 + 64 text tokens, bs 1'
>>> s.devices
1
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from ..errors import VlmrefError

DTYPE_BYTES = {"bf16": 2, "fp16": 2, "fp32": 4}
GIB = 1 << 30

# CUDA context + kernel images, outside PyTorch's allocator (visible in nvidia-smi, not in memory_reserved). With
# lazy module loading (CUDA >= 11.7, torch's default since 1.13, the stack of the seeds' runs) public measurements
# are 300-500 MB: pytorch/pytorch#86509 measured 287 MB lazy vs 667 MB eager for a process that only initialised CUDA,
# and PyTorch maintainers' forum answers give 300-400 MB. A training or generation process loads more kernel modules
# (GEMM, attention, optimizer, NCCL's) than those init-only processes, so the allowance is the range's upper end, a
# stated public figure, not fitted. (Before: 781 MB, pytorch/pytorch#34323, 2020, eager loading.) `vlmref bench`
# measures it on a GPU: nvidia_smi - reserved.
CUDA_CONTEXT_BYTES = 500 * (1 << 20)
# cuBLAS workspace per (handle, stream), from the caching allocator, kept for the process: torch's default
# CUBLAS_WORKSPACE_CONFIG=:4096:2:16:8 = 2 x 4096 KiB + 8 x 16 KiB on the GPUs the seeds name (32 MiB on Hopper and
# newer), aten/src/ATen/cuda/CublasHandlePool.cpp parseChosenWorkspaceSize. Handles are per thread: inference has
# one GEMM thread, training two (the forward's and autograd's device thread for the backward).
CUBLAS_WORKSPACE_BYTES = (4096 * 2 + 16 * 8) * 1024
# NCCL's own buffers per process group, outside the allocator (nvidia-smi shows them): about 544 MiB for 2 ranks
# and 688 MiB for more on 4 x A100 NVLink (NVIDIA/nccl#964); a stated public figure, not fitted
NCCL_BYTES = {2: 544 * (1 << 20), "more": 688 * (1 << 20)}


def cublas_workspaces(mode: str) -> int:
    """cuBLAS workspaces a process of ``mode`` holds (see ``CUBLAS_WORKSPACE_BYTES``)."""
    return 2 if mode == "sft" else 1


def nccl_bytes(world_size: int) -> int:
    """NCCL buffers per process for a data-parallel group of ``world_size`` ranks (0 for one process)."""
    if world_size <= 1:
        return 0
    return NCCL_BYTES[2] if world_size == 2 else NCCL_BYTES["more"]

# ms-swift 2.2.0 default-zero2 / default-zero3 bucket sizes (elements), ``swift/llm/ds_config/zero{2,3}.json``
ZERO2_BUCKET_ELEMENTS = {"allgather_bucket_size": 2e8, "reduce_bucket_size": 2e8}


class ScenarioError(VlmrefError, ValueError):
    """A scenario that cannot be run (bad combination of options)."""


@dataclass(frozen=True)
class MemoryScenario:
    """One configuration whose peak GPU memory per device is predicted (CPU) or measured (GPU).

    * ``mode='infer'``: prefill of one sample (image + ``text_tokens`` text positions), then ``new_tokens`` decode steps
      with the KV cache, no gradients (``vlmref infer``).
    * ``mode='sft'``: two optimizer steps of ``vlmref sft`` on a batch of ``batch_size`` such samples (AdamW, the
      registry's gradient checkpointing default, peft LoRA or full), so the optimizer states are live in the second.
    * ``attention='eager'`` computes attention the eager way (the (heads, L, L) matrix in memory), as ms-swift 2.2.0
      loads these models unless ``--use_flash_attn true`` (see ``memory/attention.py``); ``sdpa`` is vlmref's own.
    * ``legacy_stack=True`` runs the logits the way the stack of the seeds' runs did (transformers 4.4x, the remote
      code): the prefill computes every position's logits, and the families whose code did so return them as float32
      (``memory/legacy.py``); False: vlmref's own (generation keeps the last position's logits only).
    * ``text_tokens=None`` fills the sample to ``max_length`` positions (the worst case the budget allows).
    * ``devices_per_process > 1``: the model is split over that many GPUs inside one process (``device_map``, as the
      seeds' ``CUDA_VISIBLE_DEVICES=0,1`` without ``NPROC_PER_NODE``); ``world_size`` is the number of data-parallel
      processes (DDP, or DeepSpeed ZeRO with ``deepspeed``).
    """

    model_type: str
    mode: Literal["infer", "sft"]
    sft_type: Literal["lora", "full"] = "lora"
    dtype: Literal["bf16", "fp16", "fp32"] = "bf16"
    max_length: int = 2048
    text_tokens: int | None = None
    image_size: tuple[int, int] = (480, 640)  # height, width
    images: int = 1
    batch_size: int = 1
    gradient_checkpointing: bool | None = None  # None: the registry's default for the model
    lora_target_modules: tuple[str, ...] = ("DEFAULT",)
    lora_rank: int = 8
    lora_alpha: int = 32
    deepspeed: Literal["zero2", "zero3"] | None = None
    world_size: int = 1
    devices_per_process: int = 1
    new_tokens: int = 64
    attention: Literal["sdpa", "eager"] = "sdpa"  # sdpa: vlmref's models; eager: ms-swift 2.2.0's default loading
    legacy_stack: bool = False  # the transformers 4.4x / remote-code logits of the seeds' runs (memory/legacy.py)
    notes: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        if self.mode not in ("infer", "sft"):
            raise ScenarioError(f"mode must be 'infer' or 'sft', got {self.mode!r}")
        if self.sft_type not in ("lora", "full"):
            raise ScenarioError(f"sft_type must be 'lora' or 'full', got {self.sft_type!r}")
        if self.dtype not in DTYPE_BYTES:
            raise ScenarioError(f"dtype must be one of {sorted(DTYPE_BYTES)}, got {self.dtype!r}")
        if self.deepspeed not in (None, "zero2", "zero3"):
            raise ScenarioError(f"deepspeed must be zero2, zero3 or None, got {self.deepspeed!r}")
        if self.attention not in ("sdpa", "eager"):
            raise ScenarioError(f"attention must be 'sdpa' or 'eager', got {self.attention!r}")
        if self.mode == "sft" and self.sft_type == "full" and self.dtype == "fp16":
            raise ScenarioError("sft_type full with dtype fp16: vlmref sft trains in fp32 then (as ms-swift 2.2.0); "
                                "use dtype fp32 or bf16")
        if self.deepspeed and self.mode != "sft":
            raise ScenarioError("--deepspeed applies to sft only")
        if self.deepspeed and self.devices_per_process != 1:
            raise ScenarioError("DeepSpeed ZeRO and device_map model parallelism do not combine (ms-swift refuses it)")
        for name in ("max_length", "images", "batch_size", "world_size", "devices_per_process", "lora_rank"):
            if int(getattr(self, name)) < 1:
                raise ScenarioError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.text_tokens is not None and self.text_tokens < 1:
            raise ScenarioError(f"text_tokens must be >= 1, got {self.text_tokens}")
        if self.mode == "infer" and self.new_tokens < 1:
            raise ScenarioError(f"new_tokens must be >= 1 for infer, got {self.new_tokens}")
        h, w = self.image_size
        if h < 1 or w < 1:
            raise ScenarioError(f"image_size must be positive, got {self.image_size}")

    @property
    def devices(self) -> int:
        """GPUs the scenario occupies in all."""
        return self.world_size * self.devices_per_process

    @property
    def is_lora(self) -> bool:
        return self.mode == "sft" and self.sft_type == "lora"

    def label(self) -> str:
        kind = "infer" if self.mode == "infer" else f"sft {self.sft_type}"
        ds = ((f" {self.deepspeed}" if self.deepspeed else "") + (" eager-attn" if self.attention == "eager" else "")
              + (" legacy-stack" if self.legacy_stack else ""))
        text = "max_length" if self.text_tokens is None else f"{self.text_tokens} text tokens"
        h, w = self.image_size
        imgs = f"{self.images} image{'s' if self.images != 1 else ''} {h}x{w}"
        return (f"{self.model_type} {kind} {self.dtype}{ds} {self.world_size}x{self.devices_per_process} GPU, "
                f"{imgs} + {text}, bs {self.batch_size}")

    def sft_flags(self) -> list[str]:
        """The ``vlmref sft`` flags this scenario trains with (world_size is the launch's, not a flag).

        >>> MemoryScenario("qwen-vl-chat", "sft", lora_rank=16).sft_flags()[:6]
        ['--model_type', 'qwen-vl-chat', '--sft_type', 'lora', '--dtype', 'bf16']
        """
        flags = ["--model_type", self.model_type, "--sft_type", self.sft_type, "--dtype", self.dtype,
                 "--max_length", str(self.max_length), "--batch_size", str(self.batch_size),
                 "--gradient_accumulation_steps", "1",  # a traced step is one micro-batch
                 "--lora_rank", str(self.lora_rank), "--lora_alpha", str(self.lora_alpha),
                 "--lora_target_modules", *self.lora_target_modules]
        if self.gradient_checkpointing is not None:
            flags += ["--gradient_checkpointing", "true" if self.gradient_checkpointing else "false"]
        if self.deepspeed:
            flags += ["--deepspeed", f"default-{self.deepspeed}"]
        return flags

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["image_size"] = list(self.image_size)
        data["lora_target_modules"] = list(self.lora_target_modules)
        data["notes"] = list(self.notes)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MemoryScenario:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ScenarioError(f"unknown scenario field(s) {unknown}")
        if "image_size" in known:
            known["image_size"] = tuple(int(x) for x in known["image_size"])
        for key in ("lora_target_modules", "notes"):
            if key in known:
                known[key] = tuple(known[key])
        return cls(**known)

    def with_(self, **changes: Any) -> MemoryScenario:
        return replace(self, **changes)
