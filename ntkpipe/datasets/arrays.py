"""Your own data (``data.dataset: arrays``): ``x_train, y_train, x_test, y_test`` from an ``.npz``.

The file (``data.path``) holds

* ``x_train [n_train, ...]``, ``x_test [n_test, ...]``: real inputs of one shape per example
  (flattened to rows x [n, d_in]; ``data.input_shape`` or ``x_train.shape[1:]`` is the shape
  conv nets and custom models get back);
* ``y_train [n_train]``, ``y_test [n_test]``: integer class labels ≥ 0 (with ``data.classes``
  listing the labels of the task: the same class-balanced, seeded subsets and ±1 / one-hot
  targets as MNIST), or real-valued targets ``[n]`` or ``[n, k]`` of a floating dtype (with
  ``data.classes: null``: one output per column, subsets seeded but not balanced).

Inputs are used as they are (no pixel scale) and then preprocessed like every dataset
(``data.preprocess``). Every problem (missing file or key, mismatched lengths, shapes or
dtypes, non-finite values, labels not in the file) is a message naming ``data.path``, the file
and the key, found by :func:`problems` before any job. Light: NumPy only.
"""

from __future__ import annotations

import functools
import math
import zipfile
from pathlib import Path

import numpy as np

from ntkpipe.errors import DatasetError

__all__ = ["KEYS", "problems", "read", "input_shape", "target_dim", "label_counts", "is_regression"]

KEYS = ("x_train", "y_train", "x_test", "y_test")


def problems(data: dict, loss: str = "mse") -> list[str]:
    """Every problem of an arrays task (the config's data section): file, keys, shapes, values,
    classes, input_shape, sizes. Empty when the task can be loaded."""
    try:
        arrays = _read_cached(str(data["path"]) if data.get("path") is not None else None)
    except DatasetError as err:
        return [str(err)]
    where = f"data.path: {data['path']}"
    errors = []
    shape = _input_shape_problem(data, arrays, where)
    if shape:
        errors.append(shape)
    classes = data.get("classes")
    regression = is_regression(arrays)
    if regression and classes is not None:
        errors.append(
            f"data.classes: {classes} given, but y_train in {data['path']} holds real values "
            f"({arrays['y_train'].dtype}); set data.classes: null for real-valued targets, or "
            f"store integer class labels"
        )
    elif not regression and classes is None:
        errors.append(
            f"data.classes: null (real-valued targets), but y_train in {data['path']} holds "
            f"integer labels {_few(np.unique(arrays['y_train']))}; list the classes of the task"
        )
    elif not regression:
        errors += _class_problems(data, arrays, where)
    elif loss == "xent":
        errors.append(
            "training.loss: 'xent' needs class labels, but data.classes is null (real-valued "
            "targets); use training.loss mse"
        )
    else:
        for field, key in (("n_train", "x_train"), ("n_test", "x_test")):
            if data[field] > len(arrays[key]):
                errors.append(
                    f"data.{field}: {data[field]} is more than the {len(arrays[key])} rows of "
                    f"{key} in {data['path']}"
                )
    return errors


def read(path) -> dict[str, np.ndarray]:
    """The four arrays of ``path``, checked (see the module docstring).

    Raises:
        DatasetError: a missing file or key, mismatched lengths or shapes, non-finite values.
    """
    return _read_cached(None if path is None else str(path))


def is_regression(arrays: dict) -> bool:
    """Whether the targets are real values (a floating y_train), not class labels."""
    return bool(np.issubdtype(arrays["y_train"].dtype, np.floating))


def input_shape(data: dict) -> tuple[int, ...]:
    """The shape of one example: data.input_shape, else x_train.shape[1:]."""
    if data.get("input_shape"):
        return tuple(int(s) for s in data["input_shape"])
    return tuple(int(s) for s in read(data["path"])["x_train"].shape[1:])


def target_dim(data: dict, loss: str) -> int | None:
    """k of a regression task (the columns of y_train); None for a classification task."""
    arrays = read(data["path"])
    if not is_regression(arrays):
        return None
    y = arrays["y_train"]
    return 1 if y.ndim == 1 else int(y.shape[1])


def label_counts(data: dict) -> dict[str, dict[int, int]]:
    """Examples per class label in the train and test split of the file."""
    arrays = read(data["path"])
    return {
        split: dict(
            zip(
                *map(np.ndarray.tolist, np.unique(arrays[f"y_{split}"], return_counts=True)),
                strict=True,
            )
        )
        for split in ("train", "test")
    }


# ----------------------------------------------------------------------------- private


