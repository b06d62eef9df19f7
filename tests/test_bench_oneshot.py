"""``vlmref bench`` ready for one short run on one large GPU: models built meta -> empty -> fast init, predictions next
to measurements, allocator snapshots as JSON with their replay, the ``--out_dir`` folder, and a run from a plain
checkout without vlmref's installed metadata. CUDA cannot run here: the snapshot code is tested on dicts shaped like
``torch.cuda.memory._snapshot()`` and the CUDA calls on stand-ins."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from vlmref.bench import load_artifact
from vlmref.bench.build import (
    build_fast,
    build_meta,
    device_lookup,
    fast_init_,
    materialize,
    meta_tensors,
    parameters_on_meta,
)
from vlmref.bench.gpu import BenchItem, RunExtras, _save_snapshot, documented_items, run_item
from vlmref.bench.predict import Predictor, predict
from vlmref.bench.results import HEAD, OutDirError, markdown, prepare_out_dir, write_out_dir
from vlmref.bench.snapshot import (
    SnapshotRecorder,
    attach_replay,
    json_snapshot,
    preamble,
    replay_fields,
    snapshot_filename,
    write_snapshot,
)
from vlmref.cli.bench import main as bench_main
from vlmref.memory.documented import DOCUMENTED
from vlmref.memory.scenario import MemoryScenario
from vlmref.memory.setup import DTYPES, build_model

REPO = Path(__file__).resolve().parent.parent
MiB = 1 << 20
ONE_KEY = "cogvlm-17b-instruct/lora/1gpu"  # the quickest single-device row on CPU (tiny)


# ---- building: meta -> empty -> fast init ------------------------------------------------------------------------
def _one_per_model_type() -> list[MemoryScenario]:
    seen: dict[str, MemoryScenario] = {}
    for d in DOCUMENTED:
        seen.setdefault(d.model_type, d.scenario.with_(new_tokens=2) if d.scenario.mode == "infer" else d.scenario)
    return list(seen.values())


@pytest.mark.parametrize("scenario", _one_per_model_type(), ids=lambda s: s.model_type)
def test_fast_build_has_the_buffers_and_parameters_of_a_normal_build(scenario: MemoryScenario) -> None:
    """Every buffer (rotary inv_freq, CLIP position_ids; persistent or not) equals the normally built model's, the
    parameters have the same names, shapes, dtypes and trainability, and a forward gives finite logits."""
    from vlmref.memory.inputs import build_batch
    from vlmref.utils import to_device

    ref = build_model(scenario, device="cpu", tiny=True)
    fast = build_fast(scenario, "cpu", tiny=True)
    assert not meta_tensors(fast)
    ref_buffers, fast_buffers = dict(ref.named_buffers()), dict(fast.named_buffers())
    assert ref_buffers.keys() == fast_buffers.keys()
    for name, buf in ref_buffers.items():
        assert fast_buffers[name].dtype == buf.dtype and torch.equal(fast_buffers[name], buf), name
    shape = {n: (p.shape, p.dtype, p.requires_grad) for n, p in ref.named_parameters()}
    assert {n: (p.shape, p.dtype, p.requires_grad) for n, p in fast.named_parameters()} == shape
    assert all(bool(p.isfinite().all()) for p in fast.parameters())
    batch = {k: to_device(v, torch.device("cpu"), DTYPES[scenario.dtype]) for k, v in build_batch(scenario).items()}
    with torch.no_grad():
        logits = fast(**batch).logits
    assert logits.shape[:2] == batch["input_ids"].shape and bool(logits.isfinite().all())


def test_sft_lora_fast_build_trains_the_adapters_only() -> None:
    s = next(d.scenario for d in DOCUMENTED if d.key == "qwen-vl-chat/lora/1gpu")
    model = build_fast(s, "cpu", tiny=True)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)


def test_parameters_go_to_meta_buffers_keep_their_values_and_the_patch_is_undone() -> None:
    original = nn.Module.register_parameter

    class Rope(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = nn.Linear(8, 8)
            self.register_buffer("inv_freq", 1.0 / 10000 ** (torch.arange(0, 8, 2).float() / 8), persistent=False)

    with parameters_on_meta():
        m = Rope()
    assert m.proj.weight.device.type == "meta" and isinstance(m.proj.weight, nn.Parameter)
    assert m.inv_freq.device.type == "cpu" and m.inv_freq[0] == 1.0
    assert nn.Module.register_parameter is original
    with pytest.raises(RuntimeError), parameters_on_meta():
        raise RuntimeError("construction failed")
    assert nn.Module.register_parameter is original
    assert nn.Linear(2, 2).weight.device.type == "cpu"


def test_materialize_keeps_ties_and_follows_the_device_map() -> None:
    with parameters_on_meta():
        m = nn.Sequential(nn.Embedding(10, 4), nn.LayerNorm(4), nn.Linear(4, 10))
    m[2].weight = m[0].weight  # tied input / output embeddings
    m[1].register_buffer("scale", torch.full((4,), 3.0))
    materialize(m, device_lookup({"": "cpu", "2": "meta"}))
    assert m[2].weight is m[0].weight  # one tensor, placed by the first name that holds it
    assert m[0].weight.device.type == "cpu" and m[2].bias.device.type == "meta"
    assert torch.equal(m[1].scale, torch.full((4,), 3.0))
    fast_init_(m)
    assert torch.equal(m[1].weight, torch.ones(4)) and torch.equal(m[1].bias, torch.zeros(4))
    assert 0.005 < float(m[0].weight.detach().std()) < 0.05
    with pytest.raises(KeyError, match="in no device_map entry"):
        device_lookup({"a": 0})("b.weight")
    assert device_lookup({"a": 1})("a.weight") == torch.device("cuda:1")


def test_a_device_map_of_the_meta_model_places_every_tensor() -> None:
    """Several GPUs per process: accelerate's balanced map is computed on the meta model, then each tensor is made on
    its device (here cpu for GPU 0 and meta for GPU 1: CPU-only torch)."""
    from vlmref.memory.setup import device_map_for

    s = next(d.scenario for d in DOCUMENTED if d.key == "llava1d6-yi-34b-instruct/lora/2gpu")
    model = build_meta(s, tiny=True)
    size = sum(p.numel() * p.element_size() for p in model.parameters())
    local = device_map_for(model, 2, size)
    assert set(local.values()) == {0, 1}
    materialize(model, device_lookup({name: "cpu" if d == 0 else "meta" for name, d in local.items()}))
    where = device_lookup(local)
    for name, p in model.named_parameters():
        assert p.device.type == ("cpu" if where(name) == torch.device("cuda:0") else "meta"), name


def test_meta_build_of_a_full_size_model_allocates_no_weights() -> None:
    """34B parameters on meta: the CPU only ever holds the buffers (and one untouched torch.empty at a time)."""
    s = next(d.scenario for d in DOCUMENTED if d.key == "llava1d6-yi-34b-instruct/infer/1gpu")
    model = build_meta(s)
    assert {p.device.type for p in model.parameters()} == {"meta"}
    assert sum(p.numel() for p in model.parameters()) > 34e9
    assert {b.device.type for b in model.buffers()} == {"cpu"}


# ---- snapshots: torch's dicts -> JSON -> replay -------------------------------------------------------------------
def _frames() -> list[dict]:
    return [{"filename": "model.py", "line": 12, "name": "forward"}]


def _entry(action: str, addr: int, size: int, stream: int = 0) -> dict:
    return {"action": action, "addr": addr, "size": size, "stream": stream, "frames": _frames(), "time_us": 1,
            "device_free": 1 << 40, "compile_context": "", "user_metadata": ""}


def _recording(first_segment: int = 16 * MiB) -> list[dict]:
    """What torch records for: 16 MiB (a 16 MiB segment), 512 B (a 2 MiB small segment), 3 MiB (a 20 MiB segment),
    the 16 MiB block freed, then 8 MiB (served by the cached 16 MiB block: no new segment)."""
    a, b, c, d = 0x7F0000000000, 0x7F0010000000, 0x7F0020000000, 0x7F0000000000
    return [_entry("segment_alloc", a, first_segment), _entry("alloc", a, 16 * MiB),
            _entry("segment_alloc", b, 2 * MiB), _entry("alloc", b, 512),
            _entry("segment_alloc", c, 20 * MiB), _entry("alloc", c, 3 * MiB),
            _entry("free_requested", a, 16 * MiB), _entry("free_completed", a, 16 * MiB),
            _entry("alloc", d, 8 * MiB)]


def _segments() -> list[dict]:
    return [{"device": 0, "address": 0x7F0000000000, "total_size": 16 * MiB, "stream": 0, "segment_type": "large",
             "segment_pool_id": (0, 0), "allocated_size": 8 * MiB, "active_size": 8 * MiB, "requested_size": 8 * MiB,
             "blocks": [{"address": 0x7F0000000000, "size": 8 * MiB, "requested_size": 8 * MiB,
                         "state": "active_allocated", "frames": _frames()},
                        {"address": 0x7F0000800000, "size": 8 * MiB, "requested_size": 0, "state": "inactive",
                         "frames": []}]}]


def _raw(traces: list[list[dict]], segments: list[dict] | None = None) -> dict:
    return {"segments": _segments() if segments is None else segments, "device_traces": traces,
            "allocator_settings": {"PYTORCH_CUDA_ALLOC_CONF": "", "max_split_size": -1}}


def test_json_snapshot_drops_frames_and_keeps_what_the_replay_reads() -> None:
    doc = json_snapshot(_raw([_recording()]), max_entries=100, meta={"key": "k"})
    text = json.dumps(doc)
    assert "\"frames\":" not in text and "model.py" not in text and "time_us" not in text
    assert doc["device_traces"][0][0] == {"action": "segment_alloc", "addr": 0x7F0000000000, "size": 16 * MiB,
                                          "stream": 0}
    seg = doc["segments"][0]
    assert seg["segment_pool_id"] == [0, 0] and seg["blocks"][0] == {
        "address": 0x7F0000000000, "size": 8 * MiB, "requested_size": 8 * MiB, "state": "active_allocated"}
    assert doc["vlmref"]["recorded_entries"] == {"0": 9} and doc["vlmref"]["truncated_devices"] == []
    assert doc["vlmref"]["key"] == "k" and doc["allocator_settings"]["PYTORCH_CUDA_ALLOC_CONF"] == ""


def test_written_snapshot_replays_to_the_recorded_segments(tmp_path: Path, capsys) -> None:
    from vlmref.cli.main import main as vlmref_main

    path = write_snapshot(tmp_path / snapshot_filename("qwen-vl-chat/infer/1gpu"), json_snapshot(_raw([_recording()])))
    assert path.name == "qwen-vl-chat_infer_1gpu.snapshot.json"
    assert not any(p.name.startswith(".tmp") for p in tmp_path.iterdir())  # atomic: no temp file left
    fields = replay_fields(path, environ={})
    row = fields["per_device"]["cuda:0"]
    assert fields["reason"] is None and row["replay_segments_match"] is True
    assert row["replay_peak_reserved_gib"] == round(38 * MiB / (1 << 30), 4)  # 16 + 2 + 20 MiB
    assert row["segments"]["recorded"] == row["segments"]["replayed"] == 3
    # `vlmref memory replay FILE --json` reads the same file and finds the same peak
    assert vlmref_main(["memory", "replay", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["peak_reserved_bytes"] == 38 * MiB


def test_a_recording_the_model_does_not_reproduce_is_reported(tmp_path: Path) -> None:
    path = write_snapshot(tmp_path / "x.snapshot.json", json_snapshot(_raw([_recording(first_segment=32 * MiB)])))
    row = replay_fields(path, environ={})["per_device"]["cuda:0"]
    assert row["replay_segments_match"] is False and row["segments"]["divergence"]["segment"] == 0


def test_what_was_allocated_before_recording_began_is_rebuilt_in_front(tmp_path: Path) -> None:
    """A block allocated before recording and freed during it: without the preamble its free names no allocation."""
    start = {"segments": [{"device": 0, "address": 0x100000, "total_size": 20 * MiB, "stream": 0,
                           "segment_type": "large",
                           "blocks": [{"address": 0x100000, "size": 20 * MiB, "state": "active_allocated"}]}]}
    trace = [*_recording(), _entry("free_requested", 0x100000, 20 * MiB), _entry("free_completed", 0x100000, 20 * MiB)]
    bare = write_snapshot(tmp_path / "bare.json", json_snapshot(_raw([trace])))
    assert "not replayed" in replay_fields(bare, environ={})["reason"]
    doc = json_snapshot(_raw([trace]), start=start)
    n = len(preamble(start["segments"])[0])
    assert doc["vlmref"]["preamble_entries"] == {"0": n} and doc["vlmref"]["recorded_entries"] == {"0": len(trace)}
    assert all(e["synthetic"] for e in doc["device_traces"][0][:n]) and "synthetic" not in doc["device_traces"][0][n]
    row = replay_fields(write_snapshot(tmp_path / "full.json", doc), environ={})["per_device"]["cuda:0"]
    assert row["replay_segments_match"] is True and row["segments"]["recorded"] == 4
    assert row["replay_peak_reserved_gib"] == round(58 * MiB / (1 << 30), 4)  # the 20 MiB segment + 38 MiB


def test_two_devices_and_a_full_ring_buffer(tmp_path: Path) -> None:
    doc = json_snapshot(_raw([_recording(), [], _recording()], segments=[]), max_entries=9)
    assert doc["vlmref"]["truncated_devices"] == [0, 2]
    assert "--snapshot_entries" in replay_fields(write_snapshot(tmp_path / "t.json", doc), environ={})["reason"]
    doc = json_snapshot(_raw([_recording(), [], _recording()], segments=[]), max_entries=1000)
    fields = replay_fields(write_snapshot(tmp_path / "two.json", doc), environ={})
    assert sorted(fields["per_device"]) == ["cuda:0", "cuda:2"]
    record = {"per_device": {"cuda:0": {"reserved_gib": 0.04}, "cuda:2": {"reserved_gib": 0.05}}}
    attach_replay(record, fields)
    assert record["per_device"]["cuda:2"]["replay_peak_reserved_gib"] == fields["per_device"]["cuda:2"][
        "replay_peak_reserved_gib"]
    assert record["replay_peak_reserved_gib"] == round(38 * MiB / (1 << 30), 4) and record["replay_segments_match"]


def test_recorder_calls_torch_without_frames_and_saves_json(tmp_path: Path, monkeypatch) -> None:
    """The CUDA calls on stand-ins: history recorded with context=None from before the model build, the snapshot taken
    and recording switched off at stop; then the record gets the file and the replay next to its measurement."""
    calls: list[tuple] = []
    snapshots = iter([_raw([], segments=[]), _raw([_recording()])])

    def record_history(enabled="all", context="all", stacks="all", max_entries=sys.maxsize, device=None,
                       clear_history=False, compile_context=False, global_record_annotations=False, skip_actions=None):
        calls.append((enabled, context, max_entries, clear_history))

    monkeypatch.setattr(torch.cuda.memory, "_record_memory_history", record_history)
    monkeypatch.setattr(torch.cuda.memory, "_snapshot", lambda device=None: next(snapshots))
    recorder = SnapshotRecorder(max_entries=1234)
    recorder.start()
    recorder.stop()
    assert calls == [("all", None, 1234, True), (None, "all", sys.maxsize, False)]
    item = BenchItem("qwen-vl-chat/infer/1gpu", MemoryScenario("qwen-vl-chat", "infer"), 24.0)
    record = {"status": "ok", "per_device": {"cuda:0": {"reserved_gib": 0.04}},
              "snapshot": {"file": None, "reason": None}}
    _save_snapshot(record, item, recorder, tmp_path)
    assert record["snapshot"]["file"] == "qwen-vl-chat_infer_1gpu.snapshot.json" and record["snapshot"]["reason"] is None
    saved = json.loads((tmp_path / record["snapshot"]["file"]).read_text())
    assert saved["vlmref"]["key"] == item.key and "\"frames\":" not in json.dumps(saved)
    assert record["per_device"]["cuda:0"]["replay_segments_match"] is True and recorder.raw is None
    failed = SnapshotRecorder()
    failed.error = "torch 1.0 cannot record the allocator history: no"
    record = {"status": "ok", "per_device": {}, "snapshot": {"file": None, "reason": None}}
    _save_snapshot(record, item, failed, tmp_path)
    assert record["snapshot"]["reason"].startswith("torch 1.0 cannot record")


# ---- predictions, the results folder, the CLI --------------------------------------------------------------------
def test_prediction_failures_are_reported_not_raised(monkeypatch) -> None:
    import vlmref.memory.simulate as simulate_module

    def broken(scenario, tiny=False):
        raise RuntimeError("trace failed")

    monkeypatch.setattr(simulate_module, "simulate", broken)
    pred = predict(MemoryScenario("qwen-vl-chat", "infer"), tiny=True)
    assert pred["error"] == "RuntimeError: trace failed" and pred["reserved_gib"] is None


def test_run_item_puts_the_prediction_next_to_the_measurement_and_says_why_there_is_no_snapshot(tmp_path) -> None:
    (item,) = documented_items([ONE_KEY])
    extras = RunExtras(predictor=Predictor(tiny=True), out_dir=tmp_path)
    record = run_item(item, "cpu", tiny=True, documented=True, extras=extras)
    assert record["status"] == "ok", record["message"]
    pred = record["predicted"]
    assert pred["error"] is None and pred["tiny"] is True
    assert 0 < pred["allocated_gib"] <= pred["reserved_gib"] < pred["nvidia_smi_gib"]
    assert record["snapshot"] == {"file": None, "reason": record["snapshot"]["reason"]}
    assert "no allocator snapshot on cpu" in record["snapshot"]["reason"]
    assert record["replay_peak_reserved_gib"] is None and not list(tmp_path.iterdir())


def test_background_predictions_match_in_process_ones() -> None:
    s = MemoryScenario("qwen-vl-chat", "infer", text_tokens=16, new_tokens=2)
    predictor = Predictor(tiny=True, background=True)
    try:
        predictor.submit("k", s)
        background = predictor.get("k", s)
    finally:
        predictor.close()
    here = predict(s, tiny=True)
    assert background["error"] is None
    assert {k: background[k] for k in ("allocated_gib", "reserved_gib", "nvidia_smi_gib", "per_device")} == {
        k: here[k] for k in ("allocated_gib", "reserved_gib", "nvidia_smi_gib", "per_device")}


def test_out_dir_errors_are_one_line_and_exit_2(tmp_path: Path, capsys) -> None:
    afile = tmp_path / "taken"
    afile.write_text("x")
    for out_dir, expected in ((afile, "is a file, not a folder"), (afile / "sub", "cannot create it")):
        assert bench_main(["--documented", "--only", ONE_KEY, "--device", "cpu", "--tiny",
                           "--out_dir", str(out_dir)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: --out_dir") and expected in err and err.count("\n") == 1
    with pytest.raises(OutDirError):
        prepare_out_dir(afile)
    assert prepare_out_dir(tmp_path / "new" / "deeper").is_dir()
    assert bench_main(["--documented", "--only", ONE_KEY, "--device", "cpu", "--tiny", "--snapshot_entries", "0"]) == 2
    assert capsys.readouterr().err.startswith("error: --snapshot_entries")


def test_markdown_table_has_every_column(tmp_path: Path) -> None:
    from vlmref.bench import new_artifact

    ok = {"key": "a/infer/1gpu", "status": "ok", "documented_gib": 20.0, "message": None,
          "per_device": {"cuda:0": {"allocated_gib": 17.0, "reserved_gib": 18.0, "nvidia_smi_gib": 19.0}},
          "predicted": {"allocated_gib": 16.0, "reserved_gib": 17.0, "nvidia_smi_gib": 19.0, "error": None},
          "replay_peak_reserved_gib": 18.0, "replay_segments_match": False, "scenario": {},
          "snapshot": {"file": "a_infer_1gpu.snapshot.json", "reason": None}}
    skipped = {"key": "b/full/4gpu", "status": "skipped", "documented_gib": 70.0, "per_device": {}, "scenario": {},
               "message": "skipped: run under torchrun --nproc_per_node 4", "predicted": None}
    art = new_artifact({"torch": "2.13.0", "gpus": [{"name": "NVIDIA H200", "total_memory_gib": 139.8}],
                        "cuda": "12.8"}, [ok, skipped], device="cuda", tiny=False)
    text = markdown(art)
    assert "| " + " | ".join(HEAD) + " |" in text and "NVIDIA H200 (139.8 GiB)" in text
    assert "| a/infer/1gpu | ok | 20 | 17.00 | 18.00 | 19.00 | 16.00 | 17.00 | 19.00 | 1.00 | 0.95 | 18.00 " \
           "(segments differ) |" in text
    assert "| b/full/4gpu | skipped | 70 |" in text and "- b/full/4gpu: skipped: run under torchrun" in text
    names = sorted(p.name for p in write_out_dir(tmp_path, art))
    assert names == ["bench.json", "bench.md", "environment.json"]
    assert load_artifact(tmp_path / "bench.json") == art
    assert json.loads((tmp_path / "environment.json").read_text())["cuda"] == "12.8"


_NO_METADATA = textwrap.dedent('''
    """Run `python -m vlmref ...` as from a plain checkout: vlmref's installed metadata hidden, no editable finder."""
    import importlib.metadata as md
    import runpy
    import sys

    def hidden(name):
        return (name or "").lower().replace("_", "-") == "vlmref"

    _from_name = md.Distribution.from_name.__func__

    def from_name(cls, name):
        if hidden(name):
            raise md.PackageNotFoundError(name)
        return _from_name(cls, name)

    md.Distribution.from_name = classmethod(from_name)
    _distributions = md.distributions
    md.distributions = lambda **kw: (d for d in _distributions(**kw) if not hidden(d.metadata["Name"]))
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in getattr(f, "__module__", "")]
    try:
        md.version("vlmref")
        raise SystemExit("vlmref's metadata is still visible")
    except md.PackageNotFoundError:
        pass
    sys.argv = ["vlmref", *sys.argv[1:]]
    try:
        runpy.run_module("vlmref", run_name="__main__", alter_sys=True)
    finally:
        import vlmref
        print("VLMREF_FROM", vlmref.__file__)
        print("DEEPSPEED_IMPORTED", "deepspeed" in sys.modules)
