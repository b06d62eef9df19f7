"""Memory prediction (``vlmref.memory``): scenarios, the documented table, the simulator against real CPU runs, the
per-device composition and ``vlmref memory``."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch

from vlmref.memory import DOCUMENTED, MemoryScenario, ScenarioError
from vlmref.memory.attention import eager_attention, eager_sdpa
from vlmref.memory.inputs import build_batch, sample_shape
from vlmref.memory.scenario import CUDA_CONTEXT_BYTES, ZERO2_BUCKET_ELEMENTS
from vlmref.memory.setup import build_model
from vlmref.memory.simulate import KV_GROWTH_SLACK, simulate, trace
from vlmref.memory.tracker import PeakTracker, batch_tensors
from vlmref.memory.workload import run_workload
from vlmref.models.info import image_tokens_per_image
from vlmref.models.model_types import MODELS


# ---- the documented table ----------------------------------------------------------------------------------------------
def test_every_registry_footprint_has_exactly_one_scenario() -> None:
    registry = [(mt, fp) for mt in MODELS.names() for fp in MODELS.get(mt).footprints]
    assert len(registry) == len(DOCUMENTED) == 16
    assert [(d.model_type, d.footprint) for d in DOCUMENTED] == registry
    families = Counter(MODELS.get(d.model_type).architecture for d in DOCUMENTED)
    assert families == {"cogvlm": 2, "qwen_vl": 3, "internlm_xcomposer2": 2, "yi_vl": 2, "llava_next": 7}
    for d in DOCUMENTED:
        assert d.scenario.devices == d.footprint.gpus, d.key
        assert d.scenario.model_type == d.model_type
        assert d.scenario.mode == ("infer" if d.footprint.mode == "infer" else "sft")
        if d.footprint.mode != "infer":
            assert d.scenario.sft_type == d.footprint.mode
    assert len({d.key for d in DOCUMENTED}) == 16


def test_deepspeed_and_device_map_follow_the_seed_commands() -> None:
    by_key = {d.key: d.scenario for d in DOCUMENTED}
    zero2 = by_key["llava1d6-mistral-7b-instruct/full/4gpu"]
    assert (zero2.deepspeed, zero2.world_size, zero2.devices_per_process) == ("zero2", 4, 1)
    qwen_full = by_key["qwen-vl-chat/full/4gpu"]  # NPROC_PER_NODE=2 over CUDA_VISIBLE_DEVICES=0,1,2,3
    assert (qwen_full.deepspeed, qwen_full.world_size, qwen_full.devices_per_process) == (None, 2, 2)
    assert by_key["llava1d6-yi-34b-instruct/full/8gpu"].devices_per_process == 8


def test_pure_layer_imports_without_torch() -> None:
    code = ("import sys, vlmref.memory, vlmref.memory.report, vlmref.cli.memory, vlmref.cli.scenario_args; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---- scenarios -----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("kwargs", "message"), [
    ({"mode": "train"}, "mode must be"),
    ({"mode": "infer", "deepspeed": "zero2"}, "sft only"),
    ({"mode": "sft", "deepspeed": "zero3", "devices_per_process": 2}, "do not combine"),
    ({"mode": "sft", "deepspeed": "zero1"}, "deepspeed must be"),
    ({"mode": "sft", "dtype": "int8"}, "dtype must be"),
    ({"mode": "sft", "batch_size": 0}, "batch_size must be >= 1"),
    ({"mode": "sft", "text_tokens": 0}, "text_tokens must be >= 1"),
    ({"mode": "infer", "new_tokens": 0}, "new_tokens must be >= 1"),
    ({"mode": "sft", "image_size": (0, 10)}, "image_size"),
])
def test_scenario_rejects_bad_combinations(kwargs: dict, message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        MemoryScenario("qwen-vl-chat", **kwargs)


def test_scenario_round_trips_through_json() -> None:
    s = MemoryScenario("llava1d6-yi-34b-instruct", "sft", sft_type="full", image_size=(336, 1008), text_tokens=10,
                       lora_target_modules=("ALL",), devices_per_process=8, notes=("x",))
    again = MemoryScenario.from_dict(json.loads(json.dumps(s.to_dict())))
    assert again == s and again.image_size == (336, 1008) and again.devices == 8
    with pytest.raises(ScenarioError, match="unknown scenario field"):
        MemoryScenario.from_dict({**s.to_dict(), "gpu": "A100"})


@pytest.mark.parametrize("model_type", ["cogvlm-17b-instruct", "qwen-vl-chat", "internlm-xcomposer2-7b-chat",
                                        "internlm-xcomposer2_5-7b-chat", "yi-vl-6b-chat",
                                        "llava1d6-mistral-7b-instruct"])
@pytest.mark.parametrize("mode", ["sft", "infer"])
def test_sample_length_is_exact(model_type: str, mode: str) -> None:
    base = MemoryScenario(model_type, mode, image_size=(480, 640), text_tokens=20)
    short, longer = sample_shape(base), sample_shape(base.with_(text_tokens=57))
    assert longer["positions"] - short["positions"] == 37
    assert short["image_positions"] == image_tokens_per_image(model_type, 480, 640)
    filled = sample_shape(base.with_(text_tokens=None, max_length=1024))
    assert filled["text_positions"] == 1024  # ms-swift's budget counts text positions
    with pytest.raises(ScenarioError, match="max_length is 16"):
        sample_shape(base.with_(max_length=16))


# ---- the simulator against real runs -------------------------------------------------------------------------------
def _real_peaks(scenario: MemoryScenario) -> tuple[int, int]:
    """(MemTracker-tracked peak, torch profiler memory-timeline peak) of the workload run for real on CPU."""
    from torch.profiler import ProfilerActivity, profile
    from torch.profiler._memory_profiler import MemoryProfileTimeline

    torch.manual_seed(0)
    model = build_model(scenario, device="cpu", tiny=True)
    batch = build_batch(scenario)
    tracker = PeakTracker()

    def on_phase(name: str) -> None:
        if name in ("forward", "prefill", "decode"):
            tracker.reset_mod_stats()

    tracker.track_external(model, *batch_tensors(batch))
    with tracker:
        run_workload(model, batch, scenario, on_phase)
    tracked = tracker.peak_bytes()

    torch.manual_seed(0)
    model = build_model(scenario, device="cpu", tiny=True)
    batch = build_batch(scenario)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True, with_stack=True) as prof:
        run_workload(model, batch, scenario)
    _, sizes = MemoryProfileTimeline(prof._memory_profile())._coalesce_timeline(torch.device("cpu"))
    return tracked, max(sum(s) for s in sizes)


VALIDATION = [
    ("qwen-vl-chat", "sft", "lora", "sdpa"),
    ("qwen-vl-chat", "infer", "lora", "sdpa"),
    ("cogvlm-17b-instruct", "sft", "full", "sdpa"),
    ("llava1d6-mistral-7b-instruct", "sft", "lora", "sdpa"),
    ("llava1d6-mistral-7b-instruct", "sft", "lora", "eager"),
    ("internlm-xcomposer2-7b-chat", "sft", "lora", "eager"),
    ("yi-vl-6b-chat", "infer", "lora", "eager"),
]


@pytest.mark.parametrize(("model_type", "mode", "sft_type", "attention"), VALIDATION)
def test_simulated_peak_matches_a_real_cpu_run(model_type: str, mode: str, sft_type: str, attention: str) -> None:
    """The fake trace's peak equals the real run's within 2 %, measured two ways: torch's MemTracker on real tensors,
    and the torch profiler's memory timeline (allocator events, independent of MemTracker)."""
    scenario = MemoryScenario(model_type, mode, sft_type=sft_type, dtype="fp32", text_tokens=32, new_tokens=3,
                              attention=attention)
    simulated = trace(scenario, tiny=True)["breakdown"]["total"]
    with eager_attention(attention == "eager"):
        tracked, timeline = _real_peaks(scenario)
    assert simulated == pytest.approx(tracked, rel=0.02)
    assert simulated == pytest.approx(timeline, rel=0.02)


