"""``#N`` subsampling and the train/validation split, reproducing ms-swift 2.2.0 index for index.

Pure functions on lists: they return new lists and never mutate their input. NumPy is imported lazily because
the indices come from NumPy's generators exactly as upstream draws them. Sources (tag v2.2.0, commit 99cb37f):

* ``swift/llm/utils/dataset.py`` ``sample_dataset`` (L335-347) and ``_post_preprocess`` (L350-390);
* ``swift/llm/utils/dataset.py`` ``get_dataset`` (L2325-2409): a fresh ``RandomState(dataset_seed)`` per
  dataset when the seed is an int (default ``dataset_seed=42``, argument.py L466);
* ``swift/utils/np_utils.py`` ``get_seed`` (L24-27): ``random_state.randint(0, np.iinfo(np.int32).max)``;
* huggingface ``datasets`` 2.20.0 ``src/datasets/arrow_dataset.py`` ``Dataset.train_test_split`` (L4412-4700):
  integer ``test_size`` must satisfy ``0 < test_size < len``; ``generator = np.random.default_rng(seed)``
  (L4605); ``permutation = generator.permutation(len)``; test = ``permutation[:n_test]``,
  train = ``permutation[n_test:n_test + n_train]`` with ``n_train = len - n_test`` (L4667-4669).

>>> train, val = train_val_split(list(range(40504)), 0.01)
>>> len(train), len(val)
(40099, 405)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar, Union

if TYPE_CHECKING:
    from numpy.random import RandomState

T = TypeVar("T")
RandomStateLike = Union[int, "RandomState", None]

DEFAULT_DATASET_SEED = 42  # SftArguments/InferArguments.dataset_seed (argument.py L466, L1074)
DEFAULT_DATASET_TEST_RATIO = 0.01  # SftArguments.dataset_test_ratio (argument.py L467)


def as_random_state(random_state: RandomStateLike) -> RandomState:
    """An int becomes ``RandomState(seed)`` (as ``get_dataset`` does); a RandomState is used (and consumed) as is.

    ``None`` gives an unseeded ``RandomState()``, which is what ``sample_dataset`` falls back to upstream.

    >>> int(as_random_state(42).randint(0, 10))
    6
    """
    import numpy as np

    if random_state is None:
        return np.random.RandomState()
    if isinstance(random_state, np.random.RandomState):
        return random_state
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
        return np.random.RandomState(int(random_state))
    raise TypeError(f"random_state must be an int, a numpy RandomState or None; got {type(random_state).__name__}")


def get_seed(random_state: RandomState) -> int:
    """Draw the seed handed to ``train_test_split``: ``randint(0, 2**31 - 1)`` (swift/utils/np_utils.py L24-27).

    >>> import numpy as np; get_seed(np.random.RandomState(42))
    1608637542
    """
    import numpy as np

    return int(random_state.randint(0, np.iinfo(np.int32).max))


def _sample_indices(length: int, n: int, random_state: RandomState) -> list[int]:
    """Indices ``sample_dataset`` selects: ``permutation(length)[:n]``, then ``choice(length, n - length)``."""
    import numpy as np

    idx = random_state.permutation(length)[:n]
    rest = n - len(idx)
    if rest > 0:
        if length == 0:
            raise ValueError(f"cannot draw {n} rows from an empty dataset")
        idx = np.concatenate([idx, random_state.choice(length, rest)], axis=0)
    return [int(i) for i in idx]


def sample_rows(rows: Sequence[T], n: int | None, random_state: RandomStateLike) -> list[T]:
    """``sample_dataset`` (dataset.py L335-347): pick ``n`` rows in random order, with repeats when ``n > len``.

    ``n`` of ``None``, ``-1`` or ``len(rows)`` returns a copy unchanged and draws nothing from the generator.
    Otherwise the first ``min(n, len)`` picks are ``random_state.permutation(len)[:n]`` (no repeats) and the
    ``n - len`` extra picks (oversampling) are ``random_state.choice(len, n - len)`` (with replacement).

    >>> sample_rows(list("abc"), 5, 0)
    ['c', 'b', 'a', 'b', 'a']
    """
    if n is None or n == -1 or n == len(rows):
        return list(rows)
    if n < 0:
        raise ValueError(f"dataset_sample must be -1 (all rows) or >= 0; got {n}")
    rs = as_random_state(random_state)
    return [rows[i] for i in _sample_indices(len(rows), n, rs)]


def train_test_split_indices(length: int, test_size: int, seed: int) -> tuple[list[int], list[int]]:
    """HF ``Dataset.train_test_split(test_size=<int>, seed=seed)`` (shuffle=True, no stratification) as indices.

    ``perm = np.random.default_rng(seed).permutation(length)``; returns ``(train, test)`` =
    ``(perm[test_size:], perm[:test_size])``. Raises ``ValueError`` unless ``0 < test_size < length`` (as HF does).

    >>> train, test = train_test_split_indices(5, 2, 0); sorted(train + test)
    [0, 1, 2, 3, 4]
    """
    import numpy as np

    if length == 0:  # HF returns the empty dataset as both halves
        return [], []
    if not 0 < test_size < length:
        raise ValueError(
            f"test_size={test_size} should be either positive and smaller than the number of samples {length}"
        )
    perm = np.random.default_rng(seed).permutation(length)
    return [int(i) for i in perm[test_size:]], [int(i) for i in perm[:test_size]]


def split_sizes(length: int, dataset_test_ratio: float, dataset_sample: int | None = None) -> tuple[int, int]:
    """``(train_sample, val_sample)`` of ``_post_preprocess`` (dataset.py L358-385) for ``0 <= ratio <= 1``.

    ``dataset_sample`` (``#N``; ``None``/-1 = all) defaults to ``length``. For ``0 < ratio < 1``:
    ``val = max(int(min(length, dataset_sample) * ratio), 1)`` and ``train = dataset_sample - val`` (so ``#N``
    larger than the dataset oversamples train, never val). Ratio 0: ``(dataset_sample, 0)``; ratio 1:
    ``(0, dataset_sample)``.

    >>> split_sizes(40504, 0.01), split_sizes(40504, 0.01, 1000), split_sizes(24, 0.01, 50)
    ((40099, 405), (990, 10), (49, 1))
    """
    if not 0 <= dataset_test_ratio <= 1:
        raise ValueError(f"dataset_test_ratio must be in [0, 1]; got {dataset_test_ratio}")
    sample = length if dataset_sample is None or dataset_sample == -1 else dataset_sample
    if sample < 0:
        raise ValueError(f"dataset_sample must be -1 (all rows) or >= 0; got {dataset_sample}")
    if dataset_test_ratio == 1:
        return 0, sample
    if dataset_test_ratio == 0:
        return sample, 0
    val = max(int(min(length, sample) * dataset_test_ratio), 1)
    return sample - val, val


def train_val_split(
    rows: Sequence[T],
    dataset_test_ratio: float = DEFAULT_DATASET_TEST_RATIO,
    dataset_sample: int | None = None,
    random_state: RandomStateLike = DEFAULT_DATASET_SEED,
) -> tuple[list[T] | None, list[T] | None]:
    """``_post_preprocess`` (dataset.py L350-390): ``(train, val)`` rows of one dataset, as ms-swift 2.2.0 picks them.

    With ``rs = RandomState(random_state)`` (an int; a RandomState is used and advanced as given):

    * ratio 1 (``--val_dataset``): ``train=None``, ``val = sample_rows(rows, N, rs)``; ``N <= len`` required.
    * ratio 0: ``train = sample_rows(rows, N, rs)``, ``val=None``.
    * otherwise: sizes from :func:`split_sizes`; ``seed = get_seed(rs)``; the HF split of *all* rows with
      ``test_size=val`` (:func:`train_test_split_indices`) gives val and the train pool (``len - val`` rows, in
      permutation order); then ``train = sample_rows(pool, train_sample, rs)`` (a no-op without ``#N``).

    Upstream raises bare ``AssertionError``/``ValueError``; here every refusal is a ``ValueError`` with a reason.

    >>> train, val = train_val_split(list(range(10)), 0.2, random_state=42)
    >>> len(train), len(val), sorted(train + val) == list(range(10))
    (8, 2, True)
    """
    train_n, val_n = split_sizes(len(rows), dataset_test_ratio, dataset_sample)
    rs = as_random_state(random_state)
    if dataset_test_ratio == 1:
        if val_n > len(rows):
            raise ValueError(f"dataset_sample={val_n} exceeds the {len(rows)} rows of a validation-only dataset")
        return None, sample_rows(rows, val_n, rs)
    if 0 < dataset_test_ratio and len(rows) <= val_n:  # HF train_test_split refuses before swift's assert
        raise ValueError(
            f"cannot hold out {val_n} validation row(s) from a dataset of {len(rows)} row(s) "
            f"(dataset_test_ratio={dataset_test_ratio}); use dataset_test_ratio=0 or more rows"
        )
    if train_n <= 0:
        raise ValueError(
            f"no training rows left: dataset_sample={dataset_sample}, {len(rows)} rows, "
            f"dataset_test_ratio={dataset_test_ratio} -> train_sample={train_n}, val_sample={val_n}"
        )
    if dataset_test_ratio == 0:
        return sample_rows(rows, train_n, rs), None
    train_idx, val_idx = train_test_split_indices(len(rows), val_n, get_seed(rs))
    pool = [rows[i] for i in train_idx]
    return sample_rows(pool, train_n, rs), [rows[i] for i in val_idx]


def describe_split(length: int, dataset_test_ratio: float, dataset_sample: int | None = None) -> dict[str, Any]:
    """Sizes and flags of a split, for dry-run reports.

    >>> describe_split(40504, 0.01)["val"]
    405
    """
    train_n, val_n = split_sizes(length, dataset_test_ratio, dataset_sample)
    pool = length - val_n if 0 < dataset_test_ratio < 1 else length
    return {"rows": length, "train": train_n, "val": val_n, "oversampled": train_n > pool > 0}
