"""``vlmref infer``: chat with a model in the terminal, or evaluate it on a dataset (ms-swift 2.2.0 ``swift infer``).

::

    vlmref infer --model_type qwen-vl-chat [--model_id_or_path DIR]          # interactive
    vlmref infer --ckpt_dir output/qwen-vl-chat/v0-.../checkpoint-100 --load_dataset_config true   # validation split
    vlmref infer --model_type yi-vl-6b-chat --val_dataset data/val.jsonl --show_dataset_sample -1

Arguments keep ``InferArguments``' names and defaults (argument.py L1049-1288). With ``--ckpt_dir`` the checkpoint's
``sft_args.json`` supplies model_type, sft_type, template_type, template_profile and system (unless given),
model_id_or_path and dtype (when AUTO); ``--load_dataset_config true`` adds dataset, val_dataset, dataset_seed,
**dataset_test_ratio**, check_dataset_strategy, max_length, truncation_strategy and val_dataset_sample (each only
when not given on the command line), so the evaluated validation rows are the ones training held out. ms-swift
2.2.0 never restores dataset_test_ratio (its 0.01 default wins) nor max_length/truncation_strategy, and it overrides
a given dataset_seed; vlmref restores the split exactly and lets the command line win.

Interactive mode (``eval_human``, the default without a dataset) reads ``<<< `` lines (see ``run_interactive``) and
appends every turn to ``<ckpt_dir or model dir>/infer_result/<YYYYMMDD-HHMMSS>.jsonl``. Dataset mode appends one line
per sample (system, query, response, label, history, images) to the same kind of file as soon as it is generated; a
rerun of a killed run resumes it, skipping the finished rows (``infer_results``). ``--overwrite_generation_config``
saves the generation config next to the results (``<stem>.generation_config.json``): vlmref never rewrites the
checkpoint's own files (ms-swift 2.2.0 overwrites ``<ckpt_dir>/generation_config.json``).
"""

from __future__ import annotations

import builtins
import datetime as dt
import json
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from ..arguments import arg
from ..errors import VlmrefError

MEDIA_PROMPT = "Input a media path or URL <<< "  # ms-swift 2.2.0 read_media_file (2.2.1: 'Input an image path ...')
DASHES = "-" * 50
_DEFAULTS_WHEN_UNSET = {
    "dataset_seed": 42,
    "dataset_test_ratio": 0.01,
    "max_length": -1,
    "truncation_strategy": "delete",
    "check_dataset_strategy": "none",
}
_DTYPES = ("bf16", "fp16", "fp32", "AUTO")


