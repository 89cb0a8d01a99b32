"""Resynthesis check: a data dir's audio -> log-mel -> the default vocoder -> wav.

    python -m local_lib.bin.resynth --data-dir data/test --out-dir exp/resynth \\
        [--feats-config conf/feats.yaml]

Writes ``<out-dir>/wav/<utt>.wav`` and ``<out-dir>/wav.scp``; score it like a system
(``score --data-dir data/test --wav-dir <out-dir>/wav --reference data``) to see what the
vocoder alone costs.
"""

import argparse
import logging
from pathlib import Path

from local_lib.data.audio import load_audio, save_audio
from local_lib.data.features import LogMelConfig, log_mel
from local_lib.data.kaldi_dir import load_data_dir, write_kv
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
    args = p.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )
    cfg = LogMelConfig.from_yaml(args.feats_config) if args.feats_config else LogMelConfig()
    vocoder = GriffinLimVocoder(cfg, n_iter=args.n_iter)
    data = load_data_dir(args.data_dir)
    scp = {}
    for i, utt in enumerate(data.utts, start=1):
        wav = load_audio(data.wav_scp[utt], cfg.sample_rate)
        out = args.out_dir / "wav" / f"{utt}.wav"
        save_audio(out, vocoder(log_mel(wav, cfg), length=len(wav)), cfg.sample_rate)
        scp[utt] = str(out.resolve())
        if i % 50 == 0 or i == len(data.utts):
            log.info("resynthesised %d/%d utterances", i, len(data.utts))
    write_kv(args.out_dir / "wav.scp", scp)


if __name__ == "__main__":
    main()
