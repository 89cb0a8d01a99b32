"""The inputs of the stage-8 report, read and checked before anything is computed.

Systems are directories holding a ``scores.tsv`` from ``local_lib.bin.score``; training runs
are ``metrics.jsonl`` files from the Trainer. Every check fails with a message naming the
option, file or utterance at fault, so a recipe's stage 8 says what to fix.
"""

import math
from dataclasses import dataclass
from pathlib import Path

from local_lib.eval.score_table import read_scores
from local_lib.train.trainer import read_metrics

SCORES_FILE = "scores.tsv"
TAKES_FILE = "scores_takes.tsv"  # every take's row, when stage 6 drew several per utterance
RESULTS_FILE = "RESULTS.md"


@dataclass(frozen=True)
class System:
    """One scored system: its name in the report, its directory and its per-utterance rows."""

    name: str
    directory: Path
    rows: dict[str, dict[str, str]]
    takes: int = 1  # takes per utterance behind each row (stage 6 --synth_samples)
    members: tuple[str, ...] = ()  # the systems averaged into this one (--seed-mean)


@dataclass(frozen=True)
class Run:
    """One training run's logged steps, for the curves."""

    name: str
    path: Path
    records: list[dict[str, float]]


def parse_named_path(spec: str, option: str) -> tuple[str, Path]:
    """Split ``NAME=PATH``; both parts must be non-empty."""
    name, sep, path = spec.partition("=")
    if not sep or not name.strip() or not path.strip():
        raise ValueError(f"{option} {spec!r}: expected NAME=PATH")
    if "|" in name:
        raise ValueError(f"{option} {spec!r}: a name may not hold '|' (it splits table cells)")
    return name.strip(), Path(path.strip())


def _unique_names(pairs: list[tuple[str, Path]], option: str) -> None:
    seen: set[str] = set()
    for name, _ in pairs:
        if name in seen:
            raise ValueError(f"{option}: the name {name!r} is given twice")
        seen.add(name)


def load_systems(specs: list[tuple[str, Path]]) -> list[System]:
    """Read every system's scores.tsv, in the order given."""
    _unique_names(specs, "--system")
    systems = []
    for name, directory in specs:
        path = directory / SCORES_FILE
        if not path.is_file():
            raise ValueError(
                f"--system {name}={directory}: {path} not found (stage 7 writes it; "
                "name the directory that holds scores.tsv)"
            )
        rows = read_scores(path)
        if not rows:
            raise ValueError(f"--system {name}: {path} has no utterances")
        takes_path = directory / TAKES_FILE
        takes = len(read_scores(takes_path)) // len(rows) if takes_path.is_file() else 1
        systems.append(System(name, directory, rows, takes))
    return systems


def parse_seed_mean(spec: str) -> tuple[str, list[str]]:
    """Split ``--seed-mean NAME=A,B,...`` into the new system's name and its members."""
    name, sep, members = spec.partition("=")
    names = [m.strip() for m in members.split(",") if m.strip()]
    if not sep or not name.strip() or len(names) < 2:
        raise ValueError(
            f"--seed-mean {spec!r}: expected NAME=SYSTEM,SYSTEM[,...] (two or more systems)"
        )
    if len(set(names)) != len(names):
        raise ValueError(f"--seed-mean {spec!r}: a system is named twice")
    return name.strip(), names


def _mean_cell(values: list[str]) -> str:
    """The mean when every value is a finite number, else empty (text, or a member lacks it)."""
    try:
        numbers = [float(v) for v in values]
    except ValueError:
        return ""
    if not all(math.isfinite(x) for x in numbers):
        return ""
    return repr(sum(numbers) / len(numbers))


def seed_mean_system(name: str, members: list[System]) -> System:
    """The members (one method trained with several seeds) as one system whose every number is
    the per-utterance mean over them: its paired interval against a baseline is then over the
    utterances of the seed-averaged method, and a corpus-level rate is the mean of the members'
    rates (their reference counts are equal)."""
    first = members[0]
    for other in members[1:]:
        odd = sorted(set(first.rows) ^ set(other.rows))
        if odd:
            raise ValueError(
                f"--seed-mean {name}: {first.name} and {other.name} are not scored on the same "
                f"utterances ({len(odd)} differ, e.g. {odd[0]})"
            )
    rows = {
        utt: {col: _mean_cell([m.rows[utt].get(col, "") for m in members]) for col in row}
        for utt, row in first.rows.items()
    }
    return System(name, first.directory, rows, first.takes, tuple(m.name for m in members))


