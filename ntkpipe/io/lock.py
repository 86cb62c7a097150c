"""One writer per results folder: a lock on ``results/<name>/``, whatever the working directory.

Snakemake locks its working directory (``.snakemake/locks``); two working directories sharing one
results folder (a symlink, a shared file system) would otherwise run at once and delete each
other's stores. The workflow takes :func:`acquire` on the results folder before it builds its
jobs and holds it until the process ends.

The lock is the file ``<folder>/.ntkpipe.lock``, holding the owner's pid, host, command and start
time, and locked with ``flock`` while its owner lives: a second process is refused with a message
naming the owner; a lock left by a process that died (kill -9: the kernel releases the flock) is
taken over, with a note naming the dead process.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

from ntkpipe.errors import NtkpipeError

__all__ = ["LOCK_NAME", "LockedError", "ResultsLock", "acquire", "writer", "busy_message"]

LOCK_NAME = ".ntkpipe.lock"


class LockedError(NtkpipeError):
    """The results folder is being written by another live process."""


class ResultsLock:
    """A held lock on a results folder; :meth:`release` (also at exit) frees it."""

    def __init__(self, path: Path, fd: int, note: str | None):
        self.path, self._fd, self.note = path, fd, note

    def release(self) -> None:
        """Removes the lock file and frees the lock (a second call does nothing)."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            if _owner(self.path).get("pid") == os.getpid():
                self.path.unlink()
        os.close(self._fd)
        self._fd = None


def acquire(folder, command=None) -> ResultsLock:
    """Takes the lock of a results folder for this process (until it exits).

    Args:
        folder: the results folder (created if missing).
        command: the command line to record (default: this process's ``sys.argv``).

    Returns:
        The held lock; its ``note`` says when a stale lock of a dead process was taken over.

    Raises:
        LockedError: another live process holds it; the message names its pid, host, command
            and start time.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder.resolve() / LOCK_NAME  # absolute: Snakemake changes directory before exit
    fd = _locked_fd(path, folder)
    previous = _owner(path)
    note = None
    if previous.get("pid") and previous.get("pid") != os.getpid():
        note = (
            f"ntkpipe: {folder}: took over the lock of process {previous.get('pid')} on "
            f"{previous.get('host')} ({previous.get('command')}), which no longer holds it"
        )
    record = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": " ".join(command if command is not None else sys.argv),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
    except OSError as error:  # a full disk: leave no empty lock behind
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)
        raise NtkpipeError(
            f"{path}: cannot write the results lock ({error.strerror or error}); free space "
            f"on {folder} and start again"
        ) from error
    lock = ResultsLock(path, fd, note)
    atexit.register(lock.release)
    return lock


def writer(folder) -> dict | None:
    """The live process writing a results folder (its pid, host, command, start), or None.

    Takes nothing: for a dry run or ``ntkpipe status`` beside a running sweep. The lock is only
    tested (a shared ``flock`` for an instant, refused while the writer holds its own).
    """
    path = Path(folder) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return _owner(path) or {"pid": "?", "command": "?"}
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def busy_message(folder, owner: dict) -> str:
    """Why a dry run beside a running sweep stops: the writer and what to do instead."""
    return (
        f"{folder}: is being written by process {owner.get('pid')} on {owner.get('host')} "
        f"(started {owner.get('started')}: {owner.get('command')}). A dry run now would see its "
        "running jobs' outputs as incomplete (do not follow Snakemake's --cleanup-metadata "
        f"advice then); follow it with `ntkpipe status {folder}`, or dry-run when it has ended"
    )


def _locked_fd(path: Path, folder: Path) -> int:
    """An open descriptor of the lock file, flocked by this process; retried while the file
    is replaced under us (its owner removing it as we open it)."""
    for _ in range(10):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise LockedError(_refusal(folder, _owner(path))) from None
        with contextlib.suppress(OSError):
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                return fd
        os.close(fd)  # removed by its owner meanwhile: open the new one
    raise LockedError(_refusal(folder, _owner(path)))


def _owner(path: Path) -> dict:
    try:
        owner = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return {}
    return owner if isinstance(owner, dict) else {}


def _refusal(folder: Path, owner: dict) -> str:
    who = (
        f"process {owner.get('pid')} on {owner.get('host')} (started {owner.get('started')}: "
        f"{owner.get('command')})"
        if owner
        else "another process"
    )
    return (
        f"{folder}: is being written by {who}; one results folder takes one writer at a time. "
        f"Wait for it to finish, or stop it; or give this sweep another name: (its own results "
        f"folder)"
    )