''')


def test_plain_checkout_run_of_the_documented_bench_with_out_dir(tmp_path: Path) -> None:
    """`PYTHONPATH=<checkout> python -m vlmref bench --documented --out_dir DIR` (here --device cpu --tiny, one
    single-device key and one torchrun key) from a copy of the package, with vlmref's dist-info and editable finder
    hidden: no metadata, no deepspeed import, the stand-in tokenizers (no ../shared/tokenizers beside the copy)."""
    checkout = tmp_path / "checkout"
    shutil.copytree(REPO / "vlmref", checkout / "vlmref", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "no_metadata.py").write_text(_NO_METADATA)
    out = tmp_path / "results"
    env = {k: v for k, v in os.environ.items() if k not in ("VLMREF_TOKENIZERS_DIR", "PYTHONPATH")}
    env.update(PYTHONPATH=str(checkout), OMP_NUM_THREADS="2")
    skipped_key = "qwen-vl-chat/full/4gpu"
    cmd = [sys.executable, str(tmp_path / "no_metadata.py"), "bench", "--documented", "--device", "cpu", "--tiny",
           "--only", ONE_KEY, skipped_key, "--out_dir", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"VLMREF_FROM {checkout / 'vlmref' / '__init__.py'}" in done.stdout
    assert "DEEPSPEED_IMPORTED False" in done.stdout
    assert sorted(p.name for p in out.iterdir()) == ["bench.json", "bench.md", "environment.json"]
    art = load_artifact(out / "bench.json")
    assert art["environment"]["vlmref"] == "0.1.0"  # from the module: there is no metadata
    assert art["environment"]["vlmref_source"] == str(checkout / "vlmref")
    ok, skipped = art["results"]
    assert ok["key"] == ONE_KEY and ok["status"] == "ok", ok["message"]
    assert ok["predicted"]["error"] is None and ok["predicted"]["tokenizer"] == "stand-in"
    assert ok["predicted"]["reserved_gib"] > 0 and ok["per_device"]["cpu"]["reserved_gib"] > 0
    assert ok["snapshot"]["file"] is None and "no allocator snapshot on cpu" in ok["snapshot"]["reason"]
    assert skipped["key"] == skipped_key and skipped["status"] == "skipped" and skipped["predicted"] is None
    md_text = (out / "bench.md").read_text()
    assert f"| {ONE_KEY} | ok |" in md_text and f"| {skipped_key} | skipped |" in md_text
    assert "no allocator snapshot on cpu" in md_text
