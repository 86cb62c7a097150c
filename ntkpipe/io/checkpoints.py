"""Training checkpoints: a pytree state, and the named arrays a job records next to it (e.g. the
sampled weights of Fig. 3), in one ``.npz`` file, written atomically, resumed only by the run it
belongs to (its fingerprint). Re-exported by :mod:`ntkpipe.io.stores`."""

import os
import sys
import time
from pathlib import Path

import numpy as np

from ntkpipe.errors import StoreError
from ntkpipe.io.atomic import host_tag

__all__ = ["Checkpoint", "save_checkpoint", "load_checkpoint"]

_CKPT_PREFIX = "state"
_EXTRA_PREFIX = "extra."


class Checkpoint(dict):
    """A saved pytree state as {pytree path (``jax.tree_util.keystr``): numpy array}.

    Its ``step`` is the value at path ``.step`` (``train.TrainState.step``), else None.
    ``train.train(..., state=checkpoint)`` matches it leaf by leaf against a fresh state.
    ``extra`` holds the named arrays saved with the state ({} if none), apart from its leaves.
    """

    def __init__(self, leaves=(), extra=None):
        super().__init__(leaves)
        self.extra = dict(extra or {})

    @property
    def step(self):
        value = self.get(".step")
        return None if value is None else int(value)


def save_checkpoint(path, state, *, fingerprint, extra=None):
    """Saves a pytree state (e.g. ``train.TrainState``) to one ``.npz`` file, atomically.

    Args:
        path: the checkpoint file (replaced if it exists; a kill at any point leaves the
            previous checkpoint or the new one, never a part).
        state: any pytree of arrays and numbers (no Python objects).
        fingerprint: text identifying what the state belongs to (e.g. a hash of the
            run config); ``load_checkpoint`` ignores a checkpoint of another one.
        extra: {name: array} saved in the same file, hence as of the same step as the state
            (``Checkpoint.extra`` when loaded), e.g. records the job keeps outside the state.
    """
    import jax  # pytree paths; jax is loaded anyway where states exist

    leaves = jax.tree_util.tree_flatten_with_path(state)[0]
    arrays = {}
    for key_path, leaf in leaves:
        value = np.asarray(leaf)
        name = jax.tree_util.keystr(key_path)
        if value.dtype.kind == "O":
            raise StoreError(f"checkpoint: leaf {name} is a Python object, not an array")
        arrays[_CKPT_PREFIX + name] = value
    for name, value in (extra or {}).items():
        value = np.asarray(value)
        if value.dtype.kind == "O":
            raise StoreError(f"checkpoint: extra array {name} is a Python object, not an array")
        arrays[_EXTRA_PREFIX + name] = value
    arrays["fingerprint"] = np.asarray(str(fingerprint))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.partial-{host_tag()}-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise StoreError(
            f"{path}: cannot write the checkpoint ({error.strerror or error}); the previous "
            f"checkpoint, if any, is kept"
        ) from error
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_checkpoint(path, *, fingerprint):
    """The ``Checkpoint`` saved at ``path``, or None if there is none, it belongs to another
    fingerprint (a stale checkpoint of a changed run is not resumed), or it cannot be read.

    An unreadable checkpoint (truncated by a full disk or a copy cut short, or damaged) is
    moved aside to ``<name>.unreadable-<time>`` with a note on stderr, and training starts
    over from step 0: a retry then succeeds instead of failing on the same file every time.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            if str(npz["fingerprint"]) != str(fingerprint):
                return None
            return Checkpoint(
                {k[len(_CKPT_PREFIX) :]: npz[k] for k in npz.files if k.startswith(_CKPT_PREFIX)},
                extra={
                    k[len(_EXTRA_PREFIX) :]: npz[k]
                    for k in npz.files
                    if k.startswith(_EXTRA_PREFIX)
                },
            )
    except Exception as err:
        aside = path.with_name(f"{path.name}.unreadable-{time.strftime('%Y%m%d-%H%M%S')}")
        os.replace(path, aside)
        print(
            f"ntkpipe: {path}: unreadable checkpoint ({type(err).__name__}: {err}); moved to "
            f"{aside.name}, training starts over from step 0",
            file=sys.stderr,
        )
        return None
