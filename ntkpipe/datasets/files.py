"""Reading the original dataset files: the digits table shipped in the package, MNIST's idx
files (gzipped or not) and CIFAR-10's python batches; every malformed file is a DatasetError
naming it.

Part of :mod:`ntkpipe.datasets` (which re-exports the public names).
"""

import gzip
import io
import math
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np

from ntkpipe.errors import DatasetError

__all__ = [
    "MNIST_FILES",
    "CIFAR10_FILES",
    "DIGITS_FILE",
    "digits_file",
    "missing_files",
    "read_idx",
    "read_mnist",
    "read_cifar10",
]

# scikit-learn's digits table, shipped as package data: a copy of
# sklearn/datasets/data/digits.csv.gz (scikit-learn, BSD 3-Clause license; the data are the UCI
# "Optical Recognition of Handwritten Digits" test set, CC BY 4.0), see ntkpipe/data/NOTICE.
DIGITS_FILE = Path(__file__).resolve().parents[1] / "data" / "digits.csv.gz"

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


def missing_files(dataset, root):
    """Why the files of ``dataset`` cannot be found under ``root``, or None if they can.

    Digits needs no files (None). The message names ``data.root``, the folders searched,
    the file names expected and where to get them.
    """
    if dataset in ("digits", "arrays"):  # arrays: ntkpipe.datasets.arrays.problems
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


_IDX_DTYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_digits():
    """scikit-learn's 1797 digits, images [1797, 8, 8, 1] (values 0 … 16) and labels [1797].

    Read from the copy of scikit-learn's table shipped in the package (:data:`DIGITS_FILE`: 64
    pixels and the label per row, what ``sklearn.datasets.load_digits`` parses): scikit-learn
    is not needed.
    """
    path = digits_file()
    try:
        with gzip.open(path, "rt") as f:
            table = np.loadtxt(f, delimiter=",")
    except (OSError, EOFError, zlib.error, ValueError) as err:
        raise DatasetError(
            f"{path}: cannot be read ({type(err).__name__}: {err}); the package's copy of "
            f"scikit-learn's digits table is damaged: reinstall ntkpipe"
        ) from err
    if table.shape != (1797, 65):
        raise DatasetError(
            f"{path}: expected 1797 rows of 64 pixels and a label, got {table.shape}"
        )
    return table[:, :-1].reshape(-1, 8, 8, 1), table[:, -1].astype(np.int64)


def digits_file() -> Path:
    """The digits table shipped in the package (:data:`DIGITS_FILE`)."""
    if not DIGITS_FILE.is_file():
        raise DatasetError(
            f"data.dataset: 'digits': {DIGITS_FILE} is missing from the installed package; "
            f"reinstall ntkpipe"
        )
    return DIGITS_FILE


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
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise DatasetError(
            f"{path}: cannot be read ({type(err).__name__}: {err}): a damaged download? "
            f"Get the original file again"
        ) from err


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
