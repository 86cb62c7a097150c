"""Files that are whole or absent: atomic text writes, and the leftovers of killed writers.

A file is written into a hidden sibling and renamed into place (``os.replace``), so a reader sees
the old content or the new one, never a part; a writer's leftovers carry its host and pid, so that
those of dead processes can be removed. Re-exported by :mod:`ntkpipe.io.stores`.
"""

import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

__all__ = ["atomic_write_text", "write_if_changed", "discard"]


def atomic_write_text(path, text):
    """Writes a text file atomically: a temporary sibling, fsync, then ``os.replace``.

    Readers see the old content or the new one, never a part.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_if_changed(path, text):
    """Writes ``text`` to ``path`` only if the content differs (keeping the file's mtime
    otherwise, so Snakemake sees no change). Returns whether it wrote."""
    path = Path(path)
    try:
        if path.read_text(encoding="utf-8") == text:
            return False
    except (OSError, UnicodeDecodeError):
        pass
    atomic_write_text(path, text)
    return True


def discard(partial):
    """Removes a failed write's partial folder. Zarr writes chunks from a thread pool: writes
    still in flight when one failed can recreate files after a first removal, so it is repeated
    until the folder stays gone (a leftover would otherwise wait for the clean-up of dead
    processes' partials, :func:`remove_stale`)."""
    for _ in range(50):
        shutil.rmtree(partial, ignore_errors=True)
        time.sleep(0.02)
        if not Path(partial).exists():
            return


def remove_stale(path):
    """Deletes leftovers of killed jobs on this host (their process no longer exists)."""
    host = host_tag()
    for kind in ("partial", "old"):
        prefix = f".{path.name}.{kind}-{host}-"
        for leftover in path.parent.glob(f".{path.name}.{kind}-*"):
            pid = leftover.name[len(prefix) :]
            if leftover.name.startswith(prefix) and pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(leftover, ignore_errors=True)


def _alive(pid):
    if pid == os.getpid():
        return False  # our own leftover: we are not writing it now
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def host_tag():
    return socket.gethostname().replace("/", "_") or "host"


def fsync_dir(folder):
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