# ---- logging ---------------------------------------------------------------------------------------------------------
class _StderrHandler(logging.StreamHandler):
    """Writes to the *current* ``sys.stderr`` (test capture and pty redirection replace it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def get_logger() -> logging.Logger:
    logger = logging.getLogger("vlmref.infer")
    if not logger.handlers:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("[%(levelname)s:vlmref] %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


logger = get_logger()


# ---- arguments -------------------------------------------------------------------------------------------------------
@dataclass
class InferArguments:
    """``swift infer``'s arguments (names and defaults of ms-swift 2.2.0), resolved in ``__post_init__``; the fields
    with ``init=True`` are ``vlmref infer``'s flags (``vlmref.arguments``), the two ``init=False`` ones are set here.

    Fields whose default is ``None`` here but a value in ms-swift (dataset_seed 42, dataset_test_ratio 0.01,
    max_length -1, truncation_strategy 'delete', check_dataset_strategy 'none') take that value unless
    ``--load_dataset_config true`` restores them from the checkpoint; ``None`` means "not given".
    """

    model_type: str | None = arg(None, "model type (seed name or ms-swift alias; vlmref list models); None: the "
                                       "checkpoint's with --ckpt_dir")
    model_id_or_path: str | None = arg(None, "local model folder or hub id")
    tokenizer_id_or_path: str | None = arg(None, "the tokenizer's folder or hub id when the model folder has none "
                                                 "(CogVLM)")
    sft_type: str = arg("lora", "restored from sft_args.json; 'full' without --ckpt_dir")
    template_type: str = arg("AUTO", "AUTO: the model type's template")
    template_profile: str | None = arg(None, "official or swift-2.2.0 (ms-swift 2.2.0's ids, image markers expanded "
                                             "model-side); None: restored from sft_args.json with --ckpt_dir, else "
                                             "official", metavar="{official,swift-2.2.0}")
    infer_backend: str = arg("AUTO", "AUTO or pt (vllm is not available in vlmref)")
    ckpt_dir: str | None = arg(None, "a .../vx-xxx/checkpoint-xxx folder")
    load_args_from_ckpt_dir: bool = arg(True, "read the checkpoint's sft_args.json")
    load_dataset_config: bool = arg(False, "also restore the dataset split and lengths")
    eval_human: bool | None = arg(None, "true: interactive; false: evaluate the dataset; None: interactive when no "
                                        "dataset is given")
    seed: int = arg(42, "global seed")
    dtype: Literal["bf16", "fp16", "fp32", "AUTO"] = arg("AUTO", "AUTO: the checkpoint's training dtype (without "
                                                                 "--ckpt_dir: the config.json's); on CPU AUTO and "
                                                                 "fp16 load fp32")
    dataset: list[str] = arg(factory=list, help="datasets whose validation split is evaluated")
    val_dataset: list[str] = arg(factory=list, help="datasets evaluated in full")
    dataset_seed: int | None = arg(None, "split seed; None: 42")
    dataset_test_ratio: float | None = arg(None, "validation ratio; None: 0.01")
    show_dataset_sample: int = arg(10, "rows evaluated (-1: all)")
    save_result: bool = arg(True, "write infer_result/<time>.jsonl")
    system: str | None = arg(None, "system prompt ('' = none); None: the template's")
    max_length: int | None = arg(None, "prompt limit in tokens; None or -1: none")
    truncation_strategy: Literal["delete", "truncation_left", "ignore"] | None = arg(
        None, "a prompt over max_length: delete (ignore is an alias) or truncation_left; None: delete")
    max_length_counts_images: bool | None = arg(None, "max_length bounds image positions too; None: false "
                                                      "(ms-swift's text budget)")
    check_dataset_strategy: str | None = arg(None, "none, discard, error or warning; None: none", type=str,
                                             metavar="{none,discard,error,warning}")
    max_new_tokens: int = arg(2048, "generation: new tokens at most")
    do_sample: bool = arg(True, "generation: sample (false: greedy)")
    temperature: float = arg(0.3, "generation: 0 means greedy")
    top_k: int = arg(20, "generation: top-k sampling")
    top_p: float = arg(0.7, "generation: nucleus sampling")
    repetition_penalty: float = arg(1.0, "generation: repetition penalty")
    num_beams: int = arg(1, "generation: beam search width (beam search turns streaming off)")
    stop_words: list[str] | None = arg(None, "extra stop words", nargs="*")
    stream: bool = arg(True, "print the response while it is generated")
    overwrite_generation_config: bool | None = arg(None, "save the generation config next to the results, "
                                                         "infer_result/<time>.generation_config.json (the "
                                                         "checkpoint's own file is never rewritten); None: true with "
                                                         "--ckpt_dir")
    verbose: bool | None = arg(None, "dataset mode: print every sample; None: when < 100 rows")
    val_dataset_sample: int | None = arg(None, "deprecated: first N validation rows")
    # not flags: set by __post_init__ (sft_args.json) and from the template
    sft_args: dict[str, Any] | None = field(default=None, init=False, repr=False)
    infer_media_type: str = field(default="none", init=False)

    def __post_init__(self) -> None:
        from ..models.model_types import MODELS
        from ..templates import TEMPLATES
        from ..templates.meta import DEFAULT_PROFILE, template_profile_error

        self.dataset = _as_list(self.dataset)
        self.val_dataset = _as_list(self.val_dataset)
        if self.stop_words is not None:
            self.stop_words = list(self.stop_words)
        if self.ckpt_dir is not None:
            self.ckpt_dir = os.path.abspath(self.ckpt_dir)
            if not os.path.isdir(self.ckpt_dir):
                raise FileNotFoundError(f"--ckpt_dir {self.ckpt_dir} is not a folder")
        elif self.model_id_or_path and "checkpoint" in self.model_id_or_path and "merged" not in self.model_id_or_path:
            raise ValueError("Please use `--ckpt_dir vx-xxx/checkpoint-xxx` to use the checkpoint.")
        if self.ckpt_dir is None and self.load_args_from_ckpt_dir:
            self.load_args_from_ckpt_dir = False
        if self.load_args_from_ckpt_dir:
            self._load_from_ckpt_dir()
        elif self.load_dataset_config:
            raise ValueError("--load_dataset_config true needs --ckpt_dir (and --load_args_from_ckpt_dir true)")
        for key, value in _DEFAULTS_WHEN_UNSET.items():
            if getattr(self, key) is None:
                setattr(self, key, value)
        if self.max_length is not None and self.max_length <= 0:
            self.max_length = None
        _check_choice("truncation_strategy", self.truncation_strategy, ("delete", "truncation_left", "ignore"))
        _check_choice("check_dataset_strategy", self.check_dataset_strategy, ("none", "discard", "error", "warning"))
        _check_choice("dtype", self.dtype, _DTYPES)
        if self.model_type is None:
            raise ValueError("pass --model_type (or --ckpt_dir with an sft_args.json)")
        self.model_type = MODELS.canonical(self.model_type)
        if self.template_type == "AUTO":
            self.template_type = MODELS.get(self.model_type).template
        self.infer_media_type = TEMPLATES.get(self.template_type).infer_media_type
        self.template_profile = self.template_profile or DEFAULT_PROFILE
        problem = template_profile_error(self.template_type, self.template_profile, bool(self.max_length_counts_images))
        if problem:
            raise ValueError(problem)
        if self.infer_backend == "AUTO":
            self.infer_backend = "pt"
        if self.infer_backend != "pt":
            raise ValueError(f"--infer_backend {self.infer_backend}: vlmref runs PyTorch generation only (pt)")
        if self.temperature == 0:
            self.do_sample = False
        if not self.do_sample:
            self.temperature, self.top_p, self.top_k = 1.0, 1.0, 50
        if self.num_beams != 1:
            self.stream = False
        if self.eval_human is None:
            self.eval_human = not self.dataset and not self.val_dataset
        elif not self.eval_human and not self.dataset and not self.val_dataset:
            raise ValueError("Please provide the dataset or set `--load_dataset_config true`.")
        if self.overwrite_generation_config is None:
            self.overwrite_generation_config = self.ckpt_dir is not None
        if self.ckpt_dir is None:
            self.sft_type = "full"

    def _load_from_ckpt_dir(self) -> None:
        from ..models.model_types import MODELS

        path = os.path.join(self.ckpt_dir, "sft_args.json")
        if not os.path.isfile(path):
            logger.info(f"{path} not found")
            if self.load_dataset_config:
                raise FileNotFoundError(f"--load_dataset_config true needs {path}")
            return
        with open(path, encoding="utf-8") as f:
            sft = json.load(f)
        self.sft_args = sft
        saved_type = sft.get("model_type")
        if self.model_type is not None and saved_type and MODELS.canonical(self.model_type) != MODELS.canonical(saved_type):
            raise ValueError(f"--model_type {self.model_type} but the checkpoint was trained from {saved_type}")
        self.model_type = saved_type or self.model_type
        self.sft_type = sft.get("sft_type", self.sft_type)
        if self.template_type == "AUTO" and sft.get("template_type"):
            self.template_type = sft["template_type"]
        if self.system is None:
            self.system = sft.get("system")
        if self.template_profile is None:
            self.template_profile = sft.get("template_profile")
        if self.model_id_or_path is None:
            self.model_id_or_path = sft.get("model_id_or_path")
        if self.tokenizer_id_or_path is None:
            self.tokenizer_id_or_path = sft.get("tokenizer_id_or_path")
        if self.dtype == "AUTO" and sft.get("dtype") in _DTYPES:
            self.dtype = sft["dtype"]
        if not self.load_dataset_config:
            return
        for key in ("dataset", "val_dataset"):
            if not getattr(self, key):
                setattr(self, key, _as_list(sft.get(key)))
        for key in ("dataset_seed", "dataset_test_ratio", "check_dataset_strategy", "max_length",
                    "truncation_strategy", "max_length_counts_images", "val_dataset_sample"):
            if getattr(self, key) is None and sft.get(key) is not None:
                setattr(self, key, sft[key])
        logger.info(f"restored from sft_args.json: dataset={self.dataset}, val_dataset={self.val_dataset}, "
                    f"dataset_seed={self.dataset_seed}, dataset_test_ratio={self.dataset_test_ratio}, "
                    f"max_length={self.max_length}, truncation_strategy={self.truncation_strategy}")

    def torch_dtype(self):
        """The loading dtype: ``dtype`` (restored from the checkpoint when AUTO); CPU: AUTO and fp16 -> fp32."""
        import torch

        cuda = torch.cuda.is_available()
        if not cuda and self.dtype in ("AUTO", "fp16"):
            if self.dtype == "fp16":
                logger.warning("fp16 matrix multiplication is not supported well on CPU: using fp32")
            self.dtype = "fp32"
        if self.dtype == "AUTO":
            return None  # the model's config.json dtype
        return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[self.dtype]


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    out: list[str] = []
    for item in value:
        out += [part for part in str(item).split(",") if part] if not os.path.exists(str(item)) else [str(item)]
    return out


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"--{name} {value!r}: expected one of {', '.join(choices)}")


# ---- model and template ----------------------------------------------------------------------------------------------
def prepare_model_template(args: InferArguments):
    """Load the model (base, or ``--ckpt_dir`` through ``vlmref.llm.ckpt.load_from_ckpt``), build the generation
    config and the template. Returns ``(model, template, generation_config)``."""
    import torch

    from ..models.loader import get_model_tokenizer
    from ..templates import get_template
    from .inference import get_generation_config, profile_tokenizer, template_kwargs_for

    torch_dtype = args.torch_dtype()
    model_kwargs: dict[str, Any] = {}
    if torch.cuda.is_available():
        model_kwargs["device_map"] = "auto" if torch.cuda.device_count() > 1 else "cuda:0"
    if args.ckpt_dir is not None:
        from .ckpt import load_from_ckpt

        model, tokenizer, sft_args = load_from_ckpt(args.ckpt_dir, torch_dtype=torch_dtype, model_kwargs=model_kwargs,
                                                    tokenizer_id_or_path=args.tokenizer_id_or_path)
        args.sft_args = sft_args or args.sft_args
    else:
        model, tokenizer = get_model_tokenizer(args.model_type, torch_dtype, model_kwargs,
                                               model_id_or_path=args.model_id_or_path,
                                               tokenizer_id_or_path=args.tokenizer_id_or_path)
    model.requires_grad_(False)
    model.eval()
    generation_config = get_generation_config(
        tokenizer, max_new_tokens=args.max_new_tokens, do_sample=args.do_sample, temperature=args.temperature,
        top_k=args.top_k, top_p=args.top_p, repetition_penalty=args.repetition_penalty, num_beams=args.num_beams)
    tokenizer = profile_tokenizer(tokenizer, args.template_type, args.template_profile)
    template = get_template(args.template_type, tokenizer, default_system=args.system, max_length=args.max_length,
                            truncation_strategy=args.truncation_strategy,
                            max_length_counts_images=bool(args.max_length_counts_images),
                            profile=args.template_profile, **template_kwargs_for(args.model_type, model))
    args.system = template.default_system
    logger.info(f"model_type: {args.model_type}, template_type: {args.template_type}, "
                f"template_profile: {args.template_profile}, system: {args.system!r}")
    logger.info(f"generation_config: {generation_config.to_diff_dict()}")
    return model, template, generation_config


def result_path(args: InferArguments, model: Any) -> str | None:
    """``<ckpt_dir or model dir>/infer_result/<YYYYMMDD-HHMMSS>.jsonl`` (a new name if that one exists)."""
    folder = args.ckpt_dir or getattr(model, "model_dir", None)
    if not args.save_result or folder is None:
        return None
    folder = os.path.join(folder, "infer_result")
    os.makedirs(folder, exist_ok=True)
    stem = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path, n = os.path.join(folder, f"{stem}.jsonl"), 1
    while os.path.exists(path):
        path, n = os.path.join(folder, f"{stem}-{n}.jsonl"), n + 1
    return path


def _json_line(obj: dict[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False, default=str) + "\n"


# ---- interactive -----------------------------------------------------------------------------------------------------
def read_multi_line(addi_prompt: str = "", input_fn: Callable[[str], str] | None = None) -> str:
    """Lines until one ends with ``#`` (removed); joined with newlines. Only the first line shows ``<<<[M] ``."""
    input_fn = input_fn or builtins.input
    lines = []
    prompt = f"<<<{addi_prompt} "
    while True:
        text = input_fn(prompt) + "\n"
        prompt = ""
        lines.append(text)
        if text.endswith("#\n"):
            lines[-1] = text[:-2]
            break
    return "".join(lines)


