"""Running the repository's shell tools from tests."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
UTILS = REPO_ROOT / "utils"


def run_tool(
    args: Sequence[str | Path],
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing stdout and stderr as text; never raises on a non-zero exit."""
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, env=None if env is None else dict(env),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout, check=False,
    )
