"""Tests of ntkpipe.datasets: digits, and the MNIST / CIFAR-10 readers on tiny real-format files."""

import gzip
import math
import os
import pickle
import struct
import subprocess
import sys

import numpy as np
import pytest

from ntkpipe import datasets
from ntkpipe.errors import DatasetError


def _sklearn_load_digits():
    """scikit-learn's reader, the reference for the shipped table (a test dependency only)."""
    return pytest.importorskip(
        "sklearn.datasets", reason="scikit-learn is not installed (pip install -e '.[test]')"
    ).load_digits


def _digits(**kwargs):
    args = dict(dataset="digits", classes=[3, 8], n_train=40, n_test=30)
    return datasets.load_dataset(**{**args, **kwargs})


# ----------------------------------------------------------------------------- digits


def test_digits_binary_task_shapes_targets_and_balance():
    ds = _digits()
    assert ds.x_train.shape == (40, 64) and ds.x_test.shape == (30, 64)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.float32
    assert ds.y_train.shape == (40, 1) and ds.n_outputs == 1
    assert ds.input_shape == (8, 8, 1) and ds.classes == (3, 8)
    # first class -> -1, second -> +1
    np.testing.assert_array_equal(ds.y_train[:, 0], np.where(ds.labels_train == 0, -1.0, 1.0))
    assert np.bincount(ds.labels_train).tolist() == [20, 20]
    assert np.bincount(ds.labels_test).tolist() == [15, 15]


def test_digits_examples_are_the_sklearn_samples_of_the_right_class():
    load_digits = _sklearn_load_digits()

    ref = load_digits()
    ds = _digits(preprocess="none")
    np.testing.assert_allclose(ds.x_train, ref.data[ds.index_train] / 16.0, rtol=1e-6)
    np.testing.assert_allclose(ds.x_test, ref.data[ds.index_test] / 16.0, rtol=1e-6)
    np.testing.assert_array_equal(np.array([3, 8])[ds.labels_train], ref.target[ds.index_train])
    np.testing.assert_array_equal(np.array([3, 8])[ds.labels_test], ref.target[ds.index_test])


