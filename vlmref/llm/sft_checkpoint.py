"""Checkpoints of ``vlmref sft``: kept as the old import path of ``vlmref.training.checkpoint`` (where they live).

::

    from vlmref.llm.sft_checkpoint import get_rng_state, set_rng_state
    set_rng_state(get_rng_state())
"""

from __future__ import annotations

from ..training.checkpoint import (  # noqa: F401  (re-exported)
    CHECKPOINT_RE,
    SAVE_HOOK_ENV,
    CheckpointPayload,
    CheckpointWriter,
    _fsync_tree,
    _save_hook,
    checkpoints_to_delete,
    get_rng_state,
    list_checkpoints,
    remove_dir_atomically,
    rng_file,
    save_checkpoint,
    set_rng_state,
    write_json,
)
