"""Reward headroom: does the reward's pick among N samples beat a random pick, by the evaluators?

    python -m local_lib.bin.best_of_n --config conf/grpo_mini.yaml \\
        --base-dir exp/tts_base/model --tokenizer dump/speech_tokenizer/tokenizer.pt \\
        --reward-model exp/reward_ctc/model.pt --evaluator-asr exp/eval_asr/model.pt \\
        [--evaluator-speaker exp/eval_speaker/model.pt] --data-dir data/dev \\
        --tokens dump/dev/speech_tokens --n 8 --texts 40 --out-dir exp/best_of_n/base \\
        [--rewards-config FILE] [--seed 0]

W3AR's reward as one number per sample (``attention_alignment``, the mean of the word rewards;
the heads file beside the reward ASR), and DiffRO's (``token_text``, Token2Text on the samples'
speech tokens)::

    python -m local_lib.bin.best_of_n --config conf/w3ar_mini.yaml \\
        --rewards-config conf/best_of_n_attention.yaml --reward-model exp/reward_asr/model.pt ...
    python -m local_lib.bin.best_of_n --config conf/diffro_mini.yaml \\
        --rewards-config conf/best_of_n_token_text.yaml --reward-model exp/token2text/model.pt ...

Before blaming a method, measure its reward. For each of ``--texts`` evenly spaced texts of
``--data-dir`` (sorted ids, each with the speaker prompt the rollouts fix for it) the policy draws
``--n`` samples on the shared rollout path (``local_lib.rl.rollout``: the ``rollout`` section of
any codec-LM method's config, ``group_size`` = N; text i is rollout batch i of ``--seed``). Each
sample is scored by the reward (the config's ``rewards``, or the ``combine``/``components``
mapping in ``--rewards-config``: any registry reward or combination, on the same samples; the
total per sequence, nothing else applied; ``--reward-model`` is its ``scorer``, and that path
its ``scorer_path``), and on its audio (the rollout's vocoded speech, at
``--sample-rate``) by the evaluator ASR (per-utterance WER and CER against the text) and, with
``--evaluator-speaker``, by speaker SIM to the prompt utterance's natural audio (wav.scp).
``local_lib.eval.picks`` then compares per text (a) the reward's pick, (b) a random pick, (c) the
evaluator's own pick and (d) the mean of all N, with paired bootstrap intervals over texts.

Writes under ``--out-dir``: ``samples.tsv`` (a row per sample: utt, k, reward, wer, cer, sim,
tokens, prompt, hyp; appended as texts finish, so a re-run resumes), ``config.yaml`` (the resolved
settings: a re-run with other settings is refused rather than mixed in), ``command.sh``,
``log/best_of_n.log`` and ``BEST_OF_N.md`` (the table, also printed).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchaudio.functional
import yaml

from local_lib.atomic_io import atomic_path, write_text_atomic
from local_lib.bin.train_grpo import reward_scorer
from local_lib.config import (
    RUN_CONFIG,
    differing_keys,
    from_mapping,
    load_yaml,
    lookup,
    save_run_config,
    to_mapping,
)
from local_lib.data.audio import load_audio
from local_lib.data.kaldi_dir import read_kv
from local_lib.data.speech_tokens import PromptPool
from local_lib.eval.error_rate import char_errors, word_errors
from local_lib.eval.picks import TextSamples, evenly_spaced, render, summarise
from local_lib.eval.scoring import Embedder, Transcriber, cosine_rows
from local_lib.models.codec_lm import CodecLM
from local_lib.models.config_yaml import setup_logging
from local_lib.models.evaluators import load_evaluator
from local_lib.models.speech_tokenizer import load_speech_tokenizer
from local_lib.rewards import RewardSet, build_rewards
from local_lib.rl.rollout import (
    PromptSource,
    RolloutConfig,
    Rollouts,
    SpeechRenderer,
    sequence_rewards,
)

log = logging.getLogger("best_of_n")

COLUMNS = ["utt", "k", "reward", "wer", "cer", "sim", "tokens", "prompt", "hyp"]
SAMPLES, REPORT = "samples.tsv", "BEST_OF_N.md"


@dataclass(frozen=True)
class Settings:
    """Everything the samples of an out-dir depend on (its ``config.yaml``)."""

    base_dir: Path
    tokenizer: Path
    reward_model: Path
    evaluator_asr: Path
    evaluator_speaker: Path | None
    data_dir: Path
    tokens: Path
    n: int
    texts: int
    seed: int
    sample_rate: int
    rollout: RolloutConfig
    rewards: Mapping[str, Any]


@dataclass(frozen=True)
class Judges:
    """What scores a text's samples: the reward, the evaluator ASR and, when given, the speaker
    model with the natural audio of the prompts (wav.scp) at the evaluators' sample rate."""

    rewards: RewardSet
    asr: Transcriber
    speaker: Embedder | None
    wav_scp: dict[str, str]
    sample_rate: int


