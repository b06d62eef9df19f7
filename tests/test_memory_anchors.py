"""``vlmref memory --anchors``: the figures measured outside the seeds (ms-swift's example scripts, Qwen-VL's README)
as scenarios, the report's decomposition columns, and the ``legacy_stack`` option of a scenario."""

from __future__ import annotations

import functools
import json
import subprocess
import sys

import pytest

from vlmref.memory.anchors import ANCHORS, anchor_scenario, select_anchors
from vlmref.memory.report import markdown_table, text_table
from vlmref.memory.scenario import MemoryScenario, ScenarioError
from vlmref.models.model_types import MemoryAnchor

# ../shared/spec/memory-anchors.md, "Other measured anchors for the same models": (key, GB per GPU, GPUs)
LISTED = {
    "qwen-vl-chat/swift-script/lora": (21, 1), "qwen-vl-chat/swift-script/lora_ddp_ds": (21, 2),
    "qwen-vl-chat/swift-script/full_mp": (55, 2), "qwen-vl-chat/swift-script/qlora": (10, 1),
    "yi-vl-6b-chat/swift-script/lora": (18, 1), "internlm-xcomposer2-7b-chat/swift-script/lora": (21, 1),
    "qwen-vl-chat/qwen-readme/lora-384": (23.3, 1), "qwen-vl-chat/qwen-readme/lora-2048": (27.3, 1),
    "qwen-vl-chat/qwen-readme/infer-2048": (22.60, 1),
}


def test_every_listed_anchor_is_a_row_with_its_figure() -> None:
    assert {a.key: (a.anchor.gb_per_gpu, a.anchor.gpus) for a in ANCHORS} == LISTED
    for row in ANCHORS:
        assert row.anchor.source and row.anchor.quote
        assert (row.scenario is None) == bool(row.anchor.not_modelled), row.key
        if row.scenario is not None:
            assert row.scenario.devices == row.anchor.gpus


def test_the_script_scenarios_carry_the_scripts_flags() -> None:
    by_key = {a.key: a.scenario for a in ANCHORS}
    ddp = by_key["qwen-vl-chat/swift-script/lora_ddp_ds"]
    assert (ddp.world_size, ddp.deepspeed, ddp.lora_target_modules) == (2, "zero2", ("c_attn", "attn.c_proj"))
    mp = by_key["qwen-vl-chat/swift-script/full_mp"]
    assert (mp.sft_type, mp.devices_per_process, mp.world_size, mp.attention) == ("full", 2, 1, "sdpa")
    assert by_key["qwen-vl-chat/swift-script/lora"].lora_target_modules == ("DEFAULT",)
    assert by_key["qwen-vl-chat/swift-script/lora"].attention == "eager"  # --use_flash_attn false
    readme = by_key["qwen-vl-chat/qwen-readme/lora-384"]
    assert (readme.lora_rank, readme.lora_alpha, readme.lora_target_modules) == (64, 16, ("c_attn", "attn.c_proj",
                                                                                          "w1", "w2"))
    assert by_key["qwen-vl-chat/qwen-readme/infer-2048"].new_tokens == 1


@pytest.mark.parametrize(("key", "positions"), [("qwen-vl-chat/qwen-readme/lora-384", 384),
                                                ("qwen-vl-chat/qwen-readme/lora-2048", 2048),
                                                ("qwen-vl-chat/qwen-readme/infer-2048", 2048)])
def test_qwen_readme_rows_are_padded_to_the_sequence_length(key: str, positions: int) -> None:
    """Qwen's finetune.py pads every sample to model_max_length (the image's 258 positions inside); the profile
    encodes 2048 positions, an image among them."""
    from vlmref.memory.inputs import sample_shape

    shape = sample_shape(select_anchors([key])[0].scenario)
    assert shape["positions"] == positions and shape["image_positions"] == 258


def test_an_anchor_whose_scenario_disagrees_with_its_gpus_is_refused() -> None:
    wrong = MemoryAnchor("x", 10, 4, "A100", "src", "quote", {"mode": "sft", "world_size": 2})
    with pytest.raises(ScenarioError, match="uses 2 GPUs, the source 4"):
        anchor_scenario("qwen-vl-chat", wrong)
    with pytest.raises(ScenarioError, match="needs mode"):
        anchor_scenario("qwen-vl-chat", MemoryAnchor("y", 10, 1, "A100", "src", "quote", {}))


def test_unknown_anchor_key_is_a_key_error_naming_the_known_ones() -> None:
    with pytest.raises(KeyError, match="qwen-vl-chat/swift-script/lora"):
        select_anchors(["nope"])


ROW = {"key": "k/lora/1gpu", "gpus": "1 x A10", "documented_gib": 21.0, "predicted_gib": 18.5, "allocated_gib": 17.1,
       "reserved_gib": 18.0, "context_nccl_gib": 0.49, "residual_gib": 2.5, "peak_phase": "backward"}
UNMODELLED = {"key": "k/qlora", "gpus": "1 x A10", "documented_gib": 10.0, "predicted_gib": None,
              "not_modelled": "bitsandbytes 4-bit weights"}


