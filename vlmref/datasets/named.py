"""Named datasets: the ``--dataset`` spec syntax, the COCO caption registrations and their offline stand-ins.

Facts from ms-swift 2.2.0 ``swift/llm/utils/dataset.py`` (``parse_dataset_name`` L2208-2233, the COCO
registrations L596-647 with row functions L461-476, L615-628, ``load_ms_dataset`` L292-332, ``get_dataset`` L2325-2409) and ``argument.py``
(``handle_compatibility`` L183-246: the ``coco-mini-en*`` names, comma splitting). ``modelscope`` is imported only when a real hub dataset is loaded.

>>> parse_dataset_spec("MS::coco-mini-en#100")
DatasetSpec(hub='ms', name_or_path='coco-mini-en', subsets=(), sample=100)
>>> get_named_dataset("coco-mini-en").name
'coco-en-mini'
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import DatasetError, DatasetRowError
from ..name_registry import Registry
from ..utils import atomic_write_bytes, cache_dir
from .split import DEFAULT_DATASET_SEED, DEFAULT_DATASET_TEST_RATIO, RandomStateLike, sample_rows, train_val_split

Hub = Literal["ms", "hf"]
_TRUE = {"1", "true", "yes", "on", "y", "t"}


# --------------------------------------------------------------------------------------------------- spec syntax
@dataclass(frozen=True)
class DatasetSpec:
    """One parsed ``[HF::|MS::]{name|id|path}[:subset1/subset2][#N]``; ``hub=None`` means "not given" (``USE_HF``
    decides), ``subsets=()`` the registered subsets, ``sample=None`` all rows.

    >>> str(DatasetSpec("hf", "coco-en-mini", ("a", "b"), 5))
    'HF::coco-en-mini:a/b#5'
    """

    hub: Hub | None
    name_or_path: str
    subsets: tuple[str, ...] = ()
    sample: int | None = None

    @property
    def is_file(self) -> bool:
        return os.path.isfile(self.name_or_path)

    def __str__(self) -> str:
        hub = f"{self.hub.upper()}::" if self.hub else ""
        subsets = ":" + "/".join(self.subsets) if self.subsets else ""
        sample = f"#{self.sample}" if self.sample is not None else ""
        return f"{hub}{self.name_or_path}{subsets}{sample}"


def _parse_sample(text: str, spec: str) -> int | None:
    try:
        n = int(text.strip())
    except ValueError:
        raise DatasetError(f"dataset {spec!r}: '#{text}' is not a row count; expected '#N' with an integer N") from None
    if n == -1:
        return None  # swift's "all rows"
    if n < 1:
        raise DatasetError(f"dataset {spec!r}: '#{n}' selects no rows; expected N >= 1 (or -1 for all rows)")
    return n


def parse_dataset_spec(spec: str) -> DatasetSpec:
    """Parse one ``--dataset`` item as ``parse_dataset_name`` does (dataset.py L2208-2233).

    ``HF::``/``MS::`` is split at the first ``::``, ``#N`` at the last ``#``, subsets at the first ``:`` and then
    on ``/``. An existing file is taken whole at every step, so ``#`` and ``:`` inside real file names are safe.

    >>> parse_dataset_spec("HF::some/dataset:sub1/sub2#20")
    DatasetSpec(hub='hf', name_or_path='some/dataset', subsets=('sub1', 'sub2'), sample=20)
    """
    text = spec.strip()
    if os.path.isfile(text):
        return DatasetSpec(None, text)
    hub: Hub | None = None
    if "::" in text:
        prefix, text = (part.strip() for part in text.split("::", 1))
        if prefix.lower() not in ("hf", "ms"):
            raise DatasetError(f"dataset {spec!r}: unknown hub prefix '{prefix}::'; expected 'HF::' or 'MS::'")
        hub = "hf" if prefix.lower() == "hf" else "ms"
        if os.path.isfile(text):
            return DatasetSpec(hub, text)
    sample = None
    if "#" in text:
        text, count = text.rsplit("#", 1)
        text, sample = text.strip(), _parse_sample(count, spec)
    subsets: tuple[str, ...] = ()
    if ":" in text and not os.path.isfile(text):
        text, sub = text.split(":", 1)
        subsets = tuple(s.strip() for s in sub.split("/"))
        if not all(subsets):
            raise DatasetError(f"dataset {spec!r}: empty subset name; expected ':subset1/subset2'")
    if not text.strip():
        raise DatasetError(f"dataset {spec!r}: no dataset name, id or path")
    return DatasetSpec(hub, text.strip(), subsets, sample)


def split_dataset_arg(value: str | Sequence[str] | None) -> list[str]:
    """Split a ``--dataset`` value into items: on commas and whitespace, existing files kept whole.

    swift 2.2.0 (argument.py L234-246) gets space-separated items from argparse and splits on ``,`` only when
    there is exactly one item (asserting otherwise); vlmref splits every item and drops empty pieces.

    >>> split_dataset_arg("coco-mini-en#100,coco-en-2-mini  HF::x")
    ['coco-mini-en#100', 'coco-en-2-mini', 'HF::x']
    """
    items = [value] if isinstance(value, str) else list(value or [])
    out: list[str] = []
    for item in items:
        item = item.strip()
        if os.path.isfile(item):
            out.append(item)
        else:
            out.extend(piece for piece in re.split(r"[,\s]+", item) if piece)
    return out


# ------------------------------------------------------------------------------------------------- registrations
PROMPT = "please describe the image."
COCO_MS_ID = "modelscope/coco_2014_caption"
COCO_SUBSET = "coco_2014_caption"


def _path_and_caption(raw: dict[str, Any], source: str, index: int | None) -> tuple[str, str]:
    # hub rows have an index in the dataset, not a file line: "coco-en-mini row 17: field 'caption': ..."
    image = raw.get("image")
    path = image.get("path") if isinstance(image, dict) else None
    if not isinstance(path, str) or not path:
        raise DatasetRowError(source, None, "image", "a dict with the cached file's 'path'", repr(image)[:120],
                              "wrong_type", row=index)
    caption = raw.get("caption")
    if not isinstance(caption, str):
        raise DatasetRowError(source, None, "caption", "a string", repr(caption)[:120], "wrong_type", row=index)
    return path, caption.split("&&", 1)[0]  # COCO joins alternative captions with '&&'; swift keeps the first


def coco_inline_row(raw: dict[str, Any], source: str = "coco", index: int | None = None) -> dict[str, Any]:
    """``_preprocess_vision_dataset`` (dataset.py L461-476): the image inline, as Qwen-VL writes it.

    >>> coco_inline_row({"image": {"path": "/c/1.jpg"}, "caption": "a cat&&a pet"})
    {'query': 'Picture 1:<img>/c/1.jpg</img>\\nplease describe the image.', 'response': 'a cat'}
    """
    path, caption = _path_and_caption(raw, source, index)
    return {"query": f"Picture 1:<img>{path}</img>\n{PROMPT}", "response": caption}


def coco_images_row(raw: dict[str, Any], source: str = "coco", index: int | None = None) -> dict[str, Any]:
    """``_preprocess_vision_dataset2`` (dataset.py L615-628): the image in the ``images`` column.

    >>> coco_images_row({"image": {"path": "/c/1.jpg"}, "caption": "a cat"})
    {'query': 'please describe the image.', 'response': 'a cat', 'images': ['/c/1.jpg']}
    """
    path, caption = _path_and_caption(raw, source, index)
    return {"query": PROMPT, "response": caption, "images": [path]}


@dataclass(frozen=True)
class NamedDataset:
    """A registered dataset: where its raw rows come from and the row function that preprocesses them."""

    name: str
    row_fn: Callable[..., dict[str, Any]]
    subsets: tuple[str, ...]
    splits: tuple[str, ...]
    size: int  # documented row count (docs table, 支持的模型和数据集.md@v2.2.0 L439-442) or the sample's size
    ms_dataset_id: str | None = None
    hf_dataset_id: str | None = None  # None for all four COCO names in 2.2.0
    offline_sample: str | None = None  # the generated stand-in with the same row schema
    sample_of: str | None = None  # set on the stand-ins: the real dataset they imitate
    description: str = ""

    @property
    def is_sample(self) -> bool:
        return self.sample_of is not None


NAMED_DATASETS: Registry[NamedDataset] = Registry("dataset")
SAMPLE_NAMES = ("coco-en-mini-sample", "coco-en-2-mini-sample")

for _name, _fn, _splits, _size, _aliases, _sample in (
    ("coco-en", coco_inline_row, ("train", "validation"), 454617, (), SAMPLE_NAMES[0]),
    ("coco-en-mini", coco_inline_row, ("validation",), 40504, ("coco-mini-en",), SAMPLE_NAMES[0]),
    ("coco-en-2", coco_images_row, ("train", "validation"), 454617, (), SAMPLE_NAMES[1]),
    ("coco-en-2-mini", coco_images_row, ("validation",), 40504, ("coco-mini-en-2",), SAMPLE_NAMES[1]),
):
    NAMED_DATASETS.register(_name, NamedDataset(
        _name, _fn, (COCO_SUBSET,), _splits, _size, COCO_MS_ID, offline_sample=_sample,
        description=f"COCO 2014 captions ({'+'.join(_splits)}) from ModelScope {COCO_MS_ID}"), aliases=_aliases)
for _name, _of in zip(SAMPLE_NAMES, ("coco-en-mini", "coco-en-2-mini"), strict=True):
    _real = NAMED_DATASETS.get(_of)
    NAMED_DATASETS.register(_name, NamedDataset(
        _name, _real.row_fn, _real.subsets, _real.splits, 24, sample_of=_of,
        description=f"offline stand-in for {_of}: 24 generated shape images, same row schema"))


def get_named_dataset(name: str) -> NamedDataset:
    """The registration for a name or alias; ``DatasetError`` listing the known names otherwise."""
    if name not in NAMED_DATASETS:
        known = ", ".join([*NAMED_DATASETS.names(), *NAMED_DATASETS.aliases()])
        raise DatasetError(f"unknown dataset {name!r}; expected a local file (that exists) or one of: {known}")
    return NAMED_DATASETS.get(name)


# --------------------------------------------------------------------------------------------- offline samples
SAMPLE_IMAGE_SIZES = ((640, 480), (480, 640), (336, 336), (500, 375))
SAMPLE_SHAPES = ("circle", "square", "triangle")
SAMPLE_COLOURS = ("red", "green", "blue", "yellow", "orange", "purple", "black", "white")
SAMPLE_BACKGROUNDS = ("white", "black", "gray", "pink")


@dataclass(frozen=True)
class SampleImage:
    """One generated picture: a ``shape`` of side/diameter ``min(w, h) // 2`` centred on a plain ``background``.

    The triangle points up (apex at the top middle of that box, base along its bottom edge).
    """

    index: int
    shape: str
    colour: str
    background: str
    width: int
    height: int

    @property
    def caption(self) -> str:
        return f"a {self.colour} {self.shape} on a {self.background} background"

    @property
    def raw_caption(self) -> str:
        """Upstream-style caption: even rows carry a second, '&&'-joined caption that the row function drops."""
        return self.caption + (f"&&a {self.shape} coloured {self.colour}" if self.index % 2 == 0 else "")

    @property
    def filename(self) -> str:
        return f"{self.index:02d}_{self.colour}_{self.shape}_{self.width}x{self.height}.png"

    def render_png(self) -> bytes:
        from PIL import Image, ImageDraw

        image = Image.new("RGB", (self.width, self.height), self.background)
        draw = ImageDraw.Draw(image)
        cx, cy, r = self.width // 2, self.height // 2, min(self.width, self.height) // 4
        if self.shape == "circle":
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=self.colour)
        elif self.shape == "square":
            draw.rectangle((cx - r, cy - r, cx + r, cy + r), fill=self.colour)
        else:
            draw.polygon([(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)], fill=self.colour)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()


def sample_images(count: int = 24) -> list[SampleImage]:
    """The deterministic picture list: every (shape, colour) pair once, four sizes, a background unlike the shape.

    >>> sample_images()[0].caption, sample_images()[0].filename
    ('a red circle on a white background', '00_red_circle_640x480.png')
    """
    out = []
    for i in range(count):
        colour = SAMPLE_COLOURS[i % len(SAMPLE_COLOURS)]
        backgrounds = [b for b in SAMPLE_BACKGROUNDS if b != colour]
        width, height = SAMPLE_IMAGE_SIZES[i % len(SAMPLE_IMAGE_SIZES)]
        shape = SAMPLE_SHAPES[i % len(SAMPLE_SHAPES)]
        out.append(SampleImage(i, shape, colour, backgrounds[(i // 2) % len(backgrounds)], width, height))
    return out


def sample_raw_rows(name: str) -> list[dict[str, Any]]:
    """Raw rows of an offline sample in the upstream schema ``{'image': {'path': ...}, 'caption': ...}``.

    The PNGs live in ``cache_dir('datasets', name)``; missing ones are (re)generated and written atomically,
    existing ones are reused untouched.
    """
    info = get_named_dataset(name)
    if not info.is_sample:
        raise DatasetError(f"{name!r} is not an offline sample; samples: {', '.join(SAMPLE_NAMES)}")
    folder = cache_dir("datasets", info.name)
    rows = []
    for picture in sample_images(info.size):
        path = os.path.join(folder, picture.filename)
        if not os.path.isfile(path):
            atomic_write_bytes(path, picture.render_png())
        rows.append({"image": {"path": path}, "caption": picture.raw_caption})
    return rows


# ------------------------------------------------------------------------------------------------------ loading
def _offline_hint(info: NamedDataset) -> str:
    return (f"offline, use the generated stand-in {info.offline_sample!r} (same row schema, 24 rows; samples: "
            f"{', '.join(SAMPLE_NAMES)})")


def _resolve_hub(spec: DatasetSpec) -> Hub:
    if spec.hub is not None:
        return spec.hub
    return "hf" if os.environ.get("USE_HF", "").strip().lower() in _TRUE else "ms"


def _disable_image_decoding(dataset: Any) -> None:
    """swift's ``dataset._info.features._column_requires_decoding['image'] = False``: rows keep the file path."""
    flags = getattr(getattr(getattr(dataset, "_info", None), "features", None), "_column_requires_decoding", None)
    if isinstance(flags, dict):
        flags["image"] = False