@pytest.mark.parametrize(("q_heads", "kv_heads", "q_len", "k_len"), [(4, 4, 7, 7), (8, 2, 5, 5), (4, 4, 1, 9)])
@pytest.mark.parametrize("mask", ["none", "causal", "bool", "additive"])
def test_eager_attention_computes_what_sdpa_computes(q_heads: int, kv_heads: int, q_len: int, k_len: int,
                                                     mask: str) -> None:
    torch.manual_seed(0)
    q = torch.randn(2, q_heads, q_len, 16)
    k, v = torch.randn(2, kv_heads, k_len, 16), torch.randn(2, kv_heads, k_len, 16)
    kwargs: dict = {"enable_gqa": kv_heads != q_heads}
    if mask == "causal" and q_len == k_len:
        kwargs["is_causal"] = True
    elif mask == "bool":
        kwargs["attn_mask"] = torch.rand(2, 1, q_len, k_len) > 0.3
        kwargs["attn_mask"][..., 0] = True
    elif mask == "additive":
        kwargs["attn_mask"] = torch.randn(2, 1, q_len, k_len)
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, **kwargs)
    assert torch.allclose(eager_sdpa(q, k, v, **kwargs), expected, atol=1e-5)
    with eager_attention():
        assert torch.nn.functional.scaled_dot_product_attention is eager_sdpa
    assert torch.nn.functional.scaled_dot_product_attention is not eager_sdpa


def test_eager_attention_holds_the_attention_matrix() -> None:
    """Same scenario, eager vs sdpa: the prefill peak grows by at least one fp32 (heads, L, L) matrix."""
    base = MemoryScenario("llava1d6-mistral-7b-instruct", "infer", text_tokens=32, new_tokens=1)
    sdpa, eager = trace(base, tiny=True), trace(base.with_(attention="eager"), tiny=True)
    config = sdpa["model"].config.text_config
    positions = sample_shape(base)["positions"]
    matrix = config.num_attention_heads * positions * positions * 4
    assert eager["breakdown"]["total"] - sdpa["breakdown"]["total"] >= matrix


@pytest.mark.parametrize("model_type", MODELS.names())
def test_kv_cache_per_token_is_analytic_and_the_trace_grows_by_it(model_type: str) -> None:
    """The analytic cache (layers x KV heads x head dim x 2 x 2 B) is what one traced decode step adds, for every
    family: a model that loses the cache transformers hands it (5.24's ``cache=``) grows by less and is flagged."""
    scenario = MemoryScenario(model_type, "infer", text_tokens=8, new_tokens=6, batch_size=2)
    est = simulate(scenario, tiny=True)
    text = build_model(scenario, device="meta", tiny=True).config.get_text_config()
    kv_heads = getattr(text, "num_key_value_heads", None) or text.num_attention_heads
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    assert est.kv_cache_bytes_per_token == text.num_hidden_layers * kv_heads * head_dim * 2 * 2
    # + the growing int64 input_ids / attention_mask (and a position tensor): a few bytes per token
    kv = 2 * est.kv_cache_bytes_per_token
    assert kv <= est.kv_cache_measured_bytes_per_step <= kv + 2 * KV_GROWTH_SLACK
    assert not any(n.startswith("warning") for n in est.notes), est.notes
    assert any("decode steps traced" in n for n in est.notes)  # 6 > 4 traced: the rest is extrapolated


def test_decode_steps_beyond_the_trace_are_extrapolated() -> None:
    scenario = MemoryScenario("qwen-vl-chat", "infer", text_tokens=8, new_tokens=12)
    longer = simulate(scenario.with_(new_tokens=4012), tiny=True)
    longest = simulate(scenario.with_(new_tokens=8012), tiny=True)
    assert longer.peak_phase == longest.peak_phase == "decode"
    assert longest.traced["total"] - longer.traced["total"] == 4000 * longer.kv_cache_measured_bytes_per_step
    assert longer.to_dict()["kv_cache_mib_per_token"] == round(longer.kv_cache_bytes_per_token / 2**20, 4)


# ---- per-device composition ------------------------------------------------------------------------------------------
def _trainable_params(scenario: MemoryScenario) -> tuple[int, int]:
    model = build_model(scenario, device="meta", tiny=True)
    return (sum(p.numel() for p in model.parameters() if p.requires_grad),
            sum(p.numel() * p.element_size() for p in model.parameters()))


def test_zero2_replaces_full_gradients_with_deepspeed_partitions() -> None:
    scenario = MemoryScenario("qwen-vl-chat", "sft", sft_type="full", deepspeed="zero2", world_size=4, text_tokens=16)
    est = simulate(scenario, tiny=True)
    assert list(est.per_device) == [f"rank{r}/cuda:0" for r in range(4)]
    n_train, param_bytes = _trainable_params(scenario)
    row = est.per_device["rank0/cuda:0"]
    buckets = int(sum(ZERO2_BUCKET_ELEMENTS.values()) * 2)
    assert row["zero_model_states"] == 18 * n_train // 4 + buckets
    assert row["parameters"] == param_bytes
    assert "gradients" not in row and "optimizer_states" not in row
    assert row["nvidia_smi"] - row["reserved"] == CUDA_CONTEXT_BYTES + row["nccl"] and row["nccl"] > 0  # 4 ranks
    zero3 = simulate(scenario.with_(deepspeed="zero3"), tiny=True).per_device["rank0/cuda:0"]
    assert zero3["parameters"] == 0 and zero3["zero_model_states"] > row["zero_model_states"]


