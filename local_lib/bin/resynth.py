"""Resynthesis check: a data dir's audio -> log-mel -> the default vocoder -> wav.

    python -m local_lib.bin.resynth --data-dir data/test --out-dir exp/resynth \\
        [--feats-config conf/feats.yaml] [--nj N --job J]

Writes ``<out-dir>/wav/<utt>.wav`` and ``<out-dir>/wav.scp`` (``wav.J.scp`` for shard J of a
JOB array, cut by Kaldi's split rule over the data dir's utterances); score it like a system
(``score --data-dir data/test --wav-dir <out-dir>/wav --reference data``) to see what the
vocoder alone costs.
"""

import argparse
import logging
from pathlib import Path

from local_lib.data.audio import load_audio, save_audio
from local_lib.data.features import LogMelConfig, log_mel
from local_lib.data.kaldi_dir import load_data_dir, shard_bounds, write_kv
from local_lib.models.vocoder import GriffinLimVocoder

log = logging.getLogger("resynth")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data-dir", type=Path, required=True)
    p.add_argument("--out-dir", type=Path, required=True)
    p.add_argument(
        "--feats-config", type=Path, default=None, help="LogMelConfig YAML (default: built-in)"
    )
    p.add_argument("--n-iter", type=int, default=32, help="Griffin-Lim iterations")
    p.add_argument("--nj", type=int, default=1, help="number of shards of a JOB array")
    p.add_argument("--job", type=int, default=1, help="this shard, 1..nj")
    args = p.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )
    cfg = LogMelConfig.from_yaml(args.feats_config) if args.feats_config else LogMelConfig()
    vocoder = GriffinLimVocoder(cfg, n_iter=args.n_iter)
    data = load_data_dir(args.data_dir)
    start, end = shard_bounds(len(data.utts), args.nj, args.job)
    utts = data.utts[start:end]
    scp = {}
    for i, utt in enumerate(utts, start=1):
        wav = load_audio(data.wav_scp[utt], cfg.sample_rate)
        out = args.out_dir / "wav" / f"{utt}.wav"
        save_audio(out, vocoder(log_mel(wav, cfg), length=len(wav)), cfg.sample_rate)
        scp[utt] = str(out.resolve())
        if i % 50 == 0 or i == len(utts):
            log.info("resynthesised %d/%d utterances", i, len(utts))
    write_kv(args.out_dir / ("wav.scp" if args.nj == 1 else f"wav.{args.job}.scp"), scp)


if __name__ == "__main__":
    main()
