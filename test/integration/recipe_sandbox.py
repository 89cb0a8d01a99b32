"""Run a recipe in a throw-away copy, so tests never write into the checkout's egs/.

A sandbox mirrors the repository with symlinks (tools, utils, local_lib, downloads, egs/TEMPLATE)
and copies the one recipe directory, so path.sh and the recipe's relative links resolve exactly
as they do in a real checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import kaldiio
import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]
RECIPES = ("esd/easpo", "esd/hpro", "libritts/grpo", "libritts/w3ar", "seedtts/diffro")


@dataclass
class RecipeRun:
    returncode: int
    output: str
    seconds: float


def make_sandbox(root: Path, recipe: str, downloads: Path | None = None) -> Path:
    """Copy `recipe` under `root`; `downloads` (shared between sandboxes) keeps mini corpora."""
    for name in ("tools", "utils", "local_lib"):
        link = root / name
        if not link.exists():
            link.symlink_to(REPO_ROOT / name)
    # The corpora built once for every recipe (mini_asr) are the checkout's, as for its recipes:
    # rendered once, not once per sandbox.
    (REPO_ROOT / "downloads").mkdir(exist_ok=True)
    if not (root / "downloads").exists():
        (root / "downloads").symlink_to(REPO_ROOT / "downloads")
    (root / "egs").mkdir(exist_ok=True)
    template = root / "egs" / "TEMPLATE"
    if not template.exists():
        template.symlink_to(REPO_ROOT / "egs" / "TEMPLATE")
    recipe_dir = root / "egs" / recipe
    recipe_dir.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(REPO_ROOT / "egs" / recipe, recipe_dir, symlinks=True)
    if downloads is not None:
        downloads.mkdir(parents=True, exist_ok=True)
        (recipe_dir / "downloads").symlink_to(downloads)
    return recipe_dir


def copy_package(root: Path) -> Path:
    """Copy local_lib into `root` before `make_sandbox` (which then keeps the copy), so a test can
    add modules to the sandbox's package without touching the checkout's; path.sh puts `root`
    first on PYTHONPATH."""
    package = root / "local_lib"
    shutil.copytree(REPO_ROOT / "local_lib", package, ignore=shutil.ignore_patterns("__pycache__"))
    return package


def tree_bytes(root: Path, skip: tuple[str, ...] = ()) -> dict[str, bytes]:
    """Every regular file under `root`, by relative path; symbolic links, __pycache__ and the
    top-level entries named in `skip` are left out."""
    files = {}
    for top, dirs, names in os.walk(root):
        rel = Path(top).relative_to(root)
        dirs[:] = [d for d in dirs if d != "__pycache__" and not (rel == Path() and d in skip)]
        for name in names:
            path = Path(top) / name
            if not path.is_symlink() and not (rel == Path() and name in skip):
                files[str(rel / name)] = path.read_bytes()
    return files


def run_recipe(
    recipe_dir: Path, *args: str, backend: str = "local", timeout: int = 900
) -> RecipeRun:
    env = dict(os.environ, cmd_backend=backend)
    start = time.monotonic()
    proc = subprocess.run(
        ["./run.sh", *args],
        cwd=recipe_dir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )
    return RecipeRun(proc.returncode, proc.stdout, time.monotonic() - start)


def subset_data_dir(recipe_dir: Path, source: str, target: str, utts: Sequence[str]) -> None:
    """``data/<target>`` holding the utterances ``utts`` of ``data/<source>``, made by
    utils/subset_data_dir.sh as a user would (a small test set for a quick run)."""
    keep = recipe_dir / f"{target}.list"
    keep.write_text("".join(f"{u}\n" for u in utts))
    subset = subprocess.run(
        ["bash", "-c", f". ./path.sh && utils/subset_data_dir.sh --utt-list {keep.name} "
         f"data/{source} data/{target}"],
        cwd=recipe_dir, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert subset.returncode == 0, subset.stderr


def read_feats(scp: Path) -> dict[str, np.ndarray]:
    return {utt: np.asarray(mat) for utt, mat in kaldiio.load_scp(str(scp)).items()}


def data_dir_bytes(data_dir: Path) -> dict[str, bytes]:
    """Every regular file of a data dir, by name, for byte-for-byte comparison."""
    return {p.name: p.read_bytes() for p in sorted(data_dir.iterdir()) if p.is_file()}
