"""Where ``vlmref sft`` loads the model: the ``device_map`` policy of ms-swift 2.2.0 (sft.py L44-62).

::

    from vlmref.training.dist import DistSetting
    from vlmref.training.device_map import sft_model_kwargs
    sft_model_kwargs(args, DistSetting(), cuda_count=1)   # {'low_cpu_mem_usage': True, 'device_map': 'cuda:0'}
"""

from __future__ import annotations

from typing import Any

from ..llm.sft_args import SftArgumentError, SftArguments
from .dist import DistSetting


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