def read_media_file(infer_kwargs: dict[str, Any], infer_media_type: str,
                    input_fn: Callable[[str], str] | None = None) -> None:
    """Ask for an image after the query: every turn for 'round' templates, while none is set for 'dialogue'."""
    input_fn = input_fn or builtins.input
    if infer_media_type == "none":
        return
    images = list(infer_kwargs.get("images") or [])
    if infer_media_type == "round" or len(images) == 0:
        image = input_fn(MEDIA_PROMPT).strip()
        images.append(image or None)
    if images:
        infer_kwargs["images"] = images


def run_interactive(args: InferArguments, model: Any, template: Any, generation_config: Any,
                    jsonl_path: str | None, input_fn: Callable[[str], str] | None = None) -> list[dict[str, Any]]:
    """The ``<<< `` chat loop (ms-swift infer.py L310-416).

    Commands (case-insensitive): ``exit``/``quit``; ``clear`` (history and images); ``reset-system`` (the next input
    is the system prompt, empty = the default; clears the history); ``multi-line`` (``<<<[M] ``, end with ``#``) and
    ``single-line``. 'round' templates ask ``Input a media path or URL <<< `` after every query (empty = no image this
    turn), CogVLM ('dialogue') until it has its image; Qwen-VL and XComposer2 take ``<img>PATH</img>`` in the query.
    A turn that fails (bad image, too long, ...) prints ``error: ...`` and leaves the conversation as it was.
    """
    from .inference import inference, inference_stream

    input_fn = input_fn or builtins.input
    input_mode = "S"
    logger.info("Input `exit` or `quit` to exit the conversation.")
    logger.info("Input `multi-line` to switch to multi-line input mode.")
    logger.info("Input `reset-system` to reset the system and clear the history.")
    if template.meta.supports_multi_round:
        logger.info("Input `clear` to clear the history.")
    else:
        logger.info("The current template only supports single-round dialogues.")
    if args.infer_media_type != "none":
        logger.info("Please enter the conversation content first, followed by the path to the multimedia file.")
    history: list[list[str]] = []
    infer_kwargs: dict[str, Any] = {}
    system: str | None = None
    read_system = False
    result: list[dict[str, Any]] = []
    while True:
        try:
            if input_mode == "S":
                query = input_fn(f"<<<{'[S]' if read_system else ''} ")
            else:
                query = read_multi_line("[MS]" if read_system else "[M]", input_fn)
        except (EOFError, KeyboardInterrupt):
            print()
            break
        command = query.strip().lower()
        if command in {"exit", "quit"}:
            break
        if command == "clear":
            history, infer_kwargs = [], {}
            continue
        if command == "" and not read_system:
            continue
        if command == "reset-system":
            read_system = True
            continue
        if read_system:
            system = query or None
            read_system = False
            history, infer_kwargs = [], {}
            continue
        if input_mode == "S" and command == "multi-line":
            input_mode = "M"
            logger.info("End multi-line input with `#`.")
            logger.info("Input `single-line` to switch to single-line input mode.")
            continue
        if input_mode == "M" and command == "single-line":
            input_mode = "S"
            continue
        if not template.meta.supports_multi_round:
            history, infer_kwargs = [], {}
        before = dict(infer_kwargs)
        try:
            read_media_file(infer_kwargs, args.infer_media_type, input_fn)
        except (EOFError, KeyboardInterrupt):
            print()
            break
        if system is None:
            system = template.default_system
        call = dict(generation_config=generation_config, stop_words=args.stop_words, **infer_kwargs)
        try:
            if args.stream:
                printed, response, new_history = 0, "", history
                gen = inference_stream(model, template, query, history, system, **call)
                try:
                    for response, latest in gen:
                        new_history = latest
                        print(response[printed:], end="", flush=True)
                        printed = len(response)
                finally:
                    gen.close()
                print()
            else:
                response, new_history = inference(model, template, query, history, system, **call)
                print(response)
        except KeyboardInterrupt:
            print("\n[interrupted]")
            infer_kwargs = before
            print(DASHES)
            continue
        except (VlmrefError, ValueError, OSError) as err:
            print(f"error: {err}", flush=True)
            infer_kwargs = before
            continue
        print(DASHES, flush=True)
        obj: dict[str, Any] = {"system": system, "query": query, "response": response, "history": history}
        if infer_kwargs.get("images") is not None:
            obj["images"] = infer_kwargs["images"]
        history = new_history
        if jsonl_path is not None:
            with open(jsonl_path, "a", encoding="utf-8") as f:
                f.write(_json_line(obj))
        result.append(obj)
    return result