def check_settings(out_dir: Path, settings: Settings) -> None:
    """Samples of other settings must not mix into one samples.tsv: a run whose settings differ
    from those of the samples already in ``out_dir`` is refused; otherwise they are (re)written
    there."""
    new = yaml.safe_load(yaml.safe_dump(to_mapping(settings)))
    path, tsv = out_dir / RUN_CONFIG, out_dir / SAMPLES
    has_samples = tsv.is_file() and len(tsv.read_text(encoding="utf-8").splitlines()) > 1
    if has_samples and path.is_file():
        old = load_yaml(path)
        changed = differing_keys(old, new)
        if changed:
            diffs = "; ".join(
                f"{k}: {lookup(old, k)!r} there, {lookup(new, k)!r} now" for k in changed
            )
            raise SystemExit(
                f"{path}: {tsv} holds samples of other settings ({diffs}); "
                f"use another --out-dir, or remove {out_dir} to start again"
            )
    save_run_config(out_dir, settings)


def text_samples(utt: str, rows: Sequence[Mapping[str, Any]]) -> TextSamples:
    """One text's rows (in sample order) as ``local_lib.eval.picks`` reads them."""

    def column(key: str) -> list[float]:
        return [float(r[key]) for r in rows]

    sim = column("sim") if rows[0]["sim"] != "" else None
    return TextSamples(utt, column("reward"), column("wer"), column("cer"), sim)


def complete(rows: Sequence[Mapping[str, Any]], n: int) -> bool:
    """Whether a text's rows are its ``n`` samples in order, none cut short."""
    whole = all(None not in r and None not in r.values() for r in rows)
    return whole and [r["k"] for r in rows] == [str(k) for k in range(n)]


def complete_rows(tsv: Path, n: int) -> dict[str, list[dict[str, Any]]]:
    """The rows of each text whose ``n`` samples ``tsv`` holds, in file order."""
    by_utt: dict[str, list[dict[str, Any]]] = {}
    if tsv.is_file():
        with tsv.open(newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f, delimiter="\t"):
                by_utt.setdefault(row["utt"], []).append(row)
    return {utt: rows for utt, rows in by_utt.items() if complete(rows, n)}


def finished_texts(tsv: Path, n: int) -> dict[str, TextSamples]:
    """The texts whose ``n`` samples ``tsv`` holds. The file is (re)written with those alone, so
    a text a kill cut short is sampled again rather than doubled."""
    done = complete_rows(tsv, n)
    with atomic_path(tsv) as tmp, tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, COLUMNS, delimiter="\t")
        writer.writeheader()
        for rows in done.values():
            writer.writerows(rows)
    return {utt: text_samples(utt, rows) for utt, rows in done.items()}


def at_rate(wav: np.ndarray, rate: int, target: int) -> np.ndarray:
    """``wav`` resampled to the evaluators' rate, as stage 7 reads synthesised audio."""
    if rate == target:
        return wav
    return torchaudio.functional.resample(torch.from_numpy(wav), rate, target).numpy()


