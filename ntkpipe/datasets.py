"""Datasets: scikit-learn's digits, MNIST and CIFAR-10 as small class-balanced tasks.

A task picks a few classes of a dataset and a class-balanced, deterministic subset of
``n_train`` training and ``n_test`` test examples. Inputs are flat float32 rows (float64 with
``precision="float64"``, the config's ``precision``)
``x [n, d_in]`` in H × W × C order (``x.reshape(n, *input_shape)`` gives images for conv
nets), preprocessed so that the input kernel x·x'/d_in has a unit diagonal (the paper's
§3 normalization). Targets follow the paper: a binary task regresses the two classes to
−1 / +1 (``y [n, 1]``, first class −1, as horses vs planes in Fig. 3); more classes, or
``one_hot=True`` (cross-entropy), give one-hot rows ``y [n, k]``.

Nothing is downloaded. Digits ship inside scikit-learn. MNIST and CIFAR-10 are read from
the original files in a folder the caller names (``root``): the idx files of
http://yann.lecun.com/exdb/mnist/ (optionally gzipped) and the python batches of
https://www.cs.toronto.edu/~kriz/cifar.html; a missing file is a ``DatasetError`` that
names the folder, the files expected and where to get them.

Subsets are drawn per class from a data seed (``data.seed``), independent of the network
seeds: the examples of a class do not depend on which other classes are asked for; the
training set for a smaller ``n_train`` is a subset of the one for a larger ``n_train``;
the test set does not depend on ``n_train``. For digits, train and test are disjoint
parts of the 1797 samples; for MNIST and CIFAR-10 they come from the official splits.
"""

import gzip
import importlib.util
import io
import math
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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
]

DATASETS = ("digits", "mnist", "cifar10")
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

# Examples per class in the files each dataset ships with. They let the configuration be
# checked without reading the data (importing scikit-learn alone takes about a second);
# tests compare them with the real counts where the data is at hand.
DIGITS_CLASS_COUNTS = (178, 182, 177, 183, 181, 182, 181, 179, 174, 180)
MNIST_CLASS_COUNTS = {
    "train": (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949),
    "test": (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009),
}
CIFAR10_CLASS_COUNTS = {"train": (5000,) * 10, "test": (1000,) * 10}

MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
CIFAR10_FILES = {
    "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test": ("test_batch",),
}
_MNIST_URL = "http://yann.lecun.com/exdb/mnist/ (or its mirror https://ossci-datasets.s3.amazonaws.com/mnist/)"
_CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
_PIXEL_MAX = {"digits": 16.0, "mnist": 255.0, "cifar10": 255.0}
_DATA_KEYS = ("dataset", "root", "classes", "n_train", "n_test", "preprocess", "seed")


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
    _check_args(args)
    name, classes = args["dataset"], args["classes"]
    x_pool, y_pool = _read_split(name, args["root"])
    sel_train, sel_test = _select(name, y_pool, classes, args["n_train"], args["n_test"], args)
    x_train = x_pool["train"][sel_train].reshape(len(sel_train), -1) / _PIXEL_MAX[name]
    x_test = x_pool["test"][sel_test].reshape(len(sel_test), -1) / _PIXEL_MAX[name]
    dtype = PRECISIONS[args["precision"]]
    x_train, x_test = preprocess(x_train, x_test, args["preprocess"], dtype=dtype)
    labels_train = _class_index(y_pool["train"][sel_train], classes)
    labels_test = _class_index(y_pool["test"][sel_test], classes)
    one_hot = bool(args["one_hot"]) or len(classes) > 2
    return Dataset(
        name=name,
        x_train=x_train,
        y_train=_targets(labels_train, len(classes), one_hot).astype(dtype),
        x_test=x_test,
        y_test=_targets(labels_test, len(classes), one_hot).astype(dtype),
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


def split_sizes(n, n_classes):
    """Examples per class of a class-balanced subset of n examples.

    The first ``n mod n_classes`` classes get one example more than the others.
    """
    base, extra = divmod(int(n), int(n_classes))
    return tuple(base + (1 if c < extra else 0) for c in range(n_classes))


def size_problems(dataset, classes, n_train, n_test):
    """Messages saying which classes have too few examples for the requested sizes.

    Uses the class counts of the original files (``*_CLASS_COUNTS``), so no data is
    read. Returns an empty list when the request fits.
    """
    want_train = split_sizes(n_train, len(classes))
    want_test = split_sizes(n_test, len(classes))
    if dataset == "digits":
        return _digits_size_problems(classes, n_train, n_test, want_train, want_test)
    counts = MNIST_CLASS_COUNTS if dataset == "mnist" else CIFAR10_CLASS_COUNTS
    problems = []
    for field, n, split in (("n_train", n_train, "train"), ("n_test", n_test, "test")):
        have = [counts[split][c] for c in classes]
        if n > _max_balanced(have):
            problems.append(
                f"data.{field}: {n} is more than the {dataset} {split} split holds for "
                f"classes {list(classes)} with balanced classes: at most "
                f"{_max_balanced(have)} (the classes have {', '.join(map(str, have))} examples)"
            )
    return problems


def missing_files(dataset, root):
    """Why the files of ``dataset`` cannot be found under ``root``, or None if they can.

    Digits needs no files (None). The message names ``data.root``, the folders searched,
    the file names expected and where to get them.
    """
    if dataset == "digits":
        return None
    try:
        _locate(dataset, root)
    except DatasetError as err:
        return str(err)
    return None


def read_idx(path):
    """Reads an idx file (the MNIST format), gzipped or not.

    The header is two zero bytes, a type code (0x08 unsigned byte, 0x09 signed byte,
    0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64), the number of dimensions, then
    each dimension as a big-endian uint32; the data follow in C order.

    Returns:
        An array of the stored shape and type.

    Raises:
        DatasetError: the header or the size does not match the format.
    """
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in _IDX_DTYPES:
        magic = raw[:4].hex() if raw else "empty file"
        raise DatasetError(
            f"{path}: not an idx file (magic number {magic}; expected 0000 then a type "
            f"code 08/09/0b/0c/0d/0e and the number of dimensions). Replace it with the "
            f"original file from {_MNIST_URL}."
        )
    ndim, dtype = raw[3], np.dtype(_IDX_DTYPES[raw[2]])
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetError(f"{path}: truncated idx header ({len(raw)} bytes, {ndim} dims)")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = math.prod(dims) * dtype.itemsize
    if len(raw) - header != expected:
        raise DatasetError(
            f"{path}: idx header announces shape {dims} ({expected} bytes of data) but the "
            f"file holds {len(raw) - header} bytes: truncated or corrupted; download it "
            f"again from {_MNIST_URL}."
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)


def read_mnist(root):
    """Reads the four original MNIST idx files under ``root``.

    Returns:
        (x_train uint8 [60000, 28, 28], y_train uint8 [60000], x_test uint8
        [10000, 28, 28], y_test uint8 [10000]) for the official files (any number of
        examples is accepted).
    """
    paths = _locate("mnist", root)
    arrays = {key: read_idx(path) for key, path in paths.items()}
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or images.shape[1:] != (28, 28):
            raise DatasetError(
                f"{paths[f'{split}_images']}: images of shape {images.shape[1:]}, MNIST "
                f"has 28 × 28 (array shape {images.shape})"
            )
        _check_labels(paths[f"{split}_labels"], labels, len(images))
    return (
        arrays["train_images"],
        arrays["train_labels"],
        arrays["test_images"],
        arrays["test_labels"],
    )


def read_cifar10(root):
    """Reads the original CIFAR-10 python batches under ``root`` (or its cifar-10-batches-py).

    Each batch is a pickled dict with b"data" (uint8 [n, 3072], the 1024 red, then green,
    then blue values of a 32 × 32 image) and b"labels" (n ints). Only numpy arrays and
    plain Python values are unpickled.

    Returns:
        (x_train uint8 [50000, 32, 32, 3], y_train int64 [50000], x_test uint8
        [10000, 32, 32, 3], y_test int64 [10000]) for the official files.
    """
    paths = _locate("cifar10", root)
    out = []
    for split in ("train", "test"):
        batches = [_read_cifar_batch(p) for p in paths[split]]
        out.append(np.concatenate([b[0] for b in batches]))
        out.append(np.concatenate([b[1] for b in batches]))
    return tuple(out)


# ----------------------------------------------------------------------------- private


_IDX_DTYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


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


def _is_int(value):
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _read_split(name, root):
    """Pools of images and labels: {"train": x, "test": x}, {"train": y, "test": y}."""
    if name == "digits":
        x, y = _read_digits()
        return {"train": x, "test": x}, {"train": y, "test": y}
    reader = read_mnist if name == "mnist" else read_cifar10
    x_train, y_train, x_test, y_test = reader(root)
    return {"train": x_train, "test": x_test}, {"train": y_train, "test": y_test}


def _read_digits():
    """scikit-learn's 1797 digits, images [1797, 8, 8, 1] (values 0 … 16) and labels [1797].

    Read from the file scikit-learn ships (``sklearn/datasets/data/digits.csv.gz``: 64 pixels
    and the label per row, what ``sklearn.datasets.load_digits`` parses) without importing
    scikit-learn, which takes about a second, most of a warm job's start-up.
    """
    path = digits_file()
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",")
    if table.shape != (1797, 65):
        raise DatasetError(
            f"{path}: expected 1797 rows of 64 pixels and a label, got {table.shape}"
        )
    return table[:, :-1].reshape(-1, 8, 8, 1), table[:, -1].astype(np.int64)


