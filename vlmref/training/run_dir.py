"""The run dir of ``vlmref sft``: ``<output_dir>/<model_type>/v<N>-<YYYYMMDD-HHMMSS>`` (ms-swift's layout).

::

    from vlmref.training.run_dir import next_version_dir
    next_version_dir("output/qwen-vl-chat")   # 'output/qwen-vl-chat/v0-20260101-120000' in an empty folder
"""

from __future__ import annotations

import os
import re
import secrets
import time

from ..llm.sft_args import SftArguments
from .dist import DistSetting, barrier, broadcast_object


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
    """``prepare_run_dir``'s path."""
    return prepare_run_dir(args, dist)[0]


def prepare_run_dir(args: SftArguments, dist: DistSetting) -> tuple[str, bool]:
    """Create the run dir and return ``(absolute path, whether this rank writes the run's files)``. A collective.

    Rank 0 names it (``v<N>-<time>``; ``--add_output_dir_suffix false``: ``output_dir`` itself) and broadcasts the
    name. The files
    are written once per storage: by rank 0, and on a node that does not see rank 0's folder (several nodes without
    shared storage, ms-swift's ``save_on_each_node``) by that node's first process, into its own copy of the folder.
    """
    if args.add_output_dir_suffix:  # rank 0 picks the version name; each rank joins it to its own --output_dir
        work_dir = os.path.join(args.output_dir, args.model_type)
        name = os.path.basename(next_version_dir(work_dir)) if dist.is_master else None
        run_dir = os.path.join(work_dir, broadcast_object(name))
    else:
        run_dir = args.output_dir
    run_dir = os.path.abspath(run_dir)
    if not dist.is_dist:
        os.makedirs(run_dir, exist_ok=True)
        return run_dir, True
    token = broadcast_object(secrets.token_hex(8) if dist.is_master else None)
    marker = os.path.join(run_dir, f".vlmref-storage-{token}")
    if dist.is_master:
        os.makedirs(run_dir, exist_ok=True)
        open(marker, "w").close()
    barrier()
    writer = dist.is_master or (dist.is_local_master and not os.path.exists(marker))
    if writer:
        os.makedirs(run_dir, exist_ok=True)
    barrier()
    if dist.is_master:
        os.remove(marker)
    return run_dir, writer
