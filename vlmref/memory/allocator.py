"""vlmref's own model of PyTorch's CUDA caching allocator (the native backend), in pure Python (no torch).

::

    from vlmref.memory.allocator import AllocatorConfig, CachingAllocator

    alloc = CachingAllocator(AllocatorConfig.from_conf_string("max_split_size_mb:128"))
    a = alloc.malloc(16 << 20)          # stream 0
    alloc.free(a)
    alloc.peak_allocated, alloc.peak_reserved

Written from upstream's ``c10/cuda/CUDACachingAllocator.cpp`` (``DeviceCachingAllocator``), the option parsers
``c10/core/AllocatorConfig.cpp`` / ``c10/cuda/CUDAAllocatorConfig.cpp`` and the pinned torch's constants
(``c10/core/AllocatorConfig.h``); each method names the upstream function whose rule it follows. Modelled: request
rounding, the small (<= 1 MiB) and large pools, a free list per stream, best fit by (size, address), splitting and
coalescing, ``max_split_size_mb``, ``max_non_split_rounding_mb``, ``roundup_power2_divisions``,
``large_segment_size_mb``, ``expandable_segments``, and under a device limit the release-and-retry chain before an OOM.
Not modelled: CUDA graph private pools, ``record_stream`` events (the caller completes a free), the garbage collector
of a per-process memory fraction, free-memory callbacks, IPC, the CUDA context (a limit bounds only what is reserved).
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

MiB = 1 << 20
# c10/core/AllocatorConfig.h (the pinned torch's header) and CUDACachingAllocator.cpp
K_MIN_BLOCK_SIZE = 512  # kMinBlockSize: every size is rounded to a multiple of 512 B
K_SMALL_SIZE = 1 * MiB  # kSmallSize: the largest request of the small pool
K_SMALL_BUFFER = 2 * MiB  # kSmallBuffer: the small pool's segment (and expandable page) size
K_MIN_LARGE_ALLOC = 10 * MiB  # kMinLargeAlloc: large requests below it share a large_segment_size segment
K_ROUND_LARGE = 2 * MiB  # kRoundLarge: larger requests get a segment rounded up to this
K_LARGE_BUFFER = 20 * MiB  # kLargeBuffer: the default large_segment_size_ and max_non_split_rounding_size_
# c10/core/AllocatorConfig.cpp: roundup_power2_divisions has one value per power-of-two interval, 1 MiB .. 64 GiB
ROUNDUP_INTERVALS = 16  # kRoundUpPowerOfTwoIntervals
ROUNDUP_START_LOG2 = 20  # log2(kRoundUpPowerOfTwoStart = 1 MiB)
MAX_REGISTER_THREADS = 128  # CUDAAllocatorConfig::pinned_max_register_threads()
UNBOUNDED_ADDRESS_SPACE = 1 << 48  # an expandable segment's address range when no device size is given
_FIRST_ADDRESS = 1 << 56  # the model's own segment addresses start above any recorded GPU address

# options torch accepts that do not change this model (host allocator, locking, IPC, GC under a memory fraction)
IGNORED_OPTIONS = {
    "garbage_collection_threshold": "it acts only under a per-process memory fraction",
    "per_process_memory_fraction": "the fraction limit is not modelled (--device_memory_gib is a limit)",
    **dict.fromkeys(("pinned_use_background_threads", "pinned_use_cuda_host_register", "pinned_use_hip_host_register",
                     "pinned_num_register_threads", "pinned_reserve_segment_size_mb", "pinned_free_catch_all"),
                    "the host (pinned-memory) allocator's"),
    **dict.fromkeys(("release_lock_on_cudamalloc", "release_lock_on_hipmalloc"), "locking only"),
    "graph_capture_record_stream_reuse": "CUDA graph capture is not modelled",
    "throw_on_cudamalloc_oom": "an early OOM check before cudaMalloc",
}
MODELLED_OPTIONS = ("max_split_size_mb", "max_non_split_rounding_mb", "large_segment_size_mb",
                    "roundup_power2_divisions", "expandable_segments", "backend")


class AllocatorConfigError(ValueError):
    """An allocator option string torch would refuse, or one this model cannot take; the message names the option."""


def _tokens(text: str) -> list[str]:
    """``ConfigTokenizer``'s split: ``, : [ ]`` are tokens of their own, whitespace is dropped."""
    return [t for t in re.split(r"([,:\[\]])", "".join(text.split())) if t]