def digits_file() -> Path:
    """The digits table shipped inside scikit-learn (found without importing scikit-learn)."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError(
            "data.dataset: 'digits' is read from scikit-learn's package data, but scikit-learn "
            "is not installed; pip install scikit-learn"
        )
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz"
    if not path.is_file():
        raise DatasetError(f"data.dataset: 'digits': {path} is missing from scikit-learn")
    return path


def _select(name, y_pool, classes, n_train, n_test, args):
    """Row indices of the training and test examples (class-balanced, seeded)."""
    want_train = split_sizes(n_train, len(classes))
    want_test = split_sizes(n_test, len(classes))
    seed = int(args["seed"])
    train, test = [], []
    for c, n_c, m_c in zip(classes, want_train, want_test, strict=True):
        if name == "digits":
            rows = _class_rows(y_pool["train"], c, seed, tag=0)
            _check_count(name, "all 1797 samples", c, len(rows), n_c + m_c, args)
            train.append(rows[:n_c])
            test.append(rows[len(rows) - m_c :])
            continue
        rows_train = _class_rows(y_pool["train"], c, seed, tag=1)
        rows_test = _class_rows(y_pool["test"], c, seed, tag=2)
        _check_count(name, "the train split", c, len(rows_train), n_c, args)
        _check_count(name, "the test split", c, len(rows_test), m_c, args)
        train.append(rows_train[:n_c])
        test.append(rows_test[:m_c])
    return _shuffle(np.concatenate(train), seed, 3), _shuffle(np.concatenate(test), seed, 4)


def _class_rows(labels, c, seed, tag):
    """The rows of class c in a fixed random order that depends only on (seed, c, tag)."""
    rows = np.flatnonzero(np.asarray(labels) == c)
    rng = np.random.default_rng(np.random.SeedSequence([seed, tag, int(c)]))
    return rows[rng.permutation(len(rows))]


def _shuffle(rows, seed, tag):
    rng = np.random.default_rng(np.random.SeedSequence([seed, tag, len(rows)]))
    return rows[rng.permutation(len(rows))]


def _check_count(name, where, c, have, want, args):
    if want > have:
        raise DatasetError(
            f"data.n_train / data.n_test: {args['n_train']} / {args['n_test']} need {want} "
            f"example(s) of class {c} from {where} of {name}, which has {have}; lower them or "
            f"choose other classes"
        )


def _class_index(labels, classes):
    lookup = {c: i for i, c in enumerate(classes)}
    return np.array([lookup[int(v)] for v in labels], dtype=np.int32)


def _targets(labels, n_classes, one_hot):
    if one_hot:
        return np.eye(n_classes, dtype=np.float32)[labels]
    return np.where(labels == 0, -1.0, 1.0).astype(np.float32)[:, None]


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


def _digits_size_problems(classes, n_train, n_test, want_train, want_test):
    have = [DIGITS_CLASS_COUNTS[c] for c in classes]
    short = [
        (c, w + m, h)
        for c, w, m, h in zip(classes, want_train, want_test, have, strict=True)
        if w + m > h
    ]
    if not short:
        return []
    c, need, h = short[0]
    return [
        f"data.n_train: {n_train} with data.n_test: {n_test} needs {need} examples of digit "
        f"{c} but digits has {h}; classes {list(classes)} have {', '.join(map(str, have))} "
        f"samples, so n_train + n_test can be at most about {_max_balanced(have)} (balanced "
        f"classes; train and test are split from the 1797 samples)"
    ]


def _max_balanced(have):
    """The largest n whose class-balanced split (``split_sizes``) fits the class counts."""
    n = min(have) * len(have)
    while all(w <= h for w, h in zip(split_sizes(n + 1, len(have)), have, strict=True)):
        n += 1
    return n


def _locate(dataset, root):
    """Paths of the files of ``dataset`` under ``root``; DatasetError naming what is missing."""
    label = {"mnist": "MNIST", "cifar10": "CIFAR-10"}[dataset]
    if root is None:
        raise DatasetError(
            f"data.root: null, but data.dataset {dataset} needs the folder holding the "
            f"original {label} files ({_expected_text(dataset)}); set data.root to it"
        )
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(
            f"data.root: {str(root)!r} is not a folder; {label} needs a folder holding "
            f"{_expected_text(dataset)} ({_source_text(dataset)})"
        )
    if dataset == "mnist":
        return _locate_mnist(root)
    return _locate_cifar10(root)


def _locate_mnist(root):
    folders = [root, root / "mnist", root / "MNIST" / "raw"]
    found, missing = {}, []
    for key, name in MNIST_FILES.items():
        path = _first_existing(folders, [name, name + ".gz", name.replace("-idx", ".idx")])
        if path is None:
            missing.append(name)
        found[key] = path
    if missing:
        raise DatasetError(_missing_text("mnist", root, folders, missing))
    return found


def _locate_cifar10(root):
    folders = [root / "cifar-10-batches-py", root]
    for folder in folders:
        names = [*CIFAR10_FILES["train"], *CIFAR10_FILES["test"]]
        if all((folder / n).is_file() for n in names):
            return {split: [folder / n for n in CIFAR10_FILES[split]] for split in CIFAR10_FILES}
    names = [*CIFAR10_FILES["train"], *CIFAR10_FILES["test"]]
    missing = [n for n in names if not any((f / n).is_file() for f in folders)]
    raise DatasetError(_missing_text("cifar10", root, folders, missing or names))


def _first_existing(folders, names):
    for folder in folders:
        for name in names:
            if (folder / name).is_file():
                return folder / name
    return None


def _missing_text(dataset, root, folders, missing):
    searched = ", ".join(str(f) for f in folders)
    return (
        f"data.root: {str(root)!r} lacks the {dataset} file(s) {', '.join(missing)} "
        f"(searched {searched}); expected {_expected_text(dataset)}. {_source_text(dataset)}"
    )


def _expected_text(dataset):
    if dataset == "mnist":
        return ", ".join(MNIST_FILES.values()) + " (each optionally gzipped: .gz)"
    return "cifar-10-batches-py/ with data_batch_1 … data_batch_5 and test_batch"


def _source_text(dataset):
    if dataset == "mnist":
        return f"Get the original files from {_MNIST_URL} and put them in that folder."
    return f"Get {_CIFAR10_URL} and extract it in that folder (tar xzf)."


def _read_bytes(path):
    path = Path(path)
    try:
        raw = path.read_bytes()
        return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise DatasetError(f"{path}: cannot be read ({err})") from err


def _check_labels(path, labels, n_images):
    if labels.ndim != 1 or len(labels) != n_images:
        raise DatasetError(
            f"{path}: {labels.shape} labels for {n_images} images; the label file must hold "
            f"one label per image"
        )
    if len(labels) and not (0 <= labels.min() and labels.max() <= 9):
        raise DatasetError(f"{path}: labels outside 0 … 9 ({labels.min()} … {labels.max()})")


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain values and numpy arrays, nothing else (no arbitrary code)."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"): ("numpy", "ndarray"),
        ("numpy", "dtype"): ("numpy", "dtype"),
        # protocol-2 pickles written by Python 3 encode bytes through _codecs.encode
        ("_codecs", "encode"): ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        target = self._ALLOWED.get((module, name))
        if target is None:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")
        return super().find_class(*target)


def _read_cifar_batch(path):
    try:
        batch = _NumpyOnlyUnpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (OSError, EOFError, pickle.UnpicklingError, KeyError, TypeError, ValueError) as err:
        raise DatasetError(
            f"{path}: not a CIFAR-10 python batch ({type(err).__name__}: {err}); expected a "
            f"pickled dict with b'data' (uint8 [n, 3072]) and b'labels'. Get the original "
            f"files: {_CIFAR10_URL}"
        ) from err
    if data.ndim != 2 or data.shape[1] != 3072:
        raise DatasetError(f"{path}: b'data' has shape {data.shape}, expected [n, 3072]")
    _check_labels(path, labels, len(data))
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels
