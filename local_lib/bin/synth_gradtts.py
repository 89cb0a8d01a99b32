"""Stage 6 (Grad-TTS family): synthesise a test set with a trained Grad-TTS, one JOB shard.

    python -m local_lib.bin.synth_gradtts --config conf/gradtts_mini.yaml \\
        --model exp/tts_base/model.pt --data-dir data/test --out-dir exp/tts_base/synth/test \\
        [--feats-config conf/feats.yaml] [--seed 0] [--nj N --job J]

Every utterance is spoken with its own text, speaker (utt2spk) and emotion (utt2emo); the
sampler (SDE or ODE, steps, temperature) and the Griffin-Lim iterations come from the config's
``synth`` section. Each utterance draws its noise from a generator seeded by (seed, utterance
id) and is synthesised alone (GroupNorm would see a batch's padding), so its audio does not
depend on --nj. Writes ``<out-dir>/wav/<utt>.wav`` and ``wav.scp`` (``wav.J.scp`` for shard J
of --nj > 1, cut by Kaldi's split rule).
"""

from __future__ import annotations

import argparse
import hashlib
import logging
from pathlib import Path

import torch

from local_lib.config import load_config
from local_lib.data.audio import save_audio
from local_lib.data.features import LogMelConfig
from local_lib.data.kaldi_dir import shard_bounds, write_kv
from local_lib.models.gradtts import GradTTSBundle, load_gradtts
from local_lib.models.gradtts.data import load_tts_items
from local_lib.models.gradtts.recipe_config import GradTTSRecipeConfig, GradTTSSynthConfig
from local_lib.models.vocoder import GriffinLimVocoder

log = logging.getLogger("synth_gradtts")


def utterance_seed(seed: int, utt: str) -> int:
    """A per-utterance seed that is the same in every shard layout and every process."""
    digest = hashlib.sha256(f"{seed}:{utt}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def synthesise_mel(
    bundle: GradTTSBundle,
    text: str,
    speaker: str,
    emotion: str,
    cfg: GradTTSSynthConfig,
    seed: int,
) -> torch.Tensor:
    """Log-mel ``[frames, n_mels]`` of one utterance."""
    ids, lengths = bundle.encode_texts([text])
    mel, mel_lengths = bundle.model.synthesise(
        ids,
        lengths,
        torch.tensor([bundle.speaker_id(speaker)]),
        torch.tensor([bundle.emotion_id(emotion)]),
        n_steps=cfg.n_steps,
        temperature=cfg.temperature,
        ode=cfg.ode,
        length_scale=cfg.length_scale,
        generator=torch.Generator().manual_seed(seed),
    )
    return mel[0, : int(mel_lengths[0])]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--config", type=Path, required=True, help="conf/gradtts*.yaml (synth section)")
    p.add_argument("--model", type=Path, required=True, help="model.pt of stage 4 or 5")
    p.add_argument("--data-dir", type=Path, required=True)
    p.add_argument("--out-dir", type=Path, required=True)
    p.add_argument("--feats-config", type=Path, default=None, help="LogMelConfig YAML")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--nj", type=int, default=1, help="number of shards of a JOB array")
    p.add_argument("--job", type=int, default=1, help="this shard, 1..nj")
    p.add_argument("--num-threads", type=int, default=1)
    args = p.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )
    torch.set_num_threads(args.num_threads)
    cfg = load_config(args.config, GradTTSRecipeConfig).synth
    feats = LogMelConfig.from_yaml(args.feats_config) if args.feats_config else LogMelConfig()
    bundle = load_gradtts(args.model)
    if bundle.model.cfg.n_mels != feats.n_mels:
        raise ValueError(
            f"{args.model}: model makes {bundle.model.cfg.n_mels} mel bins but "
            f"{args.feats_config} has {feats.n_mels}"
        )
    vocoder = GriffinLimVocoder(feats, n_iter=cfg.vocoder_iters)
    items = load_tts_items(args.data_dir)
    start, end = shard_bounds(len(items.utts), args.nj, args.job)
    scp = {}
    for i in range(start, end):
        utt = items.utts[i]
        try:
            mel = synthesise_mel(
                bundle, items.texts[i], items.speakers[i], items.emotions[i], cfg,
                utterance_seed(args.seed, utt),
            )  # fmt: skip
        except ValueError as err:
            raise ValueError(f"{args.data_dir}: {utt}: {err}") from err
        out = args.out_dir / "wav" / f"{utt}.wav"
        # F centred STFT frames come from (F - 1) * hop samples.
        length = (mel.shape[0] - 1) * feats.hop_length
        save_audio(out, vocoder(mel.numpy(), length=length), feats.sample_rate)
        scp[utt] = str(out.resolve())
        done = i - start + 1
        if done % 25 == 0 or i == end - 1:
            log.info("synthesised %d/%d utterances of shard %d/%d", done, end - start, args.job,
                     args.nj)  # fmt: skip
    write_kv(args.out_dir / ("wav.scp" if args.nj == 1 else f"wav.{args.job}.scp"), scp)


if __name__ == "__main__":
    main()