def _load_modelscope_raw(info: NamedDataset, subsets: tuple[str, ...]) -> list[dict[str, Any]]:
    """Raw rows from the ModelScope hub, subset-major then split order (``load_ms_dataset``, L292-332)."""
    try:
        from modelscope.msdatasets import MsDataset
    except ImportError as exc:
        raise DatasetError(
            f"dataset {info.name!r} is downloaded from the ModelScope hub ({info.ms_dataset_id}), which needs the "
            f"'modelscope' and 'datasets' packages ({exc}); install them with pip install 'modelscope>=1.14' "
            f"datasets and allow network access to modelscope.cn (or point MODELSCOPE_CACHE at a cache that "
            f"holds it); {_offline_hint(info)}"
        ) from exc
    force = os.environ.get("FORCE_REDOWNLOAD", "").strip().lower() in _TRUE
    mode = "force_redownload" if force else "reuse_dataset_if_exists"
    rows: list[dict[str, Any]] = []
    for subset in subsets:
        for split in info.splits:
            try:
                dataset = MsDataset.load(info.ms_dataset_id, subset_name=subset, split=split, download_mode=mode)
                if hasattr(dataset, "to_hf_dataset"):
                    dataset = dataset.to_hf_dataset()
                _disable_image_decoding(dataset)
                rows.extend(dict(row) for row in dataset)
            except Exception as exc:
                raise DatasetError(
                    f"could not load {info.ms_dataset_id} (subset {subset!r}, split {split!r}) for dataset "
                    f"{info.name!r} from the ModelScope hub: {type(exc).__name__}: {exc}. Check network access to "
                    f"modelscope.cn or MODELSCOPE_CACHE; {_offline_hint(info)}"
                ) from exc
    return rows


