"""Done-markers that record what a stage's output was made from, so a stale output is redone.

Usage: python -m local_lib.bin.stage_record check MARKER [--output F]... -- ARGS...
       python -m local_lib.bin.stage_record begin MARKER [--resume-dir DIR] -- ARGS...
       python -m local_lib.bin.stage_record finish MARKER

ARGS are the stage's command line (plus any extra input paths). Every ARG that names an
existing file or directory outside the marker's own directory, and the FILE of every ARG
NAME=FILE (a file only: NAME=DIR is a corpus root, recorded as written), is an input and is
recorded by the SHA-256 of its content (a directory: of every file in it, except logs,
checkpoints and hidden files; a file over 64 MiB, such as a full-size model or a feature ark, by
its size and modification time, so checks stay quick); the whole argument list is recorded
too, so a changed option counts.

``check`` exits 0 when MARKER records exactly these inputs and every ``--output`` exists;
otherwise 1, printing why on stdout when there was a marker (what changed, what is missing).
``begin`` writes MARKER.inputs and removes MARKER before the work starts; with ``--resume-dir``
it refuses (exit 2, naming what changed) when DIR holds checkpoints of a run made from other
inputs, since resuming them would mix two configurations. ``finish`` renames MARKER.inputs to
MARKER once the work succeeded.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

# Entries of an input directory that are not part of what it holds: run logs, resumable
# training state and the markers themselves.
SKIPPED_NAMES = ("log", "checkpoints", "tensorboard", "__pycache__")
PENDING_SUFFIX = ".inputs"
CONTENT_LIMIT = 64 << 20  # bytes; larger files are recorded by size and modification time


def _file_digest(path: Path) -> str:
    stat = path.stat()
    if stat.st_size > CONTENT_LIMIT:
        return f"size {stat.st_size} mtime_ns {stat.st_mtime_ns}"
    digest = hashlib.sha256()
    with open(path, "rb") as fd:
        for block in iter(lambda: fd.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _dir_digest(path: Path) -> str:
    """One digest over the relative names and contents of the files a directory holds."""
    digest = hashlib.sha256()
    for top, dirs, names in os.walk(path, followlinks=True):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_NAMES and not d.startswith("."))
        for name in sorted(n for n in names if not n.startswith(".")):
            file = Path(top) / name
            digest.update(f"{file.relative_to(path)}\0{_file_digest(file)}\0".encode())
    return digest.hexdigest()


def _is_inside(path: Path, directory: Path) -> bool:
    return path == directory or directory in path.parents


def make_record(marker: Path, args: list[str]) -> dict[str, object]:
    """The marker's content for a stage run with ``args``: the arguments and input digests."""
    own_dir = marker.parent.resolve()
    inputs: dict[str, str] = {}
    for arg in args:
        named = arg.partition("=")[2]
        if named and Path(named).is_file():
            arg = named
        path = Path(arg)
        if not arg or arg in inputs or not path.exists() or _is_inside(path.resolve(), own_dir):
            continue
        inputs[arg] = _dir_digest(path) if path.is_dir() else _file_digest(path)
    return {"args": args, "inputs": inputs}


def _read_record(path: Path) -> dict[str, object] | None:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def differences(old: dict[str, object] | None, new: dict[str, object]) -> list[str]:
    """What differs between two records, in words; empty when they are equal."""
    if old is None:
        return ["it records no inputs (written by an older version, or damaged)"]
    changes: list[str] = []
    old_inputs, new_inputs = old.get("inputs", {}), new["inputs"]
    assert isinstance(old_inputs, dict) and isinstance(new_inputs, dict)
    for name in sorted(set(old_inputs) | set(new_inputs)):
        if name not in new_inputs:
            changes.append(f"{name} is gone")
        elif name not in old_inputs:
            changes.append(f"{name} is a new input")
        elif old_inputs[name] != new_inputs[name]:
            changes.append(f"{name} changed")
    if not changes and old.get("args") != new["args"]:
        changes.append(f"the command line changed (was: {' '.join(map(str, old.get('args', [])))})")
    return changes


def _write_record(path: Path, record: dict[str, object]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def check(marker: Path, outputs: list[str], args: list[str]) -> int:
    if not marker.exists():
        return 1
    reasons = differences(_read_record(marker), make_record(marker, args))
    reasons += [f"its output {out} is missing" for out in outputs if not Path(out).exists()]
    if reasons:
        print(f"{marker} is stale: {'; '.join(reasons)}")
        return 1
    return 0


def begin(marker: Path, resume_dir: Path | None, args: list[str]) -> int:
    pending = marker.with_name(marker.name + PENDING_SUFFIX)
    record = make_record(marker, args)
    if resume_dir is not None and resume_dir.is_dir() and any(resume_dir.iterdir()):
        if pending.exists() or marker.exists():
            old = _read_record(pending if pending.exists() else marker)
            changes = differences(old, record)
            if changes:
                print(
                    f"{resume_dir} holds checkpoints of a run made from other inputs "
                    f"({'; '.join(changes)}); resuming would mix the two. Restore them, or "
                    f"remove {resume_dir} to start over",
                    file=sys.stderr,
                )
                return 2
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.unlink(missing_ok=True)
    _write_record(pending, record)
    return 0


def finish(marker: Path) -> int:
    pending = marker.with_name(marker.name + PENDING_SUFFIX)
    if not pending.exists():
        print(f"stage_record: no {pending}: 'begin' was not run for {marker}", file=sys.stderr)
        return 1
    os.replace(pending, marker)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("check", "begin", "finish"))
    parser.add_argument("marker", type=Path)
    parser.add_argument("--output", action="append", default=[], help="must exist (check)")
    parser.add_argument("--resume-dir", type=Path, help="checkpoints a run resumes from (begin)")
    argv = sys.argv[1:] if argv is None else argv
    # Everything after the first "--" is the stage's arguments, options included.
    split = argv.index("--") if "--" in argv else len(argv)
    opts, args = parser.parse_args(argv[:split]), argv[split + 1 :]
    if opts.action == "check":
        return check(opts.marker, opts.output, args)
    if opts.action == "begin":
        return begin(opts.marker, opts.resume_dir, args)
    return finish(opts.marker)


if __name__ == "__main__":
    sys.exit(main())
