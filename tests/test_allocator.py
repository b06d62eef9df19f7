"""vlmref's caching-allocator model (``vlmref.memory.allocator``) and ``vlmref memory replay`` (``vlmref.memory.replay``):
each test states a rule of upstream's ``CUDACachingAllocator.cpp`` / ``AllocatorConfig.cpp`` and checks the model
keeps it; the traces are hand-written in the entry format of ``torch.cuda.memory._snapshot()["device_traces"][i]``.
No GPU, no torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vlmref.memory.allocator import (
    K_LARGE_BUFFER,
    AllocatorConfig,
    AllocatorConfigError,
    CachingAllocator,
    OutOfMemory,
    round_power2_division,
)
from vlmref.memory.replay import TraceError, load_trace, replay_file, replay_trace, resolve_config

MiB = 1 << 20
REPO = Path(__file__).resolve().parent.parent


def _alloc(conf: str = "", device_memory: int | None = None) -> CachingAllocator:
    return CachingAllocator(AllocatorConfig.from_conf_string(conf), device_memory)


# ---- the order effect ---------------------------------------------------------------------------------------------
def _order(first: int, n_first: int, second: int, n_second: int, conf: str = "") -> CachingAllocator:
    a = _alloc(conf)
    blocks = [a.malloc(first) for _ in range(n_first)]
    for b in blocks:
        a.free(b)
    for _ in range(n_second):
        a.malloc(second)
    return a


def test_small_blocks_first_reserve_twice_as_much() -> None:
    """8 x 16 MiB cached (8 segments of 16 MiB) cannot serve 32 MiB; 4 x 32 MiB cached split into 8 x 16 MiB."""
    a = _order(16 * MiB, 8, 32 * MiB, 4)
    assert (a.peak_reserved, a.reserved, a.segments, a.peak_allocated) == (256 * MiB, 256 * MiB, 12, 128 * MiB)
    b = _order(32 * MiB, 4, 16 * MiB, 8)
    assert (b.peak_reserved, b.segments, b.allocated) == (128 * MiB, 4, 128 * MiB)


# ---- rounding and segment sizes ------------------------------------------------------------------------------------
def test_rounding_and_segment_sizes() -> None:
    a = _alloc()
    block = a.malloc(1)
    assert (block.size, a.allocated, a.requested, a.reserved) == (512, 512, 1, 2 * MiB)  # kMinBlockSize, kSmallBuffer
    assert _alloc().malloc(513).size == 1024
    for request, segment in [(5 * MiB, 20 * MiB), (11 * MiB, 12 * MiB), (10 * MiB, 10 * MiB),
                             (MiB, 2 * MiB), (MiB + 1, 20 * MiB), (9 * MiB + 512, 20 * MiB)]:
        a = _alloc()
        a.malloc(request)
        assert a.reserved == segment, request


def test_small_and_large_pools_do_not_share_blocks() -> None:
    a = _alloc()
    a.free(a.malloc(5 * MiB))  # a cached 20 MiB large-pool segment
    a.malloc(4096)
    assert a.reserved == 22 * MiB  # the small request took a new 2 MiB segment
    b = _alloc()
    b.free(b.malloc(1024))  # a cached 2 MiB small-pool segment
    b.malloc(MiB + 512 * 1024)  # 1.5 MiB: large pool
    assert b.reserved == 22 * MiB


def test_a_free_block_serves_only_its_stream() -> None:
    a = _alloc()
    a.free(a.malloc(16 * MiB, stream=1))
    a.malloc(16 * MiB, stream=2)
    assert a.reserved == 32 * MiB
    a.malloc(16 * MiB, stream=1)
    assert a.reserved == 32 * MiB  # stream 1 reused its own block


def test_best_fit_takes_the_smallest_block_that_fits() -> None:
    a = _alloc()
    big, small = a.malloc(40 * MiB), a.malloc(24 * MiB)
    a.free(big)
    a.free(small)
    got = a.malloc(22 * MiB)
    assert got.segment is small.segment and got.size == 22 * MiB  # split: remainder 2 MiB > kSmallSize


# ---- split thresholds ----------------------------------------------------------------------------------------------
def test_large_pool_splits_only_above_one_mib_of_remainder() -> None:
    a = _alloc()
    a.free(a.malloc(5 * MiB))  # back to one free 20 MiB block
    whole = a.malloc(19 * MiB)  # remainder exactly kSmallSize: not split, the block counts whole
    assert (whole.size, a.allocated, a.requested) == (20 * MiB, 20 * MiB, 19 * MiB)
    b = _alloc()
    b.free(b.malloc(5 * MiB))
    part = b.malloc(19 * MiB - 512)  # remainder kSmallSize + 512: split
    assert (part.size, b.allocated) == (19 * MiB - 512, 19 * MiB - 512)


def test_small_pool_splits_down_to_512_bytes() -> None:
    a = _alloc()
    a.malloc(MiB)
    a.malloc(MiB - 512)  # the remainder of 512 B is split off
    assert a.allocated == 2 * MiB - 512
    a.malloc(512)
    assert (a.reserved, a.segments) == (2 * MiB, 1)


def test_free_coalesces_with_free_neighbours() -> None:
    a = _alloc()
    x, y, z = a.malloc(5 * MiB), a.malloc(5 * MiB), a.malloc(5 * MiB)
    a.free(y)  # the middle first: [x][free][z][free]
    assert [(b.size // MiB, b.allocated) for b in a.segment_blocks()[0]] == [(5, True), (5, False), (5, True),
                                                                               (5, False)]
    a.free(x)
    a.free(z)
    (blocks,) = a.segment_blocks()
    assert [(b.size, b.allocated) for b in blocks] == [(20 * MiB, False)]
    a.malloc(20 * MiB)
    assert a.segments == 1  # the whole segment served it


# ---- options -------------------------------------------------------------------------------------------------------
def test_max_split_size_mb() -> None:
    conf = "max_split_size_mb:40"
    a = _alloc(conf)
    a.free(a.malloc(60 * MiB))
    got = a.malloc(50 * MiB)  # oversize request, 60 < 50 + kLargeBuffer: taken, and not split
    assert (got.size, a.allocated, a.segments) == (60 * MiB, 60 * MiB, 1)
    assert _alloc().malloc(50 * MiB).size == 50 * MiB  # (a fresh segment is the request's own size)
    b = _alloc()
    b.free(b.malloc(60 * MiB))
    assert b.malloc(50 * MiB).size == 50 * MiB  # without the option: split
    c = _alloc(conf)
    c.free(c.malloc(60 * MiB))
    c.malloc(40 * MiB)  # 60 >= 40 + kLargeBuffer: would waste 20 MiB, so a new segment
    assert c.reserved == 100 * MiB
    d = _alloc(conf)
    d.free(d.malloc(60 * MiB))
    d.malloc(12 * MiB)  # a request below max_split_size never takes an oversize block
    assert d.reserved == 72 * MiB
    assert _alloc("max_split_size_mb:40,max_non_split_rounding_mb:30").config.max_non_split_rounding_size == 30 * MiB


def test_roundup_power2_divisions() -> None:
    assert round_power2_division(1200, 4) == 1280  # 1024, 1280, 1536, 1792 (upstream's own example)
    assert round_power2_division(4096, 4) == 4096
    a = _alloc("roundup_power2_divisions:4")
    assert a.round_size(1200) == 1536  # not above kMinBlockSize x 4: plain 512-rounding
    assert a.malloc(5 * MiB + 1).size == 6 * MiB  # [4, 8) MiB in steps of 1 MiB
    assert _alloc().malloc(5 * MiB + 1).size == 5 * MiB + 512
    cfg = AllocatorConfig.from_conf_string("roundup_power2_divisions:[256:1,512:2,>:4]")
    assert cfg.roundup_power2_divisions == (1,) * 9 + (2,) + (4,) * 6
    assert (cfg.divisions_for(3 * MiB), cfg.divisions_for(600 * MiB), cfg.divisions_for(8 << 30)) == (1, 2, 4)
    listed = _alloc("roundup_power2_divisions:[1:4,>:1]")
    assert listed.round_size(MiB + 200 * 1024) == MiB + 256 * 1024
    assert listed.round_size(5 * MiB + 1) == 5 * MiB + 512


def test_expandable_segments_grow_one_segment_by_pages() -> None:
    conf = "expandable_segments:True"
    a = _order(16 * MiB, 8, 32 * MiB, 4, conf)
    assert (a.peak_reserved, a.segments) == (140 * MiB, 1)  # 128 MiB of requests in 20 MiB pages, reused whole
    b = _alloc(conf)
    b.malloc(5 * MiB)
    assert [(e.action, e.size) for e in b.take_events()] == [("segment_map", K_LARGE_BUFFER)]
    b.malloc(4096)
    assert (b.reserved, b.segments) == (22 * MiB, 2)  # the small pool's own segment, 2 MiB pages
    b.malloc(5 * MiB, stream=3)
    assert (b.reserved, b.segments) == (42 * MiB, 3)  # and each stream's own
    c = _alloc(conf)
    c.malloc(5 * MiB)
    part = c.malloc(30 * MiB)  # [5, 35) MiB: pages [0, 40) mapped
    assert c.reserved == 40 * MiB
    c.free(part)
    c.empty_cache()  # only the whole page [20, 40) inside the free [5, 40) is unmapped
    assert c.reserved == 20 * MiB and [e.action for e in c.take_events()][-1] == "segment_unmap"
    c.free(c.segment_blocks()[0][0])
    c.empty_cache()
    assert (c.reserved, c.segments) == (0, 0)


def test_device_limit_releases_cached_segments_then_ooms() -> None:
    a = _alloc(device_memory=64 * MiB)
    for b in [a.malloc(16 * MiB), a.malloc(16 * MiB)]:
        a.free(b)
    big = a.malloc(48 * MiB)  # 32 + 48 > 64: the two cached segments are released first
    assert (a.reserved, a.num_alloc_retries) == (48 * MiB, 1)
    assert [e.action for e in a.take_events()] == ["segment_alloc"] * 2 + ["segment_free"] * 2 + ["segment_alloc"]
    with pytest.raises(OutOfMemory):
        a.malloc(32 * MiB)
    assert a.num_ooms == 1 and big.allocated
    c = _alloc("max_split_size_mb:40", device_memory=80 * MiB)
    c.free(c.malloc(60 * MiB))
    c.malloc(30 * MiB)  # release_available_cached_blocks frees the oversize 60 MiB block only
    assert (c.reserved, c.num_alloc_retries) == (30 * MiB, 0)


@pytest.mark.parametrize(("conf", "message"), [
    ("foo:1", "unknown allocator option 'foo'"),
    ("max_split_size_mb:10", "'max_split_size_mb': too small, must be >= 20"),
    ("max_split_size_mb:abc", "'max_split_size_mb': expected a non-negative integer"),
    ("max_split_size_mb", "'max_split_size_mb': expected max_split_size_mb:VALUE"),
    ("expandable_segments:yes", "'expandable_segments': expected True or False"),
    ("roundup_power2_divisions:3", "the divisions must be a power of 2"),
    ("roundup_power2_divisions:[300:2]", "the interval boundaries must be powers of 2"),
    ("roundup_power2_divisions:[256:2", "'[' without a closing ']'"),
    ("large_segment_size_mb:10", "'large_segment_size_mb': must be > 10"),
    ("garbage_collection_threshold:2", "expected a number in (0.0, 1.0), found '2'"),
    ("pinned_num_register_threads:3", "expected a power of 2 <= 128"),
    ("backend:cudaMallocAsync", "is not modelled"),
    ("max_split_size_mb:40 max_split_size_mb:60", "expected ',' after its value"),
])
def test_bad_options_name_the_option(conf: str, message: str) -> None:
    with pytest.raises(AllocatorConfigError, match=None) as err:
        AllocatorConfig.from_conf_string(conf)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_option_parsing_follows_upstream() -> None:
    cfg = AllocatorConfig.from_conf_string(" max_split_size_mb : 128 , expandable_segments:True,"
                                           "garbage_collection_threshold:0.6,")
    assert (cfg.max_split_size, cfg.expandable_segments, cfg.ignored) == (128 * MiB, True,
                                                                         ("garbage_collection_threshold",))
    large = AllocatorConfig.from_conf_string("max_split_size_mb:64,large_segment_size_mb:64")  # read first
    assert (large.large_segment_size, large.max_non_split_rounding_size) == (64 * MiB, 64 * MiB)
    with pytest.raises(AllocatorConfigError, match="must be >= 64"):
        AllocatorConfig.from_conf_string("large_segment_size_mb:64,max_split_size_mb:40")
    a = CachingAllocator(large)
    a.malloc(5 * MiB)
    assert a.reserved == 64 * MiB
    assert AllocatorConfig.from_conf_string("") == AllocatorConfig()


def _check_invariants(a: CachingAllocator) -> None:
    """Segments tile their range with linked blocks; no two free neighbours of one mapped state are left unmerged;
    the free lists hold exactly the free mapped blocks; the stats equal the blocks' sums."""
    allocated = reserved = 0
    free_uids = set()
    for blocks in a.segment_blocks():
        seg, pos = blocks[0].segment, blocks[0].segment.addr
        for b in blocks:
            assert b.addr == pos and b.segment is seg
            pos += b.size
            allocated += b.size if b.allocated else 0
            reserved += b.size if b.mapped else 0
            if b.mapped and b.available():
                free_uids.add(b.uid)
            if seg.expandable and not b.mapped:
                assert (b.addr - seg.addr) % seg.page == 0 and b.size % seg.page == 0
        assert pos == seg.addr + seg.size
        for x, y in zip(blocks, blocks[1:], strict=False):
            assert x.next is y and y.prev is x
            assert not (x.available() and y.available() and x.mapped == y.mapped), (x, y)
    assert {b.uid for pool in a._free.values() for b in pool} == free_uids
    assert (allocated, reserved) == (a.allocated, a.reserved)


