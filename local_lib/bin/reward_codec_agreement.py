"""Does HPRO's reward codec hear the emotion the evaluator hears, on the test audio? (diagnostic)

    python -m local_lib.bin.reward_codec_agreement --reward-codec exp/reward_codec/model.pt \\
        --tokenizer dump/speech_tokenizer/tokenizer.pt --data-dir data/test \\
        --system base=exp/tts_base/synth/test --system hpro=exp/tts_hpro/synth/test \\
        --system natural=exp/natural/test --wav-scp natural=data/test/wav.scp \\
        --out-dir exp/reward_codec_agreement/test

HPRO's rollouts feed the frozen reward codec soft tokens, so the codec's accuracy during training
says only that the policy learnt to please it. If the codec calls the finished speech the target
emotion where the emotion evaluator does not, the policy found what the codec rewards rather than
the emotion: reward hacking. Each ``--system NAME=DIR`` is a stage-6 synthesis directory (or
``exp/natural/<set>``) scored by stage 7: its audio (``DIR/wav.scp``, or ``--wav-scp NAME=FILE``)
and the evaluators' decisions (``DIR/scores_takes.tsv`` when stage 6 drew several takes,
``<utt>#k``, else ``DIR/scores.tsv``). Every take both files hold is turned back into speech
tokens exactly as stage 2 tokenises the natural audio (its log-mel at the tokenizer's rate,
quantised by the tokenizer), and the reward codec reads the hard tokens: its sentence emotion
(style stream) and the greedy transcript of its CTC text head (content stream). Per system, with
95 % bootstrap intervals over utterances (a take counts 1/K of its utterance, as in stage 7):

* reward-codec accuracy: its emotion is the target (``utt2emo`` of ``--data-dir``);
* evaluator accuracy: stage 7's ``emo_pred`` is the target;
* agreement: both give the same emotion, right or wrong;
* hacking rate: the codec says the target, the evaluator says another emotion;
* the codec's CER against the text of ``--data-dir`` beside the evaluator ASR's (stage 7's);

and the paired difference of each, system − the first ``--system`` (e.g. hpro − base): a gain in
reward-codec accuracy without one in evaluator accuracy is the reward being gamed.

Writes ``takes.tsv`` (a row per system and take), ``agreement.json`` (the intervals),
``agreement.md`` (the tables) and ``log/reward_codec_agreement.log`` under ``--out-dir``.
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from local_lib.atomic_io import write_json_atomic, write_text_atomic
from local_lib.data.audio import load_audio
from local_lib.data.kaldi_dir import read_kv
from local_lib.eval.bootstrap import Interval
from local_lib.eval.error_rate import char_errors
from local_lib.eval.samples import average_takes, takes_of
from local_lib.eval.score_table import Metric, compare, read_scores, summarise
from local_lib.models.config_yaml import setup_logging
from local_lib.models.reward_codec import RewardCodec, load_reward_codec
from local_lib.models.speech_tokenizer import SpeechTokenizer, load_speech_tokenizer

log = logging.getLogger("reward_codec_agreement")

METRICS = [
    Metric("reward-codec accuracy (%)", "codec_correct", None, 100.0),
    Metric("evaluator accuracy (%)", "evaluator_correct", None, 100.0),
    Metric("agreement (%)", "agree", None, 100.0),
    Metric("hacking rate (%)", "hacked", None, 100.0),
    Metric("reward-codec CER (%)", "codec_char_errors", "chars", 100.0),
    Metric("evaluator CER (%)", "evaluator_char_errors", "evaluator_chars", 100.0),
]
NUMBERS = ["codec_correct", "evaluator_correct", "agree", "hacked", "codec_char_errors", "chars",
           "evaluator_char_errors", "evaluator_chars"]  # fmt: skip
COLUMNS = ["system", "utt", "emotion", "codec_pred", "evaluator_pred", "codec_p_target",
           *NUMBERS, "tokens", "codec_hyp"]  # fmt: skip


@dataclass(frozen=True)
class Take:
    """One take of a system as stage 7 scored it: its audio, target and the evaluators' view."""

    key: str  # the wav.scp key: <utt>, or <utt>#k for take k > 0
    wav: str
    emotion: str  # the target emotion (utt2emo)
    text: str
    evaluator_pred: str
    evaluator_char_errors: str  # stage 7's columns as written ("" without an evaluator ASR)
    evaluator_chars: str


