"""Check that a model file given to a recipe is a whole torch checkpoint, before any stage runs.

Usage: python -m local_lib.bin.check_checkpoint FILE...
torch.save writes a zip archive; a truncated or damaged copy fails its zip directory or a
member's CRC here, in a second, instead of when a later stage loads it.
"""

from __future__ import annotations

import argparse
import sys
import zipfile
from pathlib import Path


def checkpoint_problem(path: Path) -> str | None:
    """Why ``path`` is not a complete torch checkpoint archive, or None when it is one."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (OSError, zipfile.BadZipFile) as err:
        return f"{path}: not a complete torch checkpoint (truncated, or not from torch.save): {err}"
    if bad is not None:
        return f"{path}: damaged torch checkpoint: {bad} fails its CRC check"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    problems = [p for p in map(checkpoint_problem, parser.parse_args(argv).files) if p]
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
