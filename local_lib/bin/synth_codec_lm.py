"""Stage 6 (codec LM): synthesise a test set with a codec LM, or resynthesise it through the
speech tokenizer alone, as one shard of a JOB array.

    python -m local_lib.bin.synth_codec_lm --model-dir exp/tts_base/model \\
        --config conf/codec_lm_mini.yaml --tokenizer dump/speech_tokenizer/tokenizer.pt \\
        --data-dir data/test --tokens dump/test/speech_tokens --feats-config conf/feats.yaml \\
        --out-dir exp/tts_base/synth/test [--seed 0] [--nj N --job J]
    python -m local_lib.bin.synth_codec_lm --tokens-only --tokenizer ... --data-dir data/test \\
        --tokens dump/test/speech_tokens --feats-config conf/feats.yaml \\
        --out-dir exp/tokenizer_resynth/test

With a model, each utterance is generated after a speaker prompt (another utterance of the same
speaker in the set, ``pick_prompts``) by KV-cache sampling with the config's ``sample`` section,
from a generator seeded by the seed and the utterance id alone: any split into jobs gives the
same audio. ``--tokens-only`` decodes the set's own speech tokens instead, so scoring shows what
the tokenizer costs. Tokens -> tokenizer mel decoder -> Griffin-Lim -> ``<out-dir>/wav/<utt>.wav``
and ``wav.scp`` (``wav.J.scp`` for shard J of N). ``--num-samples K`` draws K takes of each
utterance (``<utt>``, ``<utt>#1``... ``<utt>#K-1``; ``local_lib.eval.samples``), which stage 7
scores as one per-utterance mean: take 0 is the audio of ``--num-samples 1``.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from local_lib.bin.train_codec_lm import CodecLMConfig, SampleSection
from local_lib.config import ConfigError, load_config
from local_lib.data.audio import save_audio
from local_lib.data.features import LogMelConfig
from local_lib.data.kaldi_dir import shard_bounds, write_kv
from local_lib.data.speech_tokens import PromptPool
from local_lib.eval.samples import take_key
from local_lib.models.codec_lm import CodecLM
from local_lib.models.speech_tokenizer import load_speech_tokenizer
from local_lib.models.vocoder import GriffinLimVocoder

log = logging.getLogger("synth_codec_lm")


def utterance_generator(seed: int, utt: str) -> torch.Generator:
    """A generator that depends on the seed and the utterance only (never on shard or order)."""
    digest = hashlib.sha256(f"{seed}\0{utt}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little"))


def sample_settings(config: Path) -> SampleSection:
    """The ``sample`` section of a codec_lm config, which must bound the output length."""
    sample = load_config(config, CodecLMConfig).sample
    if sample.max_new_tokens is None:
        raise ConfigError(f"{config}: sample.max_new_tokens: needed for synthesis")
    return sample


def padded_vocoder(
    vocoder: GriffinLimVocoder, cfg: LogMelConfig
) -> Callable[[np.ndarray], np.ndarray]:
    """The vocoder with very short mels (a model that stopped after a token or two) padded with
    silence frames up to what Griffin-Lim's STFT needs (and at least 8 frames)."""
    min_frames = max(8, cfg.n_fft // (2 * cfg.hop_length) + 2)

    def vocode(mel: np.ndarray) -> np.ndarray:
        mel = np.asarray(mel, dtype=np.float32)
        missing = min_frames - len(mel)
        if missing > 0:
            silence = np.full((missing, cfg.n_mels), np.log(cfg.log_floor), dtype=np.float32)
            mel = np.concatenate([mel, silence])
        return vocoder(mel)

    return vocode


def generate_tokens(
    lm: CodecLM,
    pool: PromptPool,
    utts: list[str],
    settings: SampleSection,
    seed: int,
    num_samples: int = 1,
) -> dict[str, torch.Tensor]:
    """Speech tokens of each take of each utterance (``take_key``), sampled one at a time after
    the utterance's speaker prompt; each take's generator depends on the seed and its key."""
    prompts = lm.zero_shot_prompt_ids(utts, pool, seed)
    out, truncated, n_tokens, t0 = {}, 0, 0, time.monotonic()
    for utt in utts:
        for key in (take_key(utt, k) for k in range(num_samples)):
            rollout = lm.sample(
                [prompts[utt]], generator=utterance_generator(seed, key),
                **dataclasses.asdict(settings),
            )  # fmt: skip
            out[key] = rollout.speech_tokens[0]
            truncated += int(not bool(rollout.has_eos[0]))
            n_tokens += len(out[key])
    log.info(
        "generated %d takes, %d tokens (%.1f tokens/s), %d without an end marker",
        len(out), n_tokens, n_tokens / max(time.monotonic() - t0, 1e-9), truncated,
    )  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model-dir", type=Path, help="CodecLM directory (ours or Llasa-style)")
    p.add_argument("--config", type=Path, help="codec_lm config whose sample section is used")
    p.add_argument(
        "--tokens-only", action="store_true", help="decode the set's own tokens (resynthesis)"
    )
    p.add_argument("--tokenizer", type=Path, required=True)
    p.add_argument("--data-dir", type=Path, required=True)
    p.add_argument("--tokens", type=Path, required=True, help="speech tokens of --data-dir")
    p.add_argument("--feats-config", type=Path, required=True)
    p.add_argument("--out-dir", type=Path, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--num-samples", type=int, default=1,
        help="takes per utterance (with a model); take k > 0 is <utt>#k in wav.scp",
    )  # fmt: skip
    p.add_argument("--griffin-lim-iters", type=int, default=32)
    p.add_argument("--nj", type=int, default=1)
    p.add_argument("--job", type=int, default=1)
    args = p.parse_args(argv)
    with_model = args.model_dir is not None
    if args.tokens_only == with_model or (with_model and args.config is None):
        p.error("give either --model-dir with --config, or --tokens-only")
    if args.num_samples < 1 or (args.tokens_only and args.num_samples != 1):
        p.error("--num-samples must be >= 1, and 1 with --tokens-only (there is one resynthesis)")
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )
    torch.set_num_threads(1)
    tokenizer = load_speech_tokenizer(args.tokenizer)
    mel_cfg = LogMelConfig.from_yaml(args.feats_config)
    vocoder = padded_vocoder(GriffinLimVocoder(mel_cfg, n_iter=args.griffin_lim_iters), mel_cfg)
    pool = PromptPool.load(args.data_dir, args.tokens, tokenizer.vocab_size)
    utts = sorted(pool.utt2spk, key=lambda u: u.encode("utf-8"))
    start, end = shard_bounds(len(utts), args.nj, args.job)
    utts = utts[start:end]
    if args.tokens_only:
        tokens = {utt: torch.tensor(pool.tokens[utt]) for utt in utts}
    else:
        lm = CodecLM.from_pretrained(args.model_dir)
        lm.model.eval()
        tokens = generate_tokens(
            lm, pool, utts, sample_settings(args.config), args.seed, args.num_samples
        )
    scp = {}
    for i, key in enumerate(tokens, start=1):
        if len(tokens[key]):
            wav = tokenizer.decode_wav(tokens[key], vocoder)
        else:  # the model ended at once: silence, which scoring counts as all words missed
            log.warning("%s: no speech tokens generated; writing silence", key)
            wav = vocoder(np.zeros((0, mel_cfg.n_mels), dtype=np.float32))
        out = args.out_dir / "wav" / f"{key}.wav"
        save_audio(out, wav, mel_cfg.sample_rate)
        scp[key] = str(out.resolve())
        if i % 50 == 0 or i == len(tokens):
            log.info("wrote %d/%d takes", i, len(tokens))
    write_kv(args.out_dir / ("wav.scp" if args.nj == 1 else f"wav.{args.job}.scp"), scp)


if __name__ == "__main__":
    main()
