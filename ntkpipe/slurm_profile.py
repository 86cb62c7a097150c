"""Install ntkpipe's SLURM profile for Snakemake, keeping a user's own settings.

`snakemake --profile slurm` looks for `slurm/config.yaml` in the working directory, then in
the user's Snakemake config folder (`~/.config/snakemake` on Linux) and the site's.
:func:`install_profile` writes the profile that ships inside the package
(`ntkpipe/profiles/slurm/config.yaml`, the one source of truth; `workflow/profiles/slurm` links
to it) into the user's folder, so that `snakemake --profile slurm` finds it from anywhere.

A profile is a YAML mapping from Snakemake options (without dashes) to values, plus two nested
mappings of job resources: `default-resources` (resource → value) and `set-resources`
(rule → resource → value). When a profile already exists, the user's values win for every key
they set (their partition, account, queue limits, per-rule resources); keys the user lacks come
from the shipped profile; `partition` and `account` given here win over both. The previous file
is backed up before it is replaced, and every difference is reported. The installed file keeps
the shipped file's comments.
"""

from __future__ import annotations

import copy
import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from ntkpipe.errors import NtkpipeError

__all__ = [
    "ProfileError",
    "ProfileInstall",
    "default_dest",
    "install_profile",
    "merge_profiles",
    "render_profile",
    "shipped_profile_text",
]

#: Options spelled two ways; the installed profile uses the first name (Snakemake 9 spelling).
ALIASES = {
    "restart-times": "retries",
    "output-wait": "latency-wait",
    "default-res": "default-resources",
}

# Partition and account names reach `sbatch -p` / `-A` (quoted by the plugin); keep them plain.
_SLURM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")
_PROFILE_NAMES = ("profile.yaml", "config.yaml")
_SITE_HEADER = "# Site settings (kept from your profile, or given to `ntkpipe install-profile`):"


class ProfileError(NtkpipeError, ValueError):
    """A profile that cannot be installed: a bad option value or an unreadable existing file."""


@dataclass(frozen=True)
class ProfileInstall:
    """What :func:`install_profile` did.

    Attributes:
        path: the profile file (`<dest>/config.yaml`, or `<dest>/profile.yaml` where one was).
        backup: the copy of the previous file, or None when there was none or nothing changed.
        changes: one line per difference from the previous file or from the shipped profile,
            e.g. ``kept your default-resources.slurm_account: lab42``.
        written: whether the file was (re)written; False when it was already up to date.
    """

    path: Path
    backup: Path | None
    changes: tuple[str, ...]
    written: bool

    def summary(self) -> str:
        """A few lines for the terminal: what was written, what changed, how to use it."""
        if not self.written:
            head = f"{self.path} is already up to date"
        else:
            head = f"wrote {self.path}"
        lines = [head]
        if self.backup is not None:
            lines.append(f"  previous file backed up as {self.backup}")
        lines += [f"  {change}" for change in self.changes]
        lines.append(f"use it with: snakemake --profile {_profile_argument(self.path.parent)} ...")
        return "\n".join(lines)


def default_dest() -> Path:
    """Where `snakemake --profile slurm` looks: `<Snakemake's user config folder>/slurm`."""
    import platformdirs  # a dependency of snakemake; the same folder snakemake searches

    return Path(platformdirs.user_config_dir("snakemake", "snakemake")) / "slurm"


def shipped_profile_text() -> str:
    """The profile shipped with ntkpipe (YAML text with a comment on every key)."""
    return resources.files("ntkpipe").joinpath("profiles/slurm/config.yaml").read_text()


def install_profile(
    dest: str | os.PathLike | None = None,
    *,
    partition: str | None = None,
    account: str | None = None,
    force: bool = False,
) -> ProfileInstall:
    """Install the SLURM profile into the folder `dest`, keeping the user's settings.

    Args:
        dest: the profile folder; default :func:`default_dest` (`~/.config/snakemake/slurm` on
            Linux), which `snakemake --profile slurm` finds.
        partition: SLURM partition for every job (`default-resources: slurm_partition`).
        account: SLURM account charged for every job (`default-resources: slurm_account`).
        force: start from the shipped profile and drop the user's previous values (they stay
            in the backup); without it the user's values win, and an unreadable previous file
            is an error.

    Returns:
        A :class:`ProfileInstall` naming the file, its backup and every change.

    Raises:
        ProfileError: `partition` or `account` is not a plain SLURM name, `dest` is not a
            folder, or the existing profile is not a YAML mapping (without `force`).
    """
    _check_name("partition", partition)
    _check_name("account", account)
    folder = Path(dest).expanduser() if dest is not None else default_dest()
    if folder.exists() and not folder.is_dir():
        raise ProfileError(
            f"dest: {str(folder)!r} is a file; give the profile folder (e.g. "
            f"{str(default_dest())!r}), which will hold config.yaml"
        )
    path = _profile_file(folder)
    template = shipped_profile_text()
    shipped = _normalized(yaml.safe_load(template))
    old_text = path.read_text() if path.exists() else None
    existing, notes = _read_existing(path, old_text, force)
    values, changes = merge_profiles(
        shipped, existing, partition=partition, account=account, force=force
    )
    changes = notes + changes
    text = render_profile(template, values)
    if text == old_text:
        return ProfileInstall(path, None, (), written=False)
    folder.mkdir(parents=True, exist_ok=True)
    backup = _backup(path) if old_text is not None else None
    _write_atomically(path, text)
    return ProfileInstall(path, backup, tuple(changes), written=True)


def merge_profiles(
    shipped: dict,
    existing: dict | None,
    *,
    partition: str | None = None,
    account: str | None = None,
    force: bool = False,
) -> tuple[dict, list[str]]:
    """The profile to install, and one line per difference from `existing` or `shipped`.

    Args:
        shipped: the shipped profile (a mapping, option names as in :data:`ALIASES` targets).
        existing: the user's current profile, or None when there is none.
        partition: if given, `default-resources.slurm_partition`, over every other value.
        account: if given, `default-resources.slurm_account`, over every other value.
        force: ignore `existing` (its differences are reported as reset or dropped).

    Returns:
        (values, changes): `values` holds every key of `shipped`, and, without `force`, every
        key of `existing` with the user's value; nested mappings are merged key by key.
    """
    values = copy.deepcopy(shipped)
    changes: list[str] = []
    if existing is not None:
        user = _normalized(existing)
        if force:
            _report_reset(shipped, user, "", changes)
        else:
            _merge_into(values, user, "", changes)
            _report_added(shipped, user, "", changes)
    for name, value in (("slurm_partition", partition), ("slurm_account", account)):
        if value is not None:
            defaults = values.get("default-resources") or {}
            before = defaults.get(name)
            defaults[name] = value
            values["default-resources"] = defaults
            if before != value:
                was = "" if before is None else f" (was {before})"
                changes.append(f"set default-resources.{name}: {value}{was}")
    return values, changes


def render_profile(template: str, values: dict) -> str:
    """`values` written as YAML in the layout of `template`, keeping its comments.

    Each `key: value` line of the template gets the value from `values`; keys of `values` the
    template lacks are appended at the end of their mapping, under a comment. When the result
    would not read back as `values` (a template this function does not understand), the values
    are written plainly instead, under a note.

    Args:
        template: the shipped profile's text (block mappings, two spaces per level).
        values: the merged profile, a superset of the template's keys.

    Returns:
        The profile's text.
    """
    lines = _render_block(template.splitlines(), values)
    text = "\n".join(lines) + "\n"
    if yaml.safe_load(text) == values:
        return text
    plain = yaml.safe_dump(values, sort_keys=False, default_flow_style=False)
    return (
        "# SLURM profile written by `ntkpipe install-profile` (comments: see the shipped\n"
        "# ntkpipe/profiles/slurm/config.yaml).\n" + plain
    )


# ---------------------------------------------------------------- private helpers


def _check_name(field: str, value: str | None) -> None:
    if value is not None and not (isinstance(value, str) and _SLURM_NAME.match(value)):
        raise ProfileError(
            f"{field}: {value!r} is not a plain SLURM {field} name; allowed: 1-64 letters, "
            "digits, '_', '.', '+', '-', starting with a letter or digit (e.g. 'gpu', 'lab42')"
        )


def _profile_file(folder: Path) -> Path:
    """The file snakemake reads in `folder`: an existing profile.yaml, else config.yaml."""
    for name in _PROFILE_NAMES:
        if (folder / name).is_file():
            return folder / name
    return folder / "config.yaml"


def _read_existing(path: Path, text: str | None, force: bool) -> tuple[dict | None, list[str]]:
    """The user's profile (None if absent) and, with `force`, a note when it was unreadable."""
    if text is None:
        return None, []
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as error:
        loaded, problem = None, f"is not valid YAML ({' '.join(str(error).split())})"
    else:
        problem = None
        if not (loaded is None or isinstance(loaded, dict)):
            problem = f"holds a {type(loaded).__name__}, not a mapping of options"
    if problem is None:
        return loaded or {}, []
    if force:
        return None, [f"replaced the previous file, which {problem} (--force)"]
    raise ProfileError(
        f"profile: {str(path)!r} {problem}; fix it, or pass force=True (--force) to replace it "
        "(the old file is backed up)"
    )


def _normalized(profile: dict | None) -> dict:
    """`profile` with aliased option names replaced by their main spelling."""
    result = {}
    for key, value in (profile or {}).items():
        result[ALIASES.get(key, key)] = value
    return result


def _merge_into(values: dict, user: dict, prefix: str, changes: list[str]) -> None:
    for key, mine in user.items():
        ours = values.get(key)
        if isinstance(ours, dict) and isinstance(mine, dict):
            _merge_into(ours, mine, f"{prefix}{key}.", changes)
            continue
        if mine is None:
            continue  # an empty key: snakemake ignores it, so the shipped value stands
        if key not in values:
            changes.append(f"kept your {prefix}{key}: {_scalar_text(mine)}")
        elif ours != mine:
            change = f"{_scalar_text(mine)} (ntkpipe ships {_scalar_text(ours)})"
            changes.append(f"kept your {prefix}{key}: {change}")
        values[key] = copy.deepcopy(mine)


def _report_added(shipped: dict, user: dict, prefix: str, changes: list[str]) -> None:
    for key, ours in shipped.items():
        mine = user.get(key)
        if ours is None:
            continue
        if isinstance(ours, dict) and isinstance(mine, dict):
            _report_added(ours, mine, f"{prefix}{key}.", changes)
        elif mine is None:
            changes.append(f"added {prefix}{key}: {_scalar_text(ours)}")


def _report_reset(shipped: dict, user: dict, prefix: str, changes: list[str]) -> None:
    for key, mine in user.items():
        ours = shipped.get(key)
        if isinstance(ours, dict) and isinstance(mine, dict):
            _report_reset(ours, mine, f"{prefix}{key}.", changes)
        elif key not in shipped:
            changes.append(f"dropped your {prefix}{key}: {_scalar_text(mine)} (--force)")
        elif ours != mine and mine is not None:
            change = f"{_scalar_text(mine)} -> {_scalar_text(ours)}"
            changes.append(f"reset your {prefix}{key}: {change} (--force)")


def _scalar_text(value) -> str:
    """`value` as one line of YAML (flow style), e.g. `squeue`, `60`, `'0123'`, `{gpu: 1}`."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
    if text.endswith("\n..."):
        text = text[: -len("\n...")]
    return text


_KEY_LINE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_][A-Za-z0-9_.+-]*):(?P<rest>.*)$")
_VALUE_AND_COMMENT = re.compile(r"^(?P<value>.*?)(?P<comment>\s+#.*)?$")


def _render_block(lines: list[str], values: dict) -> list[str]:
    """Render a whole template; see :func:`render_profile`."""
    out: list[str] = []
    stack: list[tuple[int, dict, set]] = [(-1, values, set())]  # (indent, mapping, keys seen)
    pending: list[str] = []  # blank and comment lines not yet placed
    for line in lines:
        match = _KEY_LINE.match(line)
        if match is None:
            pending.append(line)
            continue
        indent = len(match["indent"])
        while stack[-1][0] >= indent:
            _close_block(stack.pop(), pending, out)
        out.extend(pending)
        pending.clear()
        _, mapping, seen = stack[-1]
        key = match["key"]
        seen.add(key)
        parts = _VALUE_AND_COMMENT.match(match["rest"])
        value = (mapping or {}).get(key)
        if parts["value"].strip() == "":  # a nested mapping starts here
            out.append(line)
            stack.append((indent, value if isinstance(value, dict) else {}, set()))
            if not isinstance(value, dict) and value is not None:
                out[-1] = f"{match['indent']}{key}: {_scalar_text(value)}{parts['comment'] or ''}"
                stack[-1] = (indent, {}, set())
            continue
        comment = parts["comment"] or ""
        out.append(f"{match['indent']}{key}: {_scalar_text(value)}{comment}")
    while stack:
        _close_block(stack.pop(), pending, out)
    out.extend(pending)
    return out


def _close_block(block: tuple[int, dict, set], pending: list[str], out: list[str]) -> None:
    """Place the block's own trailing comments, then the keys the template lacked."""
    indent, mapping, seen = block
    inner = 0
    while inner < len(pending) and _indent_of_comment(pending[inner]) > indent:
        inner += 1
    out.extend(pending[:inner])
    del pending[:inner]
    extra = {key: value for key, value in (mapping or {}).items() if key not in seen}
    if not extra:
        return
    pad = " " * (indent + 2 if indent >= 0 else 0)
    out.append(pad + _SITE_HEADER)
    dumped = yaml.safe_dump(extra, sort_keys=False, default_flow_style=False, width=10**6)
    out.extend(pad + row for row in dumped.splitlines())


def _indent_of_comment(line: str) -> int:
    """Indent of a comment line; -2 for a blank line (it belongs to what follows)."""
    stripped = line.lstrip(" ")
    if not stripped:
        return -2
    return len(line) - len(stripped)


def _backup(path: Path) -> Path:
    candidate, number = path.with_name(path.name + ".bak"), 0
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.name}.bak.{number}")
    candidate.write_bytes(path.read_bytes())
    return candidate


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text)
    os.replace(partial, path)


def _profile_argument(folder: Path) -> str:
    """The `--profile` argument for `folder`: its name where snakemake searches, else its path."""
    try:
        if folder.resolve() == default_dest().parent.resolve() / folder.name:
            return folder.name
    except OSError:
        pass
    return str(folder)
