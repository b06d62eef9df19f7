"""``vlmref sft``: flags and defaults, LoRA targets per family, DeepSpeed configs, the torchrun relaunch, and training
runs on tiny models (LoRA/full with decreasing loss, outputs, exact resume, killed saves, ZeRO-2/3 on 2 processes,
the seeds' commands).

Fast tests need no model. Runs on tiny checkpoints are ``real_tokenizer`` (the tiny models use the real tokenizer
files); all but two LoRA runs (outputs, exact resume) are ``slow`` (``nox -s test_slow``).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from sft_worker import (
    REPO,
    RunsCode,
    adapter_loss,
    cli_env,
    eval_records,
    free_port,
    memorise_jsonl,
    read_jsonl,
    run_cli,
    run_dirs,
    tiny_checkpoint,
    train_records,
)

from vlmref.llm import launch
from vlmref.llm.sft import (
    DistSetting,
    Plan,
    checkpoints_to_delete,
    epoch_order,
    fill_deepspeed_config,
    format_example,
    group_module_names,
    lora_module_names,
    next_version_dir,
    resolve_lora_target_modules,
    sft_model_kwargs,
)
from vlmref.llm.sft_args import DS_CONFIG_DIR, SftArgumentError, SftArguments, load_deepspeed_config, parse_sft_args
from vlmref.models.info import build_on_meta
from vlmref.models.model_types import MODELS

MODEL_TYPES = MODELS.names()
FAMILY_TYPES = ["cogvlm-17b-instruct", "qwen-vl-chat", "internlm-xcomposer2-7b-chat", "yi-vl-6b-chat",
                "llava1d6-mistral-7b-instruct"]


# ---- flags and defaults ----------------------------------------------------------------------------------------------
def test_defaults_are_ms_swift_2_2_0() -> None:
    a = SftArguments()
    expected = {
        "sft_type": "lora", "lora_target_modules": ["DEFAULT"], "lora_rank": 8, "lora_alpha": 32, "lora_dropout_p": 0.05,
        "max_length": 2048, "truncation_strategy": "delete", "batch_size": 1, "gradient_accumulation_steps": None,
        "learning_rate": None, "num_train_epochs": 1, "max_steps": -1, "weight_decay": 0.1, "max_grad_norm": 0.5,
        "lr_scheduler_type": "cosine", "warmup_ratio": 0.05, "eval_steps": 50, "save_steps": None,
        "save_total_limit": 2, "logging_steps": 5, "gradient_checkpointing": None, "dtype": "AUTO",
        "dataset_test_ratio": 0.01, "dataset_seed": 42, "seed": 42, "check_dataset_strategy": "none", "system": None,
        "output_dir": "output", "add_output_dir_suffix": None, "resume_from_checkpoint": None, "deepspeed": None,
        "adam_beta1": 0.9, "adam_beta2": 0.999, "adam_epsilon": 1e-8, "template_type": "AUTO",
    }
    assert {k: getattr(a, k) for k in expected} == expected


def _resolved(*argv: str, world_size: int = 1, rank: int = 0, **kw) -> SftArguments:
    return parse_sft_args(["--model_type", "qwen-vl-chat", "--dataset", "x.jsonl", *argv], log=lambda m: None).resolve(
        world_size, rank, log=lambda m: None, **kw)


@pytest.mark.parametrize(("batch_size", "world", "gas"), [(1, 1, 16), (1, 2, 8), (1, 4, 4), (3, 1, 6), (2, 8, 1)])
def test_gradient_accumulation_default(batch_size: int, world: int, gas: int) -> None:
    assert _resolved("--batch_size", str(batch_size), world_size=world).gradient_accumulation_steps == gas


def test_resolved_values() -> None:
    a = _resolved()
    assert (a.learning_rate, a.save_steps, a.eval_batch_size, a.dtype, a.save_only_model) == (1e-4, 50, 1, "fp32", False)
    assert a.add_output_dir_suffix is True and a.gradient_checkpointing is True and a.template_type == "qwen-vl"
    full = _resolved("--sft_type", "full", "--eval_steps", "7")
    assert (full.learning_rate, full.save_steps, full.save_only_model) == (1e-5, 7, True)
    assert _resolved("--learning_rate", "3e-4").learning_rate == 3e-4
    assert _resolved(world_size=2, rank=1).seed == 43  # ms-swift: seed += rank
    cog = parse_sft_args(["--model_type", "cogvlm-17b-chat", "--dataset", "d"], log=print).resolve(log=print)
    assert cog.model_type == "cogvlm-17b-instruct" and cog.gradient_checkpointing is False
    assert _resolved("--max_length", "-1").max_length is None
    assert _resolved("--lora_target_modules", "q_proj,AUTO").lora_target_modules == ["q_proj", "DEFAULT"]


def test_dtype_selection() -> None:
    assert _resolved(cuda=False).dtype == "fp32"
    assert _resolved("--dtype", "bf16", cuda=False).dtype == "bf16"
    with pytest.raises(SftArgumentError, match="CPU does not support .* fp16"):
        _resolved("--dtype", "fp16", cuda=False)
    assert _resolved(cuda=True, bf16_supported=True).dtype == "bf16"
    assert _resolved(cuda=True, bf16_supported=False).dtype == "fp16"
    assert _resolved("--sft_type", "full", cuda=True, bf16_supported=False).dtype == "fp32"  # fp16 + full -> fp32


def test_flag_parsing() -> None:
    a = parse_sft_args(["--model_type", "yi-vl-6b-chat", "--dataset", "a.jsonl", "b#3", "--gradient_checkpointing",
                        "false", "--add_output_dir_suffix", "--lora_target_modules", "ALL", "--max_steps=4",
                        "--system", "None", " "], log=print)
    assert a.dataset == ["a.jsonl", "b#3"] and a.gradient_checkpointing is False and a.add_output_dir_suffix is True
    assert a.lora_target_modules == ["ALL"] and a.max_steps == 4 and a.system is None
    with pytest.raises(SftArgumentError, match=r"--lr_schedular_type \(did you mean --lr_scheduler_type\?\)"):
        parse_sft_args(["--model_type", "x", "--lr_schedular_type", "cosine"])
    with pytest.raises(SftArgumentError, match="--quantization_bit .*does not implement"):
        parse_sft_args(["--model_type", "x", "--quantization_bit", "4"])
    with pytest.raises(SystemExit):
        parse_sft_args(["--gradient_checkpointing", "maybe"])
    notes: list[str] = []
    parse_sft_args(["--use_flash_attn", "true", "--model_type", "x"], log=notes.append)
    assert "SDPA" in notes[0]
    with pytest.raises(SftArgumentError, match="--sft_type 'ia3'"):
        parse_sft_args(["--model_type", "qwen-vl-chat", "--dataset", "d", "--sft_type", "ia3"]).resolve()


def test_json_args_file(tmp_path: Path) -> None:
    path = tmp_path / "args.json"
    path.write_text(json.dumps({"model_type": "qwen-vl-chat", "dataset": ["d.jsonl"], "lora_rank": 4}))
    a = parse_sft_args([str(path), "--lora_rank", "16"])
    assert (a.model_type, a.dataset, a.lora_rank) == ("qwen-vl-chat", ["d.jsonl"], 16)
    yaml_path = tmp_path / "args.yaml"  # YAML too, first or as --args_file; the command line still wins
    yaml_path.write_text("model_type: qwen-vl-chat\ndataset: [d.jsonl]\nlora_rank: 4\ngradient_checkpointing: yes\n")
    for argv in ([str(yaml_path)], ["--args_file", str(yaml_path)], ["--lora_rank", "2", f"--args_file={yaml_path}"]):
        b = parse_sft_args([*argv, "--lora_rank", "16"])
        assert (b.model_type, b.dataset, b.lora_rank, b.gradient_checkpointing) == ("qwen-vl-chat", ["d.jsonl"], 16,
                                                                                    True)
    assert parse_sft_args(["--args_file", str(yaml_path)]).lora_rank == 4


SEED_SFT_COMMANDS = {  # the seeds' 微调 commands, after `swift sft` (CUDA_VISIBLE_DEVICES/NPROC_PER_NODE are env)
    "cogvlm": "--model_type cogvlm-17b-instruct --dataset coco-mini-en-2 \\  ",
    "xcomposer2": "--model_type internlm-xcomposer2-7b-chat --dataset coco-en-mini \\",
    "llava-lora": "--model_type llava1d6-mistral-7b-instruct --dataset coco-en-2-mini \\",
    "llava-yi-lora": "--model_type llava1d6-yi-34b-instruct --dataset coco-en-2-mini \\",
    "llava-full": "--model_type llava1d6-mistral-7b-instruct --dataset coco-en-2-mini --sft_type full "
                  "--deepspeed default-zero2",
    "llava-yi-full": "--model_type llava1d6-yi-34b-instruct --dataset coco-en-2-mini --sft_type full \\",
    "qwen-vl-lora": "--model_type qwen-vl-chat --dataset coco-en-mini \\",
    "qwen-vl-full": "--model_type qwen-vl-chat --dataset coco-en-mini --sft_type full \\",
    "yi-vl": "--model_type yi-vl-6b-chat --dataset coco-en-2-mini \\",
}


def _shell_words(command: str) -> list[str]:
    """What a shell passes for a seed line: ``\\`` + spaces at the end is an escaped space (a blank argument)."""
    words = command.replace("\\  ", "\x00").replace("\\", "").split()
    return [" " if w == "\x00" else w.replace("\x00", " ") for w in words]


@pytest.mark.parametrize("name", list(SEED_SFT_COMMANDS))
def test_seed_commands_parse_verbatim(name: str) -> None:
    args = parse_sft_args(_shell_words(SEED_SFT_COMMANDS[name]), log=print).resolve(log=print)
    assert args.model_type in MODELS and args.dataset and args.sft_type in ("lora", "full")
    if "deepspeed" in SEED_SFT_COMMANDS[name]:
        assert args.deepspeed_config["zero_optimization"]["stage"] == 2


# ---- DeepSpeed configs -----------------------------------------------------------------------------------------------
def test_shipped_deepspeed_configs_are_ms_swift_2_2_0() -> None:
    z2 = json.load(open(os.path.join(DS_CONFIG_DIR, "zero2.json")))
    z3 = json.load(open(os.path.join(DS_CONFIG_DIR, "zero3.json")))
    for cfg in (z2, z3):
        assert cfg["fp16"] == {"enabled": "auto", "loss_scale": 0, "loss_scale_window": 1000, "initial_scale_power": 16,
                               "hysteresis": 2, "min_loss_scale": 1}
        assert cfg["bf16"] == {"enabled": "auto"} and cfg["optimizer"]["type"] == "AdamW"
        assert cfg["scheduler"]["type"] == "WarmupDecayLR" and set(cfg["scheduler"]["params"].values()) == {"auto"}
        assert (cfg["steps_per_print"], cfg["wall_clock_breakdown"], cfg["gradient_clipping"]) == (2000, False, "auto")
    assert z2["zero_optimization"] == {"stage": 2, "offload_optimizer": {"device": "none", "pin_memory": True},
                                       "allgather_partitions": True, "allgather_bucket_size": 2e8, "overlap_comm": True,
                                       "reduce_scatter": True, "reduce_bucket_size": 2e8, "contiguous_gradients": True}
    zo3 = z3["zero_optimization"]
    assert zo3["stage"] == 3 and zo3["offload_param"] == {"device": "none", "pin_memory": True}
    assert zo3["stage3_gather_16bit_weights_on_model_save"] is True and zo3["sub_group_size"] == 1e9
    assert load_deepspeed_config("default-zero2") == z2
    assert load_deepspeed_config("zero3-offload")["zero_optimization"]["offload_param"]["device"] == "cpu"
    with pytest.raises(SftArgumentError, match="not one of default-zero2"):
        load_deepspeed_config("zero4")


def test_fill_deepspeed_config() -> None:
    args = _resolved("--deepspeed", "default-zero3", "--batch_size", "2", "--learning_rate", "2e-4")
    model = build_on_meta("qwen-vl-chat", tiny=True)
    notes: list[str] = []
    cfg = fill_deepspeed_config(args.deepspeed_config, args, model, max_steps=40, world_size=2, cpu=True,
                                log=notes.append)
    assert (cfg["train_micro_batch_size_per_gpu"], cfg["gradient_accumulation_steps"], cfg["train_batch_size"]) == (2, 8, 32)
    assert cfg["optimizer"]["params"] == {"lr": 2e-4, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.1,
                                          "torch_adam": True}
    assert cfg["scheduler"]["params"] == {"total_num_steps": 40, "warmup_min_lr": 0, "warmup_max_lr": 2e-4,
                                          "warmup_num_steps": 2}
    hidden = model.config.hidden_size
    assert cfg["zero_optimization"]["reduce_bucket_size"] == hidden * hidden
    assert cfg["zero_optimization"]["stage3_param_persistence_threshold"] == 10 * hidden
    assert (cfg["fp16"]["enabled"], cfg["bf16"]["enabled"], cfg["gradient_clipping"]) == (False, False, 0.5)
    assert any("torch_adam" in n for n in notes) and any("pin_memory" in n for n in notes)
    assert "torch_adam" not in fill_deepspeed_config(args.deepspeed_config, args, model, 40, 2, cpu=False,
                                                      log=print)["optimizer"]["params"]
    bad = dict(args.deepspeed_config, gradient_clipping=1.0)
    with pytest.raises(SftArgumentError, match="gradient_clipping=1.0 vs vlmref 0.5"):
        fill_deepspeed_config(bad, args, model, 40, 2, cpu=True, log=print)


# ---- launch, model kwargs, run dir -------------------------------------------------------------------------------
def test_torchrun_relaunch_command(monkeypatch: pytest.MonkeyPatch, fake_torchrun: dict) -> None:
    env = {"NPROC_PER_NODE": "2", "MASTER_PORT": "29501", "NNODES": "1", "NODE_RANK": "0", "MASTER_ADDR": "127.0.0.1"}
    cmd = launch.torchrun_command("vlmref.cli.sft", ["--model_type", "qwen-vl-chat"], env)
    assert cmd[1:] == ["-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29501", "--nnodes",
                       "1", "--node_rank", "0", "--master_addr", "127.0.0.1", "-m", "vlmref.cli.sft", "--model_type",
                       "qwen-vl-chat"]
    assert not launch.use_torchrun({}) and launch.use_torchrun({"NNODES": "2"})
    assert launch.launched_by_torchrun({"TORCHELASTIC_RUN_ID": "x"}) and not launch.launched_by_torchrun({})
    seen = fake_torchrun
    from vlmref.cli import sft as cli_sft

    argv = ["--model_type", "qwen-vl-chat", "--dataset", "coco-en-mini-sample#4", " "]
    assert cli_sft.main(argv) == 0
    assert seen["cmd"][-6:] == ["-m", "vlmref.cli.sft", "--model_type", "qwen-vl-chat", "--dataset",
                                "coco-en-mini-sample#4"]
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "1")  # inside torchrun: no second relaunch
    assert launch.maybe_relaunch("vlmref.cli.sft", argv) is None


def test_subparser_and_namespace_round_trip() -> None:
    from vlmref.arguments import DataclassArgumentParser
    from vlmref.cli import sft as cli_sft

    parser = DataclassArgumentParser()
    sub = parser.add_subparsers(dest="command")
    cli_sft.add_parser(sub)
    ns = parser.parse_args(["sft", "--model_type", "yi-vl-6b-chat", "--dataset", "a", "b", "--sft_type", "full",
                            "--gradient_checkpointing", "false", " "])
    argv = cli_sft.namespace_to_argv(ns)
    assert argv == ["--model_type", "yi-vl-6b-chat", "--sft_type", "full", "--dataset", "a", "b",
                    "--gradient_checkpointing", "false"]
    assert ns.func is cli_sft.run_namespace


def test_model_kwargs_follow_ms_swift() -> None:
    args = _resolved()
    one, ddp = DistSetting(), DistSetting(1, 1, 2, 2)
    assert sft_model_kwargs(args, one, cuda_count=0) == {"low_cpu_mem_usage": True}
    assert sft_model_kwargs(args, one, cuda_count=1)["device_map"] == "cuda:0"
    assert sft_model_kwargs(args, one, cuda_count=4)["device_map"] == "auto"
    assert sft_model_kwargs(args, ddp, cuda_count=2)["device_map"] == {"": 1}
    z3 = _resolved("--deepspeed", "default-zero3")
    assert sft_model_kwargs(z3, ddp, cuda_count=2) == {"device_map": None}
    with pytest.raises(SftArgumentError, match="DeepSpeed is not compatible with MP"):
        sft_model_kwargs(_resolved("--deepspeed", "default-zero2"), one, cuda_count=4)


def test_run_dir_versions(tmp_path: Path) -> None:
    first = next_version_dir(str(tmp_path), now=0)
    assert re.fullmatch(r"v0-\d{8}-\d{6}", os.path.basename(first))
    (tmp_path / "v0-x").mkdir()
    (tmp_path / "v7-y").mkdir()
    assert os.path.basename(next_version_dir(str(tmp_path))).startswith("v8-")


# ---- data plan, rotation, example printing -----------------------------------------------------------------------
def test_epoch_order_shards_like_distributed_sampler() -> None:
    full = epoch_order(10, 0, 42, 1, 0)
    assert sorted(full) == list(range(10)) and full != list(range(10)) and full == epoch_order(10, 0, 42, 1, 0)
    assert epoch_order(10, 1, 42, 1, 0) != full
    r0, r1, r2 = (epoch_order(10, 0, 42, 3, r) for r in range(3))
    assert len(r0) == len(r1) == len(r2) == 4 and sorted(r0 + r1 + r2)[:10] != []  # 12 = 10 + 2 repeated
    assert set(r0 + r1 + r2) == set(range(10))
    assert epoch_order(1, 0, 0, 2, 1) == [0]


def test_plan_steps() -> None:
    args = _resolved("--gradient_accumulation_steps", "4")
    plan = Plan.make(23, args, world_size=1)
    assert (plan.micro_batches_per_epoch, plan.updates_per_epoch, plan.max_steps) == (23, 6, 6)
    assert plan.micro_range(5) == (0, 20, 23) and plan.epoch_float(6) == 1.0
    args2 = _resolved("--num_train_epochs", "3", "--gradient_accumulation_steps", "4")
    assert Plan.make(8, args2, world_size=2).max_steps == 3
    assert Plan.make(8, _resolved("--max_steps", "10"), world_size=1).max_steps == 10


def test_checkpoint_rotation_keeps_best() -> None:
    ck = [f"c{i}" for i in range(1, 6)]
    assert checkpoints_to_delete(ck, 2, None) == ["c1", "c2", "c3"]
    assert checkpoints_to_delete(ck, 2, "c2") == ["c1", "c3", "c4"]
    assert checkpoints_to_delete(ck, 1, "c2") == ["c1", "c3", "c4"]  # limit 1 with an older best keeps two
    assert checkpoints_to_delete(ck, None, "c2") == []


def test_format_example_compresses_runs() -> None:
    from vlmref.testing.tiny_tokenizer import TinyTokenizer

    tok = TinyTokenizer({"<s>": 1, "</s>": 2, "<image>": 3}, bos="<s>", eos="</s>", pad="</s>")
    ids = [1] + [3] * 6 + tok.encode("hi", add_special_tokens=False) + [2]
    enc = {"input_ids": ids, "labels": [-100] * 7 + ids[7:], "image_spans": [[1, 6]]}
    text = format_example(tok, enc)
    assert "[INPUT_IDS] 1 [3 * 6]" in text and "[INPUT] <s>[image 0: 6 positions]hi</s>" in text
    assert "[LABELS_IDS] [-100 * 7]" in text and "[LABELS] [-100 * 7]hi</s>" in text


# ---- LoRA targets per family ---------------------------------------------------------------------------------------
def _qkv(prefix: str, n: int, names=("q_proj", "k_proj", "v_proj")) -> list[str]:
    return [f"{prefix}.{i}.self_attn.{p}" for i in range(n) for p in names]


_LLAVA_DEFAULT = sorted(_qkv("model.vision_tower.encoder.layers", 2) + _qkv("model.language_model.layers", 2))
TINY_DEFAULT = {  # the Linear modules DEFAULT wraps on the tiny models (2 LLM layers, 2 vision layers)
    "cogvlm-17b-instruct": sorted(f"model.layers.{i}.self_attn.{e}_expert_{p}" for i in range(2)
                                  for e in ("vision", "language") for p in ("query_key_value", "dense")),
    "qwen-vl-chat": ["transformer.h.0.attn.c_attn", "transformer.h.1.attn.c_attn"],
    "internlm-xcomposer2-7b-chat": ["model.layers.0.attention.wqkv", "model.layers.1.attention.wqkv"],
    "internlm-xcomposer2_5-7b-chat": ["model.layers.0.attention.wqkv", "model.layers.1.attention.wqkv"],
    # peft suffix matching: the LLM's AND the CLIP tower's q/k/v (ms-swift 2.2.0 behaviour, kept; see README)
    "yi-vl-6b-chat": sorted(_qkv("model.layers", 2) + _qkv("model.vision_tower.vision_tower.vision_model.encoder.layers", 2)),
    "llava1d6-mistral-7b-instruct": _LLAVA_DEFAULT,
}
TINY_DEFAULT["yi-vl-34b-chat"] = TINY_DEFAULT["yi-vl-6b-chat"]
for _t in ("llava1d6-yi-34b-instruct", "llama3-llava-next-8b", "llava-next-72b", "llava-next-110b"):
    TINY_DEFAULT[_t] = _LLAVA_DEFAULT
_IXC_ALL = ["fc1", "fc2", "k_proj", "out_proj", "q_proj", "v_proj", "vision_proj.0", "vision_proj.2", "w1", "w2", "w3",
            "wo", "wqkv"]
_LLAVA_ALL = ["down_proj", "fc1", "fc2", "gate_proj", "k_proj", "linear_1", "linear_2", "o_proj", "out_proj", "q_proj",
              "up_proj", "v_proj"]
_YI_ALL = ["3", "down_proj", "fc1", "fc2", "gate_proj", "k_proj", "mm_projector.0", "o_proj", "out_proj", "q_proj",
           "up_proj", "v_proj"]
TINY_ALL = {  # find_all_linears suffixes on the tiny models (instance-dependent, as ms-swift's)
    "cogvlm-17b-instruct": ["dense", "dense_4h_to_h", "dense_h_to_4h", "down_proj", "fc1", "fc2", "gate_proj",
                            "language_expert_dense", "language_expert_query_key_value", "linear_proj.linear_proj",
                            "query_key_value", "up_proj", "vision_expert_dense", "vision_expert_query_key_value"],
    "qwen-vl-chat": ["c_attn", "c_fc", "c_proj", "in_proj", "kv_proj", "out_proj", "w1", "w2"],
    "internlm-xcomposer2-7b-chat": _IXC_ALL, "internlm-xcomposer2_5-7b-chat": _IXC_ALL,
    "yi-vl-6b-chat": _YI_ALL, "yi-vl-34b-chat": _YI_ALL,
    **{t: _LLAVA_ALL for t in ("llava1d6-mistral-7b-instruct", "llava1d6-yi-34b-instruct", "llama3-llava-next-8b",
                               "llava-next-72b", "llava-next-110b")},
}


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_lora_targets_per_family(model_type: str) -> None:
    from peft import LoraConfig, get_peft_model
    from peft.tuners.lora import LoraLayer

    model = build_on_meta(model_type, tiny=True)
    default = resolve_lora_target_modules(model, model_type, ["DEFAULT"])
    assert default == list(MODELS.get(model_type).lora_target_modules)
    assert sorted(lora_module_names(model, default)) == TINY_DEFAULT[model_type]
    every = resolve_lora_target_modules(model, model_type, ["ALL"])
    assert every == TINY_ALL[model_type]
    all_names = lora_module_names(model, every)
    assert not any(n.split(".")[-1] in ("lm_head", "output") for n in all_names)
    assert set(TINY_DEFAULT[model_type]) <= set(all_names)
    both = resolve_lora_target_modules(model, model_type, ["DEFAULT", "ALL", "extra_name"])
    assert both[: len(default)] == default and both[-1] == "extra_name" and set(every) <= set(both)
    for targets, expected in ((default, TINY_DEFAULT[model_type]), (every, sorted(all_names))):
        peft_model = get_peft_model(build_on_meta(model_type, tiny=True),
                                    LoraConfig(r=8, target_modules=targets, task_type="CAUSAL_LM"))
        wrapped = sorted(n.removeprefix("base_model.model.") for n, m in peft_model.named_modules()
                         if isinstance(m, LoraLayer))
        assert wrapped == expected  # what peft really wraps is what vlmref logs and records


def test_lora_default_full_size_components() -> None:
    """Full-size DEFAULT: LLM-only for CogVLM/Qwen-VL/XComposer2; LLM + CLIP q/k/v for Yi-VL and LLaVA."""
    from vlmref.models.arch import get_arch
    from vlmref.models.info import component_of

    expected = {"cogvlm-17b-instruct": {"language_model": 128}, "qwen-vl-chat": {"language_model": 32},
                "internlm-xcomposer2-7b-chat": {"language_model": 32},
                "yi-vl-6b-chat": {"language_model": 96, "vision_tower": 96},
                "llava1d6-mistral-7b-instruct": {"language_model": 96, "vision_tower": 72}}
    for model_type, counts in expected.items():
        model = build_on_meta(model_type)
        names = lora_module_names(model, resolve_lora_target_modules(model, model_type, ["DEFAULT"]))
        got: dict[str, int] = {}
        for n in names:
            c = component_of(n + ".weight", get_arch(model_type))
            got[c] = got.get(c, 0) + 1
        assert got == counts, model_type


def test_lora_target_regex_restricts_to_the_llm() -> None:
    model = build_on_meta("llava1d6-mistral-7b-instruct", tiny=True)
    names = lora_module_names(model, regex=r".*language_model.*\.(q_proj|k_proj|v_proj)")
    assert names and all("language_model" in n for n in names) and len(names) == 6
    assert group_module_names(names) == ["model.language_model.layers.*.self_attn.q_proj (2)",
                                         "model.language_model.layers.*.self_attn.k_proj (2)",
                                         "model.language_model.layers.*.self_attn.v_proj (2)"]


# ---- training runs on tiny models ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sft_tiny")


def _sft(argv: list[str]):
    from vlmref.llm.sft import llm_sft

    return llm_sft(parse_sft_args(argv, log=print))


def _common(model_type: str, base: Path, out: Path, dataset: str, *extra: str) -> list[str]:
    return ["--model_type", model_type, "--model_id_or_path", str(base), "--dataset", dataset, "--output_dir", str(out),
            "--disable_tqdm", "true", *extra]


REQUIRED_SFT_ARGS = ("model_type", "model_id_or_path", "sft_type", "template_type", "system", "max_length",
                     "truncation_strategy", "dtype", "dataset", "dataset_seed", "dataset_test_ratio",
                     "check_dataset_strategy", "lora_target_modules", "lora_rank", "lora_alpha", "lora_dropout_p")


@pytest.mark.real_tokenizer
def test_lora_sft_memorises_and_writes_outputs(tiny_root: Path, tokenizers_root: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture) -> None:
    """The fast run: LoRA on one repeated COCO sample; loss falls; run dir, sft_args, logging, checkpoint, reload."""
    model_type = "yi-vl-6b-chat"
    base = tiny_checkpoint(tiny_root, model_type)
    data = memorise_jsonl(tmp_path)
    out = tmp_path / "out"
    result = _sft(_common(model_type, base, out, str(data), "--max_steps", "4", "--gradient_accumulation_steps", "1",
                          "--learning_rate", "5e-3", "--warmup_ratio", "0", "--logging_steps", "1", "--eval_steps", "4",
                          "--gradient_checkpointing", "false"))
    printed = capsys.readouterr().out
    runs = run_dirs(out, model_type)
    assert len(runs) == 1 and re.fullmatch(r"v0-\d{8}-\d{6}", runs[0].name)
    run = runs[0]
    assert result["output_dir"] == str(run)
    # printed: dataset report, resolved LoRA modules, the first example with its mask view
    assert "split: train 7, val 1" in printed and "LoRA wraps 12 Linear module(s)" in printed
    assert "[INPUT_IDS]" in printed and "[INPUT]" in printed and re.search(r"\[-200 \* \d+\]", printed)
    assert re.search(r"\[image 0: [^\]\n]+, 1024 positions\]", printed)  # the image span, not its -200 ids
    assert re.search(r"\[LABELS_IDS\] \[-100 \* \d+\]", printed) and "[LABELS] [-100 *" in printed
    # logging.jsonl
    records = read_jsonl(run / "logging.jsonl")
    train = train_records(records)
    assert [r["step"] for r in train] == [1, 2, 3, 4]
    losses = [r["loss"] for r in train]
    assert losses[-1] < losses[0] - 0.2 and all(b < a for a, b in zip(losses, losses[1:], strict=False)), losses
    for r in train:
        assert {"epoch", "learning_rate", "grad_norm", "tokens_per_second", "samples_per_second", "acc"} <= set(r)
        assert r["memory"]["per_device"].keys() == {"rank0/cpu"} and "ru_maxrss" in r["memory"]["measure"]
        assert r["tokens_per_second"] > 0 and r["grad_norm"] > 0
    # cosine without warmup, logged after each step: lr(1) = 5e-3 * (1 + cos(pi / 4)) / 2, ..., lr(4) = 0
    assert train[0]["learning_rate"] == pytest.approx(5e-3 * (1 + math.cos(math.pi / 4)) / 2)
    assert train[-1]["learning_rate"] == 0.0
    evals = eval_records(records)
    assert [e["step"] for e in evals] == [4] and evals[0]["eval_loss"] < losses[0]
    final = records[-1]
    ckpt = run / "checkpoint-4"
    assert final["train_runtime"] > 0 and final["last_model_checkpoint"] == str(ckpt)
    assert final["best_model_checkpoint"] == str(ckpt) and final["best_metric"] == evals[0]["eval_loss"]
    # sft_args.json (run dir and checkpoint)
    for path in (run / "sft_args.json", ckpt / "sft_args.json"):
        saved = json.loads(path.read_text())
        assert set(REQUIRED_SFT_ARGS) <= set(saved)
        assert saved["model_type"] == model_type and saved["model_id_or_path"] == str(base.resolve())
        assert saved["lora_target_modules"] == ["q_proj", "k_proj", "v_proj"] and saved["dtype"] == "fp32"
        assert saved["template_type"] == "yi-vl" and saved["dataset"] == [str(data)] and saved["system"] is None
        assert len(saved["lora_target_module_names"]) == 12
    # the checkpoint
    names = {p.name for p in ckpt.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "generation_config.json", "sft_args.json",
            "trainer_state.json", "optimizer.pt", "scheduler.pt", "rng_state.pth"} <= names
    assert not [p for p in run.iterdir() if p.name.startswith(".")]  # no temp folders left
    gen = json.loads((ckpt / "generation_config.json").read_text())
    assert gen["eos_token_id"] is not None and gen["max_new_tokens"] == 2048
    state = json.loads((ckpt / "trainer_state.json").read_text())
    assert state["global_step"] == 4 and state["data_position"]["epoch"] is None
    # DEFAULT wrapped the CLIP tower's q/k/v too (ms-swift behaviour): those adapters train, except the last CLIP
    # layer's, whose output is never used (Yi-VL/LLaVA take the features of layer -2)
    from safetensors.torch import load_file

    adapter = load_file(str(ckpt / "adapter_model.safetensors"))
    vision_b = {k: float(v.abs().sum()) for k, v in adapter.items() if "vision_tower" in k and "lora_B" in k}
    assert len(vision_b) == 6
    assert all((norm > 0) == (".layers.0." in k) for k, norm in vision_b.items()), vision_b
    # the adapter reloads with peft and gives the loss the run measured at its last evaluation
    row = json.loads(data.read_text().splitlines()[0])
    assert adapter_loss(base, ckpt, model_type, row) == pytest.approx(evals[0]["eval_loss"], abs=1e-5)


@pytest.mark.slow
@pytest.mark.real_tokenizer
@pytest.mark.parametrize("sft_type", ["lora", "full"])
@pytest.mark.parametrize("model_type", FAMILY_TYPES)
def test_sft_every_family_loss_decreases(model_type: str, sft_type: str, tiny_root: Path, tokenizers_root: Path,
                                         tmp_path: Path) -> None:
    base = tiny_checkpoint(tiny_root, model_type)
    data = memorise_jsonl(tmp_path)
    lr = "5e-3" if sft_type == "lora" else "1e-3"
    result = _sft(_common(model_type, base, tmp_path / "out", str(data), "--sft_type", sft_type, "--max_steps", "5",
                          "--gradient_accumulation_steps", "1", "--learning_rate", lr, "--warmup_ratio", "0",
                          "--logging_steps", "1", "--max_length", "4096", "--save_steps", "5"))
    losses = [r["loss"] for r in train_records(result["log_history"])]
    assert len(losses) == 5 and losses[-1] < losses[0] - 0.1, losses
    ckpt = Path(result["last_model_checkpoint"])
    if sft_type == "full":
        from vlmref.models.loader import get_model_tokenizer

        names = {p.name for p in ckpt.iterdir()}
        assert {"config.json", "model.safetensors", "vlmref_processor.json", "generation_config.json"} <= names
        assert "optimizer.pt" not in names  # --save_only_model defaults to true for full (ms-swift)
        model, tok = get_model_tokenizer(model_type, torch.float32, model_id_or_path=str(ckpt))  # self-contained
        assert model is not None and tok.eos_token_id is not None


def _resume_pair(model_type: str, sft_type: str, base: Path, tmp_path: Path, *extra: str):
    common = ["--sft_type", sft_type, "--dataset_test_ratio", "0.2", "--max_steps", "6",
              "--gradient_accumulation_steps", "2", "--learning_rate", "5e-3", "--logging_steps", "1", "--eval_steps",
              "3", "--save_steps", "3", "--save_only_model", "false", "--max_length", "4096", *extra]
    first = _sft(_common(model_type, base, tmp_path / "a", "coco-en-2-mini-sample#10", *common))
    ckpt = Path(first["output_dir"]) / "checkpoint-3"
    second = _sft(_common(model_type, base, tmp_path / "b", "coco-en-2-mini-sample#10", *common,
                          "--resume_from_checkpoint", str(ckpt)))
    a = read_jsonl(Path(first["output_dir"]) / "logging.jsonl")
    b = read_jsonl(Path(second["output_dir"]) / "logging.jsonl")
    return first, second, a, b


def _curve(records: list[dict], after: int) -> list[tuple]:
    return [(r["step"], r.get("loss"), r.get("eval_loss"), r.get("learning_rate"), r.get("grad_norm"))
            for r in records if "step" in r and r["step"] > after]


@pytest.mark.real_tokenizer
@pytest.mark.parametrize("sft_type", ["lora", pytest.param("full", marks=pytest.mark.slow)])
def test_resume_gives_the_same_loss_curve(sft_type: str, tiny_root: Path, tokenizers_root: Path,
                                          tmp_path: Path) -> None:
    """Steps 4-6 of a run resumed from checkpoint-3 equal those of the uninterrupted run, bit for bit (fp32, CPU):
    weights, AdamW moments, scheduler, RNG (dropout) and data position are all restored."""
    from safetensors.torch import load_file

    model_type = "cogvlm-17b-instruct"
    base = tiny_checkpoint(tiny_root, model_type)
    first, second, a, b = _resume_pair(model_type, sft_type, base, tmp_path)
    assert _curve(b, 3) == _curve(a, 3) and len(_curve(a, 3)) == 4  # 3 train records + 1 eval at step 6
    assert [r["step"] for r in train_records(b)] == [4, 5, 6]
    weights = "adapter_model.safetensors" if sft_type == "lora" else "model.safetensors"
    wa = load_file(str(Path(first["last_model_checkpoint"]) / weights))
    wb = load_file(str(Path(second["last_model_checkpoint"]) / weights))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.slow
@pytest.mark.real_tokenizer
def test_killed_during_save_leaves_previous_checkpoint(tiny_root: Path, tokenizers_root: Path, tmp_path: Path) -> None:
    """SIGKILL in the middle of writing checkpoint-4: checkpoint-2 stays complete and resumable; no checkpoint-4."""
    model_type = "qwen-vl-chat"
    base = tiny_checkpoint(tiny_root, model_type)
    out = tmp_path / "out"
    argv = _common(model_type, base, out, "coco-en-2-mini-sample#8", "--max_steps", "4", "--gradient_accumulation_steps",
                   "1", "--save_steps", "2", "--eval_steps", "2", "--logging_steps", "1", "--gradient_checkpointing",
                   "false")
    from sft_worker import cli_env

    log = open(tmp_path / "killed.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "vlmref.cli.sft", *argv],
                            env=cli_env(VLMREF_TEST_SAVE_HOOK="4:sleep:300"), stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 600
        marker = None
        while time.time() < deadline and proc.poll() is None:
            found = list(out.glob("*/*/.tmp-checkpoint-4/HOOK_REACHED"))
            if found:
                marker = found[0]
                break
            time.sleep(0.5)
        assert marker is not None, (tmp_path / "killed.log").read_text()[-4000:]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    run = marker.parent.parent
    assert (run / "checkpoint-2").is_dir() and not (run / "checkpoint-4").exists()
    partial = run / ".tmp-checkpoint-4"
    assert (partial / "adapter_model.safetensors").is_file() and not (partial / "trainer_state.json").exists()
    ck2 = run / "checkpoint-2"
    assert {"adapter_model.safetensors", "adapter_config.json", "trainer_state.json", "optimizer.pt", "scheduler.pt",
            "rng_state.pth", "sft_args.json"} <= {p.name for p in ck2.iterdir()}
    assert json.loads((ck2 / "trainer_state.json").read_text())["global_step"] == 2
    result = _sft(_common(model_type, base, out, "coco-en-2-mini-sample#8", "--max_steps", "4",
                          "--gradient_accumulation_steps", "1", "--save_steps", "2", "--eval_steps", "2",
                          "--gradient_checkpointing", "false", "--resume_from_checkpoint", str(ck2)))
    assert result["global_step"] == 4 and Path(result["last_model_checkpoint"]).is_dir()
    # the abort variant: the process dies with the hook's exit code, again leaving only complete checkpoints
    done = run_cli(argv + ["--output_dir", str(tmp_path / "abort")], VLMREF_TEST_SAVE_HOOK="4:abort")
    assert done.returncode == 70
    (run2,) = run_dirs(tmp_path / "abort", model_type)
    assert sorted(p.name for p in run2.iterdir()) == [".tmp-checkpoint-4", "checkpoint-2", "logging.jsonl",
                                                      "sft_args.json"]


def _zero_run(tmp_path: Path, base: Path, model_type: str, stage: str, sft_type: str, out: str, *extra: str):
    argv = _common(model_type, base, tmp_path / out, "coco-en-2-mini-sample#8", "--sft_type", sft_type,
                   "--deepspeed", stage, "--max_steps", "6", "--gradient_accumulation_steps", "2", "--learning_rate",
                   "5e-3" if sft_type == "lora" else "1e-3", "--logging_steps", "1", "--eval_steps", "3",
                   "--save_steps", "3", "--gradient_checkpointing", "false", *extra)
    done = run_cli(argv, NPROC_PER_NODE="2", MASTER_PORT=str(free_port()))
    assert done.returncode == 0, done.stderr[-4000:]
    (run,) = run_dirs(tmp_path / out, model_type)
    return run, done


@pytest.mark.slow
@pytest.mark.real_tokenizer
@pytest.mark.parametrize("sft_type", ["lora", "full"])
@pytest.mark.parametrize("stage", ["default-zero2", "default-zero3"])
def test_deepspeed_zero_two_processes(stage: str, sft_type: str, tiny_root: Path, tokenizers_root: Path,
                                      tmp_path: Path) -> None:
    """NPROC_PER_NODE=2 relaunches under torchrun; DeepSpeed ZeRO on gloo; per-rank memory; shards per rank."""
    model_type = "qwen-vl-chat"
    base = tiny_checkpoint(tiny_root, model_type)
    run, done = _zero_run(tmp_path, base, model_type, stage, sft_type, "out")
    assert "run sh: `" in done.stdout and "torch.distributed.run --nproc_per_node 2" in done.stdout
    assert done.stdout.count("[INPUT_IDS]") == 1  # printed by rank 0 only
    assert "torch_adam = true" in done.stdout
    records = read_jsonl(run / "logging.jsonl")
    train = train_records(records)
    assert [r["step"] for r in train] == [1, 2, 3, 4, 5, 6]
    assert train[-1]["loss"] < train[0]["loss"], [r["loss"] for r in train]
    assert all(r["memory"]["per_device"].keys() == {"rank0/cpu", "rank1/cpu"} for r in train)
    ckpt = run / "checkpoint-6"
    stage_n = 2 if stage.endswith("2") else 3
    shards = sorted(p.name for p in (ckpt / "global_step6").iterdir())
    assert len([s for s in shards if "optim_states" in s]) == 2, shards
    assert {"rng_state_0.pth", "rng_state_1.pth", "latest", "sft_args.json"} <= {p.name for p in ckpt.iterdir()}
    saved = json.loads((ckpt / "sft_args.json").read_text())
    assert saved["deepspeed_config"]["zero_optimization"]["stage"] == stage_n and saved["world_size"] == 2
    assert saved["gradient_accumulation_steps"] == 2
    if sft_type == "lora":
        row = {"query": "please describe the image.", "response": "x", "images": []}
        assert isinstance(adapter_loss(base, ckpt, model_type, row), float)  # the consolidated adapter loads
    else:
        from safetensors.torch import load_file

        weights = load_file(str(ckpt / "model.safetensors"))
        assert all(t.numel() > 0 for t in weights.values())  # ZeRO-3 weights gathered, not empty partitions


@pytest.mark.slow
@pytest.mark.real_tokenizer
@pytest.mark.parametrize(("stage", "sft_type"), [("default-zero2", "lora"), ("default-zero3", "full")])
def test_deepspeed_resume_two_processes(stage: str, sft_type: str, tiny_root: Path, tokenizers_root: Path,
                                        tmp_path: Path) -> None:
    """DeepSpeed's global_step*/ files are read with weights_only=True (``safe_deepspeed_loads``): the resumed run
    reproduces the losses, and a tampered state file stops it without running its code."""
    model_type = "qwen-vl-chat"
    base = tiny_checkpoint(tiny_root, model_type)
    run_a, _ = _zero_run(tmp_path, base, model_type, stage, sft_type, "a")
    run_b, _ = _zero_run(tmp_path, base, model_type, stage, sft_type, "b", "--resume_from_checkpoint",
                         str(run_a / "checkpoint-3"))
    a, b = read_jsonl(run_a / "logging.jsonl"), read_jsonl(run_b / "logging.jsonl")
    ca, cb = _curve(a, 3), _curve(b, 3)
    assert [x[0] for x in cb] == [x[0] for x in ca] and len(ca) == 4
    for x, y in zip(ca, cb, strict=True):  # gloo all-reduce sums in a fixed order: equal up to float rounding of the logged means
        assert all(u == pytest.approx(v, rel=1e-6, abs=1e-8) for u, v in zip(x[1:], y[1:], strict=True) if u is not None)

    bad = tmp_path / "tampered"
    shutil.copytree(run_a / "checkpoint-3", bad)
    (optim,) = [p for p in (bad / "global_step3").iterdir() if p.name.startswith("zero_pp_rank_1") and p.name.endswith("optim_states.pt")]
    marker = tmp_path / "ran.txt"
    torch.save({"x": RunsCode(marker)}, optim, _use_new_zipfile_serialization=False)  # DeepSpeed's own format
    argv = _common(model_type, base, tmp_path / "c", "coco-en-2-mini-sample#8", "--sft_type", sft_type,
                   "--deepspeed", stage, "--max_steps", "6", "--gradient_accumulation_steps", "2",
                   "--resume_from_checkpoint", str(bad))
    done = run_cli(argv, NPROC_PER_NODE="2", MASTER_PORT=str(free_port()))
    assert done.returncode != 0 and not marker.exists()
    assert f"{optim}: not plain tensors and numbers (it asks for exec)" in done.stderr


def _two_nodes(tmp_path: Path, base: Path, model_type: str, out: str,
               per_node: Callable[[int], list[str]] = lambda node: []) -> list[Path]:
    """Two single-process torchrun "nodes" on loopback (NNODES=2, NODE_RANK 0/1), each with its own output folder,
    as two machines without shared storage; ``per_node(node)`` adds flags. The run dir of each node."""
    port = str(free_port())
    procs = []
    for node in (0, 1):
        argv = _common(model_type, base, tmp_path / f"{out}-node{node}", "coco-en-2-mini-sample#8", "--max_steps",
                       "6", "--gradient_accumulation_steps", "2", "--learning_rate", "5e-3", "--logging_steps", "1",
                       "--eval_steps", "3", "--save_steps", "3", "--gradient_checkpointing", "false", *per_node(node))
        env = cli_env(NNODES="2", NODE_RANK=str(node), NPROC_PER_NODE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
        procs.append(subprocess.Popen([sys.executable, "-m", "vlmref.cli.sft", *argv], cwd=str(REPO), env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = [proc.communicate(timeout=900)[0] for proc in procs]
    for node, (proc, output) in enumerate(zip(procs, outputs, strict=True)):
        assert proc.returncode == 0, f"node {node}:\n{output[-4000:]}"
    return [run_dirs(tmp_path / f"{out}-node{node}", model_type)[0] for node in (0, 1)]


@pytest.mark.slow
@pytest.mark.real_tokenizer
def test_two_nodes_without_shared_storage(tiny_root: Path, tokenizers_root: Path, tmp_path: Path) -> None:
    """Each node writes its own complete checkpoint (its first process: weights, trainer state, args; every rank its
    RNG state into its node's copy), and both nodes resuming from their own copies reproduce the losses."""
    model_type = "qwen-vl-chat"
    base = tiny_checkpoint(tiny_root, model_type)
    runs = _two_nodes(tmp_path, base, model_type, "a")
    for node, run in enumerate(runs):
        ckpt = run / "checkpoint-3"
        assert {"adapter_model.safetensors", "trainer_state.json", "sft_args.json", f"rng_state_{node}.pth"} <= {
            p.name for p in ckpt.iterdir()}, node
        assert not (ckpt / f"rng_state_{1 - node}.pth").exists()
        assert (run / "checkpoint-6").is_dir() and not [p.name for p in run.iterdir() if p.name.startswith(".")]
    resumed = _two_nodes(tmp_path, base, model_type, "b",
                         lambda node: ["--resume_from_checkpoint", str(runs[node] / "checkpoint-3")])
    ca, cb = _curve(read_jsonl(runs[0] / "logging.jsonl"), 3), _curve(read_jsonl(resumed[0] / "logging.jsonl"), 3)
    assert [x[0] for x in cb] == [x[0] for x in ca] and len(ca) == 4
    for x, y in zip(ca, cb, strict=True):
        assert all(u == pytest.approx(v, rel=1e-6, abs=1e-8) for u, v in zip(x[1:], y[1:], strict=True) if u is not None)
    assert (resumed[1] / "checkpoint-6" / "rng_state_1.pth").is_file()


@pytest.mark.slow
@pytest.mark.real_tokenizer
def test_ddp_two_processes_llava_lora(tiny_root: Path, tokenizers_root: Path, tmp_path: Path) -> None:
    """DDP on gloo, gradient checkpointing on (default): LLaVA leaves its last CLIP layer (whose q/k/v DEFAULT wraps)
    unused, so DDP needs find_unused_parameters=True (ms-swift's default False fails on the second step)."""
    model_type = "llava1d6-mistral-7b-instruct"
    base = tiny_checkpoint(tiny_root, model_type)
    argv = _common(model_type, base, tmp_path / "out", "coco-en-2-mini-sample#8", "--max_length", "4096",
                   "--max_steps", "3", "--gradient_accumulation_steps", "1", "--logging_steps", "1")
    done = run_cli(argv, NPROC_PER_NODE="2", MASTER_PORT=str(free_port()))
    assert done.returncode == 0, done.stderr[-4000:]
    (run,) = run_dirs(tmp_path / "out", model_type)
    train = train_records(read_jsonl(run / "logging.jsonl"))
    assert [r["step"] for r in train] == [1, 2, 3]
    assert train[0]["memory"]["per_device"].keys() == {"rank0/cpu", "rank1/cpu"}
    assert json.loads((run / "sft_args.json").read_text())["gradient_accumulation_steps"] == 1


# ---- the seeds' commands -----------------------------------------------------------------------------------------
SEED_RUNS = {  # seed command with the offline sample for the COCO dataset and a tiny checkpoint for the model
    "qwen-vl-lora": ({}, "--model_type qwen-vl-chat --dataset coco-en-mini-sample#4 \\"),
    "qwen-vl-full": ({"NPROC_PER_NODE": "2"}, "--model_type qwen-vl-chat --dataset coco-en-mini-sample#4 --sft_type full \\"),
    "cogvlm": ({}, "--model_type cogvlm-17b-instruct --dataset coco-en-2-mini-sample#4 \\  "),
    "xcomposer2": ({}, "--model_type internlm-xcomposer2-7b-chat --dataset coco-en-mini-sample#4 \\"),
    "yi-vl": ({}, "--model_type yi-vl-6b-chat --dataset coco-en-2-mini-sample#4 \\"),
    "llava-lora": ({}, "--model_type llava1d6-mistral-7b-instruct --dataset coco-en-2-mini-sample#4 \\"),
    "llava-yi-lora": ({}, "--model_type llava1d6-yi-34b-instruct --dataset coco-en-2-mini-sample#4 \\"),
    "llava-full-zero2": ({"NPROC_PER_NODE": "4"}, "--model_type llava1d6-mistral-7b-instruct --dataset "
                         "coco-en-2-mini-sample#4 --sft_type full --deepspeed default-zero2"),
}
TOO_LONG_AT_2048 = ("llava-lora", "llava-yi-lora", "llava-full-zero2")  # 2340 image positions per 640x480 COCO image


@pytest.mark.slow
@pytest.mark.real_tokenizer
@pytest.mark.parametrize("name", list(SEED_RUNS))
def test_seed_commands_run(name: str, tiny_root: Path, tokenizers_root: Path, tmp_path: Path) -> None:
    env, command = SEED_RUNS[name]
    words = _shell_words(command)
    model_type = MODELS.get(words[1]).model_type
    base = tiny_checkpoint(tiny_root, model_type)
    argv = [*words, "--model_id_or_path", str(base), "--output_dir", str(tmp_path / "output")]
    if env:
        env = {**env, "MASTER_PORT": str(free_port())}
    if name in TOO_LONG_AT_2048:  # the strict budget refuses these rows; the default (ms-swift's) trains them
        strict = run_cli([*argv, "--max_length_counts_images", "true"], **env)
        # bad input: exit 2 (torchrun itself exits 1 when a rank fails)
        assert strict.returncode == (1 if env else 2) and "max_length 2048 counts every position" in strict.stderr
        assert "raise --max_length" in strict.stderr
    done = run_cli(argv, **env)
    assert done.returncode == 0, done.stderr[-4000:]
    (run,) = run_dirs(tmp_path / "output", model_type)
    final = read_jsonl(run / "logging.jsonl")[-1]
    assert final["global_step"] == 1 and Path(final["last_model_checkpoint"]).is_dir()  # 3 rows, gas 16: one step
    assert eval_records(read_jsonl(run / "logging.jsonl"))  # evaluated at the last step
