"""data.dataset: arrays: your own .npz through the same class selection, subsets, targets and
preprocessing as the built-in datasets."""

import numpy as np
import pytest

from ntkpipe import datasets
from ntkpipe.errors import DatasetError


@pytest.fixture
def npz(tmp_path):
    rng = np.random.default_rng(1)
    arrays = {
        "x_train": rng.normal(size=(60, 4, 3)),
        "y_train": np.arange(60) % 4,
        "x_test": rng.normal(size=(30, 4, 3)),
        "y_test": np.arange(30) % 4,
    }
    np.savez(tmp_path / "d.npz", **arrays)
    return tmp_path / "d.npz", arrays


def _load(path, **data):
    args = dict(dataset="arrays", path=str(path), classes=[1, 3], n_train=10, n_test=6)
    return datasets.load_dataset({**args, **data})


def test_classes_are_selected_balanced_with_pm1_targets_and_preprocessed(npz):
    path, arrays = npz
    data = _load(path)
    assert data.input_shape == (4, 3) and data.x_train.shape == (10, 12)
    labels = arrays["y_train"][data.index_train]
    assert sorted(labels.tolist()) == [1] * 5 + [3] * 5
    np.testing.assert_array_equal(data.y_train[:, 0], np.where(labels == 1, -1.0, 1.0))
    np.testing.assert_array_equal(arrays["y_test"][data.index_test] == 3, data.labels_test == 1)
    np.testing.assert_allclose((data.x_train**2).sum(axis=1), 12.0, rtol=1e-5)  # ‖x‖² = d_in
    raw = _load(path, preprocess="none")  # inputs used as they are: the file's rows
    np.testing.assert_allclose(
        raw.x_train, arrays["x_train"][raw.index_train].reshape(10, 12), rtol=1e-6
    )
    smaller = _load(path, n_train=6)
    assert set(smaller.index_train) < set(data.index_train)  # a smaller set is a subset
    assert np.array_equal(smaller.index_test, data.index_test)  # test set independent of n_train
    three = _load(path, classes=[0, 1, 2])
    assert three.y_train.shape == (10, 3) and set(three.y_train.sum(axis=1)) == {1.0}


def test_real_valued_targets_are_kept_one_output_per_column(tmp_path):
    rng = np.random.default_rng(2)
    y = rng.normal(size=(40, 2))
    np.savez(
        tmp_path / "r.npz",
        x_train=rng.normal(size=(40, 5)),
        y_train=y,
        x_test=rng.normal(size=(20, 5)),
        y_test=rng.normal(size=(20, 2)),
    )
    data = _load(tmp_path / "r.npz", classes=None, n_train=12, precision="float64")
    assert data.y_train.dtype == np.float64 and data.y_train.shape == (12, 2)
    np.testing.assert_array_equal(data.y_train, y[data.index_train])
    assert len(set(data.index_train)) == 12
    with pytest.raises(DatasetError, match=r"data\.classes: \[1, 3\] given, but y_train"):
        _load(tmp_path / "r.npz")
