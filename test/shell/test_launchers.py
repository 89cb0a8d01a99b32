"""utils/run.pl and utils/slurm.pl: one contract, checked against both backends.

slurm.pl runs against the real one-node Slurm of the `slurm_cluster` fixture.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from shell_tools import UTILS, run_tool

BACKENDS = ["run.pl", pytest.param("slurm.pl", marks=pytest.mark.slurm)]


@pytest.fixture(params=BACKENDS)
def launcher(request) -> Path:
    if request.param == "slurm.pl":
        request.getfixturevalue("slurm_cluster")
    return UTILS / request.param


def test_job_array_substitutes_job_in_log_and_command(launcher, tmp_path):
    # A shell caller writes \> for the redirection to reach the task; from Python it is ">".
    result = run_tool([launcher, "JOB=1:3", "exp/log/echo.JOB.log", "echo", "task", "JOB",
                       "out.JOB", ">", "out.JOB.txt"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for job in (1, 2, 3):
        assert (tmp_path / f"out.{job}.txt").read_text() == f"task {job} out.{job}\n"
        lines = (tmp_path / f"exp/log/echo.{job}.log").read_text().splitlines()
        assert lines[0] == f"# echo task {job} out.{job} > out.{job}.txt"
        assert lines[1].startswith("# Started at ")
        assert re.fullmatch(r"# Accounting: time=\d+ threads=1", lines[-2])
        assert lines[-1].startswith("# Ended (code 0) at ")


def test_job_is_replaced_only_as_a_whole_word(launcher, tmp_path):
    result = run_tool([launcher, "N=2:3", "log/w.N.log", "echo", "a/N", "x.N.y", "--s=N",
                       "NJ", "$SLURM_N_X"], cwd=tmp_path, env=dict(os.environ, SLURM_N_X="kept"))
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "log/w.1.log").exists()
    assert "a/3 x.3.y --s=3 NJ kept\n" in (tmp_path / "log/w.3.log").read_text()


def test_single_argument_is_a_whole_command_line_and_output_is_logged(launcher, tmp_path):
    result = run_tool([launcher, "--num-threads", "2", "log/x.log",
                       "printf 'a b\\nc\\n' | wc -l; echo err >&2"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = (tmp_path / "log/x.log").read_text().splitlines()
    assert lines[3:5] == ["2", "err"]
    assert lines[-2].endswith("threads=2")


def test_arguments_with_spaces_stay_one_word(launcher, tmp_path):
    result = run_tool([launcher, "w.log", "printf", "[%s]", "two words", "it's"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "[two words][it's]" in (tmp_path / "w.log").read_text()


def test_failed_tasks_give_exit_1_and_name_their_logs(launcher, tmp_path):
    result = run_tool([launcher, "JOB=1:4", "exp/log/t.JOB.log", "test", "JOB", "-le", "2"],
                      cwd=tmp_path)
    assert result.returncode == 1
    assert f"{launcher.name}: 2 / 4 failed, log is in exp/log/t.*.log" in result.stderr
    assert "exp/log/t.3.log" in result.stderr and "exp/log/t.4.log" in result.stderr
    assert "exp/log/t.1.log" not in result.stderr
    last_line = (tmp_path / "exp/log/t.4.log").read_text().splitlines()[-1]
    assert last_line.startswith("# Ended (code 1)")


def test_a_failing_stage_inside_a_pipe_fails_the_task(launcher, tmp_path):
    result = run_tool([launcher, "p.log", "false | cat"], cwd=tmp_path)
    assert result.returncode == 1
    assert "# Ended (code 1)" in (tmp_path / "p.log").read_text()


def test_max_jobs_run_caps_concurrent_tasks(launcher, tmp_path):
    # Each task holds a marker file while it runs and records how many markers it saw.
    (tmp_path / "running").mkdir()
    task = ("touch running/JOB; ls running | wc -l > seen.JOB; sleep 0.2; "
            "ls running | wc -l >> seen.JOB; rm running/JOB")
    result = run_tool([launcher, "--max-jobs-run", "1", "JOB=1:3", "log/m.JOB.log", task],
                      cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    seen = [int(n) for job in (1, 2, 3) for n in (tmp_path / f"seen.{job}").read_text().split()]
    assert seen == [1] * 6


def test_task_runs_in_the_callers_directory_with_its_environment(launcher, tmp_path):
    env = dict(os.environ, LAUNCHER_TEST_VALUE="from-caller")
    result = run_tool([launcher, "e.log", "echo", "$LAUNCHER_TEST_VALUE", "$(pwd)"],
                      cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert f"from-caller {tmp_path}" in (tmp_path / "e.log").read_text()


def test_log_file_without_job_variable_is_refused_for_arrays(launcher, tmp_path):
    result = run_tool([launcher, "JOB=1:2", "same.log", "true"], cwd=tmp_path)
    assert result.returncode == 1
    assert "does not contain JOB" in result.stderr


@pytest.mark.slurm
def test_slurm_pl_maps_options_through_the_config(slurm_cluster, tmp_path):
    result = run_tool([UTILS / "slurm.pl", "--mem", "64M", "--num-threads", "2", "r.log",
                       "echo mem=$SLURM_MEM_PER_NODE cpus=$SLURM_CPUS_PER_TASK"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "mem=64 cpus=2" in (tmp_path / "r.log").read_text()
    script = (tmp_path / "q/r.sh").read_text()
    assert "run_task 'r.log'" in script and f"cd '{tmp_path}'" in script


@pytest.mark.slurm
def test_slurm_pl_gpu_jobs_get_the_test_clusters_fake_gpus(slurm_cluster, tmp_path):
    # The local cluster declares two fake GPUs so recipes' `--gpu 1` jobs can run on CPU.
    result = run_tool([UTILS / "slurm.pl", "--gpu", "1", "JOB=1:2", "g.JOB.log",
                       "echo gpu=$CUDA_VISIBLE_DEVICES"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for job in (1, 2):
        assert re.search(r"^gpu=[01]$", (tmp_path / f"g.{job}.log").read_text(), re.M)


@pytest.mark.slurm
def test_slurm_pl_prefers_conf_slurm_conf_of_the_recipe(slurm_cluster, tmp_path):
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf/slurm.conf").write_text(
        "command sbatch --export=ALL --comment=from-recipe-conf\n"
        "option num_threads=* --cpus-per-task=$0\ndefault num_threads=1\n"
    )
    ok = run_tool([UTILS / "slurm.pl", "c.log", "echo cpus=$SLURM_CPUS_PER_TASK"], cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "cpus=1" in (tmp_path / "c.log").read_text()
    # This config describes no --mem, so asking for memory is an error naming the config.
    bad = run_tool([UTILS / "slurm.pl", "--mem", "1G", "c.log", "true"], cwd=tmp_path)
    assert bad.returncode == 1
    assert "--mem 1G is not described in conf/slurm.conf" in bad.stderr


@pytest.mark.slurm
def test_slurm_pl_reports_a_task_killed_by_slurm(slurm_cluster, tmp_path):
    # The task cancels its own array job: the log never gets its "# Ended" line.
    result = run_tool([UTILS / "slurm.pl", "k.log", "scancel $SLURM_ARRAY_JOB_ID; sleep 30"],
                      cwd=tmp_path)
    assert result.returncode == 1
    assert "k.log (no exit code in the log" in result.stderr


def test_a_stopped_launcher_stops_its_tasks(launcher, tmp_path):
    """SIGTERM to run.pl/slurm.pl (run.sh stopping its jobs) ends every task it started."""
    proc = subprocess.Popen([str(launcher), "JOB=1:2", "log/s.JOB.log", "echo $$ > pid.JOB; "
                             "exec sleep 600"], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    pids: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while len(pids) < 2:
            assert time.monotonic() < deadline, "the tasks never started"
            time.sleep(0.2)
            files = [tmp_path / f"pid.{job}" for job in (1, 2)]
            pids = [int(f.read_text()) for f in files if f.exists() and f.read_text().strip()]
        proc.terminate()
        _, err = proc.communicate(timeout=120)
        assert proc.returncode != 0 and "caught SIGTERM" in err
        deadline = time.monotonic() + 60
        while any(Path(f"/proc/{pid}").exists() for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(Path(f"/proc/{pid}").exists() for pid in pids), "a task outlived it"
    finally:
        for pid in pids:  # the tasks this test started, if the launcher left them
            if Path(f"/proc/{pid}").exists():
                os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
