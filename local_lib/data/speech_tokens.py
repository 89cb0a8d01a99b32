"""Speech-token files: ``<utt> <t1> <t2> ...`` (ints), one line per utterance, LC_ALL=C sorted,
and the prompt pool (texts, speakers, tokens) that zero-shot prompts are drawn from.

Stage 2 writes ``dump/<set>/speech_tokens`` with the speech tokenizer; SFT, RL and synthesis
read prompts and targets from it. The reader is strict (every defect named as
``file:line: utt: message``) because a silently dropped or mangled line would shift prompts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from local_lib.atomic_io import atomic_path
from local_lib.data.kaldi_dir import DataDirError, Problem, c_sort_key, read_kv, scan_kv
from local_lib.data.prompts import pick_prompts
from local_lib.rewards.registry import RewardReferences

SPEECH_TOKENS = "speech_tokens"


class SpeechTokensError(DataDirError):
    """A speech-token file downstream stages cannot trust."""


def read_speech_tokens(path: str | Path, vocab_size: int | None = None) -> dict[str, list[int]]:
    """Utterance -> token list; with ``vocab_size`` every token must lie in ``[0, vocab_size)``."""
    path = Path(path)
    if not path.is_file():
        raise SpeechTokensError(f"{path}: speech-token file does not exist")
    scan = scan_kv(path, display_name=str(path))
    problems = list(scan.problems)
    tokens: dict[str, list[int]] = {}
    for entry in scan.lines:
        if not entry.value:
            continue  # scan_kv already reported the missing value
        try:
            row = [int(field) for field in entry.value.split()]
        except ValueError:
            problems.append(Problem(str(path), entry.line, entry.key, "tokens must be integers"))
            continue
        bad = [t for t in row if t < 0 or (vocab_size is not None and t >= vocab_size)]
        if bad:
            limit = f"[0, {vocab_size})" if vocab_size is not None else "non-negative"
            message = f"token {bad[0]} is not {limit}"
            problems.append(Problem(str(path), entry.line, entry.key, message))
            continue
        tokens[entry.key] = row
    if problems:
        raise SpeechTokensError("\n".join(str(p) for p in sorted(problems, key=lambda p: p.line)))
    return tokens


def _format_speech_tokens(tokens: Mapping[str, Sequence[int]]) -> str:
    """The file's text: lines in C-locale order of the utterance ids."""
    lines = []
    for utt in sorted(tokens, key=c_sort_key):
        row = [int(t) for t in tokens[utt]]
        if not utt or any(ch.isspace() for ch in utt):
            raise SpeechTokensError(f"utterance id {utt!r} is empty or contains whitespace")
        if not row:
            raise SpeechTokensError(f"{utt}: no speech tokens")
        lines.append(f"{utt} {' '.join(map(str, row))}\n")
    return "".join(lines)


def write_speech_tokens(path: str | Path, tokens: Mapping[str, Sequence[int]]) -> None:
    """Write atomically, so a re-run never trusts a half-written file."""
    text = _format_speech_tokens(tokens)
    with atomic_path(Path(path)) as tmp:
        tmp.write_text(text, encoding="utf-8")


# Optional per-utterance (utt2*) and per-speaker (spk2*) label files of a data dir, and the
# name their labels go by in the rewards' references.
LABEL_FILES = {"utt2emo": "emotion", "utt2lang": "language", "spk2gender": "gender"}


@dataclass(frozen=True)
class PromptPool:
    """A set's texts, speakers and speech tokens: targets and the speaker prompts for them, and
    the labels the data dir has for them (speaker always; emotion, gender, language if given)."""

    texts: dict[str, str]
    utt2spk: dict[str, str]
    tokens: dict[str, list[int]]
    source: str  # the token file, named in errors
    labels: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> utt -> label
    # A seed-tts-eval list (utt2prompt_text): each utterance's own audio, whose transcript this
    # is, is its prompt, and ``texts`` holds the target texts to synthesise.
    prompt_texts: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(
        cls, data_dir: str | Path, tokens_path: str | Path, vocab_size: int | None = None
    ) -> PromptPool:
        """``text`` and ``utt2spk`` of a Kaldi data dir plus its speech-token file; every
        utterance must have tokens (and a label in each label file the dir has)."""
        data_dir = Path(data_dir)
        texts, utt2spk = read_kv(data_dir / "text"), read_kv(data_dir / "utt2spk")
        tokens = read_speech_tokens(tokens_path, vocab_size)
        missing = [utt for utt in utt2spk if utt not in tokens or utt not in texts]
        if missing:
            raise SpeechTokensError(
                f"{tokens_path}: {missing[0]}: utterance of {data_dir} has no speech tokens or "
                f"text ({len(missing)} such)"
            )
        labels = {"speaker": dict(utt2spk)}
        for file, name in LABEL_FILES.items():
            if (data_dir / file).is_file():
                labels[name] = _utterance_labels(data_dir / file, utt2spk)
        prompt_texts = {}
        if (data_dir / "utt2prompt_text").is_file():
            prompt_texts = _utterance_labels(data_dir / "utt2prompt_text", utt2spk)
        return cls(texts, utt2spk, tokens, str(tokens_path), labels, prompt_texts)

    def pick(self, utts: Sequence[str], seed: int, match: str = "speaker") -> dict[str, str]:
        """Each target's speaker prompt (``local_lib.data.prompts.pick_prompts`` over this pool):
        any utterance of the speaker, or one in the target's emotion (``same_emotion``) or in
        another emotion (``other_emotion``)."""
        targets = {u: self.utt2spk[u] for u in utts}
        if match == "speaker":
            return pick_prompts(targets, self.utt2spk, seed, source=self.source)
        if match not in ("same_emotion", "other_emotion"):
            raise ValueError(f"prompt match: speaker, same_emotion or other_emotion, not {match!r}")
        emotion = self.labels.get("emotion")
        if emotion is None:
            raise SpeechTokensError(f"{self.source}: prompt match {match} needs utt2emo")
        same = match == "same_emotion"
        return pick_prompts(
            targets, self.utt2spk, seed, source=self.source,
            allowed=lambda t, c: (emotion[t] == emotion[c]) == same,
            wanted=" in the same emotion" if same else " in another emotion",
        )  # fmt: skip

    def references(self, utts: Sequence[str]) -> RewardReferences:
        """Texts and labels of ``utts`` as the rewards read them."""
        extras = {name: [by_utt[u] for u in utts] for name, by_utt in self.labels.items()}
        return RewardReferences([self.texts[u] for u in utts], extras)


def _utterance_labels(path: Path, utt2spk: Mapping[str, str]) -> dict[str, str]:
    """``utt2*`` as it is, ``spk2*`` spread over each speaker's utterances; every utterance
    must get an entry."""
    table = read_kv(path)
    per_speaker = path.name.startswith("spk2")
    labels, missing = {}, []
    for utt, spk in utt2spk.items():
        key = spk if per_speaker else utt
        if key in table:
            labels[utt] = table[key]
        else:
            missing.append(key)
    if missing:
        raise SpeechTokensError(f"{path}: no entry for {missing[0]} ({len(missing)} missing)")
    return labels
