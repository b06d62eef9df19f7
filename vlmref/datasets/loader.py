"""``--dataset`` -> checked train/validation ``Sample`` lists and a report; the entry point ``sft``/``infer`` use.

::

    loaded = load_dataset(["data/train.jsonl", "coco-en-2-mini-sample#8"], "llava1d6-mistral-7b-instruct",
                          check_dataset_strategy="discard", dataset_test_ratio=0.01)
    loaded.train, loaded.val   # lists of Sample
    print(loaded.report.summary())

The pipeline, one stage per module, each called once per dataset in this order::

    source.py      --dataset -> sources (local file / named dataset, #N)
    source.py      source -> raw rows
    normalise.py   raw rows -> samples              (local files: before the split)
    split.py       #N + train/val split, RandomState(dataset_seed)
    normalise.py   raw rows -> samples              (named datasets: after the split)
    check.py       samples -> checked samples (the family's rules, --check_dataset_strategy)
    encode.py      checked sample -> template encoding (sft, infer), row errors named

The split sits where ms-swift 2.2.0 puts it (``get_dataset``: registered datasets are preprocessed after the split,
local files before; ``check_dataset_strategy`` applies to the split's parts), so the same seed picks the same rows.
Rows of a named dataset are named by the dataset and their row index in it (``coco-en-mini-sample row 17``),
whatever ``#N`` picked.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import DatasetError
from .check import CHECK_DATASET_STRATEGIES, check_samples
from .encode import encode_sample  # noqa: F401 - the pipeline's last stage, public here as before
from .normalise import Normaliser
from .report import DatasetReport
from .rules import RowChecker
from .sample import Sample
from .source import dataset_sources


@dataclass
class LoadedDataset:
    train: list[Sample]
    val: list[Sample]
    report: DatasetReport


def load_dataset(
    dataset: str | Sequence[str],
    model_type: str,
    *,
    check_dataset_strategy: str = "none",
    dataset_test_ratio: float = 0.0,
    dataset_seed: int = 42,
    template: Any = None,
    check_images: bool = False,
    image_options: Any = None,
    require_response: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> LoadedDataset:
    """Load, split and check every dataset in ``dataset`` (names, ``name#N``, local .json/.jsonl/.csv files).

    ``template`` (a ``Template`` bound to the model's tokenizer, with ``max_length``) adds the length check;
    ``check_images`` opens every image header (local files, URLs through the cache, base64). ``progress(done,
    total)`` is called once per row checked; ``total`` grows as each dataset is read (``datasets.progress``).
    """
    if check_dataset_strategy not in CHECK_DATASET_STRATEGIES:
        raise ValueError(f"check_dataset_strategy must be one of {CHECK_DATASET_STRATEGIES}, got {check_dataset_strategy!r}")
    checker = RowChecker(model_type, template=template, check_images=check_images, image_options=image_options)
    report = DatasetReport(checker.model_type, check_dataset_strategy)
    train: list[Sample] = []
    val: list[Sample] = []
    counter = _Counter(progress)
    for source in dataset_sources(dataset):
        normalise = Normaliser(checker, report, check_dataset_strategy, require_response)
        if source.is_file:
            samples = normalise.rows(source.file_rows(), base_dir=source.base_dir)
            part_train, part_val = _split(source.item, samples, dataset_test_ratio, source.spec.sample, dataset_seed)
        else:
            rows = source.named_rows()
            # the split picks row indices exactly as it picks rows, so each sample keeps its row in the dataset
            idx_train, idx_val = _split(source.item, list(range(len(rows))), dataset_test_ratio, source.spec.sample,
                                        dataset_seed)
            name = rows.info.name
            part_train = normalise.rows(rows.rows_at(idx_train or [], name), base_dir=None)
            part_val = normalise.rows(rows.rows_at(idx_val or [], f"{name} (val)"), base_dir=None)
        counter.total += len(part_train or []) + len(part_val or [])
        train += check_samples(part_train or [], checker, check_dataset_strategy, report, progress=counter.tick)
        val += check_samples(part_val or [], checker, check_dataset_strategy, report, progress=counter.tick)
    report.splits = {"train": len(train), "val": len(val)}
    return LoadedDataset(train, val, report)


class _Counter:
    """Rows checked so far out of ``total``, reported to ``progress(done, total)`` once per row."""

    def __init__(self, progress: Callable[[int, int], None] | None) -> None:
        self.progress, self.done, self.total = progress, 0, 0

    def tick(self, _sample: Sample) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, self.total)


def _split(item: str, rows: list, ratio: float, sample: int | None, seed: int):
    from .split import train_val_split

    if not rows:
        return [], []
    try:
        return train_val_split(rows, ratio, sample, seed)
    except ValueError as e:
        raise DatasetError(f"{item}: {e}") from None
