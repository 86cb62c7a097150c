"""`ntkpipe.slurm_profile`: installing the SLURM profile, keeping a user's own settings.

No cluster needed: these check the files written and that Snakemake's own option parser accepts
them (unknown options and bad values are errors there). tests/test_slurm.py runs the profile
against a real slurmctld.
"""

from __future__ import annotations

import io
from contextlib import redirect_stderr
from pathlib import Path

import pytest
import yaml

from ntkpipe.slurm_profile import (
    ProfileError,
    install_profile,
    merge_profiles,
    render_profile,
    shipped_profile_text,
)

REPO = Path(__file__).resolve().parents[2]
SHIPPED = yaml.safe_load(shipped_profile_text())

# A user's profile from an older install: their site keys, one key ntkpipe does not ship, a
# per-rule GPU partition, an alias (restart-times), and no status command yet.
USER_PROFILE = """\
executor: slurm
jobs: 20
restart-times: 4
conda-prefix: /scratch/envs
default-resources:
  slurm_account: lab42
  slurm_partition: gpu
  runtime: 120
set-resources:
  train:
    slurm_partition: gpu-long
"""


def _snakemake_args(profile_dir: Path):
    """The options Snakemake itself parses from the profile (exits on unknown options)."""
    from snakemake.cli import parse_args

    with redirect_stderr(io.StringIO()):
        _, args = parse_args(["--profile", str(profile_dir)])
    return args


def _profile_options(path: Path) -> dict:
    """The profile as Snakemake turns it into options, e.g. {"default-resources": ["a=1"]}."""
    from snakemake.profiles import ProfileConfigFileParser

    with path.open() as stream:
        return dict(ProfileConfigFileParser().parse(stream))


def test_workflow_profile_is_the_shipped_file():
    linked = REPO / "workflow" / "profiles" / "slurm" / "config.yaml"
    assert linked.read_text() == shipped_profile_text()
    assert linked.resolve() == (REPO / "ntkpipe" / "profiles" / "slurm" / "config.yaml").resolve()


def test_shipped_profile_is_accepted_by_snakemake_with_squeue_status():
    args = _snakemake_args(REPO / "workflow" / "profiles" / "slurm")
    assert args.executor == "slurm"
    assert args.slurm_status_command == "squeue"  # no sacct without an accounting database
    assert args.retries == 2 and args.latency_wait == 60
    assert args.default_resources["mem_mb"].value == 4000
    assert args.default_resources["runtime"].value == 60


def test_fresh_install_writes_the_shipped_text_and_site_keys(tmp_path):
    plain = install_profile(tmp_path / "plain")
    assert plain.written and plain.backup is None and plain.changes == ()
    assert plain.path.read_text() == shipped_profile_text()

    result = install_profile(tmp_path / "slurm", partition="debug", account="lab42")
    text = result.path.read_text()
    comments = [line.strip() for line in shipped_profile_text().splitlines() if "#" in line]
    assert all(comment in text for comment in comments if comment.startswith("#"))
    assert _snakemake_args(tmp_path / "slurm").slurm_status_command == "squeue"
    resources = _profile_options(result.path)["default-resources"]
    assert {"slurm_partition=debug", "slurm_account=lab42"} <= set(resources)


def test_existing_profile_keeps_user_values_adds_new_keys_and_backs_up(tmp_path):
    dest = tmp_path / "slurm"
    dest.mkdir()
    (dest / "config.yaml").write_text(USER_PROFILE)
    result = install_profile(dest)
    installed = yaml.safe_load(result.path.read_text())
    assert installed["jobs"] == 20 and installed["retries"] == 4
    assert "restart-times" not in installed
    assert installed["conda-prefix"] == "/scratch/envs"
    assert installed["default-resources"] == {
        "runtime": 120,
        "mem_mb": 4000,
        "slurm_account": "lab42",
        "slurm_partition": "gpu",
    }
    assert installed["set-resources"] == {"train": {"slurm_partition": "gpu-long"}}
    assert installed["slurm-status-command"] == "squeue"  # new in the shipped profile
    assert result.backup.read_text() == USER_PROFILE
    assert "kept your jobs: 20 (ntkpipe ships 100)" in result.changes
    assert "kept your default-resources.slurm_account: lab42" in result.changes
    assert "added slurm-status-command: squeue" in result.changes
    assert "added default-resources.mem_mb: 4000" in result.changes
    _snakemake_args(dest)  # still a profile Snakemake accepts