@dataclass(frozen=True)
class System:
    name: str
    takes: list[Take]
    takes_of: dict[str, list[str]]  # {utt: [key of take 0, take 1, ...]}


def parse_named(value: str) -> tuple[str, Path]:
    name, sep, path = value.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got {value!r}")
    return name, Path(path)


def scores_file(sys_dir: Path) -> Path:
    """Stage 7's per-take scores when stage 6 drew several takes, else its per-utterance ones."""
    per_take = sys_dir / "scores_takes.tsv"
    return per_take if per_take.is_file() else sys_dir / "scores.tsv"


def load_system(
    name: str, sys_dir: Path, wav_scp: Path, targets: Mapping[str, str], texts: Mapping[str, str]
) -> System:
    """The takes of ``wav_scp`` that stage 7 scored in ``sys_dir``. A scored take without audio,
    a key that is not an utterance of the data dir (or a take of one), a target that differs
    from ``utt2emo`` or a missing evaluator decision is an error naming the file and key."""
    scores_path = scores_file(sys_dir)
    for path in (scores_path, wav_scp):
        if not path.is_file():
            raise FileNotFoundError(f"system {name}: {path} does not exist")
    scores, wavs = read_scores(scores_path), read_kv(wav_scp)
    unheard = [k for k in scores if k not in wavs]
    if unheard:
        raise ValueError(f"system {name}: {scores_path} scores {unheard[0]} ({len(unheard)} "
                         f"such takes), which {wav_scp} lacks")  # fmt: skip
    keys = [k for k in wavs if k in scores]
    if not keys:
        raise ValueError(f"system {name}: {scores_path} scores none of the takes of {wav_scp}")
    if len(keys) < len(wavs):
        log.info("system %s: %d takes of %s have no scores in %s; left out", name,
                 len(wavs) - len(keys), wav_scp, scores_path)  # fmt: skip
    utts = [k for k in keys if k in targets]
    takes = takes_of(utts, keys, str(scores_path))
    known = {k for group in takes.values() for k in group}
    stray = [k for k in keys if k not in known]
    if stray:
        raise ValueError(f"system {name}: {scores_path}: {stray[0]} is no utterance of the data "
                         "dir (utt2emo) nor a take <utt>#k of one")  # fmt: skip
    out = []
    for utt, group in takes.items():
        for key in group:
            row = scores[key]
            if row.get("emo_label", "") not in ("", targets[utt]):
                raise ValueError(f"system {name}: {scores_path}: {key}: target {row['emo_label']}, "
                                 f"utt2emo says {targets[utt]}")  # fmt: skip
            if not row.get("emo_pred"):
                raise ValueError(f"system {name}: {scores_path}: {key}: no emo_pred (stage 7 "
                                 "without the emotion evaluator?)")  # fmt: skip
            out.append(Take(key, wavs[key], targets[utt], texts[utt], row["emo_pred"],
                            row.get("char_errors", ""), row.get("chars", "")))  # fmt: skip
    return System(name, out, takes)


def wav_tokens(tokenizer: SpeechTokenizer, wav: str) -> list[int]:
    """The speech tokens stage 2 would give this audio: its log-mel at the tokenizer's rate (the
    features of stage 2) quantised by the tokenizer."""
    return tokenizer.encode(load_audio(wav, tokenizer.mel_cfg.sample_rate)).tolist()


@torch.no_grad()
def codec_rows(codec: RewardCodec, system: str, takes: Sequence[Take],
               tokens: Sequence[Sequence[int]]) -> list[dict]:  # fmt: skip
    """The reward codec on the hard tokens of ``takes``: a ``takes.tsv`` row per take."""
    out = codec.run_ids(tokens)
    preds, hyps = codec.predicted_emotions(out), codec.transcripts(out)
    target = codec.emotion_index([t.emotion for t in takes])
    probs = out.emotion_logits.softmax(dim=-1).gather(1, target[:, None])[:, 0].tolist()
    rows = []
    for take, seq, pred, hyp, prob in zip(takes, tokens, preds, hyps, probs, strict=True):
        codec_ok, evaluator_ok = pred == take.emotion, take.evaluator_pred == take.emotion
        cer = char_errors(take.text, hyp)
        rows.append({
            "system": system, "utt": take.key, "emotion": take.emotion, "codec_pred": pred,
            "evaluator_pred": take.evaluator_pred, "codec_p_target": prob,
            "codec_correct": int(codec_ok), "evaluator_correct": int(evaluator_ok),
            "agree": int(pred == take.evaluator_pred), "hacked": int(codec_ok and not evaluator_ok),
            "codec_char_errors": cer.errors, "chars": cer.ref_len,
            "evaluator_char_errors": take.evaluator_char_errors,
            "evaluator_chars": take.evaluator_chars, "tokens": len(seq), "codec_hyp": hyp,
        })  # fmt: skip
    return rows


