"""Stage 2: log-mel features of one contiguous shard of a data dir, as kaldiio ark/scp.

Usage: python -m local_lib.bin.dump_feats --config conf/feats.yaml --data-dir data/train
           --out-dir dump/train --nj N --job J
Job J of N takes the J-th shard of wav.scp (Kaldi split_scp: near-equal contiguous line
counts) and writes feats.J.ark, feats.J.scp (absolute ark paths) and utt2num_frames.J.
Outputs appear under their final names only when the whole shard succeeded, so a re-run
never trusts a half-written ark.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import kaldiio
import numpy as np
import torch

from local_lib.data.audio import AudioError, load_audio
from local_lib.data.features import LogMelConfig, log_mel
from local_lib.atomic_io import atomic_path
from local_lib.data.kaldi_dir import DataDir, DataDirError, load_data_dir, shard_bounds, write_kv

log = logging.getLogger("dump_feats")


class DumpError(RuntimeError):
    """A shard that could not be dumped; the message names the utterance and its wav."""


# (utterance id, wav path, start in seconds, end in seconds or None for the whole file)
Item = tuple[str, str, float, float | None]


def shard_utterances(data: DataDir, nj: int, job: int) -> list[Item]:
    """``(utt, wav_path, start_sample, end_sample)`` for the recordings of this shard.

    With a segments file the shard is still cut on wav.scp, and every segment of a shard's
    recording belongs to that shard, so each recording is read by one job only.
    """
    recordings = list(data.wav_scp)
    start, end = shard_bounds(len(recordings), nj, job)
    chosen = recordings[start:end]
    if data.segments is None:
        return [(rec, data.wav_scp[rec], 0, None) for rec in chosen]
    by_recording: dict[str, list[str]] = {}
    for utt, segment in data.segments.items():
        by_recording.setdefault(segment.recording, []).append(utt)
    return [
        (utt, data.wav_scp[rec], data.segments[utt].start, data.segments[utt].end)
        for rec in chosen
        for utt in by_recording.get(rec, [])
    ]


def compute_features(
    items: list[Item], cfg: LogMelConfig
) -> Iterator[tuple[str, np.ndarray]]:
    """Log-mel per utterance; a recording cut into segments is read once."""
    cached_path, cached_wav = None, None
    for utt, path, start, end in items:
        try:
            if path != cached_path:
                cached_path, cached_wav = path, load_audio(path, cfg.sample_rate)
            first = int(round(start * cfg.sample_rate))
            last = cached_wav.shape[0] if end is None else int(round(end * cfg.sample_rate))
            if last > cached_wav.shape[0] + cfg.hop_length:
                raise ValueError(
                    f"segment ends at {end} s, after the recording's "
                    f"{cached_wav.shape[0] / cfg.sample_rate:.2f} s"
                )
            feats = log_mel(cached_wav[first:last], cfg)
        except (AudioError, ValueError, RuntimeError) as err:
            raise DumpError(f"utterance {utt} (wav {path}): {err}") from err
        if not np.isfinite(feats).all():
            raise DumpError(f"utterance {utt} (wav {path}): features are not finite")
        yield utt, feats


def dump_shard(data_dir: Path, out_dir: Path, cfg: LogMelConfig, nj: int, job: int) -> int:
    """Write the shard's ark/scp/utt2num_frames; returns the number of utterances."""
    out_dir = out_dir.resolve()
    ark = out_dir / f"feats.{job}.ark"
    scp = out_dir / f"feats.{job}.scp"
    frames_file = out_dir / f"utt2num_frames.{job}"
    # A previous run's outputs for this job must not survive a failure of this one.
    for stale in (scp, frames_file, ark):
        stale.unlink(missing_ok=True)
    items = shard_utterances(load_data_dir(data_dir), nj, job)
    if not items:
        log.warning("job %d/%d: empty shard (fewer recordings than jobs)", job, nj)
    scp_entries: dict[str, str] = {}
    num_frames: dict[str, str] = {}
    report_every = max(1, len(items) // 10)
    began = time.monotonic()
    with atomic_path(ark) as tmp_ark:
        with open(tmp_ark, "wb") as fd:
            for done, (utt, feats) in enumerate(compute_features(items, cfg), start=1):
                offset = fd.tell() + len(f"{utt} ".encode("utf-8"))
                kaldiio.save_ark(fd, {utt: feats})
                scp_entries[utt] = f"{ark}:{offset}"
                num_frames[utt] = str(feats.shape[0])
                if done % report_every == 0 or done == len(items):
                    log.info(
                        "job %d/%d: %d/%d utterances (%.1f s)",
                        job, nj, done, len(items), time.monotonic() - began,
                    )
    write_kv(frames_file, num_frames)
    write_kv(scp, scp_entries)
    return len(items)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, help="LogMelConfig YAML (default: its defaults)")
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--out-dir", type=Path, required=True)
    parser.add_argument("--nj", type=int, default=1)
    parser.add_argument("--job", type=int, default=1, help="1-based shard index")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s"
    )
    # One thread: jobs already run in parallel, and a fixed thread count keeps values identical
    # whatever CPU allocation the scheduler gives a job.
    torch.set_num_threads(1)
    try:
        cfg = LogMelConfig.from_yaml(args.config) if args.config else LogMelConfig()
        count = dump_shard(args.data_dir, args.out_dir, cfg, args.nj, args.job)
    except (DumpError, DataDirError, ValueError) as err:
        log.error("job %d/%d of %s failed: %s", args.job, args.nj, args.data_dir, err)
        return 1
    log.info("job %d/%d: wrote %d utterances to %s", args.job, args.nj, count, args.out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
