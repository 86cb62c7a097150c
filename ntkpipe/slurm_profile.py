"""Write the SLURM profile ``slurm``: the workflow's SLURM settings plus the site's account and
partitions, so that ``snakemake --profile slurm`` works as typed.

The workflow's settings (executor, retries, latency, squeue status queries, …) have one home, the
shipped *workflow profile* ``workflow/profiles/slurm/config.yaml``; the site's (the account, a CPU
partition with no GPUs, a GPU partition) are given to :func:`install_profile`. It writes one
Snakemake profile holding both, ``config.yaml`` and the plugin's partition file
``partitions.yaml`` (``slurm-partition-config``), by default in Snakemake's user profile folder
under the name ``slurm`` (``~/.config/snakemake/slurm``), where ``snakemake --profile slurm``
finds it from any directory. The plugin then sends each job to the partition that fits it: jobs
that ask for ``gpu`` (the heavy rules, when the sweep config sets ``resources.gpu``) to the GPU
partition, the others (config files, init, compare, collect, figures, report) to the CPU one.

Why one profile and not two layered ones (``--workflow-profile workflow/profiles/slurm --profile
<site>``, which still works): the design card's command is ``snakemake --profile slurm``, and a
site profile alone (no executor) silently ran a whole sweep on the login node. The installed
``config.yaml`` records the SHA-256 of the workflow profile it copied; after updating ntkpipe,
``ntkpipe install-profile`` again rewrites it (the previous file is kept as ``.bak``).
It is a small, readable profile: edit the partition file by hand to add limits (``max_runtime``,
``max_mem_mb``, ``max_gpu`` of each partition), or ``default-resources`` (``qos``,
``constraint``, ``slurm_extra``).
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from ntkpipe.errors import NtkpipeError

__all__ = [
    "ProfileError",
    "ProfileInstall",
    "PROFILE_NAME",
    "default_dest",
    "install_profile",
    "site_profile",
    "workflow_profile_file",
]

PROFILE_NAME = "slurm"
"""The folder name of the installed profile in Snakemake's user config folder: ``--profile
slurm``."""

# Partition and account names reach `sbatch -p` / `-A` (quoted by the plugin); keep them plain.
_SLURM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")
_HEADER = """\
# SLURM profile for ntkpipe, written by `ntkpipe install-profile`. Use it from the repository:
#   snakemake --profile {profile} --configfile <sweep.yaml>
# The workflow's settings below are a copy of {source}
# (sha256 {digest}): after updating ntkpipe, run `ntkpipe install-profile` again. The site's
# settings (account, partition file) come last. The plugin picks each job's partition from
# partitions.yaml: jobs that ask for GPUs go to the GPU partition, the others to the CPU one.
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
            f"use it with: snakemake --profile {_profile_argument(self.folder)} "
            "--configfile <sweep.yaml>"
        )
        return "\n".join(lines)


def default_dest() -> Path:
    """``<Snakemake's user config folder>/slurm``, where ``--profile slurm`` finds it
    (``~/.config/snakemake/slurm`` on Linux)."""
    import platformdirs  # a dependency of snakemake; the same folder snakemake searches

    return Path(platformdirs.user_config_dir("snakemake", "snakemake")) / PROFILE_NAME


def workflow_profile_file() -> Path:
    """The shipped workflow profile, ``workflow/profiles/slurm/config.yaml``: in the checkout
    ntkpipe is installed from (``pip install -e .``), else in the working directory.

    Raises:
        ProfileError: neither has it (run the command from the repository's root).
    """
    relative = Path("workflow") / "profiles" / "slurm" / "config.yaml"
    for root in (Path(__file__).resolve().parents[1], Path.cwd()):
        if (root / relative).is_file():
            return root / relative
    raise ProfileError(
        f"{relative} not found next to the ntkpipe package nor in {Path.cwd()}: run "
        "`ntkpipe install-profile` from the ntkpipe repository's root"
    )


def site_profile(
    folder: Path,
    *,
    account: str | None,
    cpu_partition: str,
    gpu_partition: str | None,
    gpus_per_node: int = 8,
    workflow_profile: Path | None = None,
) -> dict[str, str]:
    """The texts of the profile's two files, ``config.yaml`` and ``partitions.yaml``.

    Args:
        folder: where the files will be (the partition file is named by its absolute path).
        account: the SLURM account charged (None: the plugin's own guess, or none).
        cpu_partition: the partition of the jobs that ask for no GPU.
        gpu_partition: the partition of the GPU jobs (None: every job on ``cpu_partition``).
        gpus_per_node: GPUs one job may ask for on the GPU partition.
        workflow_profile: the workflow profile whose settings are copied (default
            :func:`workflow_profile_file`).

    Raises:
        ProfileError: a name that is not a plain SLURM name, or a workflow profile that is not
            a mapping of options or already names site settings.
    """
    for field, value in (
        ("account", account),
        ("cpu_partition", cpu_partition),
        ("gpu_partition", gpu_partition),
    ):
        _check_name(field, value)
    source = Path(workflow_profile or workflow_profile_file())
    text = source.read_text()
    settings = yaml.safe_load(text)
    site_keys = {"default-resources", "slurm-partition-config"}
    if not isinstance(settings, dict) or site_keys & set(settings):
        raise ProfileError(
            f"{source}: expected a mapping of snakemake options without "
            f"{', '.join(sorted(site_keys))} (the site's settings)"
        )
    partitions = {cpu_partition: {"max_gpu": 0}}
    if gpu_partition is not None:
        partitions[gpu_partition] = {"max_gpu": int(gpus_per_node)}
    site = {"slurm-partition-config": str(Path(folder).resolve() / "partitions.yaml")}
    if account is not None:
        site["default-resources"] = {"slurm_account": account}
    header = _HEADER.format(
        profile=_profile_argument(folder),
        source=source,
        digest=hashlib.sha256(text.encode()).hexdigest()[:16],
    )
    limits = (
        "# Partition limits the plugin matches jobs against (add max_runtime in minutes,\n"
        "# max_mem_mb, max_cpus_per_task where your site has them).\n"
    )
    return {
        "config.yaml": header
        + "\n# The workflow's settings\n"
        + yaml.safe_dump(settings, sort_keys=False)
        + "\n# The site's settings\n"
        + yaml.safe_dump(site, sort_keys=False),
        "partitions.yaml": limits + yaml.safe_dump({"partitions": partitions}, sort_keys=False),
    }


def install_profile(
    dest: str | os.PathLike | None = None,
    *,
    account: str | None = None,
    cpu_partition: str,
    gpu_partition: str | None = None,
    gpus_per_node: int = 8,
    workflow_profile: Path | None = None,
) -> ProfileInstall:
    """Write the profile (:func:`site_profile`) into the folder ``dest``.

    Args:
        dest: the profile folder; default :func:`default_dest`.
        account, cpu_partition, gpu_partition, gpus_per_node, workflow_profile: as for
            :func:`site_profile`.

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
        workflow_profile=workflow_profile,
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