def test_digits_are_read_as_load_digits_parses_them_without_importing_sklearn():
    load_digits = _sklearn_load_digits()

    images, labels = datasets.read_digits()
    ref = load_digits()
    assert images.shape == (1797, 8, 8, 1) and labels.dtype == ref.target.dtype
    np.testing.assert_array_equal(images[..., 0], ref.images)
    np.testing.assert_array_equal(labels, ref.target)
    script = (
        "import sys; from ntkpipe import datasets; datasets.read_digits(); "
        "print('sklearn' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "False", result.stderr


def test_the_shipped_digits_table_is_scikit_learns_file():
    sklearn_datasets = pytest.importorskip("sklearn.datasets", reason="scikit-learn missing")
    from pathlib import Path

    theirs = Path(sklearn_datasets.__file__).parent / "data" / "digits.csv.gz"
    assert datasets.digits_file().read_bytes() == theirs.read_bytes()


def test_digits_class_counts_constant_matches_sklearn():
    load_digits = _sklearn_load_digits()

    counts = np.bincount(load_digits().target)
    assert tuple(counts.tolist()) == datasets.DIGITS_CLASS_COUNTS


def test_train_and_test_are_disjoint_and_selection_is_deterministic():
    a, b = _digits(seed=5), _digits(seed=5)
    assert not set(a.index_train) & set(a.index_test)
    np.testing.assert_array_equal(a.index_train, b.index_train)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    c = _digits(seed=6)
    assert set(c.index_train) != set(a.index_train)


def test_smaller_training_set_is_a_subset_and_test_set_does_not_depend_on_n_train():
    small, large = _digits(n_train=20), _digits(n_train=100)
    assert set(small.index_train) < set(large.index_train)
    assert set(small.index_test) == set(large.index_test)


def test_class_examples_do_not_depend_on_the_other_classes():
    a = datasets.load_dataset(dataset="digits", classes=[3, 8], n_train=20, n_test=10)
    b = datasets.load_dataset(dataset="digits", classes=[3, 5], n_train=20, n_test=10)
    threes_a = set(a.index_train[a.labels_train == 0])
    threes_b = set(b.index_train[b.labels_train == 0])
    assert threes_a == threes_b


def test_multiclass_one_hot_targets():
    ds = datasets.load_dataset(dataset="digits", classes=[0, 1, 2], n_train=31, n_test=9)
    assert ds.y_train.shape == (31, 3)
    np.testing.assert_array_equal(ds.y_train.sum(axis=1), 1.0)
    np.testing.assert_array_equal(ds.y_train.argmax(axis=1), ds.labels_train)
    assert np.bincount(ds.labels_train).tolist() == [11, 10, 10]  # remainder to the first


def test_binary_one_hot_for_cross_entropy_from_config():
    config = {
        "data": dict(
            dataset="digits",
            root=None,
            classes=[3, 8],
            n_train=10,
            n_test=10,
            preprocess="l2",
            seed=0,
        ),
        "training": {"loss": "xent"},
    }
    ds = datasets.from_config(config)
    assert ds.y_train.shape == (10, 2)
    np.testing.assert_array_equal(ds.y_train.argmax(axis=1), ds.labels_train)


@pytest.mark.parametrize("method", ["standardize", "l2"])
def test_preprocessed_inputs_have_unit_kernel_diagonal(method):
    ds = _digits(preprocess=method)
    d = ds.x_train.shape[1]
    np.testing.assert_allclose((ds.x_train**2).sum(axis=1) / d, 1.0, rtol=1e-5)
    np.testing.assert_allclose((ds.x_test**2).sum(axis=1) / d, 1.0, rtol=1e-5)


def test_float64_precision_keeps_the_float64_preprocessing():
    """precision="float64": the same examples and targets, without the float32 rounding: the
    input kernel's diagonal is 1 to float64 accuracy (from_config reads the config's precision)."""
    low = _digits()
    config = {"data": dict(dataset="digits", classes=[3, 8], n_train=40, n_test=30)}
    high = datasets.from_config({**config, "precision": "float64"})
    for name in ("x_train", "y_train", "x_test", "y_test"):
        assert getattr(low, name).dtype == np.float32 and getattr(high, name).dtype == np.float64
        np.testing.assert_allclose(getattr(high, name), getattr(low, name), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(high.index_train, low.index_train)
    d = high.x_train.shape[1]
    np.testing.assert_allclose((high.x_train**2).sum(axis=1) / d, 1.0, rtol=1e-13)
    assert datasets.from_config(config).x_train.dtype == np.float32  # the default


def test_standardize_uses_training_statistics_and_zeroes_constant_features():
    x_train = np.array([[0.0, 1.0, 2.0], [2.0, 1.0, 4.0]])  # mean [1, 1, 3], std [1, 0, 1]
    x_test = np.array([[1.0, 5.0, 3.0], [3.0, 7.0, 3.0]])
    tr, te = datasets.preprocess(x_train, x_test, "standardize")
    s = math.sqrt(3 / 2)  # rows (±1, 0, ±1) rescaled to squared norm d_in = 3
    np.testing.assert_allclose(tr, [[-s, 0, -s], [s, 0, s]], rtol=1e-6)
    # test row 0 is the training mean: zero after standardizing, and stays zero;
    # test row 1 standardizes to (2, 0, 0), rescaled to (√3, 0, 0)
    np.testing.assert_allclose(te, [[0, 0, 0], [math.sqrt(3), 0, 0]], rtol=1e-6)


def test_l2_only_rescales_and_none_leaves_inputs_alone():
    x = np.array([[3.0, 4.0], [0.0, 0.0]])
    tr, _ = datasets.preprocess(x, x, "l2")
    np.testing.assert_allclose(tr, [[3 * math.sqrt(2) / 5, 4 * math.sqrt(2) / 5], [0, 0]])
    tr, _ = datasets.preprocess(x, x, "none")
    np.testing.assert_array_equal(tr, x)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(n_train=300, n_test=100), ["data.n_train", "of class", "which has"]),
        (dict(classes=[3, 12]), ["data.classes", "12", "0 … 9"]),
        (dict(classes=[3]), ["data.classes", "at least 2"]),
        (dict(dataset="svhn"), ["data.dataset", "'svhn'", "digits, mnist, cifar10"]),
        (dict(preprocess="whiten"), ["data.preprocess", "'whiten'", "standardize"]),
        (dict(n_train=0), ["data.n_train", "positive integer"]),
        (dict(precision="float16"), ["precision", "'float16'", "float32, float64"]),
    ],
)
def test_bad_arguments_name_field_value_and_allowed(kwargs, words):
    with pytest.raises(DatasetError) as err:
        _digits(**kwargs)
    for word in words:
        assert word in str(err.value)