def test_multi_rank_rows_add_nccl_outside_the_allocator() -> None:
    from vlmref.memory.scenario import NCCL_BYTES

    two = simulate(MemoryScenario("qwen-vl-chat", "sft", sft_type="full", text_tokens=16, world_size=2), tiny=True)
    four = simulate(MemoryScenario("qwen-vl-chat", "sft", sft_type="full", text_tokens=16, world_size=4), tiny=True)
    one = simulate(MemoryScenario("qwen-vl-chat", "sft", sft_type="full", text_tokens=16), tiny=True)
    for est, nccl in [(one, 0), (two, NCCL_BYTES[2]), (four, NCCL_BYTES["more"])]:
        for row in est.per_device.values():
            assert row["nccl"] == nccl and row["nvidia_smi"] == row["reserved"] + row["cuda_context"] + nccl


def test_device_map_splits_states_and_ddp_adds_buckets() -> None:
    one = simulate(MemoryScenario("llava1d6-mistral-7b-instruct", "sft", sft_type="full", text_tokens=16), tiny=True)
    split = simulate(MemoryScenario("llava1d6-mistral-7b-instruct", "sft", sft_type="full", text_tokens=16,
                                    devices_per_process=2, world_size=2), tiny=True)
    assert sorted(split.per_device) == ["rank0/cuda:0", "rank0/cuda:1", "rank1/cuda:0", "rank1/cuda:1"]
    rank0 = [split.per_device["rank0/cuda:0"], split.per_device["rank0/cuda:1"]]
    assert all(r["parameters"] > 0 for r in rank0)
    assert sum(r["parameters"] for r in rank0) == one.per_device["cuda:0"]["parameters"]
    assert sum(r["optimizer_states"] for r in rank0) == pytest.approx(one.per_device["cuda:0"]["optimizer_states"],
                                                                      abs=4)
    for r in rank0:
        assert r["ddp_buckets"] == r["gradients"]
        assert r["activations"] == one.per_device["cuda:0"]["activations"]  # upper bound: counted on every device


# ---- CLI -------------------------------------------------------------------------------------------------------------
def _cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vlmref.cli.main", "memory", *argv], capture_output=True, text=True,
                          timeout=600)