def load_raw_rows(spec: DatasetSpec | str) -> tuple[NamedDataset, list[dict[str, Any]]]:
    """The registration and the raw (unpreprocessed) rows of a named dataset, in hub order, before ``#N``."""
    spec = parse_dataset_spec(spec) if isinstance(spec, str) else spec
    if spec.is_file:
        raise DatasetError(f"{spec.name_or_path!r} is a local file; it is read by the custom-format loader")
    info = get_named_dataset(spec.name_or_path)
    subsets = spec.subsets or info.subsets
    if info.is_sample:
        if set(subsets) != set(info.subsets):
            raise DatasetError(f"dataset {info.name!r} has only the subset {info.subsets[0]!r}; got {subsets}")
        return info, sample_raw_rows(info.name)
    if _resolve_hub(spec) == "hf":
        raise DatasetError(
            f"dataset {info.name!r} cannot be loaded from the HuggingFace hub: ms-swift 2.2.0 registers no HF id "
            f"for it (hf_dataset_id=None; upstream fails with AssertionError 'dataset_name: {info.name}, use_hf: "
            f"True, dataset_id_or_path: None.'). Drop the 'HF::' prefix / unset USE_HF to use ModelScope "
            f"({info.ms_dataset_id}); {_offline_hint(info)}"
        )
    return info, _load_modelscope_raw(info, subsets)


