"""Write a site profile for Snakemake: the SLURM account and the CPU and GPU partitions.

ntkpipe runs on SLURM with two layered profiles (Snakemake's own mechanism):

- the *workflow profile* ``workflow/profiles/slurm`` (shipped, ``--workflow-profile``): executor,
  retries, latency, status queries; it sets no resources, so the site profile's pass through;
- a *site profile* (yours, ``--profile``): ``default-resources`` with the account, and the
  plugin's partition file (``slurm-partition-config``) naming a CPU partition (no GPUs) and a GPU
  partition. The plugin then sends each job to the partition that fits it: jobs that ask for
  ``gpu`` (the heavy rules, when the sweep config sets ``resources.gpu``) to the GPU partition,
  the others (config files, init, compare, collect, figures, report) to the CPU partition.

:func:`install_profile` writes such a site profile (``config.yaml`` and ``partitions.yaml``) in
its own folder, by default ``~/.config/snakemake/ntkpipe-site``, so that it clashes with no other
workflow's ``slurm`` profile. A previous file that differs is backed up first. It is a small,
readable profile: edit it by hand to add limits (``max_runtime``, ``max_mem_mb``, ``max_gpu`` of
each partition) or other resources (``qos``, ``constraint``, ``slurm_extra``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from ntkpipe.errors import NtkpipeError

__all__ = [
    "ProfileError",
    "ProfileInstall",
    "SITE_PROFILE_NAME",
    "default_dest",
    "install_profile",
    "site_profile",
]

SITE_PROFILE_NAME = "ntkpipe-site"
"""The folder name of the site profile in Snakemake's user config folder."""

# Partition and account names reach `sbatch -p` / `-A` (quoted by the plugin); keep them plain.
_SLURM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")
_HEADER = """\
# Site profile for ntkpipe (written by `ntkpipe install-profile`; edit freely). Use it with
#   snakemake --workflow-profile workflow/profiles/slurm --profile {profile} ...
# The plugin picks each job's partition from partitions.yaml: jobs that ask for GPUs go to the
# GPU partition, the others to the CPU partition.
"""


class ProfileError(NtkpipeError, ValueError):
    """A site profile that cannot be written: a bad name or a destination that is a file."""


@dataclass(frozen=True)
class ProfileInstall:
    """What :func:`install_profile` did.

    Attributes:
        folder: the profile folder (holding ``config.yaml`` and ``partitions.yaml``).
        written: the files (re)written; empty when both were already up to date.
        backups: the copies of the previous files that were replaced.
    """

    folder: Path
    written: tuple[Path, ...]
    backups: tuple[Path, ...]

    def summary(self) -> str:
        """A few lines for the terminal: what was written and how to use it."""
        if not self.written:
            lines = [f"{self.folder} is already up to date"]
        else:
            lines = [f"wrote {path}" for path in self.written]
        lines += [f"  previous file kept as {path}" for path in self.backups]
        lines.append(
            "use it with: snakemake --workflow-profile workflow/profiles/slurm "
            f"--profile {_profile_argument(self.folder)} --configfile <sweep.yaml>"
        )
        return "\n".join(lines)


def default_dest() -> Path:
    """``<Snakemake's user config folder>/ntkpipe-site``, where ``--profile ntkpipe-site``
    finds it (``~/.config/snakemake/ntkpipe-site`` on Linux)."""
    import platformdirs  # a dependency of snakemake; the same folder snakemake searches

    return Path(platformdirs.user_config_dir("snakemake", "snakemake")) / SITE_PROFILE_NAME


def site_profile(
    folder: Path,
    *,
    account: str | None,
    cpu_partition: str,
    gpu_partition: str | None,
    gpus_per_node: int = 8,
) -> dict[str, str]:
    """The texts of a site profile's two files, ``config.yaml`` and ``partitions.yaml``.

    Args:
        folder: where the files will be (the partition file is named by its absolute path).
        account: the SLURM account charged (None: the plugin's own guess, or none).
        cpu_partition: the partition of the jobs that ask for no GPU.
        gpu_partition: the partition of the GPU jobs (None: every job on ``cpu_partition``).
        gpus_per_node: GPUs one job may ask for on the GPU partition.
    """
    for field, value in (
        ("account", account),
        ("cpu_partition", cpu_partition),
        ("gpu_partition", gpu_partition),
    ):
        _check_name(field, value)
    partitions = {cpu_partition: {"max_gpu": 0}}
    if gpu_partition is not None:
        partitions[gpu_partition] = {"max_gpu": int(gpus_per_node)}
    config = {"slurm-partition-config": str(Path(folder).resolve() / "partitions.yaml")}
    if account is not None:
        config["default-resources"] = {"slurm_account": account}
    header = _HEADER.format(profile=_profile_argument(folder))
    limits = (
        "# Partition limits the plugin matches jobs against (add max_runtime in minutes,\n"
        "# max_mem_mb, max_cpus_per_task where your site has them).\n"
    )
    return {
        "config.yaml": header + yaml.safe_dump(config, sort_keys=False),
        "partitions.yaml": limits + yaml.safe_dump({"partitions": partitions}, sort_keys=False),
    }


def install_profile(
    dest: str | os.PathLike | None = None,
    *,
    account: str | None = None,
    cpu_partition: str,
    gpu_partition: str | None = None,
    gpus_per_node: int = 8,
) -> ProfileInstall:
    """Write the site profile (:func:`site_profile`) into the folder ``dest``.

    Args:
        dest: the profile folder; default :func:`default_dest`.
        account, cpu_partition, gpu_partition, gpus_per_node: as for :func:`site_profile`.

    Returns:
        A :class:`ProfileInstall` naming the files written and the backups.

    Raises:
        ProfileError: a name that is not a plain SLURM name, or ``dest`` is a file.
    """
    folder = Path(dest).expanduser() if dest is not None else default_dest()
    if folder.exists() and not folder.is_dir():
        raise ProfileError(
            f"dest: {str(folder)!r} is a file; give the profile folder (e.g. "
            f"{str(default_dest())!r}), which will hold config.yaml and partitions.yaml"
        )
    texts = site_profile(
        folder,
        account=account,
        cpu_partition=cpu_partition,
        gpu_partition=gpu_partition,
        gpus_per_node=gpus_per_node,
    )
    written, backups = [], []
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in texts.items():
        path = folder / name
        old = path.read_text() if path.exists() else None
        if old == text:
            continue
        if old is not None:
            backups.append(_backup(path))
        partial = path.with_name(f".{name}.partial")
        partial.write_text(text)
        os.replace(partial, path)
        written.append(path)
    return ProfileInstall(folder, tuple(written), tuple(backups))


def _check_name(field: str, value: str | None) -> None:
    if value is not None and not (isinstance(value, str) and _SLURM_NAME.match(value)):
        raise ProfileError(
            f"{field}: {value!r} is not a plain SLURM name; allowed: 1-64 letters, digits, "
            "'_', '.', '+', '-', starting with a letter or digit (e.g. 'gpu', 'lab42')"
        )


def _backup(path: Path) -> Path:
    candidate, number = path.with_name(path.name + ".bak"), 0
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.name}.bak.{number}")
    candidate.write_bytes(path.read_bytes())
    return candidate


def _profile_argument(folder: Path) -> str:
    """The ``--profile`` argument for ``folder``: its name where snakemake searches, else its
    path."""
    try:
        if Path(folder).resolve() == default_dest().parent.resolve() / Path(folder).name:
            return Path(folder).name
    except OSError:
        pass
    return str(folder)
