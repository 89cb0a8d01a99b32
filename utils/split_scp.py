#!/usr/bin/env python3
"""Split a Kaldi scp (or any "key value" list) into N contiguous parts of near-equal size.

Usage: utils/split_scp.py [--utt2spk UTT2SPK] <in.scp> <out1.scp> [<out2.scp> ...]

Kaldi's split_scp semantics: part k holds a contiguous run of the input's lines, and the first
(L mod N) parts get one line more than the rest, so concatenating the parts gives the input back.
With --utt2spk the cut points fall between speakers only (a speaker's lines must be contiguous
in the input), chosen so the parts' line counts are as even as that allows. Fewer lines (or
speakers) than parts is an error. Outputs are written atomically. Standard library only, so it
runs with any Python 3.9+.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path


class SplitError(ValueError):
    """Bad input; the message names the file and line."""


def read_lines(path: Path) -> list[str]:
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        line = path.read_bytes()[: err.start].count(b"\n") + 1
        raise SplitError(f"{path}:{line}: not valid UTF-8") from None
    return text.splitlines()


def read_scp(path: Path) -> list[str]:
    lines = read_lines(path)
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            raise SplitError(f"{path}:{lineno}: empty line")
    return lines


def read_utt2spk(path: Path) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for lineno, line in enumerate(read_lines(path), 1):
        fields = line.split()
        if len(fields) != 2:
            raise SplitError(f"{path}:{lineno}: expected '<utt> <spk>', got: {line!r}")
        mapping[fields[0]] = fields[1]
    return mapping


def even_sizes(total: int, parts: int) -> list[int]:
    """Kaldi's sizes: the first (total mod parts) parts get one extra line."""
    base, extra = divmod(total, parts)
    return [base + 1 if k < extra else base for k in range(parts)]


def speaker_groups(lines: list[str], utt2spk: dict[str, str], scp: Path) -> list[int]:
    """Line counts of the consecutive speaker blocks of the scp, in order."""
    counts: list[int] = []
    seen: set[str] = set()
    previous = None
    for lineno, line in enumerate(lines, 1):
        utt = line.split(maxsplit=1)[0]
        if utt not in utt2spk:
            raise SplitError(f"{scp}:{lineno}: {utt}: not in utt2spk")
        spk = utt2spk[utt]
        if spk == previous:
            counts[-1] += 1
            continue
        if spk in seen:
            raise SplitError(
                f"{scp}:{lineno}: {utt}: lines of speaker {spk} are not contiguous "
                "(sort the scp by speaker; utterance ids should start with the speaker id)"
            )
        seen.add(spk)
        counts.append(1)
        previous = spk
    return counts


def speaker_sizes(groups: list[int], parts: int) -> list[int]:
    """Cut the speaker blocks into `parts` runs whose line counts are closest to even.

    Each cut goes to the block boundary nearest its ideal position (k * total / parts), kept
    after the previous cut and early enough to leave one speaker for every later part.
    """
    total = sum(groups)
    cumulative = [0]
    for count in groups:
        cumulative.append(cumulative[-1] + count)
    cuts = [0]
    for k in range(1, parts):
        ideal = k * total / parts
        lowest, highest = cuts[-1] + 1, len(groups) - (parts - k)
        best = min(range(lowest, highest + 1), key=lambda b: abs(cumulative[b] - ideal))
        cuts.append(best)
    cuts.append(len(groups))
    return [cumulative[cuts[k + 1]] - cumulative[cuts[k]] for k in range(parts)]


def split_lines(
    lines: list[str], parts: int, scp: Path, utt2spk: dict[str, str] | None = None
) -> list[list[str]]:
    """Contiguous parts of `lines`; with utt2spk, whole speakers per part."""
    if utt2spk is None:
        if len(lines) < parts:
            raise SplitError(f"{scp}: {len(lines)} lines cannot be split into {parts} parts")
        sizes = even_sizes(len(lines), parts)
    else:
        groups = speaker_groups(lines, utt2spk, scp)
        if len(groups) < parts:
            raise SplitError(f"{scp}: {len(groups)} speakers cannot be split into {parts} parts")
        sizes = speaker_sizes(groups, parts)
    out, start = [], 0
    for size in sizes:
        out.append(lines[start : start + size])
        start += size
    return out


def write_atomic(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.writelines(line + "\n" for line in lines)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--utt2spk", type=Path, help="keep each speaker's lines in one part")
    parser.add_argument("scp", type=Path, help="input list")
    parser.add_argument("outputs", type=Path, nargs="+", help="one output file per part")
    args = parser.parse_args(argv)
    try:
        utt2spk = read_utt2spk(args.utt2spk) if args.utt2spk else None
        parts = split_lines(read_scp(args.scp), len(args.outputs), args.scp, utt2spk)
    except (OSError, SplitError) as err:
        print(f"split_scp.py: {err}", file=sys.stderr)
        return 1
    for path, part in zip(args.outputs, parts):
        write_atomic(path, part)
    return 0


if __name__ == "__main__":
    sys.exit(main())
