"""The training state of ``vlmref sft``: step, best/last checkpoint, log history and the logging window; what
``trainer_state.json`` records, so that ``--resume_from_checkpoint`` continues with exactly the uninterrupted losses.

::

    from vlmref.training.state import TrainState, trainer_state_dict
    state = TrainState()
    state.global_step = 4
    trainer_state_dict(state, plan, args, world_size=1)["data_position"]   # {'epoch': ..., 'micro_batch': ...}
    TrainState().restore(json.load(open("checkpoint-4/trainer_state.json")))   # back at global_step 4
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..llm.sft_args import SftArguments
from .plan import Plan


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

    def restore(self, saved: dict[str, Any]) -> TrainState:
        """Take step, best/last checkpoint, log history and window from a ``trainer_state.json`` (the window's
        ``train_time`` restarts: it measures this process)."""
        self.global_step = int(saved["global_step"])
        self.best_metric = saved.get("best_metric")
        self.best_model_checkpoint = saved.get("best_model_checkpoint")
        self.last_model_checkpoint = saved.get("last_model_checkpoint")
        self.log_history = list(saved.get("log_history", []))
        self.window = Window(**saved.get("window", {}))
        self.window.train_time = 0.0
        return self


def trainer_state_dict(state: TrainState, plan: Plan, args: SftArguments, world_size: int) -> dict[str, Any]:
    """The content of ``trainer_state.json``: the state, the plan and the data position of the next step."""
    st = state
    epoch, start, _ = plan.micro_range(st.global_step) if st.global_step < plan.max_steps else (None, None, None)
    return {
        "global_step": st.global_step, "max_steps": plan.max_steps,
        "epoch": plan.epoch_float(st.global_step) if st.global_step else 0.0,
        "num_train_epochs": plan.num_train_epochs, "logging_steps": args.logging_steps,
        "eval_steps": args.eval_steps, "save_steps": args.save_steps, "train_batch_size": args.batch_size,
        "batch_size": args.batch_size, "gradient_accumulation_steps": args.gradient_accumulation_steps,
        "world_size": world_size, "n_train": plan.n_train, "data_seed": args.data_seed,
        "data_position": {"epoch": epoch, "micro_batch": start, "micro_batches_per_epoch":
                          plan.micro_batches_per_epoch, "updates_per_epoch": plan.updates_per_epoch},
        "best_metric": st.best_metric, "best_model_checkpoint": st.best_model_checkpoint,
        "last_model_checkpoint": st.last_model_checkpoint,
        "window": vars(st.window), "log_history": st.log_history,
    }