@functools.lru_cache(maxsize=8)
def _read_cached(path: str | None) -> dict[str, np.ndarray]:
    if path is None:
        raise DatasetError(
            "data.path: null, but data.dataset arrays reads an .npz file with x_train, "
            "y_train, x_test, y_test; set data.path"
        )
    file = Path(path)
    if not file.is_file():
        raise DatasetError(
            f"data.path: {path}: no such file (relative paths are relative to the working "
            f"directory {Path.cwd()}); it must be an .npz with {', '.join(KEYS)}"
        )
    try:
        with np.load(file, allow_pickle=False) as npz:
            missing = [key for key in KEYS if key not in npz.files]
            if missing:
                raise DatasetError(
                    f"data.path: {path}: key(s) {', '.join(missing)} missing; the file has "
                    f"{', '.join(npz.files) or 'no arrays'}, it needs {', '.join(KEYS)}"
                )
            arrays = {key: np.asarray(npz[key]) for key in KEYS}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise DatasetError(f"data.path: {path}: not a readable .npz file ({err})") from None
    _check(path, arrays)
    for value in arrays.values():
        value.setflags(write=False)
    return arrays


def _check(path, a):
    for key in KEYS:
        kind = a[key].dtype.kind
        if kind not in "biuf" or a[key].ndim == 0 or len(a[key]) == 0:
            raise DatasetError(
                f"data.path: {path}: {key} must be a non-empty array of numbers [n, ...]; got "
                f"dtype {a[key].dtype}, shape {a[key].shape}"
            )
        if kind == "f" and not np.isfinite(a[key]).all():
            bad = int(np.size(a[key]) - np.isfinite(a[key]).sum())
            raise DatasetError(
                f"data.path: {path}: {key} has {bad} non-finite value(s) (NaN or ±inf); "
                f"remove or impute them"
            )
    for split in ("train", "test"):
        x, y = a[f"x_{split}"], a[f"y_{split}"]
        if len(x) != len(y):
            raise DatasetError(
                f"data.path: {path}: x_{split} has {len(x)} rows but y_{split} has {len(y)}; "
                f"they must be the same examples"
            )
        if y.ndim > 2:
            raise DatasetError(
                f"data.path: {path}: y_{split} has shape {y.shape}; targets are [n] (labels or "
                f"one real target) or [n, k] (k real targets)"
            )
    if a["x_train"].shape[1:] != a["x_test"].shape[1:] or a["x_train"].ndim < 2:
        raise DatasetError(
            f"data.path: {path}: x_train {a['x_train'].shape} and x_test {a['x_test'].shape} "
            f"must be [n, ...] with the same shape of one example"
        )
    if a["y_train"].shape[1:] != a["y_test"].shape[1:] or (a["y_train"].dtype.kind == "f") != (
        a["y_test"].dtype.kind == "f"
    ):
        raise DatasetError(
            f"data.path: {path}: y_train ({a['y_train'].dtype}, {a['y_train'].shape}) and "
            f"y_test ({a['y_test'].dtype}, {a['y_test'].shape}) must both be labels or both "
            f"targets of one width"
        )
    if a["y_train"].dtype.kind != "f" and (
        a["y_train"].ndim != 1 or min(a["y_train"].min(), a["y_test"].min()) < 0
    ):
        raise DatasetError(
            f"data.path: {path}: integer y_train / y_test are class labels: [n] integers ≥ 0 "
            f"(store real-valued targets as floating point)"
        )


def _input_shape_problem(data, arrays, where):
    given = data.get("input_shape")
    d_in = math.prod(arrays["x_train"].shape[1:])
    if given and math.prod(given) != d_in:
        return (
            f"data.input_shape: {list(given)} has {math.prod(given)} entries, but one example of "
            f"x_train in {where.split(': ', 1)[1]} has {d_in} ({arrays['x_train'].shape[1:]})"
        )
    return None


def _class_problems(data, arrays, where):
    counts = label_counts(data)
    classes = list(data["classes"])
    errors = []
    for split in ("train", "test"):
        absent = [c for c in classes if c not in counts[split]]
        if absent:
            errors.append(
                f"data.classes: {absent} not among the labels of y_{split} in {data['path']} "
                f"(it has {_few(sorted(counts[split]))})"
            )
    if errors:
        return errors
    from ntkpipe.datasets.sizes import split_sizes

    for field, split in (("n_train", "train"), ("n_test", "test")):
        want = split_sizes(data[field], len(classes))
        short = [(c, w) for c, w in zip(classes, want, strict=True) if w > counts[split][c]]
        if short:
            c, w = short[0]
            errors.append(
                f"data.{field}: {data[field]} needs {w} example(s) of class {c} from y_{split} "
                f"in {data['path']}, which has {counts[split][c]}; lower it or choose other classes"
            )
    return errors


def _few(values):
    values = list(values)
    return ", ".join(map(str, values[:10])) + (
        f", … ({len(values)} in all)" if len(values) > 10 else ""
    )
