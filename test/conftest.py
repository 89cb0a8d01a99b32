"""Session-wide fixtures: the repository root, the project's Python and the local Slurm."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from slurm_cluster import (
    SlurmCluster,
    SlurmStartError,
    start_cluster,
    stop_cluster,
    unavailable_reason,
)

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def venv_python(repo_root: Path) -> Path:
    """tools/venv's interpreter, or the one running pytest when the venv is not built."""
    candidate = repo_root / "tools" / "venv" / "bin" / "python"
    return candidate if candidate.exists() else Path(sys.executable)


STATE_PREFIX = "local-slurm-"
OWNER_FILE = "pytest.pid"


def _owner_is_gone(state_dir: Path) -> bool:
    """True only when the pytest process that started this cluster no longer exists."""
    try:
        os.kill(int((state_dir / OWNER_FILE).read_text()), 0)
    except ProcessLookupError:
        return True
    except (OSError, ValueError):
        return False                      # unreadable or not ours: leave it alone
    return False                          # its session is still running


def _stop_abandoned_clusters() -> None:
    """Stop clusters left running by pytest sessions that died before their teardown."""
    for state_dir in Path(tempfile.gettempdir()).glob(f"{STATE_PREFIX}*"):
        if _owner_is_gone(state_dir):
            stop_cluster(SlurmCluster(state_dir))
            shutil.rmtree(state_dir, ignore_errors=True)


def _must_run_slurm() -> bool:
    """On CI as root a missing or broken Slurm is a failure, never a silent skip."""
    return os.environ.get("CI", "").lower() == "true" and os.geteuid() == 0


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    """A one-node Slurm for the whole session, with SLURM_CONF exported to every subprocess."""
    reason = unavailable_reason()
    if reason is not None:
        if _must_run_slurm():
            pytest.fail(f"CI=true but the local Slurm cannot run: {reason}")
        pytest.skip(reason)
    _stop_abandoned_clusters()
    # A short path: munge's socket lives inside and Unix socket paths are limited to 108 bytes.
    state_dir = Path(tempfile.mkdtemp(prefix=STATE_PREFIX))
    (state_dir / OWNER_FILE).write_text(f"{os.getpid()}\n")
    try:
        cluster = start_cluster(state_dir)
    except SlurmStartError as err:
        shutil.rmtree(state_dir, ignore_errors=True)
        if _must_run_slurm():
            pytest.fail(f"CI=true but the local Slurm did not start: {err}")
        pytest.skip(f"the local Slurm did not start: {err}")
    previous = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(cluster.conf)
    try:
        yield cluster
    finally:
        stop_cluster(cluster)
        if previous is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = previous
        shutil.rmtree(state_dir, ignore_errors=True)
