"""``vlmref bench``: the artefact, the regression gate, the environment record, the CLI's refusals, the docker
harness's errors, and real ``--device cpu --tiny`` runs of the measuring code (no GPU here)."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from vlmref.bench import (
    SCHEMA,
    ArtifactError,
    load_artifact,
    new_artifact,
    validate_artifact,
    write_json_atomic,
)
from vlmref.bench import docker_harness as dh
from vlmref.bench.env import ENVIRONMENT_KEYS, environment, git_commit
from vlmref.bench.gate import compare, compare_documented
from vlmref.bench.gpu import documented_items, scenario_argv, skip_reason, throughput
from vlmref.cli.bench import build_parser, scenario_from_args
from vlmref.cli.bench import main as bench_main
from vlmref.memory.documented import DOCUMENTED
from vlmref.memory.scenario import MemoryScenario

REPO = Path(__file__).resolve().parent.parent


def _row(key: str, status: str = "ok", reserved: float | None = 10.0, allocated: float | None = 9.0,
         tps: float | None = 100.0, documented: float | None = None, smi: float | None = None) -> dict:
    per_device = {} if smi is None else {"cuda:0": {"allocated_gib": allocated, "reserved_gib": reserved,
                                                    "nvidia_smi_gib": smi}}
    return {"key": key, "scenario": {}, "status": status, "per_device": per_device, "peak_reserved_gib": reserved,
            "peak_allocated_gib": allocated, "tokens_per_second": tps, "samples_per_second": None,
            "documented_gib": documented, "message": None if status == "ok" else f"{status} happened"}


def _art(*rows: dict, tiny: bool = False, device: str = "cuda") -> dict:
    return new_artifact({"python": "3"}, list(rows), device=device, tiny=tiny)


# ---- artefact ----------------------------------------------------------------------------------------------------
def test_artifact_schema_and_atomic_write(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "r.json"
    art = _art(_row("a"))
    assert art["schema"] == SCHEMA == "vlmref-bench/1"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", art["created"])
    write_json_atomic(path, art)
    assert load_artifact(path) == art
    art2 = _art(_row("b"))
    write_json_atomic(path, art2)
    assert load_artifact(path)["results"][0]["key"] == "b"
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]  # no temp file left behind
    # readable by others: the docker harness reads what the container's uid 1001 wrote
    assert stat.S_IMODE(path.stat().st_mode) & 0o044 == 0o044


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path: Path) -> None:
    path = write_json_atomic(tmp_path / "r.json", _art(_row("a")))
    before = path.read_text()
    with pytest.raises(TypeError):
        write_json_atomic(path, {"results": [object()]})  # fails half-way through json.dump
    assert path.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


def test_validate_artifact_rejects_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="not a vlmref-bench/1"):
        validate_artifact({"schema": "other", "results": []})
    with pytest.raises(ArtifactError, match=r"lacks \['status'\]"):
        validate_artifact({"schema": SCHEMA, "results": [{"key": "a", "scenario": {}}]})
    with pytest.raises(ArtifactError, match="status 'fine'"):
        validate_artifact({"schema": SCHEMA, "results": [{"key": "a", "scenario": {}, "status": "fine"}]})
    (tmp_path / "half.json").write_text('{"schema": "vlmref-')
    with pytest.raises(ArtifactError, match="half.json"):
        load_artifact(tmp_path / "half.json")


# ---- gate --------------------------------------------------------------------------------------------------------
def test_gate_passes_within_tolerance_and_on_improvements() -> None:
    base = _art(_row("a", reserved=10.0, allocated=9.0, tps=100.0), _row("b"))
    new = _art(_row("a", reserved=10.4, allocated=8.0, tps=96.0), _row("b", reserved=5.0, tps=300.0))
    cmp = compare(base, new, tolerance=0.05)
    assert cmp.ok and not cmp.regressions and not cmp.missing
    assert cmp.table().endswith("PASS")


def test_gate_flags_memory_growth_and_throughput_loss() -> None:
    base = _art(_row("a", reserved=10.0, allocated=9.0, tps=100.0))
    new = _art(_row("a", reserved=10.6, allocated=9.0, tps=90.0))
    cmp = compare(base, new, tolerance=0.05)
    assert not cmp.ok
    assert sorted((r.key, r.metric) for r in cmp.regressions) == [("a", "peak_reserved_gib"), ("a", "tokens_per_second")]
    table = cmp.table()
    line = next(x for x in table.splitlines() if "peak_reserved_gib" in x)
    assert line.split()[:5] == ["a", "peak_reserved_gib", "10", "10.6", "+6.0%"] and "REGRESSION" in line
    assert "-10.0%" in table and table.splitlines()[-1].startswith("FAIL: 2 regression(s)")
    assert compare(base, new, tolerance=0.11).ok  # the same numbers pass a looser gate


def test_gate_missing_keys_failed_scenarios_and_incomparable_files() -> None:
    base = _art(_row("a"), _row("b"), _row("c"), _row("d", status="skipped", reserved=None))
    new = _art(_row("a"), _row("c", status="skipped", reserved=None), _row("e"))
    cmp = compare(base, new)
    assert cmp.missing == ["b", "c"] and cmp.new == ["e"] and not cmp.regressions and not cmp.ok
    assert "missing (REGRESSION): b, c" in cmp.table()
    assert compare(base, new, allow_missing=True).ok  # d was never measured: nothing to regress from
    oom = compare(_art(_row("a")), _art(_row("a", status="oom", reserved=None)))
    assert [(r.metric, r.result) for r in oom.regressions] == [("status", "oom")]
    tiny = compare(_art(_row("a")), _art(_row("a"), tiny=True))
    assert not tiny.ok and "tiny" in tiny.problems[0]
    with pytest.raises(ValueError):
        compare(base, new, tolerance=-0.1)


def test_compare_documented_is_two_sided_and_lists_skipped() -> None:
    art = _art(_row("in", documented=20.0, smi=21.5), _row("over", documented=20.0, smi=22.5),
               _row("under", documented=20.0, smi=17.5), _row("skip", "skipped", None, None, None, documented=70.0),
               _row("adhoc", smi=99.0))
    cmp = compare_documented(art, tolerance=0.10)
    assert sorted(r.key for r in cmp.regressions) == ["over", "under"]
    assert cmp.missing == ["skip"] and "adhoc" not in cmp.table()
    assert compare_documented(_art(_row("in", documented=20.0, smi=21.5), _row("skip", "skipped", documented=70.0))).ok
    assert not compare_documented(_art(_row("in", documented=20.0, smi=20.0), tiny=True)).ok


def test_cli_gate_exit_codes(tmp_path: Path, capsys) -> None:
    base = write_json_atomic(tmp_path / "base.json", _art(_row("a", reserved=10.0)))
    same = write_json_atomic(tmp_path / "same.json", _art(_row("a", reserved=10.2)))
    worse = write_json_atomic(tmp_path / "worse.json", _art(_row("a", reserved=12.0)))
    assert bench_main(["--compare", str(base), str(same)]) == 0
    assert bench_main(["--compare", str(base), "--tolerance", "0.05", str(worse)]) == 1
    assert "+20.0%" in capsys.readouterr().out
    assert bench_main(["--compare", str(base), "--tolerance", "0.25", str(worse)]) == 0
    assert bench_main(["--compare", str(base), str(tmp_path / "absent.json")]) == 2


# ---- environment -------------------------------------------------------------------------------------------------
def test_environment_record() -> None:
    import torch

    env = environment()
    assert set(ENVIRONMENT_KEYS) <= set(env)
    assert env["python"] == sys.version.split()[0]
    assert env["torch"] == torch.__version__
    assert env["cuda"] == torch.version.cuda
    assert len(env["gpus"]) == (torch.cuda.device_count() if torch.cuda.is_available() else 0)
    if shutil.which("nvidia-smi") is None:
        assert env["driver"] is None
    if (REPO / ".git").exists() and shutil.which("git"):
        assert re.fullmatch(r"[0-9a-f]{40}", env["git_commit"])
    json.dumps(env)  # goes into the artefact as is


def test_git_commit_falls_back_to_the_variable_the_harness_sets(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("VLMREF_GIT_COMMIT", raising=False)
    assert git_commit(tmp_path) is None
    monkeypatch.setenv("VLMREF_GIT_COMMIT", "0123456789abcdef0123456789abcdef01234567")
    assert git_commit(tmp_path) == "0123456789abcdef0123456789abcdef01234567"
    assert git_commit(tmp_path, short=True) == "0123456"


# ---- CLI -------------------------------------------------------------------------------------------------------
def test_without_cuda_the_cli_exits_2_and_points_at_the_alternatives() -> None:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # no CUDA device, on any machine
    done = subprocess.run([sys.executable, "-m", "vlmref.cli.bench", "--documented", "--out", "never.json"],
                          capture_output=True, text=True, env=env, cwd=REPO)
    assert done.returncode == 2, done.stderr
    assert "needs CUDA" in done.stderr
    assert "vlmref memory --documented" in done.stderr and "nox -s bench-a100" in done.stderr
    assert not (REPO / "never.json").exists()


@pytest.mark.parametrize("argv", [
    ["--documented", "--model_type", "qwen-vl-chat", "--mode", "infer"],
    ["--model_type", "qwen-vl-chat"],  # no --mode
    ["--model_type", "qwen-vl-chat", "--mode", "infer", "--deepspeed", "default-zero2"],  # ScenarioError
    ["--documented", "--only", "no-such/key"],
    ["--model_type", "no-such-model", "--mode", "infer"],
    ["--model_type", "qwen-vl-chat", "--mode", "sft", "--steps", "1", "--device", "cpu"],
])
def test_cli_refuses_bad_flags(argv: list[str], capsys) -> None:
    assert bench_main(argv) == 2
    assert capsys.readouterr().err.startswith("error:")


@pytest.mark.parametrize("doc", DOCUMENTED, ids=lambda d: d.key)
def test_scenario_flags_round_trip(doc) -> None:
    """The torchrun hint's flags rebuild the exact scenario."""
    args = build_parser().parse_args(scenario_argv(doc.scenario))
    assert scenario_from_args(args) == doc.scenario