def score_system(codec: RewardCodec, tokenizer: SpeechTokenizer, system: System,
                 batch_size: int) -> list[dict]:  # fmt: skip
    """Re-tokenise and score every take of ``system``, logging progress."""
    rows: list[dict] = []
    start, total = time.perf_counter(), len(system.takes)
    for first in range(0, total, batch_size):
        batch = system.takes[first : first + batch_size]
        tokens = []
        for take in batch:
            try:
                tokens.append(wav_tokens(tokenizer, take.wav))
            except ValueError as err:
                raise ValueError(f"system {system.name}: {take.key}: {err}") from err
        rows += codec_rows(codec, system.name, batch, tokens)
        elapsed = time.perf_counter() - start
        log.info("system %s: %d/%d takes, elapsed %.0f s, eta %.0f s", system.name, len(rows),
                 total, elapsed, elapsed / len(rows) * (total - len(rows)))  # fmt: skip
    return rows


def per_utterance(rows: Sequence[dict], takes: Mapping[str, list[str]]) -> dict[str, dict]:
    """``{utt: row}`` of the numbers, each the mean over the utterance's takes."""
    numbers = [{"utt": r["utt"], **{c: r[c] for c in NUMBERS}} for r in rows]
    return {r["utt"]: r for r in average_takes(numbers, dict(takes))}


def summary(systems: Sequence[System], rows: Mapping[str, Sequence[dict]],
            seed: int) -> dict[str, dict]:  # fmt: skip
    """Per system, each metric's interval (``single``) and its paired difference with the first
    system (``paired``; absent for the first). Systems must share their utterances."""
    first = systems[0]
    utts = {s.name: per_utterance(rows[s.name], s.takes_of) for s in systems}
    out: dict[str, dict] = {}
    for s in systems:
        differ = sorted(set(utts[s.name]) ^ set(utts[first.name]))
        if differ:
            raise ValueError(f"systems {s.name} and {first.name} score different utterances "
                             f"(e.g. {differ[0]}); the paired difference needs the same ones")
        single = {m.num: summarise(list(utts[s.name].values()), m, seed) for m in METRICS}
        entry: dict[str, object] = {"takes": len(s.takes), "utterances": len(s.takes_of),
                                    "single": single}  # fmt: skip
        if s is not first:
            entry["paired"] = {m.num: compare(utts[s.name], utts[first.name], m, seed)
                               for m in METRICS}  # fmt: skip
        out[s.name] = entry
    return out


def _cell(iv: Interval | None, signed: bool = False) -> str:
    if iv is None:
        return "–"
    fmt = "+.1f" if signed else ".1f"
    return f"{iv.estimate:{fmt}} [{iv.low:{fmt}}, {iv.high:{fmt}}]"


def render(result: Mapping[str, dict], header: str) -> str:
    """``agreement.md``: the systems' intervals, then the paired differences."""
    first = next(iter(result))
    names = " | ".join(m.name for m in METRICS)
    rule = "|---" * (len(METRICS) + 1)
    lines = [header, "", f"| system | takes / utterances | {names} |", rule + "|---|"]
    for name, entry in result.items():
        cells = " | ".join(_cell(entry["single"][m.num]) for m in METRICS)
        lines.append(f"| {name} | {entry['takes']} / {entry['utterances']} | {cells} |")
    if len(result) > 1:
        lines += ["", f"## Paired difference: system − {first}", "", f"| system | {names} |",
                  rule + "|"]  # fmt: skip
        for name, entry in list(result.items())[1:]:
            cells = " | ".join(_cell(entry["paired"][m.num], signed=True) for m in METRICS)
            lines.append(f"| {name} | {cells} |")
    lines += [
        "",
        "Intervals: 95 % percentile bootstrap over utterances (1000 resamples); a take counts "
        "1/K of its utterance. Hacking rate: the reward codec labels the take with the target "
        "emotion and the evaluator with another. CER: errors / reference characters.",
        "",
    ]
    return "\n".join(lines)


