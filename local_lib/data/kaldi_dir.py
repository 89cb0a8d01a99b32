"""Kaldi data directories: strict reading, atomic writing and validation.

Every stage downstream trusts these files blindly (sorted, unique, consistent ids), so the
reader refuses anything Kaldi's own tools would reject and says where the problem is as
``file:line: utt: message``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import soundfile

from local_lib.atomic_io import atomic_path

REQUIRED_FILES = ("wav.scp", "text", "utt2spk", "spk2utt")
UTT_LEVEL_FILES = ("text", "utt2spk")
# Per-utterance files besides the required ones: every ``utt2*`` file and feats.scp.
EXTRA_PREFIX = "utt2"
EXTRA_NAMES = ("feats.scp",)
NUMERIC_EXTRAS = {"utt2dur": float, "utt2num_frames": int}

_LINE_RE = re.compile(r"^(\S+)(?:\s+(.*?))?\s*$")


class DataDirError(ValueError):
    """A data-dir file that downstream tools cannot trust."""


@dataclass(frozen=True)
class Problem:
    """One defect found in a data dir; line 0 means the file as a whole."""

    file: str
    line: int
    utt: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.utt}: {self.message}"


@dataclass(frozen=True)
class KvLine:
    """One parsed ``key value`` line; value is empty when the line had none."""

    line: int
    key: str
    value: str


@dataclass
class KvScan:
    """All decodable lines of a file plus every problem met, so callers pick strictness."""

    lines: list[KvLine] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


@dataclass(frozen=True)
class Segment:
    """A ``segments`` entry: an utterance cut from a recording in wav.scp."""

    recording: str
    start: float
    end: float


@dataclass
class DataDir:
    """A loaded data dir; ``segments`` is None when the dir has no segments file."""

    path: Path
    wav_scp: dict[str, str]
    text: dict[str, str]
    utt2spk: dict[str, str]
    spk2utt: dict[str, str]
    extras: dict[str, dict[str, str]] = field(default_factory=dict)
    segments: dict[str, Segment] | None = None

    @property
    def utts(self) -> list[str]:
        """Utterance ids in C-locale order."""
        return sorted(self.utt2spk, key=c_sort_key)


def c_sort_key(key: str) -> bytes:
    """Order of ``LC_ALL=C sort``: raw UTF-8 bytes."""
    return key.encode("utf-8")


def scan_kv(path: Path, display_name: str | None = None) -> KvScan:
    """Parse a Kaldi ``key value...`` file, collecting problems instead of stopping.

    Duplicate keys keep their first line in ``lines``; lines without a value are kept with an
    empty value (and reported) so cross-file checks still see the key.
    """
    name = display_name or path.name
    scan = KvScan()
    seen: dict[str, int] = {}
    previous: str | None = None
    with open(path, "rb") as fd:
        raw_lines = fd.read().split(b"\n")
    if raw_lines and raw_lines[-1] == b"":
        raw_lines.pop()
    for number, raw in enumerate(raw_lines, start=1):
        try:
            decoded = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            scan.problems.append(Problem(name, number, "-", f"not valid UTF-8 ({err.reason})"))
            continue
        match = _LINE_RE.match(decoded)
        if match is None:
            scan.problems.append(Problem(name, number, "-", "empty line"))
            continue
        key, value = match.group(1), match.group(2) or ""
        if not value:
            scan.problems.append(Problem(name, number, key, "no value after the key"))
        if key in seen:
            scan.problems.append(
                Problem(name, number, key, f"duplicate key (first on line {seen[key]})")
            )
            continue
        if previous is not None and c_sort_key(key) < c_sort_key(previous):
            scan.problems.append(
                Problem(name, number, key, f"not sorted (comes after {previous!r}; use LC_ALL=C)")
            )
        seen[key] = number
        previous = key
        scan.lines.append(KvLine(number, key, value))
    return scan


def read_kv(path: Path) -> dict[str, str]:
    """Read a Kaldi ``key value...`` file strictly, keeping file order."""
    path = Path(path)
    scan = scan_kv(path, display_name=str(path))
    if scan.problems:
        raise DataDirError("\n".join(str(problem) for problem in scan.problems))
    return {entry.key: entry.value for entry in scan.lines}


def shard_bounds(num_lines: int, nj: int, job: int) -> tuple[int, int]:
    """Kaldi split_scp's rule, shared by every JOB array: [start, end) of shard ``job``
    (1-based); the first ``num_lines % nj`` shards get one more."""
    if not 1 <= job <= nj:
        raise ValueError(f"job {job} is outside 1..{nj}")
    base, extra = divmod(num_lines, nj)
    start = (job - 1) * base + min(job - 1, extra)
    return start, start + base + (1 if job <= extra else 0)


def write_kv(path: Path, mapping: Mapping[str, str]) -> None:
    """Write ``key value`` lines sorted in C-locale order, atomically."""
    path = Path(path)
    lines = []
    for key in sorted(mapping, key=c_sort_key):
        value = str(mapping[key])
        if not key or any(ch.isspace() for ch in key):
            raise DataDirError(f"{path}: key {key!r} is empty or contains whitespace")
        if not value.strip() or "\n" in value or "\r" in value:
            raise DataDirError(f"{path}: {key}: value {value!r} is empty or spans lines")
        lines.append(f"{key} {value.strip()}\n")
    with atomic_path(path) as tmp:
        tmp.write_text("".join(lines), encoding="utf-8")


def spk2utt_from_utt2spk(utt2spk: Mapping[str, str]) -> dict[str, str]:
    """Invert utt2spk; utterances of a speaker in C-locale order."""
    grouped: dict[str, list[str]] = {}
    for utt, spk in utt2spk.items():
        grouped.setdefault(spk, []).append(utt)
    return {spk: " ".join(sorted(utts, key=c_sort_key)) for spk, utts in grouped.items()}


def write_data_dir(out_dir: Path, files: Mapping[str, Mapping[str, str]]) -> None:
    """Write the named files of a data dir and derive spk2utt from utt2spk."""
    out_dir = Path(out_dir)
    if "utt2spk" not in files:
        raise DataDirError(f"{out_dir}: write_data_dir needs an utt2spk mapping")
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, mapping in files.items():
        if name != "spk2utt":
            write_kv(out_dir / name, mapping)
    write_kv(out_dir / "spk2utt", spk2utt_from_utt2spk(files["utt2spk"]))


def extra_file_names(path: Path) -> list[str]:
    """Per-utterance files present in a data dir besides text and utt2spk."""
    names = [
        entry.name
        for entry in Path(path).iterdir()
        if entry.is_file()
        and (entry.name.startswith(EXTRA_PREFIX) or entry.name in EXTRA_NAMES)
        and entry.name != "utt2spk"
    ]
    return sorted(names)


def parse_segment(value: str) -> Segment:
    """Parse ``recording start end`` from a segments line (seconds, start < end)."""
    fields = value.split()
    if len(fields) != 3:
        raise ValueError(f"expected 'recording start end', got {value!r}")
    start, end = float(fields[1]), float(fields[2])
    if not 0.0 <= start < end:
        raise ValueError(f"need 0 <= start < end, got start={start} end={end}")
    return Segment(fields[0], start, end)


def load_data_dir(path: Path) -> DataDir:
    """Load a data dir strictly (every file via read_kv)."""
    path = Path(path)
    missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
    if missing:
        raise DataDirError(f"{path}: missing required file(s): {', '.join(missing)}")
    segments = None
    if (path / "segments").is_file():
        segments = {}
        for utt, value in read_kv(path / "segments").items():
            try:
                segments[utt] = parse_segment(value)
            except ValueError as err:
                raise DataDirError(f"{path / 'segments'}: {utt}: {err}") from err
    return DataDir(
        path=path,
        wav_scp=read_kv(path / "wav.scp"),
        text=read_kv(path / "text"),
        utt2spk=read_kv(path / "utt2spk"),
        spk2utt=read_kv(path / "spk2utt"),
        extras={name: read_kv(path / name) for name in extra_file_names(path)},
        segments=segments,
    )


# Shorter audio is a bare header or a click: too short for a feature frame window, let alone
# a word; stage 2 would fail on it.
MIN_AUDIO_SECONDS = 0.1


def check_wav(value: str, min_seconds: float = MIN_AUDIO_SECONDS) -> str | None:
    """Why a wav.scp entry cannot be used, or None when soundfile opens it and it lasts at
    least ``min_seconds``."""
    if value.endswith("|"):
        return "command pipes are not supported; give a file path"
    wav = Path(value)
    if not wav.is_file():
        return f"wav file does not exist: {value}"
    try:
        info = soundfile.info(str(wav))
    except (RuntimeError, OSError, soundfile.LibsndfileError) as err:
        return f"cannot read audio {value}: {err}"
    if info.frames < min_seconds * info.samplerate:
        return (
            f"audio {value} has {info.frames} samples ({info.frames / info.samplerate:.3f} s), "
            f"less than the minimum {min_seconds:g} s"
        )
    return None


class _Validator:
    """Collects every problem of one data dir; one method per family of checks."""

    def __init__(
        self, path: Path, check_audio: bool, min_seconds: float, min_utts_per_spk: int
    ) -> None:
        self.path = path
        self.check_audio = check_audio
        self.min_seconds = min_seconds
        self.min_utts_per_spk = min_utts_per_spk
        self.problems: list[Problem] = []
        self.scans: dict[str, KvScan] = {}

    def run(self) -> list[Problem]:
        for name in REQUIRED_FILES:
            if not (self.path / name).is_file():
                self.problems.append(Problem(name, 0, "-", "required file is missing"))
        names = [*REQUIRED_FILES, *extra_file_names(self.path)]
        if (self.path / "segments").is_file():
            names.append("segments")
        for name in names:
            if (self.path / name).is_file():
                self.scans[name] = scan_kv(self.path / name)
                self.problems.extend(self._described(name, self.scans[name].problems))
        utt_lines = self._utterances()
        self._check_utt_files(utt_lines)
        self._check_speakers()
        self._check_values()
        if self.check_audio and "wav.scp" in self.scans:
            for entry in self.scans["wav.scp"].lines:
                reason = check_wav(entry.value, self.min_seconds) if entry.value else None
                if reason:
                    self.problems.append(Problem("wav.scp", entry.line, entry.key, reason))
        return sorted(self.problems, key=lambda p: (p.file, p.line))

    @staticmethod
    def _described(name: str, problems: list[Problem]) -> list[Problem]:
        """Say 'empty transcript' rather than 'no value' where it matters to a user."""
        if name != "text":
            return problems
        return [
            (
                Problem(p.file, p.line, p.utt, "empty transcript")
                if p.message == "no value after the key"
                else p
            )
            for p in problems
        ]

    def _lines(self, name: str) -> dict[str, KvLine]:
        scan = self.scans.get(name)
        return {entry.key: entry for entry in scan.lines} if scan else {}

    def _utterances(self) -> dict[str, KvLine]:
        """The reference utterance set: segments if present, else wav.scp."""
        if "segments" not in self.scans:
            return self._lines("wav.scp")
        recordings = self._lines("wav.scp")
        used: set[str] = set()
        for entry in self.scans["segments"].lines:
            try:
                segment = parse_segment(entry.value)
            except ValueError as err:
                self.problems.append(Problem("segments", entry.line, entry.key, str(err)))
                continue
            used.add(segment.recording)
            if segment.recording not in recordings:
                self.problems.append(
                    Problem(
                        "segments",
                        entry.line,
                        entry.key,
                        f"recording {segment.recording} is not in wav.scp",
                    )
                )
        for rec, entry in recordings.items():
            if rec not in used:
                self.problems.append(
                    Problem("wav.scp", entry.line, rec, "recording has no segment")
                )
        return self._lines("segments")

    def _check_utt_files(self, reference: dict[str, KvLine]) -> None:
        ref_name = "segments" if "segments" in self.scans else "wav.scp"
        if ref_name not in self.scans:
            return
        for name in [*UTT_LEVEL_FILES, *extra_file_names(self.path)]:
            if name not in self.scans:
                continue
            lines = self._lines(name)
            for utt, entry in lines.items():
                if utt not in reference:
                    self.problems.append(Problem(name, entry.line, utt, f"not in {ref_name}"))
            for utt, entry in reference.items():
                if utt not in lines:
                    self.problems.append(Problem(ref_name, entry.line, utt, f"not in {name}"))

    def _check_speakers(self) -> None:
        utt2spk = self._lines("utt2spk")
        for utt, entry in utt2spk.items():
            if entry.value and not utt.startswith(entry.value):
                self.problems.append(
                    Problem(
                        "utt2spk",
                        entry.line,
                        utt,
                        f"utterance id does not start with its speaker id {entry.value!r}",
                    )
                )
        expected = spk2utt_from_utt2spk({utt: e.value for utt, e in utt2spk.items() if e.value})
        first_line = {}
        for utt, entry in utt2spk.items():
            first_line.setdefault(entry.value, (entry.line, utt))
        for spk, utts in expected.items():
            if len(utts.split()) < self.min_utts_per_spk:
                line, utt = first_line[spk]
                self.problems.append(
                    Problem(
                        "utt2spk",
                        line,
                        utt,
                        f"speaker {spk} has {len(utts.split())} utterance(s), fewer than "
                        f"{self.min_utts_per_spk}: zero-shot synthesis prompts each utterance "
                        "with another of its speaker (drop the speaker or add utterances)",
                    )
                )
        if "spk2utt" not in self.scans:
            return
        spk2utt = self._lines("spk2utt")
        for spk, entry in spk2utt.items():
            if spk not in expected:
                self.problems.append(Problem("spk2utt", entry.line, spk, "speaker not in utt2spk"))
            elif set(entry.value.split()) != set(expected[spk].split()):
                self.problems.append(
                    Problem(
                        "spk2utt",
                        entry.line,
                        spk,
                        "utterance list differs from utt2spk (regenerate it from utt2spk)",
                    )
                )
        for spk in expected:
            if spk not in spk2utt:
                self.problems.append(Problem("spk2utt", 0, spk, "speaker of utt2spk is missing"))

    def _check_values(self) -> None:
        for name, kind in NUMERIC_EXTRAS.items():
            for entry in self._lines(name).values():
                if not entry.value:
                    continue
                try:
                    number = kind(entry.value)
                except ValueError:
                    number = None
                if number is None or number <= 0:
                    self.problems.append(
                        Problem(
                            name,
                            entry.line,
                            entry.key,
                            f"expected a positive {kind.__name__}, got {entry.value!r}",
                        )
                    )


def validate_data_dir(
    path: Path,
    check_audio: bool = True,
    min_seconds: float = MIN_AUDIO_SECONDS,
    min_utts_per_spk: int = 1,
) -> list[Problem]:
    """Every problem of a data dir (empty list when it is sound), Kaldi's checks and ours;
    ``min_utts_per_spk`` 2 for a set whose utterances are prompted by their speaker's others."""
    path = Path(path)
    if not path.is_dir():
        return [Problem(".", 0, "-", "data dir does not exist")]
    return _Validator(path, check_audio, min_seconds, min_utts_per_spk).run()