@torch.no_grad()
def sample_rows(rollouts: Rollouts, judges: Judges, index: int, utt: str) -> list[dict[str, Any]]:
    """Rollout batch ``index`` with ``utt`` as its only target, each sample scored by the reward
    (per sequence) and the evaluators: a ``samples.tsv`` row per sample."""
    rollouts.prompts.targets = [utt]  # PromptSource.draw takes its batch from these
    scored = rollouts(index)
    batch = rollouts.reward_batch(scored)
    tokens = scored.rollout.speech_tokens
    lengths = torch.tensor([len(t) for t in tokens])
    reward = sequence_rewards(judges.rewards(batch, scored.references).total, lengths)
    renderer = rollouts.renderer
    wavs = batch.wavs if batch.wavs is not None else [renderer.wav(m) for m in batch.mels]
    wavs = [at_rate(w, renderer.sample_rate, judges.sample_rate) for w in wavs]
    text, prompt = scored.references.texts[0], rollouts.prompts.prompt_of[utt]
    hyps = judges.asr.transcribe(wavs)
    sims: list[float | None] = [None] * len(wavs)
    if judges.speaker is not None:
        natural = load_audio(judges.wav_scp[prompt], judges.sample_rate)
        prompt_emb = np.repeat(judges.speaker.embed([natural]), len(wavs), axis=0)
        sims = cosine_rows(judges.speaker.embed(wavs), prompt_emb).tolist()
    return [
        {
            "utt": utt, "k": k, "reward": float(reward[k]), "wer": word_errors(text, hyp).rate,
            "cer": char_errors(text, hyp).rate, "sim": "" if sim is None else sim,
            "tokens": len(tokens[k]), "prompt": prompt, "hyp": hyp,
        }  # fmt: skip
        for k, (hyp, sim) in enumerate(zip(hyps, sims, strict=True))
    ]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--config", type=Path, required=True,
        help="a codec-LM method's config: its rollout (and, without --rewards-config, rewards)",
    )  # fmt: skip
    p.add_argument("--base-dir", type=Path, required=True, help="the policy (CodecLM directory)")
    p.add_argument("--tokenizer", type=Path, required=True, help="speech tokenizer.pt")
    p.add_argument(
        "--reward-model", type=Path, required=True,
        help="the rewards' model (a reward ASR or Token2Text)",
    )  # fmt: skip
    p.add_argument("--evaluator-asr", type=Path, required=True, help="evaluator ASR checkpoint")
    p.add_argument("--evaluator-speaker", type=Path, help="speaker evaluator (adds SIM)")
    p.add_argument("--data-dir", type=Path, required=True, help="texts and prompts (data/dev)")
    p.add_argument("--tokens", type=Path, required=True, help="speech tokens of --data-dir")
    p.add_argument("--out-dir", type=Path, required=True)
    p.add_argument("--n", type=int, default=8, help="samples per text (default 8)")
    p.add_argument("--texts", type=int, default=40, help="texts of --data-dir (default 40)")
    p.add_argument(
        "--rewards-config", type=Path, help="a YAML rewards mapping (combine, components) to "
        "measure instead of the config's",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="sampling, random pick and bootstrap")
    p.add_argument("--sample-rate", type=int, default=16000, help="the evaluators' audio rate")
    p.add_argument("--device", default="cpu", help="where the policy samples (default cpu)")
    p.add_argument("--num-threads", type=int, default=1)
    args = p.parse_args(argv)
    if args.n < 2 or args.texts < 1:
        p.error(f"need --n >= 2 and --texts >= 1, got {args.n} and {args.texts}")
    return args


def load_judges(args: argparse.Namespace, rewards: RewardSet, prompts: list[str]) -> Judges:
    """The evaluators, checked to be an ASR and a speaker model; every prompt needs its natural
    audio in wav.scp for SIM."""
    asr = load_evaluator(args.evaluator_asr)
    if not hasattr(asr, "transcribe"):
        raise ValueError(f"--evaluator-asr {args.evaluator_asr}: not an ASR checkpoint")
    speaker, wav_scp = None, {}
    if args.evaluator_speaker is not None:
        speaker = load_evaluator(args.evaluator_speaker)
        if not hasattr(speaker, "embed"):
            raise ValueError(f"--evaluator-speaker {args.evaluator_speaker}: not a speaker model")
        scp = args.data_dir / "wav.scp"
        wav_scp = read_kv(scp) if scp.is_file() else {}
        missing = sorted(set(prompts) - set(wav_scp))
        if missing:
            raise ValueError(f"{scp}: no natural audio of prompt {missing[0]} (needed for SIM)")
    return Judges(rewards, asr, speaker, wav_scp, args.sample_rate)