def test_tables_show_each_step_of_the_prediction_and_the_residual() -> None:
    md = markdown_table([ROW, UNMODELLED]).splitlines()
    assert md[0].startswith("| footprint | GPUs | documented GiB/GPU | allocated GiB | reserved GiB | "
                            "+ context/NCCL GiB | predicted GiB/GPU | ratio | residual GiB |")
    assert md[2] == "| k/lora/1gpu | 1 x A10 | 21.0 | 17.1 | 18.0 | 0.5 | 18.5 | 0.88 | +2.5 | backward |"
    assert md[3] == "| k/qlora | 1 x A10 | 10.0 | - | - | - | - | - | - | not modelled: bitsandbytes 4-bit weights |"
    assert text_table([ROW, UNMODELLED]).splitlines()[-1] == ("0/1 within +-10% of the documented figure "
                                                              "(1 not modelled)")


def test_cli_anchors_writes_the_report_with_the_unmodelled_row(tmp_path) -> None:
    out = tmp_path / "report"
    keys = ["yi-vl-6b-chat/swift-script/lora", "qwen-vl-chat/swift-script/qlora"]
    done = subprocess.run([sys.executable, "-m", "vlmref.cli.main", "memory", "--anchors", "--only", *keys, "--tiny",
                           "--out_dir", str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "(1 not modelled)" in done.stdout and "simulated 1 scenario(s)" in done.stdout
    assert "not modelled (bitsandbytes 4-bit weights" in done.stderr
    data = json.loads((out / "anchors.json").read_text())
    assert [r["key"] for r in data["rows"]] == ["qwen-vl-chat/swift-script/qlora", "yi-vl-6b-chat/swift-script/lora"]
    assert data["title"] == "measured elsewhere (anchors)" and len(data["estimates"]) == 1
    row = data["rows"][1]
    assert row["source"].endswith("yi_vl_6b_chat/lora/sft.sh") and row["residual_gib"] == round(
        row["documented_gib"] - row["predicted_gib"], 2)
    assert row["allocated_gib"] <= row["reserved_gib"] <= row["predicted_gib"]
    assert (out / "anchors.md").read_text().count("\n| ") == 2


# ---- legacy_stack ------------------------------------------------------------------------------------------------------

def _prefill_logits(model_type: str, legacy: bool):
    """The logits of a tiny model's prefill in the infer workload (a real CPU run); both model types take
    ``logits_to_keep`` (without it, as Yi-VL and CogVLM, every position's logits are computed either way)."""
    from vlmref.memory.inputs import build_batch
    from vlmref.memory.legacy import legacy_stack
    from vlmref.memory.setup import build_model
    from vlmref.memory.workload import run_infer

    scenario = MemoryScenario(model_type, "infer", text_tokens=8, new_tokens=1, legacy_stack=legacy)
    model = build_model(scenario, device="cpu", tiny=True)
    batch = build_batch(scenario)
    seen = []
    forward = model.forward

    @functools.wraps(forward)  # the workload reads the signature (logits_to_keep)
    def spy(*args, **kwargs):
        out = forward(*args, **kwargs)
        seen.append(out.logits)
        return out

    model.forward = spy
    with legacy_stack(model, scenario):
        run_infer(model, batch, scenario, lambda name: None)
    return seen[0], batch["input_ids"].shape[1]


@pytest.mark.parametrize(("model_type", "fp32"), [("llava1d6-mistral-7b-instruct", True), ("qwen-vl-chat", False)])
def test_legacy_stack_prefill_computes_every_positions_logits(model_type: str, fp32: bool) -> None:
    import torch

    logits, positions = _prefill_logits(model_type, legacy=True)
    assert logits.shape[1] == positions
    assert logits.dtype == (torch.float32 if fp32 else torch.bfloat16)  # the family's legacy_fp32_logits
    current, _ = _prefill_logits(model_type, legacy=False)
    assert current.shape[1] == 1 and current.dtype == torch.bfloat16


def test_legacy_stack_is_a_flag_and_in_the_label() -> None:
    from vlmref.cli.scenario_args import ScenarioArguments, scenario_from_args

    args = ScenarioArguments(model_type="qwen-vl-chat", mode="infer", legacy_stack=True)
    scenario = scenario_from_args(args)
    assert scenario.legacy_stack and scenario.label().endswith("legacy-stack 1x1 GPU, 1 image 480x640 + max_length, bs 1")


def test_committed_anchor_table_is_what_this_install_computes() -> None:
    """benchmarks/results/memory_anchors.json: re-simulate one row and compare every field but the wall time."""
    from pathlib import Path

    from vlmref.memory.inputs import scenario_tokenizer
    from vlmref.memory.simulate import simulate

    committed = json.loads((Path(__file__).resolve().parent.parent / "benchmarks" / "results" /
                            "memory_anchors.json").read_text())
    key = "qwen-vl-chat/qwen-readme/lora-384"
    modelled = [r for r in committed["rows"] if r.get("predicted_gib") is not None]
    estimate = committed["estimates"][[r["key"] for r in modelled].index(key)]
    if scenario_tokenizer("qwen-vl-chat")[1] != estimate["tokenizer"]:
        pytest.skip(f"the committed row used the {estimate['tokenizer']} tokenizer; this machine has the other one")
    est = simulate(select_anchors([key])[0].scenario).to_dict()
    hint = (f"{key} no longer computes the committed result (versions then: {committed['versions']}); if intended, "
            "regenerate with `nox -s memory_results` and commit it with the reason")
    assert {k: v for k, v in est.items() if k != "seconds"} == {k: v for k, v in estimate.items() if k != "seconds"}, hint
