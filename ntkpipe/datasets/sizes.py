"""Sizes of class-balanced tasks: examples per class, and which requests the files can serve.

Checked from the class counts of the original files (no data read), so a configuration is
checked before any job. Part of :mod:`ntkpipe.datasets` (which re-exports the public names).
"""

__all__ = [
    "DIGITS_CLASS_COUNTS",
    "MNIST_CLASS_COUNTS",
    "CIFAR10_CLASS_COUNTS",
    "split_sizes",
    "size_problems",
]

# Examples per class in the files each dataset ships with. They let the configuration be
# checked without reading the data (importing scikit-learn alone takes about a second);
# tests compare them with the real counts where the data is at hand.
DIGITS_CLASS_COUNTS = (178, 182, 177, 183, 181, 182, 181, 179, 174, 180)
MNIST_CLASS_COUNTS = {
    "train": (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949),
    "test": (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009),
}
CIFAR10_CLASS_COUNTS = {"train": (5000,) * 10, "test": (1000,) * 10}


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
    if dataset == "arrays":
        return []  # the file's own counts: ntkpipe.datasets.arrays.problems
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
