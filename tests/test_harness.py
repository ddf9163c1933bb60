"""The test harness itself: the fail-fast `scontrol` that keeps Snakemake starts from waiting on SLURM."""

import os
import shutil
import subprocess
from pathlib import Path

from workflow import SCONTROL_SHIM_VAR, path_without_scontrol_shim


def test_scontrol_on_path_is_the_sessions_fail_fast_shim():
    shim = Path(os.environ[SCONTROL_SHIM_VAR])
    assert Path(shutil.which("scontrol")).parent == shim
    assert subprocess.run(["scontrol", "show", "config"], capture_output=True).returncode != 0


def test_the_slurm_tests_get_path_without_the_shim():
    shim = os.environ[SCONTROL_SHIM_VAR]
    assert shim in os.environ["PATH"].split(os.pathsep)
    assert shim not in path_without_scontrol_shim().split(os.pathsep)


def test_the_slurm_plugin_reads_no_value_from_the_shim():
    from snakemake_executor_plugin_slurm import job_status_query

    assert job_status_query.get_min_job_age() is None