def test_cli_one_scenario_as_json() -> None:
    done = _cli("--model_type", "qwen-vl-chat", "--mode", "sft", "--text_tokens", "16", "--tiny", "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    data = json.loads(done.stdout)
    assert data["scenario"]["model_type"] == "qwen-vl-chat" and data["peak_phase"] in ("forward", "backward",
                                                                                         "optimizer")
    dev = data["per_device_gib"]["cuda:0"]
    assert dev["allocated"] == pytest.approx(sum(v for k, v in dev.items()
                                                 if k not in ("allocated", "allocator_cache", "reserved",
                                                              "cuda_context", "nccl", "nvidia_smi")), abs=0.01)
    assert dev["cublas_workspace"] == pytest.approx(2 * 8.125 / 1024, abs=0.001)  # sft: two GEMM threads
    assert dev["nvidia_smi"] == pytest.approx(dev["reserved"] + dev["cuda_context"] + dev["nccl"], abs=0.002)
    # reserved: allocated + what the replayed caching allocator holds above it (never less)
    assert dev["reserved"] == pytest.approx(dev["allocated"] + dev["allocator_cache"], abs=0.002)
    assert dev["allocator_cache"] > 0 and data["peak_reserved_gib"] > data["peak_allocated_gib"]
    assert data["predicted_gib"] > data["peak_reserved_gib"]
    assert any(n.startswith("caching allocator (the traced stream replayed") for n in data["notes"])


def test_cli_documented_writes_table_chart_and_json(tmp_path) -> None:
    from PIL import Image

    out = tmp_path / "report"
    done = _cli("--documented", "--only", "qwen-vl-chat/lora/1gpu", "yi-vl-6b-chat/infer/1gpu", "--tiny",
                "--out_dir", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "qwen-vl-chat/lora/1gpu" in done.stdout and "within +-10%" in done.stdout
    md = (out / "documented.md").read_text()
    assert md.count("\n| ") == 2 and "| yi-vl-6b-chat/infer/1gpu | 1 x A10/3090/V100 | 18.0 |" in md
    data = json.loads((out / "documented.json").read_text())
    assert [r["key"] for r in data["rows"]] == ["qwen-vl-chat/lora/1gpu", "yi-vl-6b-chat/infer/1gpu"]
    with Image.open(out / "documented.png") as img:
        assert img.format == "PNG" and img.size[1] > 100
    assert sorted(p.name for p in out.iterdir()) == ["documented.json", "documented.md", "documented.png"]


@pytest.mark.parametrize(("argv", "message"), [
    (["--model_type", "qwen-vl-chat", "--mode", "infer", "--deepspeed", "default-zero2"], "sft only"),
    (["--model_type", "qwen-vl-chat"], "needs --mode"),
    (["--documented", "--only", "nope/lora/1gpu"], "unknown documented key"),
    ([], "one of --documented, --anchors or --model_type"),
    (["--documented", "--anchors"], "one of --documented, --anchors or --model_type"),
    (["--anchors", "--only", "qwen-vl-chat/nope"], "unknown anchor key"),
])
def test_cli_bad_flags_exit_2(argv: list[str], message: str) -> None:
    done = _cli(*argv)
    assert done.returncode == 2 and message in done.stderr


@pytest.mark.slow
def test_full_size_trace_holds_the_exact_weights() -> None:
    """A full-size Qwen-VL LoRA trace: the parameter bytes are the real model's (bf16) plus the adapters (fp32: peft's
    ``autocast_adapter_dtype`` up-casts bf16 adapters)."""
    est = simulate(MemoryScenario("qwen-vl-chat", "sft", text_tokens=64))
    lora = 8 * (4096 + 3 * 4096) * 32  # c_attn: 4096 -> 12288, r=8, 32 layers
    assert est.traced["parameters"] == 2 * 9_656_935_168 + 4 * lora
    assert est.peak_phase in ("forward", "backward")


# ---- the committed results --------------------------------------------------------------------------------------------
RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results"


def test_committed_documented_table_is_what_this_install_computes() -> None:
    """benchmarks/results/memory_documented.json records the versions that made it; re-simulate one row (an infer row:
    its decode peak depends on the KV cache being kept) and compare every field but the wall time."""
    from vlmref.bench.env import result_versions
    from vlmref.memory.documented import select_documented
    from vlmref.memory.inputs import scenario_tokenizer

    committed = json.loads((RESULTS / "memory_documented.json").read_text())
    key = "qwen-vl-chat/infer/1gpu"
    recorded = committed["versions"]
    assert recorded["transformers"] and recorded["torch"] and recorded["lock_sha256"]
    row = next(r for r in committed["rows"] if r["key"] == key)
    estimate = committed["estimates"][committed["rows"].index(row)]
    if scenario_tokenizer("qwen-vl-chat")[1] != estimate["tokenizer"]:
        pytest.skip(f"the committed row used the {estimate['tokenizer']} tokenizer; this machine has the other one")
    est = simulate(select_documented([key])[0].scenario).to_dict()
    now = result_versions()
    changed = {k: (recorded.get(k), now[k]) for k in now if k not in ("git_commit",) and recorded.get(k) != now[k]}
    hint = (f"{key} no longer computes the committed result; versions then -> now: {changed}. If the change is "
            "intended, regenerate with `nox -s memory_results` and commit it with the reason")
    assert {k: v for k, v in est.items() if k != "seconds"} == {k: v for k, v in estimate.items() if k != "seconds"}, hint
    assert round(est["predicted_gib"], 2) == row["predicted_gib"], hint


@pytest.mark.parametrize(("model_type", "mode"), [("qwen-vl-chat", "sft"), ("llava1d6-mistral-7b-instruct", "infer")])
def test_the_traced_allocation_stream_replays_to_the_traced_peak(model_type: str, mode: str) -> None:
    """The stream the tracker records is the one it counts: replayed, its peak of requested bytes is the traced peak;
    the allocator model then rounds blocks (allocated) and caches segments (reserved) above it."""
    from vlmref.memory.scenario import CUBLAS_WORKSPACE_BYTES, cublas_workspaces
    from vlmref.memory.simulate import trace

    result = trace(MemoryScenario(model_type, mode, text_tokens=16, new_tokens=2), tiny=True)
    replay = result["replay"]
    assert replay["entries"] > 100
    workspaces = cublas_workspaces(mode) * CUBLAS_WORKSPACE_BYTES  # replayed with the stream, live from the first GEMM
    assert replay["peak_requested"] == result["breakdown"]["total"] + workspaces
    assert replay["peak_requested"] <= replay["peak_allocated"] < replay["peak_reserved"]
