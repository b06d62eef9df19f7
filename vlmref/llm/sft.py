"""``vlmref sft``: LoRA or full fine-tuning with ms-swift 2.2.0's flags, defaults and output layout: the recipe that
wires the components of ``vlmref.training`` (the library) into a run.

::

    from vlmref.llm.sft import llm_sft
    from vlmref.llm.sft_args import parse_sft_args
    result = llm_sft(parse_sft_args(['--model_type', 'qwen-vl-chat', '--dataset', 'coco-en-mini-sample#4']))
    result['last_model_checkpoint']   # output/qwen-vl-chat/v0-20260101-120000/checkpoint-1

The run, in order: installed packages -> distributed setup (torchrun env; gloo on CPU, nccl on GPU; DeepSpeed's
communicator with ``--deepspeed``) -> the checks that need no model (``sft_precheck``: paths; every row's format,
rules, markup and images, ms-swift's train/val split; the hub snapshot) -> model and tokenizer
(``get_model_tokenizer``, dtype per ``--dtype``, ``device_map`` per ``training.device_map``) -> the model prepared
(``training.model_prep``: gradient checkpointing, then LoRA per ``training.lora`` or full) -> the length check (not
under ``none``; the report is printed) -> the first sample printed with its label mask -> run dir
``<output_dir>/<model_type>/v<N>-<stamp>`` (``training.run_dir``) -> training.

The training loop is vlmref's own (no HF Trainer); its parts, each documented where it lives:

* Data (``training.plan``): a seeded permutation per epoch dealt to the ranks, cut into micro-batches. Samples are
  encoded lazily with the template (``encode_row``): a bad or too-long row stops the run with an error naming it; no
  row is ever replaced by another (ms-swift's lazy dataset silently substitutes a random row). Batches are
  right-padded (``DataCollator``).
* Updates (``training.step``): ``gradient_accumulation_steps`` micro-batches per optimizer step, the step's loss the
  mean of theirs. AdamW and the schedule (``training.optim``); DDP (``torch.distributed``) when WORLD_SIZE > 1.
* ``--deepspeed`` (``training.deepspeed_config``): ``deepspeed.initialize`` with the config's "auto" values filled as
  HF Trainer fills them; the optimizer and scheduler are DeepSpeed's.
* Eval loss/accuracy on the validation rows (``training.evaluate``) every ``eval_steps`` and at the last step;
  checkpoints (``training.checkpoint``) every ``save_steps`` and at the last step, written atomically, rotated to
  ``save_total_limit`` with the best (lowest eval_loss) checkpoint kept.
* ``--resume_from_checkpoint DIR`` (``training.resume``, ``training.state``): weights, optimizer, scheduler, RNG and
  data position restored, so a resumed run continues with exactly the losses of an uninterrupted one.

Outputs (run dir): ``sft_args.json``, ``logging.jsonl`` (one JSON object per logging step, per evaluation, and a final
record; see ``training.metrics`` for its memory and progress fields), ``checkpoint-<step>/``; see
``training.checkpoint.CheckpointWriter`` for a checkpoint's contents.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

# names with `noqa: F401` are re-exported: tests and tools import them from here (they live in vlmref.training)
from ..training.checkpoint import CheckpointPayload, save_checkpoint, write_json
from ..training.deepspeed_config import fill_deepspeed_config, init_deepspeed  # noqa: F401
from ..training.device_map import sft_model_kwargs
from ..training.dist import DistSetting, all_reduce_sum, barrier, get_dist_setting  # noqa: F401  (DistSetting: re-exported)
from ..training.evaluate import evaluate
from ..training.lora import group_module_names, lora_module_names, resolve_lora_target_modules  # noqa: F401
from ..training.metrics import peak_memory, progress_bar, progress_fields
from ..training.model_prep import first_float_dtype, prepare_model_for_training
from ..training.optim import (  # noqa: F401  (decay_parameter_names, warmup_steps: re-exported)
    build_optimizer,
    build_scheduler,
    decay_parameter_names,
    warmup_steps,
    wrap_ddp,
)
from ..training.plan import Plan, epoch_order
from ..training.resume import (
    layout_differences,
    load_adapter,
    load_deepspeed_state,
    load_optimizer_state,
    read_trainer_state,
)
from ..training.run_dir import next_version_dir, prepare_run_dir  # noqa: F401
from ..training.state import TrainState, Window, trainer_state_dict  # noqa: F401
from ..training.step import autocast_dtype, current_lr, train_step
from .dist import Logger, init_distributed
from .safe_state import load_rng_state
from .sample_view import format_example
from .sft_args import SftArgumentError, SftArguments
from .sft_checkpoint import (  # noqa: F401
    CheckpointWriter,
    checkpoints_to_delete,
    rng_file,
    set_rng_state,
)


def llm_sft(args: SftArguments) -> dict[str, Any]:
    """Run ``vlmref sft`` with ``args`` (see the module docstring); returns the run summary (also the last line of
    logging.jsonl): run dir, last/best checkpoint, best metric, global_step, log history, memory, train time."""
    return SftRun(args).run()


class SftRun:
    """One ``vlmref sft`` run: ``SftRun(args).run()`` (what ``llm_sft`` does)."""

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
        self.run_dir, self.writes_files = prepare_run_dir(args, dist)
        self.log(f"output_dir: {self.run_dir}")
        self.plan = Plan.make(len(self.train), args, dist.world_size)
        self.log(f"train rows: {len(self.train)}, val rows: {len(self.val)}; per rank: "
                 f"{self.plan.micro_batches_per_epoch} micro-batch(es) of {args.batch_size} per epoch, "
                 f"gradient_accumulation_steps {args.gradient_accumulation_steps} -> {self.plan.updates_per_epoch} "
                 f"step(s) per epoch, max_steps {self.plan.max_steps}, epochs {self.plan.num_train_epochs}")
        self._prepare_optimization()
        self.state = TrainState()
        resume_rng = self._resume() if args.resume_from_checkpoint else None
        if self.writes_files:
            write_json(os.path.join(self.run_dir, "sft_args.json"), args.to_dict())
        self.log(f"The logging file will be saved in: {os.path.join(self.run_dir, 'logging.jsonl')}")
        if resume_rng is not None:
            set_rng_state(resume_rng)
        result = self._train()
        barrier()
        return result

    def _load_model(self) -> None:
        import torch

        from ..models.loader import get_model_tokenizer, load_pretrained_model, resolve_model_dir
        from ..models.model_types import MODELS

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
        self.model = prepare_model_for_training(model, args, self.log)
        self.model_dtype = first_float_dtype(self.model)

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
            self.engine, self.optimizer, self.scheduler = init_deepspeed(self.model, args, self.plan.max_steps,
                                                                         dist.world_size, self.log)
            return
        self.optimizer = build_optimizer(self.model, args)
        self.scheduler = build_scheduler(self.optimizer, args, self.plan.max_steps)
        if args.fp16 and torch.cuda.is_available():
            self.scaler = torch.amp.GradScaler("cuda")
        if dist.is_dist:
            self.ddp = wrap_ddp(self.model, args, dist)

    @property
    def forward_module(self) -> Any:
        return self.engine or self.ddp or self.model

    # -- resume ----------------------------------------------------------------------------------------------------
    def _resume(self) -> dict[str, Any] | None:
        args, dist = self.args, self.dist
        ckpt = args.resume_from_checkpoint
        saved = read_trainer_state(ckpt)
        if self.engine is not None:
            load_deepspeed_state(self.engine, ckpt, saved, args)
        elif args.sft_type == "lora":
            load_adapter(self.model, ckpt, self.log)
        if args.resume_only_model:
            self.log(f"resume_only_model: weights from {ckpt}; optimizer, scheduler, data position start afresh")
            return None
        if not saved:
            raise SftArgumentError(f"{ckpt}: no trainer_state.json, cannot resume the training state")
        self._check_resume_compatible(saved)
        if self.engine is None:
            load_optimizer_state(self.optimizer, self.scheduler, ckpt, saved["global_step"], self.log)
        st = self.state.restore(saved)
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
        diff = layout_differences(saved, now)
        if diff:
            self.log(f"warning: resuming with a different data layout {diff} (saved, now): the data position is "
                     "recomputed from global_step and the sample order differs from the original run")

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

    def _autocast(self) -> Any:
        return autocast_dtype(self.args.fp16, self.args.bf16, self.engine)

    def _train_step(self, step: int) -> float | None:
        """One optimizer step (``step`` 0-based, ``training.step.train_step``) added to the window; the grad norm."""
        result = train_step(self.model, self._micro_batches(step), optimizer=self.optimizer, scheduler=self.scheduler,
                            max_grad_norm=self.args.max_grad_norm,
                            make_batch=lambda idx: self._batch([self.train[j] for j in idx]), engine=self.engine,
                            ddp=self.ddp, scaler=self.scaler, autocast=self._autocast())
        w = self.state.window
        w.correct += result.correct
        w.total += result.total
        w.tokens += result.tokens
        w.samples += result.samples
        w.loss += result.loss
        w.steps += 1
        self._run_loss_sum += result.loss
        self._run_steps += 1
        return result.grad_norm

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
        bar = progress_bar(self.plan.max_steps, self.state.global_step)
        self.log.bar = bar
        return bar

    def _progress_fields(self) -> dict[str, Any]:
        return progress_fields(self.state.global_step, self.plan.max_steps, self._started_at_step, self._start)

    def _log_train(self, grad_norm: float | None) -> None:
        st = self.state
        w = st.window
        loss, steps, correct, total, tokens, samples = all_reduce_sum(
            [w.loss, w.steps, w.correct, w.total, w.tokens, w.samples])
        train_time = max(all_reduce_sum([w.train_time])[0] / self.dist.world_size, 1e-9)
        world = self.dist.world_size
        record = {
            "loss": round(loss / max(steps, 1), 8),
            "acc": round(correct / max(total, 1), 8),
            "grad_norm": None if grad_norm is None else round(grad_norm, 8),
            "learning_rate": current_lr(self.scheduler, self.engine),
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
        t0 = time.time()
        sums = evaluate(self.forward_module, len(self.val), lambda idx: self._batch([self.val[j] for j in idx]),
                        self.args.eval_batch_size, self.dist.world_size, self.dist.rank, self._autocast())
        runtime = time.time() - t0
        record = {"eval_loss": round(sums.loss, 8), "eval_acc": round(sums.acc, 8),
                  "eval_runtime": round(runtime, 4), "eval_samples_per_second": round(sums.n_rows / runtime, 3),
                  "eval_steps_per_second": round(sums.n_batches / self.dist.world_size / runtime, 3),
                  "epoch": round(self.plan.epoch_float(self.state.global_step), 6), "step": self.state.global_step,
                  **self._progress_fields()}
        self.state.last_eval = record
        self._emit(record)
        return record

    # -- saving ----------------------------------------------------------------------------------------------------
    def _save(self, evaluated: dict[str, Any] | None) -> None:
        st = self.state
        final_dir = os.path.join(self.run_dir, f"checkpoint-{st.global_step}")
        if evaluated is not None:
            metric = evaluated["eval_loss"]
            if st.best_metric is None or st.best_model_checkpoint is None or metric < st.best_metric:
                st.best_metric, st.best_model_checkpoint = metric, final_dir
        st.last_model_checkpoint = final_dir
        save_checkpoint(CheckpointPayload(
            run_dir=self.run_dir, step=st.global_step, model=self.model, tokenizer=self.tokenizer, args=self.args,
            trainer_state=self.trainer_state(), dist=self.dist, optimizer=self.optimizer, scheduler=self.scheduler,
            engine=self.engine, log=self.log, writer=self.writes_files))

    def trainer_state(self) -> dict[str, Any]:
        """What ``trainer_state.json`` records now (``training.state.trainer_state_dict``)."""
        return trainer_state_dict(self.state, self.plan, self.args, self.dist.world_size)

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
