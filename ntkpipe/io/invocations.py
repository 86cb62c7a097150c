"""The commands that started a sweep: ``results/<name>/invocations.jsonl``, one JSON line per
sweep start (UTC time, the sweep's working directory, argv, host, user), for the report's
provenance. The working directory is the one Snakemake parses the Snakefile in: its
``--directory`` if given (Snakemake changes there first), else where the command was typed.

Only the user's own ``snakemake`` process knows its command: jobs run as other processes (a
shell command, or on SLURM a ``snakemake --mode remote`` of their own that parses the Snakefile
again), so the Snakefile records the command only in Snakemake's main process
(``workflow.is_main_process``, i.e. ``ExecMode.DEFAULT``) of a run that executes jobs. Standard
library only (the Snakefile imports it while it is parsed).
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
import shlex
import socket
from dataclasses import dataclass
from pathlib import Path

from ntkpipe.io.atomic import atomic_write_text

__all__ = ["FILE", "Invocation", "record", "read"]

#: The log's file name inside the results folder.
FILE = "invocations.jsonl"


@dataclass(frozen=True)
class Invocation:
    """One sweep start: when (UTC, ISO 8601), where (cwd, host), who, and its argv."""

    time: str
    cwd: str
    argv: tuple[str, ...]
    host: str
    user: str

    @property
    def command(self) -> str:
        """The command line as typed: ``snakemake …`` (the program by its name, not its path)."""
        if not self.argv:
            return ""
        program = Path(self.argv[0])
        name = "snakemake" if program.name == "__main__.py" else program.name
        return shlex.join([name, *self.argv[1:]])


def record(results_dir, argv, *, cwd=None, when=None) -> Invocation:
    """Appends one sweep start to ``<results_dir>/invocations.jsonl``, atomically (the whole
    file is rewritten into a sibling and renamed: a kill leaves the old log or the new one).

    The caller holds the results folder's lock (:mod:`ntkpipe.io.lock`), so starts never
    interleave.

    Args:
        results_dir: ``results/<name>``.
        argv: the command (``sys.argv`` of Snakemake's main process).
        cwd: its working directory (default: this process's).
        when: a timezone-aware time (default: now), stored in UTC to the second.
    """
    when = when or dt.datetime.now(dt.UTC)
    entry = Invocation(
        time=when.astimezone(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        cwd=str(cwd or os.getcwd()),
        argv=tuple(str(a) for a in argv),
        host=socket.gethostname(),
        user=_user(),
    )
    path = Path(results_dir) / FILE
    before = path.read_text(encoding="utf-8") if path.is_file() else ""
    if before and not before.endswith("\n"):
        before += "\n"  # a line cut by hand; the next one starts on its own
    line = json.dumps({**entry.__dict__, "argv": list(entry.argv)}, ensure_ascii=False)
    atomic_write_text(path, before + line + "\n")
    return entry


def read(results_dir) -> list[Invocation]:
    """The recorded sweep starts, oldest first ([] if none); a line that is not one (edited
    by hand) is skipped."""
    path = Path(results_dir) / FILE
    if not path.is_file():
        return []
    found = []
    for text in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(text)
            found.append(
                Invocation(
                    time=str(row["time"]),
                    cwd=str(row["cwd"]),
                    argv=tuple(str(a) for a in row["argv"]),
                    host=str(row.get("host", "")),
                    user=str(row.get("user", "")),
                )
            )
        except (ValueError, KeyError, TypeError):
            continue
    return found


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""