# ---- dataset ---------------------------------------------------------------------------------------------------------
def load_val_samples(args: InferArguments, template: Any) -> list[Any]:
    """The rows dataset mode evaluates: ``--val_dataset`` in full, else the validation split of ``--dataset`` (the
    same rows ``sft`` held out for the same dataset, seed and ratio), then the deprecated ``--val_dataset_sample``
    and ``--show_dataset_sample``."""
    import numpy as np

    from ..datasets.loader import load_dataset
    from ..datasets.split import sample_rows

    common = dict(check_dataset_strategy=args.check_dataset_strategy, dataset_seed=args.dataset_seed,
                  template=template if template.max_length is not None else None, require_response=False)
    if args.val_dataset:
        val = load_dataset(args.val_dataset, args.model_type, dataset_test_ratio=1.0, **common).val
    else:
        val = load_dataset(args.dataset, args.model_type, dataset_test_ratio=args.dataset_test_ratio, **common).val
    if args.val_dataset_sample is not None and 0 <= args.val_dataset_sample < len(val):  # ms-swift: first N, shuffled
        order = np.random.RandomState(args.dataset_seed).permutation(args.val_dataset_sample)
        val = [val[int(i)] for i in order]
    if 0 <= args.show_dataset_sample < len(val):
        logger.info(f"show_dataset_sample: {args.show_dataset_sample}")
        val = sample_rows(val, args.show_dataset_sample, np.random.RandomState(args.dataset_seed))
    logger.info(f"val_dataset: {len(val)} rows")
    return val


