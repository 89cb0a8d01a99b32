"""utils/launch.sh + local_lib.train.distributed: a 2-process gloo all-reduce under each launcher.

local_lib.bin.dist_check makes every rank contribute rank + 1, so a working 2-process group
sums to 3; rank 0 writes the result as JSON.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from shell_tools import REPO_ROOT, UTILS, run_tool


def launch_env(venv_python: Path) -> dict[str, str]:
    """The environment path.sh would give: the project's Python first and local_lib importable."""
    path = f"{venv_python.parent}{os.pathsep}{os.environ['PATH']}"
    pythonpath = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p)
    return dict(os.environ, PATH=path, PYTHONPATH=pythonpath)


def check_result(out: Path, log: Path) -> None:
    assert json.loads(out.read_text()) | {"hosts": None} == {
        "world_size": 2, "backend": "gloo", "sum": 3, "expected": 3, "hosts": None}
    text = log.read_text()
    assert "dist_check: world_size=2 backend=gloo sum=3 expected=3" in text
    assert "# Ended (code 0)" in text


def test_single_process_run_needs_no_launcher(tmp_path, venv_python):
    result = run_tool([venv_python, "-m", "local_lib.bin.dist_check", "--out", "single.json"],
                      cwd=tmp_path, env=launch_env(venv_python))
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "single.json").read_text())["backend"] == "none"
    assert "world_size=1" in result.stdout


def test_two_process_allreduce_under_run_pl(tmp_path, venv_python):
    result = run_tool([UTILS / "run.pl", "exp/log/dist.log", UTILS / "launch.sh", "--nproc", "2",
                       "--", "local_lib.bin.dist_check", "--out", "exp/dist.json"],
                      cwd=tmp_path, env=launch_env(venv_python), timeout=180)
    assert result.returncode == 0, result.stderr + (tmp_path / "exp/log/dist.log").read_text()
    check_result(tmp_path / "exp/dist.json", tmp_path / "exp/log/dist.log")


@pytest.mark.slurm
def test_two_process_allreduce_under_slurm_pl_through_srun(slurm_cluster, tmp_path, venv_python):
    # --use-srun true takes the multi-node path (srun, one torchrun per node, rendezvous at the
    # allocation's first host) on the one node there is.
    result = run_tool([UTILS / "slurm.pl", "--num-threads", "2", "exp/log/dist.log",
                       UTILS / "launch.sh", "--use-srun", "true", "--nproc", "2", "--",
                       "local_lib.bin.dist_check", "--out", "exp/dist.json"],
                      cwd=tmp_path, env=launch_env(venv_python), timeout=180)
    log = tmp_path / "exp/log/dist.log"
    assert result.returncode == 0, result.stderr + (log.read_text() if log.exists() else "")
    check_result(tmp_path / "exp/dist.json", log)
    assert "srun --nodes 1 --ntasks 1" in log.read_text()


def test_multi_node_without_an_allocation_is_an_error(tmp_path, venv_python):
    env = {k: v for k, v in launch_env(venv_python).items() if not k.startswith("SLURM_JOB")}
    result = run_tool([UTILS / "launch.sh", "--nnodes", "2", "--", "local_lib.bin.dist_check"],
                      cwd=tmp_path, env=env)
    assert result.returncode == 1
    assert "--nnodes 2 needs a Slurm allocation" in result.stderr