def _preprocess(info: NamedDataset, raw: Sequence[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    if raw is None:
        return None
    return [info.row_fn(row, source=info.name, index=i) for i, row in enumerate(raw)]


def load_named_dataset(
    spec: DatasetSpec | str, *, dataset_seed: RandomStateLike = DEFAULT_DATASET_SEED
) -> list[dict[str, Any]]:
    """swift-preprocessed rows of a named dataset (plain dicts), ``#N`` applied as ``get_dataset`` does with
    ``dataset_test_ratio=0``: ``sample_rows(raw, N, RandomState(dataset_seed))``, then the row function.

    >>> rows = load_named_dataset("coco-en-2-mini-sample#3")  # doctest: +SKIP
    >>> rows[0]["query"], len(rows)  # doctest: +SKIP
    ('please describe the image.', 3)
    """
    spec = parse_dataset_spec(spec) if isinstance(spec, str) else spec
    info, raw = load_raw_rows(spec)
    return _preprocess(info, sample_rows(raw, spec.sample, dataset_seed)) or []


def load_named_split(
    spec: DatasetSpec | str,
    *,
    dataset_test_ratio: float = DEFAULT_DATASET_TEST_RATIO,
    dataset_seed: RandomStateLike = DEFAULT_DATASET_SEED,
) -> tuple[list[dict[str, Any]] | None, list[dict[str, Any]] | None]:
    """``(train, val)`` of one named dataset as ``get_dataset``/``_post_preprocess`` build them: the split picks
    raw rows (:func:`vlmref.datasets.split.train_val_split`), then the row function runs on each part.

    An int ``dataset_seed`` makes a fresh ``RandomState`` (swift does this per dataset of a ``--dataset`` list).
    """
    spec = parse_dataset_spec(spec) if isinstance(spec, str) else spec
    info, raw = load_raw_rows(spec)
    train, val = train_val_split(raw, dataset_test_ratio, spec.sample, dataset_seed)
    return _preprocess(info, train), _preprocess(info, val)