def test_skip_reasons() -> None:
    s = MemoryScenario("llava1d6-yi-34b-instruct", "infer", devices_per_process=4)
    assert skip_reason(s, "cuda", 1, 0, 8) is None
    assert "needs 4 GPU(s)" in skip_reason(s, "cuda", 1, 0, 2)
    assert skip_reason(s, "cpu", 1, 0, 0) is None
    ddp = MemoryScenario("qwen-vl-chat", "sft", sft_type="full", world_size=2, devices_per_process=2)
    assert "torchrun --nproc_per_node 2" in skip_reason(ddp, "cuda", 1, 0, 8)
    assert skip_reason(ddp, "cuda", 2, 1, 4) is None and "local rank 1" in skip_reason(ddp, "cuda", 2, 1, 3)
    assert "without torchrun" in skip_reason(s, "cuda", 2, 0, 8)


def test_throughput_leaves_out_the_warm_up() -> None:
    from vlmref.memory.workload import WorkloadStats

    def run(first: float) -> WorkloadStats:  # a slow first step (warm-up / prefill), then two 0.5 s steps
        return WorkloadStats([{"seconds": first, "tokens": 300, "samples": 0}, {"seconds": 0.5, "tokens": 1, "samples": 2},
                              {"seconds": 0.5, "tokens": 1, "samples": 2}])

    assert throughput([run(9.0)]) == (2.0, 4.0)
    assert throughput([run(9.0), run(0.1), run(0.1)]) == (2.0, 4.0)  # the later runs' steps after their first
    assert throughput([WorkloadStats([{"seconds": 2.0, "tokens": 10, "samples": 1}])]) == (5.0, 0.5)


# ---- docker harness ---------------------------------------------------------------------------------------------
def test_harness_says_how_to_install_the_sdk(monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "docker", None)  # `import docker` raises ImportError
    with pytest.raises(dh.DockerSdkMissing, match=r"pip install 'vlmref\[bench\]'"):
        dh.connect()
    assert dh.main([]) == 2
    assert "DockerSdkMissing" in capsys.readouterr().err


def test_harness_names_the_unreachable_engine(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("docker", reason="the docker SDK (pip install 'vlmref[bench]')")
    path = tmp_path / "docker.sock"
    with socket.socket(socket.AF_UNIX) as sock:  # a socket file nobody listens on
        sock.bind(str(path))
    monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
    with pytest.raises(dh.DockerEngineUnreachable) as err:
        dh.connect()
    assert f"DOCKER_HOST=unix://{path}" in str(err.value) and "NVIDIA container toolkit" in str(err.value)


class _FakeEngine:
    """Stands in for the Docker engine (not for vlmref): records the calls, 'runs' the bench by writing a file."""

    def __init__(self, artifact: dict | None, fail_with: Exception | None = None) -> None:
        self.artifact, self.fail_with, self.calls = artifact, fail_with, {}
        self.api, self.containers = self, self

    def build(self, **kw):
        self.calls["build"] = kw
        yield {"stream": "Step 1/9 : FROM nvidia/cuda\n"}

    def run(self, image, **kw):
        self.calls["run"] = (image, kw)
        if self.fail_with is not None:
            raise self.fail_with
        host = next(iter(kw["volumes"]))
        self.calls["mode"] = stat.S_IMODE(os.stat(host).st_mode)
        if self.artifact is not None:
            Path(host, "bench.json").write_text(json.dumps(self.artifact))
        return self

    def logs(self, **kw):
        return iter([b"[1/16] qwen-vl-chat/infer/1gpu\n"])

    def wait(self):
        return {"StatusCode": 0 if self.artifact is not None else 2}

    def remove(self, force=False):
        self.calls["removed"] = force


def test_harness_runs_the_documented_bench_with_all_gpus_and_keeps_the_results(tmp_path: Path) -> None:
    docker = pytest.importorskip("docker", reason="the docker SDK (pip install 'vlmref[bench]')")
    engine = _FakeEngine(_art(_row("qwen-vl-chat/infer/1gpu", documented=20.0, smi=19.0)))
    lines: list[str] = []
    assert dh.bench_a100(tmp_path, client=engine, log=lines.append) == 0
    image, kw = engine.calls["run"]
    assert image == "vlmref-bench:dev" and engine.calls["build"]["tag"] == image  # tmp_path is no git checkout
    assert kw["command"] == ["vlmref", "bench", "--documented", "--out", "/out/bench.json"]
    assert [(r.count, r.capabilities) for r in kw["device_requests"]] == [(-1, [["gpu"]])]
    assert isinstance(kw["device_requests"][0], docker.types.DeviceRequest)
    assert list(kw["volumes"].values()) == [{"bind": "/out", "mode": "rw"}] and engine.calls["mode"] == 0o777
    assert engine.calls["removed"] is True
    kept = load_artifact(tmp_path / ".benchmarks" / "a100" / "bench-dev.json")
    assert kept["results"][0]["key"] == "qwen-vl-chat/infer/1gpu"
    assert "Step 1/9 : FROM nvidia/cuda" in lines and lines[-1].endswith("\nPASS")
    off = _FakeEngine(_art(_row("qwen-vl-chat/infer/1gpu", documented=20.0, smi=30.0)))
    assert dh.bench_a100(tmp_path, client=off, log=lines.append) == 1
    with pytest.raises(dh.BenchContainerFailed, match="no /out/bench.json"):
        dh.bench_a100(tmp_path, client=_FakeEngine(None), log=lines.append)


def test_harness_explains_an_engine_without_gpus(tmp_path: Path) -> None:
    docker = pytest.importorskip("docker", reason="the docker SDK (pip install 'vlmref[bench]')")
    refusal = docker.errors.APIError('500 Server Error: could not select device driver "" with capabilities: [[gpu]]')
    with pytest.raises(dh.GpuRuntimeUnavailable, match="NVIDIA container toolkit"):
        dh.bench_a100(tmp_path, client=_FakeEngine(None, fail_with=refusal), log=lambda line: None)


# ---- real runs on CPU (tiny models) -------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["infer", "sft"])
def test_cpu_tiny_bench_end_to_end(mode: str, tmp_path: Path, capsys) -> None:
    from vlmref.memory.inputs import batch_positions, build_batch

    out = tmp_path / "bench.json"
    argv = ["--model_type", "qwen-vl-chat", "--mode", mode, "--text_tokens", "16", "--new_tokens", "4",
            "--device", "cpu", "--tiny", "--out", str(out)]
    assert bench_main(argv) == 0, capsys.readouterr().err
    art = load_artifact(out)
    assert art["device"] == "cpu" and art["tiny"] is True and set(ENVIRONMENT_KEYS) <= set(art["environment"])
    (row,) = art["results"]
    scenario = MemoryScenario("qwen-vl-chat", mode, text_tokens=16, new_tokens=4)
    assert row["status"] == "ok", row["message"]
    assert row["key"] == scenario.label() and MemoryScenario.from_dict(row["scenario"]) == scenario
    cpu = row["per_device"]["cpu"]
    assert 0 < cpu["allocated_gib"] <= cpu["peak_rss_gib"] and cpu["reserved_gib"] > 0
    assert row["peak_reserved_gib"] == cpu["reserved_gib"] and row["peak_allocated_gib"] == cpu["allocated_gib"]
    assert cpu["peak_phase"] in (("prefill", "decode") if mode == "infer" else ("forward", "backward", "optimizer"))
    assert row["tokens_per_second"] > 0 and row["samples_per_second"] > 0
    assert row["positions"] == batch_positions(build_batch(scenario))
    assert row["steps"] == ([4 + 1] if mode == "infer" else [2])  # prefill + new_tokens decode steps; 2 sft steps
    if mode == "sft":  # LoRA sft holds more than inference of the same model: gradients, AdamW states, activations
        infer = tmp_path / "infer.json"
        assert bench_main([*argv[:3], "infer", *argv[4:-1], str(infer)]) == 0
        assert load_artifact(infer)["results"][0]["peak_allocated_gib"] < row["peak_allocated_gib"]
    assert compare(art, art).ok  # a run gates clean against itself


def test_documented_world_size_scenarios_are_skipped_with_the_torchrun_command(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    key = "llava1d6-mistral-7b-instruct/full/4gpu"
    assert bench_main(["--documented", "--only", key, "--device", "cpu", "--tiny", "--out", str(out)]) == 0
    (row,) = load_artifact(out)["results"]
    assert row["status"] == "skipped" and row["documented_gib"] == documented_items([key])[0].documented_gib
    assert row["message"].startswith("skipped: run under torchrun --nproc_per_node 4")
    assert f"-m vlmref.cli.bench --documented --only {key}" in row["message"]


@pytest.mark.slow
@pytest.mark.parametrize("extra", [[], ["--deepspeed", "default-zero2"]], ids=["ddp", "zero2"])
def test_cpu_tiny_bench_under_torchrun(extra: list[str], tmp_path: Path) -> None:
    """Two gloo processes: DDP, and DeepSpeed ZeRO-2 with ms-swift's config; rank 0 writes both ranks' devices."""
    out = tmp_path / "bench.json"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "vlmref.cli.bench",
           "--model_type", "qwen-vl-chat", "--mode", "sft", "--sft_type", "full", "--world_size", "2", "--dtype",
           "fp32", "--text_tokens", "16", *extra, "--device", "cpu", "--tiny", "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (row,) = load_artifact(out)["results"]
    assert row["status"] == "ok", row["message"]
    assert sorted(row["per_device"]) == ["rank0/cpu", "rank1/cpu"]
    assert row["peak_reserved_gib"] == max(d["reserved_gib"] for d in row["per_device"].values()) > 0
    assert row["tokens_per_second"] > 0 and row["scenario"]["deepspeed"] == ("zero2" if extra else None)