def as_json(result: Mapping[str, dict]) -> dict:
    """``agreement.json``: the summary with each interval as a mapping (None: undefined)."""
    out = {}
    for name, entry in result.items():
        out[name] = dict(entry)
        for part in ("single", "paired"):
            if part in entry:
                out[name][part] = {
                    k: None if iv is None else asdict(iv) for k, iv in entry[part].items()
                }
    return out


def write_rows(path: Path, rows: Sequence[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, COLUMNS, delimiter="\t", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buf.getvalue())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--reward-codec", type=Path, required=True, help="exp/reward_codec/model.pt")
    p.add_argument("--tokenizer", type=Path, required=True, help="stage 2's tokenizer.pt")
    p.add_argument("--data-dir", type=Path, required=True, help="the test set: text, utt2emo")
    p.add_argument("--system", type=parse_named, action="append", required=True,
                   metavar="NAME=DIR", help="repeatable; differences are against the first")
    p.add_argument("--wav-scp", type=parse_named, action="append", default=[],
                   metavar="NAME=WAV_SCP", help="a system's audio when not DIR/wav.scp")
    p.add_argument("--out-dir", type=Path, required=True)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--num-threads", type=int, default=1)
    args = p.parse_args(argv)
    names = [name for name, _ in args.system]
    if len(set(names)) < len(names):
        p.error(f"--system names must differ, got {names}")
    unknown = sorted({name for name, _ in args.wav_scp} - set(names))
    if unknown:
        p.error(f"--wav-scp for {unknown[0]}, which is no --system")
    if args.batch_size < 1:
        p.error(f"--batch-size must be at least 1, got {args.batch_size}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.num_threads)
    setup_logging(args.out_dir / "log" / "reward_codec_agreement.log")
    for name in ("text", "utt2emo"):
        if not (args.data_dir / name).is_file():
            raise FileNotFoundError(f"{args.data_dir / name} does not exist")
    targets, texts = read_kv(args.data_dir / "utt2emo"), read_kv(args.data_dir / "text")
    no_text = sorted(set(targets) - set(texts))
    if no_text:
        raise ValueError(f"{args.data_dir / 'text'}: no text for {no_text[0]}")
    codec = load_reward_codec(args.reward_codec)
    tokenizer = load_speech_tokenizer(args.tokenizer)
    if tokenizer.vocab_size != codec.net.num_speech_tokens:
        raise ValueError(f"{args.reward_codec} reads {codec.net.num_speech_tokens} speech tokens, "
                         f"{args.tokenizer} makes {tokenizer.vocab_size}")  # fmt: skip
    unknown = sorted(set(targets.values()) - set(codec.emotions))
    if unknown:
        raise ValueError(f"{args.data_dir / 'utt2emo'}: emotions {unknown} are not among the "
                         f"reward codec's {codec.emotions} ({args.reward_codec})")  # fmt: skip
    wav_scps = dict(args.wav_scp)
    systems = [
        load_system(name, path, wav_scps.get(name, path / "wav.scp"), targets, texts)
        for name, path in args.system
    ]
    rows = {s.name: score_system(codec, tokenizer, s, args.batch_size) for s in systems}
    result = summary(systems, rows, args.seed)
    write_rows(args.out_dir / "takes.tsv", [r for s in systems for r in rows[s.name]])
    write_json_atomic(args.out_dir / "agreement.json", as_json(result))
    header = (
        "# Reward codec vs emotion evaluator on the test audio\n\n"
        f"reward codec {args.reward_codec} on the audio re-tokenised by {args.tokenizer}; "
        f"targets and texts of {args.data_dir}; systems: "
        + ", ".join(f"{name} ({path})" for name, path in args.system)
    )
    table = render(result, header)
    write_text_atomic(args.out_dir / "agreement.md", table)
    log.info("wrote %s\n%s", args.out_dir / "agreement.md", table)


if __name__ == "__main__":
    main()
