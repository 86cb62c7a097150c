"""Datasets: scikit-learn's digits, MNIST and CIFAR-10 as small class-balanced tasks.

A task picks a few classes of a dataset and a class-balanced, deterministic subset of
``n_train`` training and ``n_test`` test examples. Inputs are flat float32 rows (float64 with
``precision="float64"``, the config's ``precision``)
``x [n, d_in]`` in H × W × C order (``x.reshape(n, *input_shape)`` gives images for conv
nets), preprocessed so that the input kernel x·x'/d_in has a unit diagonal (the paper's
§3 normalization). Targets follow the paper: a binary task regresses the two classes to
−1 / +1 (``y [n, 1]``, first class −1, as horses vs planes in Fig. 3); more classes, or
``one_hot=True`` (cross-entropy), give one-hot rows ``y [n, k]``.

Nothing is downloaded. Digits ship inside the package (``ntkpipe/data/digits.csv.gz``,
scikit-learn's file). MNIST and CIFAR-10 are read from the original files in a folder the
caller names (``root``): the idx files of
http://yann.lecun.com/exdb/mnist/ (optionally gzipped) and the python batches of
https://www.cs.toronto.edu/~kriz/cifar.html; a missing file is a ``DatasetError`` that
names the folder, the files expected and where to get them.

Subsets are drawn per class from a data seed (``data.seed``), independent of the network
seeds: the examples of a class do not depend on which other classes are asked for; the
training set for a smaller ``n_train`` is a subset of the one for a larger ``n_train``;
the test set does not depend on ``n_train``. For digits, train and test are disjoint
parts of the 1797 samples; for MNIST and CIFAR-10 they come from the official splits.
"""

import math
from dataclasses import dataclass

import numpy as np

from ntkpipe.datasets import arrays
from ntkpipe.datasets.files import (
    CIFAR10_FILES,
    MNIST_FILES,
    digits_file,
    missing_files,
    read_cifar10,
    read_digits,
    read_idx,
    read_mnist,
)
from ntkpipe.datasets.sizes import (
    CIFAR10_CLASS_COUNTS,
    DIGITS_CLASS_COUNTS,
    MNIST_CLASS_COUNTS,
    size_problems,
    split_sizes,
)
from ntkpipe.datasets.subsets import class_index, class_rows, encode_targets, select_examples
from ntkpipe.errors import DatasetError

__all__ = [
    "DATASETS",
    "PREPROCESS",
    "PRECISIONS",
    "INPUT_SHAPES",
    "N_CLASSES",
    "CIFAR10_CLASSES",
    "DIGITS_CLASS_COUNTS",
    "MNIST_CLASS_COUNTS",
    "CIFAR10_CLASS_COUNTS",
    "MNIST_FILES",
    "CIFAR10_FILES",
    "Dataset",
    "load_dataset",
    "from_config",
    "preprocess",
    "split_sizes",
    "size_problems",
    "missing_files",
    "read_idx",
    "read_mnist",
    "read_cifar10",
    "digits_file",
]

DATASETS = ("digits", "mnist", "cifar10", "arrays")
PREPROCESS = ("standardize", "l2", "none")
PRECISIONS = {"float32": np.float32, "float64": np.float64}
"""The config's ``precision`` → the numpy dtype of inputs and targets."""
INPUT_SHAPES = {"digits": (8, 8, 1), "mnist": (28, 28, 1), "cifar10": (32, 32, 3)}
N_CLASSES = {"digits": 10, "mnist": 10, "cifar10": 10}
CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)

_PIXEL_MAX = {"digits": 16.0, "mnist": 255.0, "cifar10": 255.0}
_DATA_KEYS = (
    "dataset",
    "root",
    "path",
    "input_shape",
    "classes",
    "n_train",
    "n_test",
    "preprocess",
    "seed",
)


