"""Class-balanced, seeded subsets of a dataset's splits and their targets (±1 or one-hot).

Part of :mod:`ntkpipe.datasets`: shared by the built-in datasets and ``data.dataset: arrays``.
Subsets are drawn per class from the data seed: the examples of a class do not depend on which
other classes are asked for, and a smaller n_train gives a subset of a larger one.
"""

import numpy as np

from ntkpipe.datasets.sizes import split_sizes
from ntkpipe.errors import DatasetError


def select_examples(name, y_pool, classes, n_train, n_test, args):
    """Row indices of the training and test examples (class-balanced, seeded)."""
    want_train = split_sizes(n_train, len(classes))
    want_test = split_sizes(n_test, len(classes))
    seed = int(args["seed"])
    train, test = [], []
    for c, n_c, m_c in zip(classes, want_train, want_test, strict=True):
        if name == "digits":
            rows = class_rows(y_pool["train"], c, seed, tag=0)
            _check_count(name, "all 1797 samples", c, len(rows), n_c + m_c, args)
            train.append(rows[:n_c])
            test.append(rows[len(rows) - m_c :])
            continue
        rows_train = class_rows(y_pool["train"], c, seed, tag=1)
        rows_test = class_rows(y_pool["test"], c, seed, tag=2)
        _check_count(name, "the train split", c, len(rows_train), n_c, args)
        _check_count(name, "the test split", c, len(rows_test), m_c, args)
        train.append(rows_train[:n_c])
        test.append(rows_test[:m_c])
    return _shuffle(np.concatenate(train), seed, 3), _shuffle(np.concatenate(test), seed, 4)


def class_rows(labels, c, seed, tag):
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


def class_index(labels, classes):
    lookup = {c: i for i, c in enumerate(classes)}
    return np.array([lookup[int(v)] for v in labels], dtype=np.int32)


def encode_targets(labels, n_classes, one_hot):
    if one_hot:
        return np.eye(n_classes, dtype=np.float32)[labels]
    return np.where(labels == 0, -1.0, 1.0).astype(np.float32)[:, None]