def run_dataset(args: InferArguments, model: Any, template: Any, generation_config: Any,
                jsonl_path: str | None) -> tuple[list[dict[str, Any]], str | None]:
    """Generate a response for every validation row, appending each result line as soon as it is done; a rerun of
    an unfinished run resumes its file (``infer_results``). Returns the rows (earlier ones included) and the file."""
    from .infer_results import ResultLog, row_key, save_generation_config
    from .inference import inference

    samples = load_val_samples(args, template)
    if not samples:
        raise ValueError("the validation set is empty: check --dataset/--val_dataset and --dataset_test_ratio")
    if args.verbose is None:
        args.verbose = len(samples) < 100
    stream = args.stream and args.verbose
    objs = [{"system": template.default_system if s.system is None else s.system, "query": s.query,
             "response": None, "label": s.response, "history": [list(turn) for turn in s.history],
             "images": list(s.images)} for s in samples]
    out = ResultLog(jsonl_path, args, [row_key(o) for o in objs], logger.info)
    if args.overwrite_generation_config:
        save_generation_config(generation_config, out.path)
    result: list[dict[str, Any]] = list(out.done)
    todo = list(zip(samples, objs, strict=True))[len(out.done):]
    rows: Any = todo
    if not args.verbose:
        try:
            from tqdm import tqdm

            rows = tqdm(todo)
        except ImportError:
            pass
    complete = False
    try:
        for sample, obj in rows:
            if args.verbose and sample.system is not None:
                print(f"[SYSTEM]{sample.system}")
            try:
                obj["response"], _ = inference(model, template, sample.query, obj["history"], obj["system"],
                                               obj["images"], generation_config=generation_config,
                                               stop_words=args.stop_words, stream=stream, verbose=args.verbose)
            except (VlmrefError, ValueError, OSError) as err:
                obj["error"] = f"{type(err).__name__}: {err}"
                logger.warning(f"{sample.where}: {obj['error']}")
            out.write(obj)
            result.append(obj)
            if args.verbose:
                print()
                print(f"[LABELS]{sample.response}")
                if obj["images"]:
                    print(f"[IMAGES]{obj['images']}")
                print(DASHES, flush=True)
        complete = True
    finally:
        out.close(complete)
    return result, out.path


# ---- entry -----------------------------------------------------------------------------------------------------------
def llm_infer(args: InferArguments, input_fn: Callable[[str], str] | None = None) -> dict[str, Any]:
    """Run ``vlmref infer``; returns ``{'result': [...], 'result_path': path or None}``."""
    from ..utils import seed_everything

    logger.info(f"args: {args}")
    seed_everything(args.seed, verbose=False)
    model, template, generation_config = prepare_model_template(args)
    jsonl_path = result_path(args, model)
    if args.eval_human:
        result = run_interactive(args, model, template, generation_config, jsonl_path, input_fn)
        if args.overwrite_generation_config and jsonl_path is not None and os.path.exists(jsonl_path):
            from .infer_results import save_generation_config

            save_generation_config(generation_config, jsonl_path)
    else:
        result, jsonl_path = run_dataset(args, model, template, generation_config, jsonl_path)
    if jsonl_path is not None and os.path.exists(jsonl_path):
        logger.info(f"save_result_path: {jsonl_path}")
    else:
        jsonl_path = None
    if not args.eval_human and args.show_dataset_sample == 10:
        logger.info("You can set `--show_dataset_sample -1` to perform inference on the entire dataset.")
    return {"result": result, "result_path": jsonl_path}