@pytest.mark.parametrize("conf", ["", "expandable_segments:True", "max_split_size_mb:40",
                                  "roundup_power2_divisions:[1:4,64:8,>:2]",
                                  "max_split_size_mb:20,expandable_segments:True"])
@pytest.mark.parametrize("limit", [None, 200 * MiB])
def test_random_workloads_keep_the_books(conf: str, limit: int | None) -> None:
    import random

    rnd = random.Random(f"{conf}/{limit}")
    a = _alloc(conf, limit)
    live, waiting = [], []
    for step in range(1500):
        r = rnd.random()
        if r < 0.5:
            size = rnd.choice([rnd.randint(1, MiB), rnd.randint(MiB, 12 * MiB), rnd.randint(MiB, 80 * MiB)])
            try:
                live.append(a.malloc(size, rnd.choice([0, 0, 5])))
            except OutOfMemory:
                assert limit is not None
            waiting = [b for b in waiting if b.pending]  # a release before a new segment completes waiting frees
        elif r < 0.85 and live:
            b = live.pop(rnd.randrange(len(live)))
            if rnd.random() < 0.2:
                a.request_free(b)
                waiting.append(b)
            else:
                a.free(b)
        elif r < 0.97 and waiting:
            a.complete_free(waiting.pop(rnd.randrange(len(waiting))))
        elif r > 0.995:
            a.empty_cache()  # completes the waiting frees too
            waiting = []
        if step % 100 == 0:
            _check_invariants(a)
    for b in live:
        a.free(b)
    for b in waiting:
        a.complete_free(b)
    _check_invariants(a)
    a.empty_cache()
    assert (a.allocated, a.reserved, a.segments, a.requested) == (0, 0, 0, 0)
    assert a.peak_reserved <= (limit or a.peak_reserved) and a.peak_allocated <= a.peak_reserved