def find_system(systems: list[System], name: str, option: str) -> System:
    """The system called ``name``; ``option`` is the command-line option that named it."""
    for system in systems:
        if system.name == name:
            return system
    names = ", ".join(s.name for s in systems)
    raise ValueError(f"{option} {name!r} is not one of the --system names ({names})")


def parse_pair(spec: str) -> tuple[str, str]:
    """Split ``--pair A:B`` (report A − B) into its two system names."""
    first, sep, second = spec.partition(":")
    if not sep or not first.strip() or not second.strip():
        raise ValueError(f"--pair {spec!r}: expected SYSTEM:OTHER")
    return first.strip(), second.strip()


def check_same_utterances(systems: list[System], baseline: System) -> None:
    """Every system must be scored on the baseline's utterances, no more and no fewer."""
    for system in systems:
        missing = [u for u in baseline.rows if u not in system.rows]
        extra = [u for u in system.rows if u not in baseline.rows]
        if missing or extra:
            utt, how = (missing[0], "lacks") if missing else (extra[0], "has an extra")
            raise ValueError(
                f"system {system.name} ({system.directory / SCORES_FILE}) {how} utterance {utt} "
                f"compared with baseline {baseline.name} ({len(missing)} missing, {len(extra)} "
                "extra); score the same test set, or pass --common-utterances to compare on the "
                "utterances all systems share"
            )


def restrict_to_common(systems: list[System]) -> tuple[list[System], dict[str, int]]:
    """Keep only the utterances every system has; also return how many each system lost."""
    common = set(systems[0].rows)
    for system in systems[1:]:
        common &= set(system.rows)
    if not common:
        raise ValueError("--common-utterances: the systems share no utterance")
    kept = [
        System(s.name, s.directory, {u: r for u, r in s.rows.items() if u in common}, s.takes,
               s.members)  # fmt: skip
        for s in systems
    ]
    dropped = {s.name: len(s.rows) - len(common) for s in systems}
    return kept, dropped


def numeric_column(system: System, column: str) -> dict[str, float]:
    """``{utt: value}`` for the utterances where ``column`` holds a finite number."""
    first = next(iter(system.rows.values()))
    if column not in first:
        raise ValueError(
            f"unknown metric column {column!r}: {system.directory / SCORES_FILE} has "
            f"columns {', '.join(first)}"
        )
    values: dict[str, float] = {}
    for utt, row in system.rows.items():
        text = row[column]
        if text == "":
            continue
        try:
            value = float(text)
        except ValueError as err:
            raise ValueError(
                f"{system.directory / SCORES_FILE}: utterance {utt}: column {column!r} is not "
                f"a number ({text!r})"
            ) from err
        if math.isfinite(value):
            values[utt] = value
    return values


def load_runs(specs: list[tuple[str, Path]]) -> list[Run]:
    """Read every ``--curves`` metrics.jsonl, in the order given."""
    _unique_names(specs, "--curves")
    runs = []
    for name, path in specs:
        if not path.is_file():
            raise ValueError(f"--curves {name}={path}: file not found")
        runs.append(Run(name, path, read_metrics(path)))
    return runs


def curve_points(run: Run, key: str) -> tuple[list[float], list[float]]:
    """(steps, values) of ``key`` over the records that log it as a finite number."""
    points = [
        (r["step"], r[key])
        for r in run.records
        if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])
    ]
    steps, values = zip(*points) if points else ((), ())
    return list(steps), list(values)


def curve_keys(runs: list[Run], requested: list[str]) -> list[str]:
    """The keys to plot: those requested (each must be logged by some run), else every key
    logged by some run, first-seen order, without ``step`` and the ``time/`` timings."""
    logged: dict[str, None] = {}
    for run in runs:
        for record in run.records:
            logged.update(dict.fromkeys(k for k in record if k != "step"))
    if not requested:
        return [k for k in logged if not k.startswith("time/")]
    for key in requested:
        if key not in logged:
            files = ", ".join(str(r.path) for r in runs)
            raise ValueError(
                f"--curve-keys: unknown metric {key!r}, logged by none of {files} "
                f"(they log: {', '.join(logged) or 'nothing'})"
            )
    return requested