@dataclass(frozen=True, eq=False)
class Dataset:
    """A classification task ready for training.

    Attributes:
        name: the dataset ("digits", "mnist", "cifar10").
        x_train: float32 [n_train, d_in] (float64 with precision="float64"), flat H × W × C
            rows, preprocessed.
        y_train: float32 [n_train, k] (float64 likewise): k = 1 with targets −1 / +1 for a
            binary task (first class −1), else one-hot with k = number of classes.
        x_test: [n_test, d_in], the dtype of x_train.
        y_test: [n_test, k], the dtype of y_train.
        labels_train: int32 [n_train], index into ``classes`` of each example.
        labels_test: int32 [n_test].
        index_train: int64 [n_train], row of each example in its source split
            (digits: the 1797 samples; MNIST / CIFAR-10: the official train split).
        index_test: int64 [n_test], same for the test examples.
        input_shape: (H, W, C) of one example, for conv nets.
        classes: the dataset's class labels, in target order.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    labels_train: np.ndarray
    labels_test: np.ndarray
    index_train: np.ndarray
    index_test: np.ndarray
    input_shape: tuple
    classes: tuple

    @property
    def n_outputs(self):
        """k, the number of target columns (network outputs)."""
        return self.y_train.shape[1]


def load_dataset(data=None, /, **kwargs):
    """Loads a class-balanced classification task.

    Args:
        data: optional mapping with the keys of the config's ``data`` section
            (dataset, root, classes, n_train, n_test, preprocess, seed).
        **kwargs: the same keys as keyword arguments (they override ``data``), plus
            ``one_hot``: None (default) gives ±1 targets for two classes and one-hot
            targets otherwise; True always gives one-hot targets (cross-entropy); and
            ``precision``: "float32" (default) or "float64", the dtype of inputs and
            targets (preprocessing is done in float64 either way).
            Defaults: root=None, preprocess="standardize", seed=0.

    Returns:
        A ``Dataset``.

    Raises:
        DatasetError: an argument out of range (the message names it and what is
            allowed), missing or malformed files, or too few examples of a class.
    """
    args = _resolve_args(data, kwargs)
    if args["dataset"] == "arrays":
        return _load_arrays(args)
    _check_args(args)
    name, classes = args["dataset"], args["classes"]
    x_pool, y_pool = _read_split(name, args["root"])
    sel_train, sel_test = select_examples(
        name, y_pool, classes, args["n_train"], args["n_test"], args
    )
    x_train = x_pool["train"][sel_train].reshape(len(sel_train), -1) / _PIXEL_MAX[name]
    x_test = x_pool["test"][sel_test].reshape(len(sel_test), -1) / _PIXEL_MAX[name]
    dtype = PRECISIONS[args["precision"]]
    x_train, x_test = preprocess(x_train, x_test, args["preprocess"], dtype=dtype)
    labels_train = class_index(y_pool["train"][sel_train], classes)
    labels_test = class_index(y_pool["test"][sel_test], classes)
    one_hot = bool(args["one_hot"]) or len(classes) > 2
    return Dataset(
        name=name,
        x_train=x_train,
        y_train=encode_targets(labels_train, len(classes), one_hot).astype(dtype),
        x_test=x_test,
        y_test=encode_targets(labels_test, len(classes), one_hot).astype(dtype),
        labels_train=labels_train,
        labels_test=labels_test,
        index_train=np.asarray(sel_train, dtype=np.int64),
        index_test=np.asarray(sel_test, dtype=np.int64),
        input_shape=INPUT_SHAPES[name],
        classes=tuple(classes),
    )


def from_config(config):
    """The dataset of a validated (run) configuration, in its ``precision`` (default float32).

    Cross-entropy (``training.loss: xent``) gets one-hot targets even for two classes,
    so the network has one logit per class.
    """
    one_hot = config.get("training", {}).get("loss") == "xent"
    return load_dataset(
        config["data"], one_hot=one_hot, precision=config.get("precision", "float32")
    )


def preprocess(x_train, x_test, method, *, dtype=np.float32):
    """Preprocesses inputs with statistics of the training set only.

    Args:
        x_train: [n_train, d_in] inputs (pixel values in [0, 1]).
        x_test: [n_test, d_in] inputs.
        method: "standardize": per-feature zero mean and unit variance with the
            training mean and standard deviation (features constant on the training
            set become 0), then each example rescaled to ‖x‖² = d_in, so that the
            input kernel x·x'/d_in has a unit diagonal; "l2": only the rescaling;
            "none": inputs unchanged.
        dtype: the dtype of the result (float32 or float64); the statistics are computed in
            float64 whatever it is.

    Returns:
        (x_train, x_test) as arrays of ``dtype`` of the same shapes. An all-zero example
        stays zero.
    """
    if method not in PREPROCESS:
        raise DatasetError(f"data.preprocess: {method!r} is not one of {', '.join(PREPROCESS)}")
    x_train = np.asarray(x_train, dtype=np.float64)
    x_test = np.asarray(x_test, dtype=np.float64)
    if method == "standardize":
        x_train, x_test = _standardize(x_train, x_test)
    if method in ("standardize", "l2"):
        x_train, x_test = _unit_kernel_diagonal(x_train), _unit_kernel_diagonal(x_test)
    return x_train.astype(dtype), x_test.astype(dtype)


# ----------------------------------------------------------------------------- private


def _resolve_args(data, kwargs):
    args = dict(data or {})
    args.update(kwargs)
    unknown = sorted(set(args) - set(_DATA_KEYS) - {"one_hot", "precision"})
    if unknown:
        raise DatasetError(
            f"load_dataset: unknown argument(s) {', '.join(unknown)}; allowed: "
            f"{', '.join(_DATA_KEYS)}, one_hot, precision"
        )
    for key in ("dataset", "classes", "n_train", "n_test"):
        if key not in args:
            raise DatasetError(f"load_dataset: data.{key} is required")
    defaults = {
        "root": None,
        "path": None,
        "input_shape": None,
        "preprocess": "standardize",
        "seed": 0,
        "one_hot": None,
        "precision": "float32",
    }
    return {**defaults, **args}


def _check_args(args):
    name = args["dataset"]
    if name not in DATASETS:
        raise DatasetError(f"data.dataset: {name!r} is not one of {', '.join(DATASETS)}")
    if args["precision"] not in PRECISIONS:
        raise DatasetError(
            f"precision: {args['precision']!r} is not one of {', '.join(PRECISIONS)}"
        )
    if args["preprocess"] not in PREPROCESS:
        raise DatasetError(
            f"data.preprocess: {args['preprocess']!r} is not one of {', '.join(PREPROCESS)}"
        )
    for key in ("n_train", "n_test"):
        if not _is_int(args[key]) or args[key] < 1:
            raise DatasetError(f"data.{key}: {args[key]!r} must be a positive integer")
    if not _is_int(args["seed"]) or args["seed"] < 0:
        raise DatasetError(f"data.seed: {args['seed']!r} must be a non-negative integer")
    classes = args["classes"]
    n_cls = N_CLASSES[name]
    ok = isinstance(classes, list | tuple) and all(_is_int(c) for c in classes)
    if not ok or len(set(classes)) != len(classes) or len(classes) < 2:
        raise DatasetError(
            f"data.classes: {classes!r} must list at least 2 distinct class labels "
            f"(integers 0 … {n_cls - 1})"
        )
    bad = [c for c in classes if not 0 <= c < n_cls]
    if bad:
        raise DatasetError(
            f"data.classes: {bad} not among the classes of {name} (integers 0 … {n_cls - 1})"
        )
    args["classes"] = tuple(int(c) for c in classes)


def _load_arrays(args):
    """The task of ``data.dataset: arrays`` (:mod:`ntkpipe.datasets.arrays`): class-balanced
    seeded subsets of the labels in data.classes, or seeded subsets of real-valued targets."""
    problems = arrays.problems(args, "xent" if args["one_hot"] else "mse")
    if problems:
        raise DatasetError("; ".join(problems))
    if args["precision"] not in PRECISIONS:
        raise DatasetError(
            f"precision: {args['precision']!r} is not one of {', '.join(PRECISIONS)}"
        )
    pool = arrays.read(args["path"])
    x_pool = {split: pool[f"x_{split}"] for split in ("train", "test")}
    y_pool = {split: pool[f"y_{split}"] for split in ("train", "test")}
    dtype, seed = PRECISIONS[args["precision"]], int(args["seed"])
    if arrays.is_regression(pool):
        sel_train = class_rows(np.zeros(len(y_pool["train"])), 0, seed, 1)[: args["n_train"]]
        sel_test = class_rows(np.zeros(len(y_pool["test"])), 0, seed, 2)[: args["n_test"]]
        y_train, y_test = (
            y_pool[s][sel].reshape(len(sel), -1)
            for s, sel in (("train", sel_train), ("test", sel_test))
        )
        labels_train = np.zeros(len(sel_train), np.int32)
        labels_test = np.zeros(len(sel_test), np.int32)
        classes = ()
    else:
        classes = tuple(int(c) for c in args["classes"])
        sel_train, sel_test = select_examples(
            "arrays", y_pool, classes, args["n_train"], args["n_test"], args
        )
        labels_train = class_index(y_pool["train"][sel_train], classes)
        labels_test = class_index(y_pool["test"][sel_test], classes)
        one_hot = bool(args["one_hot"]) or len(classes) > 2
        y_train = encode_targets(labels_train, len(classes), one_hot)
        y_test = encode_targets(labels_test, len(classes), one_hot)
    x_train = x_pool["train"][sel_train].reshape(len(sel_train), -1)
    x_test = x_pool["test"][sel_test].reshape(len(sel_test), -1)
    x_train, x_test = preprocess(x_train, x_test, args["preprocess"], dtype=dtype)
    return Dataset(
        name="arrays",
        x_train=x_train,
        y_train=np.asarray(y_train, dtype=dtype),
        x_test=x_test,
        y_test=np.asarray(y_test, dtype=dtype),
        labels_train=labels_train,
        labels_test=labels_test,
        index_train=np.asarray(sel_train, dtype=np.int64),
        index_test=np.asarray(sel_test, dtype=np.int64),
        input_shape=arrays.input_shape(args),
        classes=classes,
    )


def _is_int(value):
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _read_split(name, root):
    """Pools of images and labels: {"train": x, "test": x}, {"train": y, "test": y}."""
    if name == "digits":
        x, y = read_digits()
        return {"train": x, "test": x}, {"train": y, "test": y}
    reader = read_mnist if name == "mnist" else read_cifar10
    x_train, y_train, x_test, y_test = reader(root)
    return {"train": x_train, "test": x_test}, {"train": y_train, "test": y_test}


def _standardize(x_train, x_test):
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    # A feature constant on the training set carries no information the network can
    # use; it becomes 0 everywhere (dividing by a zero std is undefined).
    keep = std > 1e-12
    scale = np.where(keep, std, 1.0)
    return (
        np.where(keep, (x_train - mean) / scale, 0.0),
        np.where(keep, (x_test - mean) / scale, 0.0),
    )


def _unit_kernel_diagonal(x):
    """Rescales each row to ‖x‖² = d_in, so that x·x/d_in = 1 (zero rows stay zero)."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x * np.where(norms > 0, math.sqrt(x.shape[1]) / np.where(norms > 0, norms, 1.0), 0.0)
