"""A real full disk for the tests of what a job does when a write fails: a tmpfs of a few
kilobytes mounted for the test (root only; skipped with a message where mounting is not
allowed). Nothing is faked: the kernel itself answers ENOSPC."""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

import pytest


@contextlib.contextmanager
def full_disk(folder: Path, size_kb: int = 64):
    """Mounts a ``size_kb`` tmpfs at ``folder`` for the block, unmounted after."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("a full disk needs a tmpfs mount (root)")
    mount = ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(folder)]
    if subprocess.run(mount, capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs is not allowed here")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path) -> None:
    """Fills the file system of ``folder`` to the last byte."""
    for name, block in (("filler", 4096), ("filler-tail", 1)):
        with contextlib.suppress(OSError), open(folder / name, "wb", buffering=0) as handle:
            while True:
                handle.write(b"\0" * block)