# ---- replay --------------------------------------------------------------------------------------------------------
def _e(action: str, addr: int, size: int, stream: int = 0) -> dict:
    return {"action": action, "addr": addr, "size": size, "stream": stream, "frames": [], "time_us": 0}


def _free(addr: int, size: int) -> list[dict]:
    return [_e("free_requested", addr, size), _e("free_completed", addr, size)]


def _order_trace(segments: bool = True) -> list[dict]:
    """8 x 16 MiB allocated and freed, then 4 x 32 MiB, as a default-settings GPU run records it."""
    out: list[dict] = []
    for k in range(8):
        addr = 0x7F0000000000 + k * 16 * MiB
        out += ([_e("segment_alloc", addr, 16 * MiB)] if segments else []) + [_e("alloc", addr, 16 * MiB)]
    for k in range(8):
        out += _free(0x7F0000000000 + k * 16 * MiB, 16 * MiB)
    for k in range(4):
        addr = 0x7F1000000000 + k * 32 * MiB
        out += ([_e("segment_alloc", addr, 32 * MiB)] if segments else []) + [_e("alloc", addr, 32 * MiB)]
    return out


def test_replay_of_a_list_trace_gives_the_peaks() -> None:
    r = replay_trace(_order_trace(segments=False))
    assert (r.stats["peak_allocated_bytes"], r.stats["peak_reserved_bytes"]) == (128 * MiB, 256 * MiB)
    assert (r.allocs, r.frees, r.free_source, r.comparison) == (12, 8, "free_completed", None)
    assert replay_trace(_order_trace(), AllocatorConfig.from_conf_string("expandable_segments:True")).stats[
        "peak_reserved_bytes"] == 140 * MiB


def test_replay_matches_the_recorded_segments() -> None:
    c = replay_trace(_order_trace()).comparison
    assert (c["recorded"], c["replayed"], c["matching"], c["divergence"]) == (12, 12, 12, None)
    assert c["counts"]["recorded_segment_alloc"] == c["counts"]["replayed_segment_alloc"] == 12


def test_replay_names_the_entry_where_the_segments_part() -> None:
    trace = _order_trace()
    assert trace[4]["action"] == "segment_alloc" and trace[5]["action"] == "alloc"
    trace[4]["size"] = 20 * MiB  # the recording says the third alloc got a 20 MiB segment
    c = replay_trace(trace).comparison
    assert c["matching"] == 2
    assert c["divergence"] == {"segment": 2, "entry": 5,
                               "expected": {"entry": 5, "action": "segment_alloc", "size_bytes": 20 * MiB},
                               "replayed": {"entry": 5, "action": "segment_alloc", "size_bytes": 16 * MiB}}
    reordered = _order_trace()
    del reordered[-2]  # the last 32 MiB alloc without its recorded segment: the model's is one too many
    d = replay_trace(reordered).comparison["divergence"]
    assert (d["segment"], d["entry"], d["expected"], d["replayed"]["size_bytes"]) == (11, len(reordered) - 1, None,
                                                                                       32 * MiB)


def test_free_completed_is_when_the_block_returns() -> None:
    a, b = 0x1000, 0x2000
    delayed = [_e("alloc", a, 16 * MiB), _e("free_requested", a, 16 * MiB), _e("alloc", b, 16 * MiB),
               _e("free_completed", a, 16 * MiB)]
    r = replay_trace(delayed)  # a waits (record_stream): b needs a segment of its own; allocated dropped at once
    assert (r.stats["peak_reserved_bytes"], r.stats["peak_allocated_bytes"]) == (32 * MiB, 16 * MiB)
    requested_only = [e for e in delayed if e["action"] != "free_completed"]
    r = replay_trace(requested_only)  # no free_completed at all: free_requested frees
    assert (r.stats["peak_reserved_bytes"], r.free_source) == (16 * MiB, "free_requested")


def test_recorded_releases_replay_as_empty_cache() -> None:
    trace = [_e("segment_alloc", 0x10, 16 * MiB), _e("alloc", 0x10, 16 * MiB), *_free(0x10, 16 * MiB),
             _e("segment_free", 0x10, 16 * MiB), _e("alloc", 0x20, 4096)]
    r = replay_trace(trace)
    assert (r.empty_cache_replayed, r.stats["reserved_bytes"], r.stats["peak_reserved_bytes"]) == (1, 2 * MiB,
                                                                                                  16 * MiB)


def test_replay_errors_name_the_entry() -> None:
    with pytest.raises(TraceError, match=r"^entry 1: free_requested of 0x99, where the replay has no allocation"):
        replay_trace([_e("alloc", 0x10, 512), _e("free_requested", 0x99, 512)])
    with pytest.raises(TraceError, match=r"^entry 1: alloc at 0x10, where the allocation of entry 0 is not freed"):
        replay_trace([_e("alloc", 0x10, 512), _e("alloc", 0x10, 512)])
    with pytest.raises(TraceError, match=r"^entry 0 \(alloc\): 'size' must be a non-negative integer"):
        replay_trace([{"action": "alloc", "addr": 1, "size": "big", "stream": 0}])


