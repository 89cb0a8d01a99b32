"""Build a corpus directory all-or-nothing, and only once.

The tree is written into `DIR.tmp`, a done marker (the build's signature) is added, and the
directory is renamed to `DIR` as the last step; so `DIR` either does not exist or is complete.
A lock file serialises concurrent builders of the same `DIR` (parallel recipes, Slurm jobs).
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

from local_lib.file_lock import exclusive_lock

log = logging.getLogger(__name__)
DONE_MARKER = ".done"


class MiniCorpusError(RuntimeError):
    """An output directory that cannot be used for this build; the message says why."""


def finished_signature(out_dir: Path) -> dict | None:
    """The signature stored in a finished build's marker, or None if `out_dir` has none."""
    marker = out_dir / DONE_MARKER
    if not marker.is_file():
        return None
    return json.loads(marker.read_text(encoding="utf-8"))


def build_once(
    out_dir: Path, signature: Mapping[str, object], write: Callable[[Path], None]
) -> bool:
    """Run `write(tmp_dir)` and publish it as `out_dir`; False if it was already built.

    Raises MiniCorpusError when `out_dir` exists but is not this exact finished build
    (another seed or corpus, or a directory that is not ours), rather than overwrite it.
    """
    out_dir = out_dir.absolute()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    wanted = json.loads(json.dumps(dict(signature), sort_keys=True))
    with exclusive_lock(out_dir.with_name(out_dir.name + ".lock"), str(out_dir)):
        if out_dir.exists():
            found = finished_signature(out_dir)
            if found == wanted:
                log.info("%s is already built (%s); nothing to do", out_dir, DONE_MARKER)
                return False
            what = "no done marker" if found is None else f"a different build {found}"
            raise MiniCorpusError(
                f"{out_dir} exists with {what}, not {wanted}; remove it or choose another "
                "--out-dir"
            )
        tmp = out_dir.with_name(out_dir.name + ".tmp")
        if tmp.exists():
            log.info("removing %s left by an interrupted build", tmp)
            shutil.rmtree(tmp)
        tmp.mkdir()
        write(tmp)
        (tmp / DONE_MARKER).write_text(json.dumps(wanted, sort_keys=True) + "\n", encoding="utf-8")
        tmp.rename(out_dir)
    log.info("wrote %s", out_dir)
    return True