def test_size_problems_match_what_loading_allows():
    assert datasets.size_problems("digits", [3, 8], 174, 174) == []
    (message,) = datasets.size_problems("digits", [3, 8], 176, 174)  # 88 + 87 > 174 eights
    assert "digit 8" in message and "174" in message
    assert datasets.size_problems("mnist", [0, 1], 11846, 1960) == []
    (message,) = datasets.size_problems("mnist", [0, 1], 11848, 10)
    assert "data.n_train: 11848" in message and "5923" in message


# ----------------------------------------------------------------------------- MNIST


def _write_idx(path, array, gz=False):
    codes = {np.uint8: 0x08, np.int32: 0x0C}
    header = struct.pack(">BBBB", 0, 0, codes[array.dtype.type], array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)


def _mnist_split(n, offset):
    """Images whose pixel (0, 0) is the row index and (0, 1) is 20 × label."""
    labels = (np.arange(n) % 10).astype(np.uint8)
    images = np.zeros((n, 28, 28), dtype=np.uint8)
    images[:, 0, 0] = np.arange(n) + offset
    images[:, 0, 1] = 20 * labels
    images[:, 5:9, 5:9] = 100 + np.arange(n)[:, None, None]  # non-constant features
    return images, labels


def _make_mnist(folder, n_train=40, n_test=30, gz=False):
    folder.mkdir(parents=True, exist_ok=True)
    x_train, y_train = _mnist_split(n_train, 0)
    x_test, y_test = _mnist_split(n_test, 100)
    _write_idx(folder / "train-images-idx3-ubyte", x_train, gz)
    _write_idx(folder / "train-labels-idx1-ubyte", y_train, gz)
    _write_idx(folder / "t10k-images-idx3-ubyte", x_test, gz)
    _write_idx(folder / "t10k-labels-idx1-ubyte", y_test, gz)


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_reader_on_tiny_idx_files(tmp_path, gz):
    _make_mnist(tmp_path, gz=gz)
    x_train, y_train, x_test, y_test = datasets.read_mnist(tmp_path)
    assert x_train.shape == (40, 28, 28) and x_test.shape == (30, 28, 28)
    np.testing.assert_array_equal(x_train[:, 0, 0], np.arange(40))
    np.testing.assert_array_equal(y_test, np.arange(30) % 10)


def test_mnist_task_picks_the_right_examples(tmp_path):
    _make_mnist(tmp_path / "MNIST" / "raw")  # torchvision's layout is found too
    ds = datasets.load_dataset(
        dataset="mnist", root=tmp_path, classes=[7, 2], n_train=6, n_test=4, preprocess="none"
    )
    assert ds.input_shape == (28, 28, 1) and ds.x_train.shape == (6, 784)
    pixels = np.rint(ds.x_train * 255).astype(int)
    np.testing.assert_array_equal(pixels[:, 0], ds.index_train)  # pixel (0, 0) = row
    np.testing.assert_array_equal(pixels[:, 1] // 20, np.array([7, 2])[ds.labels_train])
    test_pixels = np.rint(ds.x_test * 255).astype(int)
    np.testing.assert_array_equal(test_pixels[:, 0], ds.index_test + 100)
    assert np.bincount(ds.labels_train).tolist() == [3, 3]
    # first class (7) is the −1 target
    np.testing.assert_array_equal(ds.y_train[:, 0], np.where(ds.labels_train == 0, -1.0, 1.0))


def test_mnist_too_few_examples_in_the_files(tmp_path):
    _make_mnist(tmp_path)
    with pytest.raises(DatasetError, match="of class 7"):
        datasets.load_dataset(dataset="mnist", root=tmp_path, classes=[7, 2], n_train=20, n_test=4)


def test_mnist_missing_files_name_folder_files_and_source(tmp_path):
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"")
    with pytest.raises(DatasetError) as err:
        datasets.load_dataset(dataset="mnist", root=tmp_path, classes=[0, 1], n_train=2, n_test=2)
    text = str(err.value)
    assert str(tmp_path) in text and "data.root" in text
    assert "t10k-images-idx3-ubyte" in text and "train-labels-idx1-ubyte" in text
    assert "http" in text
    assert datasets.missing_files("mnist", tmp_path) == text
    assert datasets.missing_files("digits", None) is None
    assert "data.root: null" in datasets.missing_files("mnist", None)


