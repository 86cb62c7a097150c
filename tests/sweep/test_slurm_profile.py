"""The SLURM profiles: the shipped workflow profile and the site profile `install-profile` writes.

No cluster needed: these check the files and that Snakemake's own option parser reads the two
profiles layered as a cluster user passes them (unknown options and bad values are errors there),
and that the plugin reads the partition file. tests/test_slurm.py runs them against a real
slurmctld, with a CPU and a GPU partition.
"""

from __future__ import annotations

import hashlib
import io
from contextlib import redirect_stderr
from pathlib import Path

import pytest
import yaml

from ntkpipe import cli
from ntkpipe.slurm_profile import ProfileError, install_profile

REPO = Path(__file__).resolve().parents[2]
WORKFLOW_PROFILE = REPO / "workflow" / "profiles" / "slurm"


def _snakemake_args(*argv: str):
    """The options Snakemake itself parses from the profiles (exits on unknown options)."""
    from snakemake.cli import parse_args

    with redirect_stderr(io.StringIO()):
        _, args = parse_args(["--snakefile", str(REPO / "Snakefile"), *argv])
    return args


def test_workflow_profile_sets_the_run_and_leaves_resources_to_the_site():
    args = _snakemake_args("--workflow-profile", str(WORKFLOW_PROFILE))
    assert args.executor == "slurm"
    assert args.slurm_status_command == "squeue"  # no sacct without an accounting database
    assert args.retries == 2 and args.latency_wait == 60
    shipped = yaml.safe_load((WORKFLOW_PROFILE / "config.yaml").read_text())
    # A key set in the workflow profile would replace the site profile's whole value.
    assert not {"default-resources", "set-resources", "slurm-partition-config"} & set(shipped)


def test_site_profile_layers_under_the_workflow_profile(tmp_path):
    site = install_profile(
        tmp_path / "site", account="lab42", cpu_partition="cpu", gpu_partition="gpu"
    )
    assert {p.name for p in site.written} == {"config.yaml", "partitions.yaml"}
    args = _snakemake_args(
        "--workflow-profile", str(WORKFLOW_PROFILE), "--profile", str(site.folder)
    )
    assert args.executor == "slurm" and args.slurm_status_command == "squeue"  # workflow's
    assert args.default_resources["slurm_account"].raw == "lab42"  # site's (a name: a string)
    assert Path(args.slurm_partition_config) == (site.folder / "partitions.yaml").resolve()


def test_the_installed_profile_alone_carries_the_workflows_settings_and_the_sites(tmp_path):
    installed = install_profile(
        tmp_path / "slurm", account="lab42", cpu_partition="cpu", gpu_partition="gpu"
    )
    args = _snakemake_args("--profile", str(installed.folder))
    shipped = _snakemake_args("--workflow-profile", str(WORKFLOW_PROFILE))
    for option in ("executor", "slurm_status_command", "retries", "latency_wait", "jobs"):
        assert getattr(args, option) == getattr(shipped, option), option
    assert args.executor == "slurm" and args.slurm_status_command == "squeue"
    assert args.default_resources["slurm_account"].raw == "lab42"
    assert Path(args.slurm_partition_config) == (installed.folder / "partitions.yaml").resolve()
    digest = hashlib.sha256((WORKFLOW_PROFILE / "config.yaml").read_bytes()).hexdigest()[:16]
    assert digest in (installed.folder / "config.yaml").read_text()


def test_the_default_profile_is_named_slurm_where_snakemake_looks(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    installed = install_profile(cpu_partition="cpu")
    assert installed.folder == tmp_path / "config" / "snakemake" / "slurm"
    from snakemake.cli import get_profile_dir

    found, _ = get_profile_dir("slurm")
    assert Path(found) == installed.folder
    assert "use it with: snakemake --profile slurm " in installed.summary()


def test_a_changed_workflow_profile_rewrites_the_copy_and_keeps_the_old(tmp_path):
    source = tmp_path / "workflow.yaml"
    source.write_text((WORKFLOW_PROFILE / "config.yaml").read_text())
    install_profile(tmp_path / "p", cpu_partition="cpu", workflow_profile=source)
    source.write_text(source.read_text().replace("retries: 2", "retries: 3"))
    again = install_profile(tmp_path / "p", cpu_partition="cpu", workflow_profile=source)
    assert [p.name for p in again.written] == ["config.yaml"]
    assert [p.name for p in again.backups] == ["config.yaml.bak"]
    assert _snakemake_args("--profile", str(again.folder)).retries == 3
    source.write_text("default-resources: {slurm_account: x}\n")
    with pytest.raises(ProfileError, match="without default-resources"):
        install_profile(tmp_path / "q", cpu_partition="cpu", workflow_profile=source)


def test_partition_file_is_read_by_the_plugin(tmp_path):
    from snakemake_executor_plugin_slurm.partitions import read_partition_file

    site = install_profile(tmp_path, cpu_partition="cpu", gpu_partition="gpu", gpus_per_node=4)
    partitions = {p.name: p.limits for p in read_partition_file(site.folder / "partitions.yaml")}
    assert partitions["cpu"].max_gpu == 0 and partitions["gpu"].max_gpu == 4
    cpu_only = install_profile(tmp_path / "cpu", cpu_partition="normal")
    assert yaml.safe_load((cpu_only.folder / "partitions.yaml").read_text()) == {
        "partitions": {"normal": {"max_gpu": 0}}
    }
    assert "default-resources" not in yaml.safe_load((cpu_only.folder / "config.yaml").read_text())


def test_rerun_writes_nothing_and_a_change_keeps_the_previous_file(tmp_path):
    first = install_profile(tmp_path, cpu_partition="cpu", gpu_partition="gpu")
    again = install_profile(tmp_path, cpu_partition="cpu", gpu_partition="gpu")
    assert again.written == () and again.backups == ()
    assert "already up to date" in again.summary()
    changed = install_profile(tmp_path, cpu_partition="cpu", gpu_partition="a100")
    assert [p.name for p in changed.written] == ["partitions.yaml"]
    assert [p.name for p in changed.backups] == ["partitions.yaml.bak"]
    assert "gpu:" in changed.backups[0].read_text()
    summary = changed.summary().splitlines()
    assert summary[0] == f"wrote {first.folder / 'partitions.yaml'}"
    assert summary[-1].startswith("use it with: snakemake --profile ")


@pytest.mark.parametrize(
    ("field", "value"),
    [("cpu_partition", "gpu; rm -rf"), ("account", "-A x"), ("gpu_partition", "")],
)
def test_bad_names_are_refused_before_anything_is_written(tmp_path, field, value):
    names = {"cpu_partition": "cpu", field: value}
    with pytest.raises(ProfileError, match=f"{field}: .* is not a plain SLURM name"):
        install_profile(tmp_path / "p", **names)
    assert not (tmp_path / "p").exists()


def test_dest_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ProfileError, match="is a file"):
        install_profile(tmp_path / "file", cpu_partition="cpu")


def test_install_profile_command(tmp_path, capsys):
    argv = ["install-profile", "--dest", str(tmp_path), "--cpu-partition", "cpu"]
    assert cli.main([*argv, "--gpu-partition", "gpu", "--account", "lab42"]) == 0
    out = capsys.readouterr().out
    assert out.count("wrote ") == 2 and "kept" not in out