def sampling_and_rewards(
    config: Path, rewards_config: Path | None
) -> tuple[RolloutConfig, Mapping[str, Any]]:
    """The ``rollout`` section of any codec-LM method's config (GRPO, W3AR, DPO...), and the
    rewards to measure: ``rewards_config``'s, else the config's own ``rewards`` section."""
    raw = load_yaml(config)
    if "rollout" not in raw:
        raise ValueError(f"{config}: no rollout: section (a codec-LM method's config)")
    rollout = from_mapping(RolloutConfig, raw["rollout"], f"{config}: rollout")
    rewards = load_yaml(rewards_config) if rewards_config else raw.get("rewards")
    if not rewards:
        raise ValueError(f"{config} has no rewards: section; name them with --rewards-config")
    return rollout, dict(rewards)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.num_threads)
    setup_logging(args.out_dir / "log" / "best_of_n.log")
    rollout, rewards_cfg = sampling_and_rewards(args.config, args.rewards_config)
    rollout = dataclasses.replace(rollout, group_size=args.n, prompts_per_step=1)
    settings = Settings(
        args.base_dir, args.tokenizer, args.reward_model, args.evaluator_asr,
        args.evaluator_speaker, args.data_dir, args.tokens, args.n, args.texts, args.seed,
        args.sample_rate, rollout, rewards_cfg,
    )  # fmt: skip
    check_settings(args.out_dir, settings)
    tokenizer = load_speech_tokenizer(args.tokenizer)
    scorer = reward_scorer("--reward-model", args.reward_model, tokenizer.mel_cfg,
                           rollout.reward_input)  # fmt: skip
    try:
        rewards = build_rewards(rewards_cfg, {"scorer": scorer, "scorer_path": args.reward_model})
    except ValueError as err:
        raise ValueError(f"{args.rewards_config or args.config}: {err}") from err
    pool = PromptPool.load(args.data_dir, args.tokens, tokenizer.vocab_size)
    lm = CodecLM.from_pretrained(args.base_dir)
    lm.model.to(args.device)
    source = PromptSource(lm, pool, args.seed, 1, rollout.prompt_match)
    chosen = [source.targets[i] for i in evenly_spaced(len(source.targets), args.texts)]
    judges = load_judges(args, rewards, [source.prompt_of[u] for u in chosen])
    renderer = SpeechRenderer(tokenizer, rollout.vocoder_iters, rollout.min_wav_s)
    rollouts = Rollouts(lm, source, renderer, None, rollout, args.seed)

    tsv = args.out_dir / SAMPLES
    done = finished_texts(tsv, args.n)
    todo = sum(u not in done for u in chosen)
    if todo < len(chosen):
        log.info("%s: %d of %d texts done, resuming", tsv, len(chosen) - todo, len(chosen))
    start, fresh = time.perf_counter(), 0
    with tsv.open("a", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, COLUMNS, delimiter="\t")
        for i, utt in enumerate(chosen):
            if utt in done:
                continue
            rows = sample_rows(rollouts, judges, i, utt)
            writer.writerows(rows)
            f.flush()
            done[utt] = text_samples(utt, rows)
            fresh += 1
            elapsed = time.perf_counter() - start
            log.info(
                "text %d/%d (%s): elapsed %.0f s, eta %.0f s",
                i + 1, len(chosen), utt, elapsed, elapsed / fresh * (todo - fresh),
            )  # fmt: skip
    table = render(summarise([done[u] for u in chosen], args.seed))
    speaker = f", {args.evaluator_speaker}" if args.evaluator_speaker else ""
    text = (
        f"# Best of {args.n}: the reward's pick vs a random pick, by the evaluators\n\n"
        f"- policy: {args.base_dir}, sampling as in {args.config} (rollout)\n"
        f"- reward: {', '.join(rewards_cfg['components'])} ({rewards.combine}, "
        f"{args.rewards_config or args.config}) with {args.reward_model}\n"
        f"- texts: {len(chosen)} of {args.data_dir}, {args.n} samples each ({SAMPLES})\n"
        f"- evaluators: {args.evaluator_asr}{speaker}\n\n{table}"
    )
    write_text_atomic(args.out_dir / REPORT, text)
    print(text)


if __name__ == "__main__":
    main()