def test_explicit_partition_wins_over_the_users_and_rerun_changes_nothing(tmp_path):
    dest = tmp_path / "slurm"
    dest.mkdir()
    (dest / "config.yaml").write_text(USER_PROFILE)
    first = install_profile(dest, partition="a100")
    assert "set default-resources.slurm_partition: a100 (was gpu)" in first.changes
    assert yaml.safe_load(first.path.read_text())["default-resources"]["slurm_account"] == "lab42"
    text = first.path.read_text()
    again = install_profile(dest, partition="a100")
    assert not again.written and again.backup is None and again.changes == ()
    assert first.path.read_text() == text
    assert sorted(p.name for p in dest.iterdir()) == ["config.yaml", "config.yaml.bak"]


def test_force_starts_from_the_shipped_profile_and_reports_what_it_drops(tmp_path):
    dest = tmp_path / "slurm"
    dest.mkdir()
    (dest / "config.yaml").write_text(USER_PROFILE)
    result = install_profile(dest, account="lab42", force=True)
    installed = yaml.safe_load(result.path.read_text())
    expected = {**SHIPPED["default-resources"], "slurm_account": "lab42"}
    assert installed == {**SHIPPED, "default-resources": expected}
    assert "dropped your conda-prefix: /scratch/envs (--force)" in result.changes
    assert "reset your jobs: 20 -> 100 (--force)" in result.changes
    assert result.backup.read_text() == USER_PROFILE


def test_unreadable_profile_is_an_error_unless_forced(tmp_path):
    dest = tmp_path / "slurm"
    dest.mkdir()
    broken = "executor: slurm\n  jobs: [\n"
    (dest / "config.yaml").write_text(broken)
    with pytest.raises(ProfileError, match=r"config\.yaml.*not valid YAML.*--force"):
        install_profile(dest)
    assert (dest / "config.yaml").read_text() == broken
    result = install_profile(dest, force=True)
    assert result.backup.read_text() == broken
    assert result.path.read_text() == shipped_profile_text()
    assert result.changes[0].startswith("replaced the previous file, which is not valid YAML")


@pytest.mark.parametrize(
    ("field", "value"),
    [("partition", "gpu; rm -rf ~"), ("account", "$(whoami)"), ("partition", ""), ("account", 7)],
)
def test_bad_names_are_refused_before_anything_is_written(tmp_path, field, value):
    with pytest.raises(ProfileError, match=rf"^{field}: .* is not a plain SLURM {field} name"):
        install_profile(tmp_path / "slurm", **{field: value})
    assert not (tmp_path / "slurm").exists()


def test_dest_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "slurm").write_text("")
    with pytest.raises(ProfileError, match=r"^dest: .* is a file"):
        install_profile(tmp_path / "slurm")


def test_an_existing_profile_yaml_is_updated_in_place(tmp_path):
    dest = tmp_path / "slurm"
    dest.mkdir()
    (dest / "profile.yaml").write_text("jobs: 5\n")
    result = install_profile(dest)
    assert result.path == dest / "profile.yaml" and not (dest / "config.yaml").exists()
    assert yaml.safe_load(result.path.read_text())["jobs"] == 5


def test_merge_and_render_round_trip_nested_user_entries():
    user = yaml.safe_load(USER_PROFILE)
    values, _ = merge_profiles(SHIPPED, user, partition="debug")
    text = render_profile(shipped_profile_text(), values)
    assert yaml.safe_load(text) == values
    assert text.startswith(shipped_profile_text().splitlines()[0])  # comments kept, not a dump
    assert values["default-resources"]["slurm_partition"] == "debug"