def test_idx_reader_rejects_bad_magic_and_truncated_files(tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x00\x01\x08\x01" + b"\x00" * 8)
    with pytest.raises(DatasetError, match="not an idx file"):
        datasets.read_idx(bad)
    short = tmp_path / "short"
    short.write_bytes(struct.pack(">BBBBI", 0, 0, 8, 1, 10) + b"\x00" * 9)
    with pytest.raises(DatasetError, match=r"announces shape \(10,\)"):
        datasets.read_idx(short)
    ints = tmp_path / "ints"
    _write_idx(ints, np.arange(6, dtype=np.int32).reshape(2, 3))
    np.testing.assert_array_equal(datasets.read_idx(ints), np.arange(6).reshape(2, 3))


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_a_corrupt_gz_mnist_file_is_named(tmp_path, damage):
    """issue 10, failure 12: a corrupt .gz gave an uncaught zlib.error traceback."""
    _make_mnist(tmp_path, gz=True)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    raw = bytearray(path.read_bytes())
    if damage == "flip":
        raw[20:60] = bytes(40)  # the deflate stream, past the 10-byte gzip header
    else:
        raw = raw[: len(raw) // 2]
    path.write_bytes(bytes(raw))
    with pytest.raises(DatasetError) as err:
        datasets.load_dataset(
            dataset="mnist", root=str(tmp_path), classes=[0, 1], n_train=8, n_test=4
        )
    assert str(err.value).startswith(f"{path}: cannot be read (")


# ----------------------------------------------------------------------------- CIFAR-10


def _cifar_batch(n, offset):
    """Batch whose red plane at (h, w) is h, green is w, blue is the row index."""
    labels = [(offset + i) % 10 for i in range(n)]
    planes = np.zeros((n, 3, 32, 32), dtype=np.uint8)
    planes[:, 0] = np.arange(32)[None, :, None]
    planes[:, 1] = np.arange(32)[None, None, :]
    planes[:, 2] = (offset + np.arange(n))[:, None, None]
    return {
        b"batch_label": b"tiny",
        b"labels": labels,
        b"data": planes.reshape(n, 3072),
        b"filenames": [b"x.png"] * n,
    }


def _make_cifar(folder, old_numpy_names=False):
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for k, name in enumerate(names):
        raw = pickle.dumps(_cifar_batch(4, 10 * k), protocol=2)
        if old_numpy_names:  # the original files were pickled with numpy 1.x
            raw = raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
        (folder / name).write_bytes(raw)


@pytest.mark.parametrize("old_numpy_names", [False, True])
def test_cifar_reader_on_tiny_batches(tmp_path, old_numpy_names):
    _make_cifar(tmp_path / "cifar-10-batches-py", old_numpy_names)
    x_train, y_train, x_test, y_test = datasets.read_cifar10(tmp_path)
    assert x_train.shape == (20, 32, 32, 3) and x_test.shape == (4, 32, 32, 3)
    # channels last: [h, w, 0] = h, [h, w, 1] = w, blue = example number
    np.testing.assert_array_equal(x_train[3, :, 7, 0], np.arange(32))
    np.testing.assert_array_equal(x_train[3, 7, :, 1], np.arange(32))
    np.testing.assert_array_equal(x_train[:, 0, 0, 2], [10 * (i // 4) + i % 4 for i in range(20)])
    np.testing.assert_array_equal(y_test, [(50 + i) % 10 for i in range(4)])
    assert len(y_train) == 20


def test_cifar_task_flattens_in_hwc_order(tmp_path):
    _make_cifar(tmp_path)  # batches directly under root
    ds = datasets.load_dataset(
        dataset="cifar10", root=tmp_path, classes=[0, 3], n_train=2, n_test=2, preprocess="none"
    )
    assert ds.input_shape == (32, 32, 3)
    images = np.rint(ds.x_train.reshape(-1, 32, 32, 3) * 255).astype(int)
    np.testing.assert_array_equal(images[0, :, 5, 0], np.arange(32))
    np.testing.assert_array_equal(images[0, 5, :, 1], np.arange(32))


def test_cifar_refuses_pickles_that_run_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    _make_cifar(tmp_path)
    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}))
    with pytest.raises(DatasetError, match="refusing to unpickle"):
        datasets.read_cifar10(tmp_path)


def test_cifar_missing_batches_are_named(tmp_path):
    _make_cifar(tmp_path / "cifar-10-batches-py")
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    message = datasets.missing_files("cifar10", tmp_path)
    assert "data_batch_3" in message and "test_batch" not in message.split("expected")[0]
    assert "cifar-10-python.tar.gz" in message