def test_model_oom_is_reported_and_its_frees_skipped() -> None:
    trace = [_e("alloc", 0x10, 48 * MiB), _e("alloc", 0x20, 48 * MiB), *_free(0x20, 48 * MiB), *_free(0x10, 48 * MiB)]
    r = replay_trace(trace, device_memory=64 * MiB)
    assert [o["entry"] for o in r.model_ooms] == [1] and r.frees == 1
    assert r.stats["peak_reserved_bytes"] == 48 * MiB


def _write(tmp_path: Path, data, name: str = "t.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def test_whole_snapshot_replays_every_device(tmp_path: Path) -> None:
    small = [_e("alloc", 0x10, 5 * MiB)]
    snapshot = {"segments": [], "device_traces": [_order_trace(), [], small],
                "allocator_settings": {"PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True"}}
    trace = load_trace(_write(tmp_path, snapshot))
    assert (trace.form, sorted(trace.devices), trace.recorded_conf) == ("snapshot", [0, 2], "expandable_segments:True")
    report = replay_file(trace, AllocatorConfig())
    assert [d["device"] for d in report["devices"]] == [0, 2]
    assert (report["device"], report["peak_reserved_bytes"]) == (0, 256 * MiB)  # the busiest device's figures
    assert [d["peak_reserved_bytes"] for d in report["devices"]] == [256 * MiB, 20 * MiB]
    assert any("recorded with PYTORCH_CUDA_ALLOC_CONF='expandable_segments:True'" in n for n in report["notes"])
    one = replay_file(trace, AllocatorConfig(), device=2)
    assert (one["device"], one["peak_allocated_bytes"], len(one["devices"])) == (2, 5 * MiB, 1)
    gc = replay_file(trace, AllocatorConfig.from_conf_string("garbage_collection_threshold:0.5"))
    assert "option garbage_collection_threshold is accepted and not modelled (it acts only under a per-process memory " \
           "fraction)" in gc["notes"]
    with pytest.raises(TraceError, match=r"--device 1: .* has no entries for it \(devices with entries: 0, 2\)"):
        replay_file(trace, AllocatorConfig(), device=1)


def test_options_come_from_the_flag_over_the_environment() -> None:
    env = {"PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True", "PYTORCH_ALLOC_CONF": "max_split_size_mb:64"}
    assert resolve_config(None, env) == (AllocatorConfig(expandable_segments=True), "PYTORCH_CUDA_ALLOC_CONF")
    assert resolve_config(None, {"PYTORCH_ALLOC_CONF": "max_split_size_mb:64"})[0].max_split_size == 64 * MiB
    assert resolve_config("max_split_size_mb:128", env) == (AllocatorConfig(max_split_size=128 * MiB), "--alloc_conf")
    assert resolve_config(None, {}) == (AllocatorConfig(), "defaults")
    with pytest.raises(AllocatorConfigError, match="^PYTORCH_CUDA_ALLOC_CONF: unknown allocator option 'x'"):
        resolve_config(None, {"PYTORCH_CUDA_ALLOC_CONF": "x:1"})


# ---- the command ---------------------------------------------------------------------------------------------------
def _cli(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in ("PYTORCH_CUDA_ALLOC_CONF", "PYTORCH_ALLOC_CONF")}
    return subprocess.run([sys.executable, "-m", "vlmref", "memory", "replay", *argv], capture_output=True, text=True,
                          timeout=120, cwd=REPO, env={**base, **(env or {})})


def test_cli_replay_json(tmp_path: Path) -> None:
    path = _write(tmp_path, _order_trace())
    done = _cli(str(path), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["peak_allocated_bytes"], report["peak_reserved_bytes"]) == (128 * MiB, 256 * MiB)
    assert (report["final_allocated_bytes"], report["final_reserved_bytes"], report["final_segments"]) == (
        128 * MiB, 256 * MiB, 12)
    assert (report["alloc_conf"], report["alloc_conf_source"], report["options"]["max_split_size_bytes"]) == (
        "", "defaults", None)
    assert report["devices"][0]["segment_comparison"]["divergence"] is None
    done = _cli(str(path), "--json", env={"PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True"})
    report = json.loads(done.stdout)
    assert (report["peak_reserved_bytes"], report["alloc_conf_source"]) == (140 * MiB, "PYTORCH_CUDA_ALLOC_CONF")
    assert any("segment_alloc entries" in n for n in report["devices"][0]["notes"])
    done = _cli(str(path), "--json", "--alloc_conf", "max_split_size_mb:128",
                env={"PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True"})
    report = json.loads(done.stdout)
    assert (report["peak_reserved_bytes"], report["options"]["expandable_segments"]) == (256 * MiB, False)


def test_cli_text_summary(tmp_path: Path) -> None:
    done = _cli(str(_write(tmp_path, _order_trace(), "same.json")))
    assert done.returncode == 0, done.stderr
    assert "segments vs the recording: 12 recorded, 12 replayed, 12 matching in order; no divergence" in done.stdout
    trace = _order_trace()
    trace[4]["size"] = 20 * MiB
    done = _cli(str(_write(tmp_path, trace)), "--device_memory_gib", "1")
    assert done.returncode == 0, done.stderr
    assert "peak allocated 128.00 MiB, peak reserved 256.00 MiB" in done.stdout
    assert ("they part at entry 5 (new segment #2): recorded segment_alloc 20.00 MiB for entry 5, replayed "
            "segment_alloc 16.00 MiB for entry 5") in done.stdout


def test_memory_keeps_its_own_flags_beside_replay() -> None:
    from vlmref.arguments import ArgumentsError
    from vlmref.cli import memory
    from vlmref.cli.main import build_parser

    ns = build_parser().parse_args(["memory", "replay", "--json", "t.json", "--device", "1"])
    assert (ns.func, ns.trace, ns.json, ns.device) == (memory.run_replay_namespace, "t.json", True, 1)
    ns = build_parser().parse_args(["memory", "--model_type", "qwen-vl-chat", "--mode", "sft", "--json"])
    assert (ns.func, ns.model_type, ns.memory_command) == (memory.run_namespace, "qwen-vl-chat", None)
    with pytest.raises(ArgumentsError, match=r"^unrecognised argument\(s\): foo$"):
        build_parser().parse_args(["memory", "foo"])
    with pytest.raises(ArgumentsError, match=r"--jsn \(did you mean --json\?\)"):
        build_parser().parse_args(["memory", "replay", "t.json", "--jsn"])


@pytest.mark.parametrize(("case", "message"), [
    ("missing", "error: cannot read"),
    ("not_json", "is not JSON (line 1"),
    ("not_a_trace", "is not an allocation trace: found an object without 'device_traces'"),
    ("not_entries", "entry 0 is not a trace entry"),
    ("unknown_addr", "error: entry 1: free_requested of 0x99"),
    ("bad_conf", "error: --alloc_conf: option 'max_split_size_mb': expected a non-negative integer"),
    ("bad_env", "error: PYTORCH_CUDA_ALLOC_CONF: unknown allocator option 'nope'"),
    ("bad_device", "error: --device 3: "),
    ("no_trace", "error: vlmref memory replay needs TRACE.json"),
])
def test_cli_user_errors_are_one_line(tmp_path: Path, case: str, message: str) -> None:
    good = str(_write(tmp_path, [_e("alloc", 0x10, 512), _e("free_requested", 0x99, 512)]
                      if case == "unknown_addr" else [_e("alloc", 0x10, 512)]))
    argv, env = [good], None
    if case == "missing":
        argv = [str(tmp_path / "nope.json")]
    elif case == "not_json":
        (tmp_path / "bad.json").write_text("{oops")
        argv = [str(tmp_path / "bad.json")]
    elif case == "not_a_trace":
        argv = [str(_write(tmp_path, {"segments": []}, "dict.json"))]
    elif case == "not_entries":
        argv = [str(_write(tmp_path, [1, 2], "ints.json"))]
    elif case == "bad_conf":
        argv += ["--alloc_conf", "max_split_size_mb:lots"]
    elif case == "bad_env":
        env = {"PYTORCH_CUDA_ALLOC_CONF": "nope:1"}
    elif case == "bad_device":
        argv += ["--device", "3"]
    elif case == "no_trace":
        argv = []
    done = _cli(*argv, env=env)
    assert done.returncode == 2 and done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith("error: ") and message in line, line


def test_the_model_and_the_replay_import_without_torch() -> None:
    code = "import sys, vlmref.memory.allocator, vlmref.memory.replay, vlmref.cli.memory; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "False"