def _pairs(text: str) -> list[tuple[str, list[str]]]:
    """``parseArgs``' walk: ``key : value`` or ``key : [ ... ]``, separated by ``,``; -> (key, value tokens)."""
    toks, pairs, i = _tokens(text), [], 0
    while i < len(toks):
        key = toks[i]
        if key in ",:[]":
            raise AllocatorConfigError(f"expected an option name, found {key!r} in {text!r}")
        if toks[i + 1:i + 2] != [":"] or i + 2 >= len(toks):
            raise AllocatorConfigError(f"option {key!r}: expected {key}:VALUE")
        i += 2
        end = i
        if toks[i] == "[":
            if "]" not in toks[i:]:
                raise AllocatorConfigError(f"option {key!r}: '[' without a closing ']'")
            end = toks.index("]", i)
        pairs.append((key, toks[i:end + 1]))
        i = end + 1
        if i < len(toks) and toks[i] != ",":
            raise AllocatorConfigError(f"option {key!r}: expected ',' after its value, found {toks[i]!r}")
        i += 1
    return pairs


def _is_pow2(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


@dataclass(frozen=True)
class AllocatorConfig:
    """The allocator options, as ``PYTORCH_CUDA_ALLOC_CONF`` sets them (defaults: torch's).

    ``max_split_size`` None is upstream's unlimited ``SIZE_MAX``; ``roundup_power2_divisions`` holds one division count
    per interval [2^(20+i), 2^(21+i)) (the first also below 1 MiB, the last also above 32 GiB); 0 or 1: no rounding.
    ``ignored`` lists the options given that torch accepts but that do not change this model."""

    max_split_size: int | None = None
    max_non_split_rounding_size: int = K_LARGE_BUFFER
    large_segment_size: int = K_LARGE_BUFFER
    roundup_power2_divisions: tuple[int, ...] = (0,) * ROUNDUP_INTERVALS
    expandable_segments: bool = False
    ignored: tuple[str, ...] = ()
    conf: str = field(default="", compare=False)

    @classmethod
    def from_conf_string(cls, text: str | None) -> AllocatorConfig:
        """Parse ``key:value,key:[a:b,...]`` as upstream's ``AcceleratorAllocatorConfig::parseArgs`` (and the CUDA
        hook ``CUDAAllocatorConfig::parseArgs``) would: ``large_segment_size_mb`` is read first, since the minimum of
        ``max_split_size_mb`` and the default of ``max_non_split_rounding_mb`` follow it; an unknown key, a missing
        or malformed value is an ``AllocatorConfigError`` naming the option."""
        text = text or ""
        pairs = _pairs(text)
        values: dict[str, object] = {}
        ignored: list[str] = []
        large = K_LARGE_BUFFER
        for key, value in pairs:
            if key == "large_segment_size_mb":
                large = _mib(key, value, above=K_MIN_LARGE_ALLOC // MiB)
        values["large_segment_size"] = large
        values["max_non_split_rounding_size"] = large
        for key, value in pairs:
            if key == "large_segment_size_mb":
                continue
            if key == "max_split_size_mb":
                values["max_split_size"] = _mib(key, value, at_least=large // MiB)
            elif key == "max_non_split_rounding_mb":
                values["max_non_split_rounding_size"] = _mib(key, value, at_least=large // MiB)
            elif key == "roundup_power2_divisions":
                values["roundup_power2_divisions"] = _divisions(value)
            elif key == "expandable_segments":
                values["expandable_segments"] = _bool(key, value)
            elif key == "backend":
                word = _single(key, value)
                if word == "cudaMallocAsync":
                    raise AllocatorConfigError("option 'backend:cudaMallocAsync': the CUDA driver's pool allocator "
                                               "is not modelled (only backend:native)")
                if word != "native":
                    raise AllocatorConfigError(f"option 'backend': expected native or cudaMallocAsync, found {word!r}")
            elif key in IGNORED_OPTIONS:
                _check_ignored(key, value)
                ignored.append(key)
            else:
                known = ", ".join(sorted(MODELLED_OPTIONS + tuple(IGNORED_OPTIONS)))
                raise AllocatorConfigError(f"unknown allocator option {key!r} (known: {known})")
        return cls(**values, ignored=tuple(dict.fromkeys(ignored)), conf=text)  # type: ignore[arg-type]

    def divisions_for(self, size: int) -> int:
        """``AcceleratorAllocatorConfig::roundup_power2_divisions(size)``: the interval of log2(size), from 1 MiB."""
        index = max(0, size.bit_length() - 1 - ROUNDUP_START_LOG2)
        return self.roundup_power2_divisions[min(index, ROUNDUP_INTERVALS - 1)]

    def to_dict(self) -> dict:
        return {"conf": self.conf, "max_split_size_bytes": self.max_split_size,
                "max_non_split_rounding_bytes": self.max_non_split_rounding_size,
                "large_segment_size_bytes": self.large_segment_size,
                "roundup_power2_divisions": list(self.roundup_power2_divisions),
                "expandable_segments": self.expandable_segments, "ignored_options": list(self.ignored)}


def _single(key: str, value: list[str]) -> str:
    if len(value) != 1:
        raise AllocatorConfigError(f"option {key!r}: expected a single value, found a list")
    return value[0]


def _int(key: str, word: str) -> int:
    if not word.isdigit():
        raise AllocatorConfigError(f"option {key!r}: expected a non-negative integer, found {word!r}")
    return int(word)


def _mib(key: str, value: list[str], *, above: int | None = None, at_least: int | None = None) -> int:
    """``parseLargeSegmentSize`` (> kMinLargeAlloc in MiB), ``parseMaxSplitSize`` / ``parseMaxNonSplitRoundingSize``
    (>= large_segment_size in MiB): a MiB count -> bytes."""
    n = _int(key, _single(key, value))
    if above is not None and n <= above:
        raise AllocatorConfigError(f"option {key!r}: must be > {above} (MiB), found {n}")
    if at_least is not None and n < at_least:
        raise AllocatorConfigError(f"option {key!r}: too small, must be >= {at_least} (MiB), found {n}")
    return n * MiB


def _bool(key: str, value: list[str]) -> bool:
    """``ConfigTokenizer::toBool``: exactly ``True`` or ``False``."""
    word = _single(key, value)
    if word not in ("True", "False"):
        raise AllocatorConfigError(f"option {key!r}: expected True or False, found {word!r}")
    return word == "True"


def _check_ignored(key: str, value: list[str]) -> None:
    """The value checks upstream makes for the options this model accepts without using."""
    checks = {"garbage_collection_threshold": (float, lambda x: 0.0 < x < 1.0, "a number in (0.0, 1.0)"),
              "per_process_memory_fraction": (float, lambda x: 0.0 <= x <= 1.0, "a number in [0.0, 1.0]"),
              "pinned_num_register_threads": (int, lambda n: _is_pow2(n) and n <= MAX_REGISTER_THREADS,
                                              f"a power of 2 <= {MAX_REGISTER_THREADS}"),
              "pinned_reserve_segment_size_mb": (int, lambda n: n > 0, "an integer > 0")}
    if key not in checks:
        _bool(key, value)
        return
    word = _single(key, value)
    conv, ok, what = checks[key]
    try:
        good = ok(conv(word))
    except ValueError:
        good = False
    if not good:
        raise AllocatorConfigError(f"option {key!r}: expected {what}, found {word!r}")


def _divisions(value: list[str]) -> tuple[int, ...]:
    """``AcceleratorAllocatorConfig::parseRoundUpPower2Divisions``: one power of two for every interval, or a list
    ``[BOUNDARY_MB:N, ..., >:N]``. A boundary (a power of two, in MiB) sets the interval of log2(boundary) (clamped to
    the 16 intervals); the first one also fills the intervals below it; ``>`` fills every interval after the last
    boundary's. N is 0 or a power of two."""
    key = "roundup_power2_divisions"
    if value[0] != "[":
        n = _int(key, value[0])
        if not _is_pow2(n):
            raise AllocatorConfigError(f"option {key!r}: the divisions must be a power of 2, found {n}")
        return (n,) * ROUNDUP_INTERVALS
    out = [0] * ROUNDUP_INTERVALS
    items = value[1:-1]
    first, last_index, j = True, 0, 0
    while j < len(items):
        if j + 2 >= len(items) or items[j + 1] != ":":
            raise AllocatorConfigError(f"option {key!r}: expected [BOUNDARY_MB:N,...,>:N], found "
                                       f"{''.join(value)!r}")
        bound, n = items[j], _int(key, items[j + 2])
        if n != 0 and not _is_pow2(n):
            raise AllocatorConfigError(f"option {key!r}: the divisions must be 0 or a power of 2, found {n}")
        if bound == ">":
            for k in range(last_index + 1, ROUNDUP_INTERVALS):
                out[k] = n
        else:
            b = _int(key, bound)
            if not _is_pow2(b):
                raise AllocatorConfigError(f"option {key!r}: the interval boundaries must be powers of 2 (MiB), "
                                           f"found {b}")
            index = min(b.bit_length() - 1, ROUNDUP_INTERVALS - 1)
            if first:
                out[:index] = [n] * index
                first = False
            out[index] = n
            last_index = index
        j += 3
        if j < len(items):
            if items[j] != ",":
                raise AllocatorConfigError(f"option {key!r}: expected ',' between the list's entries")
            j += 1
    return tuple(out)


def round_power2_division(size: int, divisions: int) -> int:
    """``roundup_power2_next_division``: ``size`` rounded up to the next of ``divisions`` equal steps between the
    powers of two around it (a power of two stays; a step below 1 B gives the next power of two)."""
    if _is_pow2(size):
        return size
    floor = 1 << (size.bit_length() - 1)
    step = floor >> (divisions.bit_length() - 1)
    if step == 0:
        return floor << 1
    low = size & ~(step - 1)
    return size if low == size else low + step


class Segment:
    """One ``cudaMalloc`` (or one expandable segment's address range, mapped in ``page`` steps)."""

    __slots__ = ("addr", "size", "stream", "is_small", "expandable", "page", "anchor")

    def __init__(self, addr: int, size: int, stream: int, is_small: bool, expandable: bool = False,
                 page: int = 0) -> None:
        self.addr, self.size, self.stream, self.is_small = addr, size, stream, is_small
        self.expandable, self.page = expandable, page
        self.anchor: Block | None = None  # some live block of the segment (walk prev/next for the rest)


class Block:
    """A piece of a segment: allocated, free (cached), awaiting its free's completion (``pending``), or (expandable
    segments) unmapped address space. ``prev``/``next`` link the pieces of one segment in address order."""

    __slots__ = ("segment", "addr", "size", "stream", "requested", "allocated", "pending", "mapped", "prev", "next",
                 "uid")
    _ids = itertools.count()

    def __init__(self, segment: Segment, addr: int, size: int, *, mapped: bool = True) -> None:
        self.segment, self.addr, self.size, self.stream = segment, addr, size, segment.stream
        self.requested = 0
        self.allocated = self.pending = False
        self.mapped = mapped
        self.prev: Block | None = None
        self.next: Block | None = None
        self.uid = next(Block._ids)

    @property
    def is_small(self) -> bool:
        return self.segment.is_small

    def is_split(self) -> bool:
        return self.prev is not None or self.next is not None

    def available(self) -> bool:
        """Upstream's ``allocatable``: neither allocated nor waiting for its free to complete."""
        return not self.allocated and not self.pending

    def __repr__(self) -> str:
        state = "allocated" if self.allocated else "pending" if self.pending else "free" if self.mapped else "unmapped"
        return f"Block({self.size} B at {self.addr:#x}, stream {self.stream}, {state})"


class SegmentEvent(NamedTuple):
    """What the allocator asked of the device, named as upstream's trace names it."""

    action: str  # segment_alloc | segment_free | segment_map | segment_unmap
    addr: int
    size: int
    stream: int
    is_small: bool


class OutOfMemory(Exception):
    """The request does not fit the device even after the cached segments were released (upstream's OOM)."""

    def __init__(self, size: int, rounded: int, stream: int, allocated: int, reserved: int, limit: int) -> None:
        self.size, self.rounded, self.stream = size, rounded, stream
        self.allocated, self.reserved, self.limit = allocated, reserved, limit
        super().__init__(f"out of memory: {size} B (rounded {rounded} B) on stream {stream}; allocated {allocated} B, "
                         f"reserved {reserved} B of {limit} B")


class _SortedBlocks:
    """Free blocks of one pool and stream, in upstream's set order: ``(size, address)`` (``BlockComparatorSize``),
    or address order (``BlockComparatorAddress``, the unmapped set)."""

    __slots__ = ("keys", "blocks", "by_size")

    def __init__(self, by_size: bool) -> None:
        self.keys: list[tuple[int, ...]] = []
        self.blocks: dict[int, Block] = {}
        self.by_size = by_size

    def _key(self, b: Block) -> tuple[int, ...]:
        return (b.size, b.addr, b.uid) if self.by_size else (b.addr, b.uid)

    def add(self, b: Block) -> None:
        bisect.insort(self.keys, self._key(b))
        self.blocks[b.uid] = b

    def remove(self, b: Block) -> None:
        key = self._key(b)
        i = bisect.bisect_left(self.keys, key)
        if i == len(self.keys) or self.keys[i] != key:
            raise AssertionError(f"{b!r} is not in this free list")
        del self.keys[i]
        del self.blocks[b.uid]

    def at(self, i: int) -> Block:
        return self.blocks[self.keys[i][-1]]

    def lower_bound(self, size: int) -> int:
        return bisect.bisect_left(self.keys, (size, -1, -1))

    def __len__(self) -> int:
        return len(self.keys)

    def __iter__(self):
        return iter([self.blocks[k[-1]] for k in self.keys])


class CachingAllocator:
    """The model of one device's ``DeviceCachingAllocator``.

    ``malloc(size, stream)`` -> ``Block``; ``free(block)``, or ``request_free`` then ``complete_free`` for a free whose
    completion the caller times (upstream: a block used on other streams returns to the pool when its events
    complete); ``empty_cache()``. Stats as ``torch.cuda.memory_stats`` counts them: ``allocated`` (the sizes of the
    allocated blocks, an unsplit block counting whole), ``requested`` (the sizes asked for), ``reserved`` (segments, or
    mapped pages), their peaks, ``segments``. ``device_memory``: the bytes the allocator may reserve; a segment (or
    page mapping) beyond it fails, which starts upstream's release-and-retry chain. ``segment_address(size, is_small,
    stream)`` may give the address of a new ``cudaMalloc`` segment (None: the model picks one). ``events`` collects
    the ``SegmentEvent`` of every device call, for ``take_events``."""

    def __init__(self, config: AllocatorConfig | None = None, device_memory: int | None = None,
                 segment_address: Callable[[int, bool, int], int | None] | None = None) -> None:
        self.config = config or AllocatorConfig()
        self.device_memory = device_memory
        self.segment_address = segment_address
        self._free: dict[tuple[bool, int], _SortedBlocks] = {}
        self._unmapped: dict[tuple[bool, int], _SortedBlocks] = {}
        self._segments: dict[int, Segment] = {}
        self._pending: dict[int, Block] = {}
        self._next_addr = _FIRST_ADDRESS
        self.allocated = self.reserved = self.requested = 0
        self.peak_allocated = self.peak_reserved = self.peak_requested = 0
        self.num_device_alloc = self.num_device_free = self.num_alloc_retries = self.num_ooms = 0
        self.events: list[SegmentEvent] = []

    # ---- sizes ---------------------------------------------------------------------------------------------------
    def round_size(self, size: int) -> int:
        """``round_size``: at least kMinBlockSize; a power-of-two division when ``roundup_power2_divisions`` gives
        more than one for the size's interval and the size exceeds kMinBlockSize x divisions; else a multiple of
        kMinBlockSize."""
        if size < K_MIN_BLOCK_SIZE:
            return K_MIN_BLOCK_SIZE
        divisions = self.config.divisions_for(size)
        if divisions > 1 and size > K_MIN_BLOCK_SIZE * divisions:
            return round_power2_division(size, divisions)
        return -(-size // K_MIN_BLOCK_SIZE) * K_MIN_BLOCK_SIZE

    def allocation_size(self, size: int) -> int:
        """``get_allocation_size``: the segment a rounded request gets when nothing cached fits: kSmallBuffer for
        the small pool, large_segment_size below kMinLargeAlloc, else the size rounded up to kRoundLarge."""
        if size <= K_SMALL_SIZE:
            return K_SMALL_BUFFER
        if size < K_MIN_LARGE_ALLOC:
            return self.config.large_segment_size
        return -(-size // K_ROUND_LARGE) * K_ROUND_LARGE

    @property
    def segments(self) -> int:
        """Live segments as upstream's ``snapshot`` counts them: each ``cudaMalloc``, and each contiguous mapped range
        of an expandable segment."""
        count = 0
        for seg in self._segments.values():
            if not seg.expandable:
                count += 1
                continue
            previous = False
            for b in self._blocks_of(seg):
                count += b.mapped and not previous
                previous = b.mapped
        return count

    # ---- the public calls ----------------------------------------------------------------------------------------
    def malloc(self, size: int, stream: int = 0) -> Block:
        """``DeviceCachingAllocator::malloc``: round, pick the pool (small iff the rounded size <= kSmallSize), take
        the best cached block; else a new segment, retried after ``release_available_cached_blocks`` and then
        ``release_cached_blocks``; else ``OutOfMemory``. Then ``should_split`` / ``alloc_found_block``."""
        if size < 0:
            raise ValueError(f"malloc of a negative size {size}")
        rounded = self.round_size(size)
        small = rounded <= K_SMALL_SIZE
        block = self._get_free_block(small, stream, rounded)
        if block is None:
            block = self._alloc_block(small, stream, rounded, retry=False)
            if block is None and self._release_available_cached_blocks(small, stream, rounded):
                block = self._alloc_block(small, stream, rounded, retry=False)
            if block is None:
                self.release_cached_blocks()
                block = self._alloc_block(small, stream, rounded, retry=True)
            if block is None:
                self.num_ooms += 1
                raise OutOfMemory(size, rounded, stream, self.allocated, self.reserved, self.device_memory or 0)
        return self._alloc_found_block(block, rounded, size, self._should_split(block, rounded))

    def free(self, block: Block) -> None:
        """``DeviceCachingAllocator::free`` with no other stream's use: the block leaves ``allocated`` and returns
        to its pool at once (``free_block``)."""
        if block.allocated:
            self.request_free(block)
        self.complete_free(block)

    def request_free(self, block: Block) -> None:
        """The first half of ``free``: ``allocated`` drops now; the block waits (upstream: for the events of the
        streams that used it) until ``complete_free``."""
        if not block.allocated:
            raise ValueError(f"free of {block!r}, which is not allocated")
        block.allocated, block.pending = False, True
        self.allocated -= block.size
        self._pending[block.uid] = block

    def complete_free(self, block: Block) -> None:
        """``free_block``: coalesce with the free neighbours of the same segment and return to the pool."""
        if block.allocated or not block.pending:
            raise ValueError(f"completing the free of {block!r}, which is not awaiting it")
        del self._pending[block.uid]
        block.pending = False
        self.requested -= block.requested
        for neighbour in (block.prev, block.next):
            self._try_merge(block, neighbour)
        self._pool(block).add(block)

    def empty_cache(self) -> None:
        """``emptyCache`` -> ``release_cached_blocks``."""
        self.release_cached_blocks()

    def release_cached_blocks(self) -> bool:
        """``release_cached_blocks``: complete every waiting free (``synchronize_and_free_events``), then release
        every cached block that is a whole segment (``release_blocks``: large pool, then small), and unmap the whole
        pages of free expandable blocks."""
        for block in list(self._pending.values()):
            self.complete_free(block)
        for small in (False, True):
            for key in sorted(k for k in self._free if k[0] is small):
                self._release_blocks(self._free[key])
        return True

    def take_events(self) -> list[SegmentEvent]:
        out, self.events = self.events, []
        return out

    def segment_blocks(self) -> list[list[Block]]:
        """Every live segment's blocks in address order (expandable: the mapped and unmapped pieces)."""
        return [self._blocks_of(seg) for seg in sorted(self._segments.values(), key=lambda s: s.addr)]

    @staticmethod
    def _blocks_of(seg: Segment) -> list[Block]:
        b = seg.anchor
        while b is not None and b.prev is not None:
            b = b.prev
        blocks = []
        while b is not None:
            blocks.append(b)
            b = b.next
        return blocks

    def stats(self) -> dict:
        return {"allocated_bytes": self.allocated, "reserved_bytes": self.reserved,
                "requested_bytes": self.requested, "peak_allocated_bytes": self.peak_allocated,
                "peak_reserved_bytes": self.peak_reserved, "peak_requested_bytes": self.peak_requested,
                "segments": self.segments, "num_device_alloc": self.num_device_alloc,
                "num_device_free": self.num_device_free, "num_alloc_retries": self.num_alloc_retries,
                "num_ooms": self.num_ooms}

    # ---- pools ---------------------------------------------------------------------------------------------------
    def _pool(self, block: Block) -> _SortedBlocks:
        key = (block.is_small, block.stream)
        if key not in self._free:
            self._free[key] = _SortedBlocks(by_size=True)
        return self._free[key]

    def _unmapped_set(self, block: Block) -> _SortedBlocks:
        key = (block.is_small, block.stream)
        if key not in self._unmapped:
            self._unmapped[key] = _SortedBlocks(by_size=False)
        return self._unmapped[key]

    def _get_free_block(self, small: bool, stream: int, size: int) -> Block | None:
        """``get_free_block``: the smallest cached block of the pool and stream with size >= the request (ties: the
        lowest address). Among expandable blocks the one that can grow least wins (its size plus an unmapped range
        after it). An oversize block (>= max_split_size) serves only a request >= max_split_size, and only if it is
        smaller than the request + max_non_split_rounding_size."""
        pool = self._free.get((small, stream))
        if not pool:
            return None
        i = pool.lower_bound(size)
        if i == len(pool):
            return None
        block = pool.at(i)
        if block.segment.expandable:
            def growable(b: Block) -> int:
                return b.size + (b.next.size if b.next is not None and not b.next.mapped else 0)
            while block.segment.expandable and i + 1 < len(pool) and growable(pool.at(i + 1)) < growable(block):
                i += 1
                block = pool.at(i)
        limit = self.config.max_split_size
        if limit is not None:
            if size < limit <= block.size:
                return None
            if size >= limit and block.size >= size + self.config.max_non_split_rounding_size:
                return None
        pool.remove(block)
        return block

    def _should_split(self, block: Block, size: int) -> bool:
        """``should_split``: small pool (or expandable segments): a remainder >= kMinBlockSize; large pool: a
        request below max_split_size and a remainder > kSmallSize."""
        remaining = block.size - size
        if block.is_small or self.config.expandable_segments:
            return remaining >= K_MIN_BLOCK_SIZE
        limit = self.config.max_split_size
        return (limit is None or size < limit) and remaining > K_SMALL_SIZE

    def _alloc_found_block(self, block: Block, size: int, requested: int, split: bool) -> Block:
        """``alloc_found_block``: split off the front ``size`` bytes (the rest stays cached), mark it allocated; the
        stats count the block's whole size."""
        if split:
            rest = block
            block = Block(rest.segment, rest.addr, size)
            block.prev, block.next = rest.prev, rest
            if rest.prev is not None:
                rest.prev.next = block
            rest.prev = block
            rest.addr += size
            rest.size -= size
            self._pool(rest).add(rest)
        block.allocated, block.requested = True, requested
        self.allocated += block.size
        self.requested += requested
        self.peak_allocated = max(self.peak_allocated, self.allocated)
        self.peak_requested = max(self.peak_requested, self.requested)
        return block

    def _try_merge(self, dst: Block, src: Block | None) -> int:
        """``try_merge_blocks``: absorb a neighbour that is free (not allocated, not waiting) and in the same mapped
        state; ``dst`` must be in no free list. Returns the bytes absorbed."""
        if src is None or not src.available() or src.mapped != dst.mapped:
            return 0
        (self._pool(src) if src.mapped else self._unmapped_set(src)).remove(src)
        if dst.prev is src:
            dst.addr = src.addr
            dst.prev = src.prev
            if dst.prev is not None:
                dst.prev.next = dst
        else:
            dst.next = src.next
            if dst.next is not None:
                dst.next.prev = dst
        dst.size += src.size
        if dst.segment.anchor is src:
            dst.segment.anchor = dst
        return src.size

    # ---- device calls --------------------------------------------------------------------------------------------
    def _fits(self, size: int) -> bool:
        return self.device_memory is None or self.reserved + size <= self.device_memory

    def _new_address(self, size: int) -> int:
        addr = self._next_addr
        self._next_addr += -(-size // K_SMALL_BUFFER) * K_SMALL_BUFFER + K_SMALL_BUFFER
        return addr

    def _alloc_block(self, small: bool, stream: int, size: int, retry: bool) -> Block | None:
        """``alloc_block``: a new segment of ``get_allocation_size`` bytes (``cudaMalloc``), or with expandable
        segments ``try_allocate_expandable_block``; None when the device has no room."""
        if retry:
            self.num_alloc_retries += 1
        if self.config.expandable_segments:
            return self._try_allocate_expandable_block(small, stream, size)
        alloc_size = self.allocation_size(size)
        if not self._fits(alloc_size):
            return None
        addr = self.segment_address(alloc_size, small, stream) if self.segment_address else None
        seg = Segment(self._new_address(alloc_size) if addr is None else addr, alloc_size, stream, small)
        block = Block(seg, seg.addr, alloc_size)
        seg.anchor = block
        self._segments[id(seg)] = seg
        self.reserved += alloc_size
        self.peak_reserved = max(self.peak_reserved, self.reserved)
        self.num_device_alloc += 1
        self.events.append(SegmentEvent("segment_alloc", seg.addr, alloc_size, stream, small))
        return block

    def _release_block(self, block: Block) -> None:
        """``release_block``: ``cudaFree`` a cached block that is a whole segment."""
        self._pool(block).remove(block)
        del self._segments[id(block.segment)]
        self.reserved -= block.size
        self.num_device_free += 1
        self.events.append(SegmentEvent("segment_free", block.addr, block.size, block.stream, block.is_small))

    def _release_available_cached_blocks(self, small: bool, stream: int, size: int) -> bool:
        """``release_available_cached_blocks`` (only with a max_split_size): free the smallest cached oversize block
        of at least max(size, max_split_size); if none is that large, free oversize blocks from the largest down
        until that much is released. (Only whole, non-expandable segments are released: upstream's ``cudaFree`` of a
        split or expandable block cannot be modelled.)"""
        limit = self.config.max_split_size
        pool = self._free.get((small, stream))
        if limit is None or not pool:
            return False
        key = max(size, limit)
        i = pool.lower_bound(key)
        if i < len(pool):
            block = pool.at(i)
            if block.is_split() or block.segment.expandable:
                return False
            self._release_block(block)
            return True
        released = 0
        for block in reversed(list(pool)):
            if released >= key or block.size < limit or block.is_split() or block.segment.expandable:
                break
            released += block.size
            self._release_block(block)
        return released >= key

    def _release_blocks(self, pool: _SortedBlocks) -> None:
        """``release_blocks``: free every cached block that is a whole segment; unmap the free expandable blocks'
        whole pages, and drop an expandable segment left with nothing mapped."""
        expandable = []
        for block in list(pool):
            if block.segment.expandable:
                expandable.append(block)
            elif not block.is_split():
                self._release_block(block)
        for block in expandable:
            self._unmap_block(block)
            if not block.mapped and not block.is_split():
                self._unmapped_set(block).remove(block)
                del self._segments[id(block.segment)]

    # ---- expandable segments -------------------------------------------------------------------------------------
    def _address_space(self, page: int) -> int:
        wanted = UNBOUNDED_ADDRESS_SPACE if self.device_memory is None else \
            self.device_memory + self.device_memory // 8  # find_expandable_block: 1 1/8 of the device
        return -(-wanted // page) * page

    def _find_expandable_block(self, small: bool, stream: int, size: int) -> Block:
        """``find_expandable_block``: the lowest-addressed unmapped range of the pool and stream (with the free block
        just before it) that has ``size`` bytes of free or unmapped space in a row; else a new expandable segment
        (one unmapped range; pages of kSmallBuffer in the small pool, large_segment_size in the large)."""
        unmapped = self._unmapped.get((small, stream))
        for block in list(unmapped or ()):
            start = block.prev if block.prev is not None and block.prev.available() else block
            room, b = 0, start
            while room < size and b is not None and b.available():
                room += b.size
                b = b.next
            if room >= size:
                return start
        page = K_SMALL_BUFFER if small else self.config.large_segment_size
        space = self._address_space(page)
        seg = Segment(self._new_address(space), space, stream, small, expandable=True, page=page)
        block = Block(seg, seg.addr, space, mapped=False)
        seg.anchor = block
        self._segments[id(seg)] = seg
        self._unmapped_set(block).add(block)
        return block

    def _try_allocate_expandable_block(self, small: bool, stream: int, size: int) -> Block | None:
        """``try_allocate_expandable_block``: map pages until the candidate block holds ``size`` bytes (each mapping
        merges with the free neighbours); None if a mapping does not fit the device."""
        block = self._find_expandable_block(small, stream, size)
        if not block.mapped and not self._map_block(block, min(block.size, size)):
            return None
        while block.size < size:
            nxt = block.next
            assert nxt is not None and not nxt.mapped
            if not self._map_block(nxt, min(size - block.size, nxt.size)):
                return None
            block = nxt
        self._pool(block).remove(block)
        return block

    def _map_block(self, block: Block, size: int) -> bool:
        """``map_block`` / ``ExpandableSegment::map``: map the whole pages covering ``size`` bytes from the unmapped
        block's start; the rest stays unmapped; reserved grows by the pages."""
        seg = block.segment
        first = (block.addr - seg.addr) // seg.page
        end = -(-(block.addr + size - seg.addr) // seg.page)
        mapped = (end - first) * seg.page
        if not self._fits(mapped):
            return False
        self._unmapped_set(block).remove(block)
        block.mapped = True
        if mapped < block.size:
            rest = Block(seg, block.addr + mapped, block.size - mapped, mapped=False)
            rest.prev, rest.next = block, block.next
            if block.next is not None:
                block.next.prev = rest
            block.next = rest
            block.size = mapped
            self._unmapped_set(rest).add(rest)
        addr = block.addr
        self._try_merge(block, block.prev)
        self._try_merge(block, block.next)
        self._pool(block).add(block)
        self.reserved += mapped
        self.peak_reserved = max(self.peak_reserved, self.reserved)
        self.num_device_alloc += 1
        self.events.append(SegmentEvent("segment_map", addr, mapped, block.stream, block.is_small))
        return True

    def _unmap_block(self, block: Block) -> None:
        """``unmap_block`` / ``ExpandableSegment::unmap``: unmap the whole pages inside a free block; the partial
        pages at either end stay mapped as free blocks of their own."""
        seg = block.segment
        first = -(-(block.addr - seg.addr) // seg.page)
        end = (block.addr + block.size - seg.addr) // seg.page
        if first >= end:
            return
        pool = self._pool(block)
        pool.remove(block)
        start, length = seg.addr + first * seg.page, (end - first) * seg.page
        if start > block.addr:
            before = Block(seg, block.addr, start - block.addr)
            before.prev, before.next = block.prev, block
            if block.prev is not None:
                block.prev.next = before
            block.prev = before
            pool.add(before)
        tail = block.addr + block.size - (start + length)
        if tail > 0:
            after = Block(seg, start + length, tail)
            after.prev, after.next = block, block.next
            if block.next is not None:
                block.next.prev = after
            block.next = after
            pool.add(after)
        block.addr, block.size, block.mapped = start, length, False
        self._try_merge(block, block.prev)
        self._try_merge(block, block.next)
        self._unmapped_set(block).add(block)
        self.reserved -= length
        self.num_device_free += 1
        self.events.append(SegmentEvent("segment_unmap", start, length, block.stream, block.is_small))
