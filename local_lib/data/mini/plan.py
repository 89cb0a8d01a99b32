"""A corpus as data: the wavs to synthesise and the text files to write, relative to its root."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from local_lib.data.mini.render import Utterance, render_all


@dataclass
class CorpusPlan:
    """Everything a mini corpus contains; paths are relative to the corpus root."""

    utterances: list[Utterance] = field(default_factory=list)
    texts: dict[Path, str] = field(default_factory=dict)

    def write(self, root: Path, nj: int) -> None:
        """Write the text files, then synthesise every wav under `root`."""
        for rel, content in self.texts.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(content, encoding="utf-8")
        render_all([replace(u, path=root / u.path) for u in self.utterances], nj)


def tsv_lines(rows: list[tuple[str, ...]]) -> str:
    """Tab-separated lines, sorted in C-locale (byte) order, newline-terminated."""
    lines = sorted("\t".join(row) for row in rows)
    return "".join(line + "\n" for line in lines)
