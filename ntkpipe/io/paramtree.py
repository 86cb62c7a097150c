"""A parameter pytree (nested mappings with string keys, Flax params) as the flat arrays of a
store's ``params/`` group, one per leaf named by its key path, and back.
Part of :mod:`ntkpipe.io.stores`."""

from collections.abc import Mapping

import numpy as np

from ntkpipe.errors import StoreError


def flatten_params(params, ds):
    """[(key path, array)] of a nested mapping; checks names and the leading seed axis."""
    n_seed = ds.sizes.get("seed") if hasattr(ds, "sizes") else None
    leaves = []
    collect_leaves(params, (), leaves)
    if not leaves:
        raise StoreError("params: the parameter tree has no leaves")
    for parts, value in leaves:
        name = "/".join(parts)
        if value.ndim == 0 or (n_seed is not None and value.shape[0] != n_seed):
            raise StoreError(
                f"params/{name}: shape {value.shape}; every leaf needs a leading seed axis"
                f"{f' of size {n_seed} (the dataset has seed: {n_seed})' if n_seed else ''}"
            )
    return leaves


def collect_leaves(tree, parts, out):
    if isinstance(tree, Mapping):
        for key, sub in tree.items():
            if not isinstance(key, str) or not _valid_node_name(key):
                raise StoreError(
                    f"params/{'/'.join(parts)}: key {key!r} cannot name a Zarr node (use a "
                    f"non-empty string without '/', not starting with '__' or '.')"
                )
            collect_leaves(sub, (*parts, key), out)
        return
    if isinstance(tree, list | tuple) or tree is None:
        raise StoreError(
            f"params/{'/'.join(parts)}: a {type(tree).__name__}; parameters must be nested "
            f"mappings with string keys (Flax params) whose leaves are arrays"
        )
    out.append((parts, np.asarray(tree)))


def _valid_node_name(key):
    return bool(key) and "/" not in key and not key.startswith(("__", "."))


def unflatten_params(arrays):
    tree = {}
    for name, value in arrays.items():
        node = tree
        *parents, leaf = name.split("/")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree
