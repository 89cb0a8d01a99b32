"""Stage 2 feature dump: sharding, nj-independence, segments, atomic failure, launcher wrapper."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import kaldiio
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from local_lib.bin.dump_feats import DumpError, dump_shard
from local_lib.data.kaldi_dir import shard_bounds
from local_lib.data.audio import load_audio
from local_lib.data.features import LogMelConfig, log_mel
from local_lib.data.kaldi_dir import read_kv, write_kv

from fake_corpora import make_data_dir, write_tone  # noqa: E402
from recipe_dir import REPO, make_recipe_dir, run_in  # noqa: E402

CFG = LogMelConfig()
CONFIG = REPO / "egs/TEMPLATE/conf/feats.yaml"
RUN_PL = REPO / "utils/run.pl"
needs_run_pl = pytest.mark.skipif(not RUN_PL.exists(), reason="utils/run.pl is not in the tree")


def read_feats(scp: Path) -> dict[str, np.ndarray]:
    return dict(kaldiio.load_scp(str(scp)))


def dump_all(data: Path, out: Path, nj: int) -> dict[str, np.ndarray]:
    feats = {}
    for job in range(1, nj + 1):
        dump_shard(data, out, CFG, nj, job)
        feats.update(read_feats(out / f"feats.{job}.scp"))
    return feats


def test_shard_bounds_follow_kaldi_split_scp():
    assert [shard_bounds(10, 3, j) for j in (1, 2, 3)] == [(0, 4), (4, 7), (7, 10)]
    assert [shard_bounds(2, 3, j) for j in (1, 2, 3)] == [(0, 1), (1, 2), (2, 2)]
    with pytest.raises(ValueError, match="outside 1..3"):
        shard_bounds(10, 3, 4)


@given(st.integers(0, 500), st.integers(1, 40))
def test_shards_are_contiguous_near_equal_and_cover_everything(lines, nj):
    bounds = [shard_bounds(lines, nj, job) for job in range(1, nj + 1)]
    assert bounds[0][0] == 0 and bounds[-1][1] == lines
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    sizes = [end - start for start, end in bounds]
    assert sizes == sorted(sizes, reverse=True) and sizes[0] - sizes[-1] <= 1


def test_nj_does_not_change_values_and_scp_is_absolute(tmp_path):
    data = make_data_dir(tmp_path / "data", tmp_path / "wavs", count=5)
    one = dump_all(data, tmp_path / "nj1", 1)
    two = dump_all(data, tmp_path / "nj2", 2)
    assert sorted(one) == sorted(two) == list(read_kv(data / "wav.scp"))
    for utt, mat in one.items():
        np.testing.assert_array_equal(mat, two[utt], err_msg=utt)
        wav = load_audio(read_kv(data / "wav.scp")[utt])
        np.testing.assert_array_equal(mat, log_mel(wav, CFG))
    scp = read_kv(tmp_path / "nj2/feats.1.scp")
    assert len(scp) == 3  # 5 lines over 2 jobs: 3 + 2
    assert all(v.startswith(f"{(tmp_path / 'nj2').resolve()}/feats.1.ark:") for v in scp.values())
    frames = read_kv(tmp_path / "nj2/utt2num_frames.2")
    assert {u: int(n) for u, n in frames.items()} == {u: two[u].shape[0] for u in frames}


def test_a_killed_jobs_temp_ark_is_removed_by_the_next_run(tmp_path):
    """kill -9 runs no clean-up: the next writer of feats.1.ark removes the dead one's temp."""
    data = make_data_dir(tmp_path / "data", tmp_path / "wavs", count=3)
    out = tmp_path / "dump"
    out.mkdir()
    dead = out / ".feats.1.ark.k1ll3d.tmp"
    dead.write_bytes(b"half an ark")
    other_job = out / ".feats.2.ark.x.tmp"
    other_job.write_bytes(b"")
    dump_shard(data, out, CFG, 1, 1)
    assert not dead.exists()
    assert other_job.exists()  # another path's temp is not this writer's to judge
    assert sorted(p.name for p in out.glob(".*.tmp")) == [other_job.name]


def test_segments_are_cut_from_their_recording(tmp_path):
    wav = write_tone(tmp_path / "rec.wav", seconds=1.0, seed=3)
    data = tmp_path / "data"
    write_kv(data / "wav.scp", {"spk-rec": str(wav)})
    write_kv(data / "segments",
             {"spk-rec-a": "spk-rec 0.00 0.40", "spk-rec-b": "spk-rec 0.50 1.00"})
    write_kv(data / "text", {"spk-rec-a": "a", "spk-rec-b": "b"})
    write_kv(data / "utt2spk", {"spk-rec-a": "spk", "spk-rec-b": "spk"})
    write_kv(data / "spk2utt", {"spk": "spk-rec-a spk-rec-b"})
    feats = dump_all(data, tmp_path / "out", 1)
    samples = load_audio(wav)
    np.testing.assert_array_equal(feats["spk-rec-a"], log_mel(samples[:6400], CFG))
    np.testing.assert_array_equal(feats["spk-rec-b"], log_mel(samples[8000:16000], CFG))


def break_wav(data: Path, index: int) -> tuple[str, str]:
    """Make the index-th wav of wav.scp unreadable; returns (utt, wav path)."""
    utt, wav = list(read_kv(data / "wav.scp").items())[index]
    Path(wav).write_text("not audio")
    return utt, wav


def test_failed_job_names_the_utterance_and_leaves_no_trusted_output(tmp_path):
    data = make_data_dir(tmp_path / "data", tmp_path / "wavs", count=4)
    out = tmp_path / "out"
    dump_all(data, out, 2)  # a good earlier run whose job-2 outputs must not survive
    utt, wav = break_wav(data, 3)
    with pytest.raises(DumpError, match=re.escape(f"utterance {utt} (wav {wav})")):
        dump_shard(data, out, CFG, 2, 2)
    assert sorted(p.name for p in out.iterdir()) == ["feats.1.ark", "feats.1.scp",
                                                     "utt2num_frames.1"]


@pytest.fixture
def recipe_with_data(tmp_path: Path) -> Path:
    recipe = make_recipe_dir(tmp_path / "recipe")
    make_data_dir(recipe / "data/train", tmp_path / "wavs", count=5)
    (recipe / "conf").mkdir()
    shutil.copy(CONFIG, recipe / "conf/feats.yaml")
    return recipe


def dump_sh(recipe: Path, nj: int, out: str):
    return run_in(recipe, "utils/dump_feats.sh", "--cmd", "utils/run.pl", "--nj", str(nj),
                  "--config", "conf/feats.yaml", "data/train", out)


@needs_run_pl
def test_wrapper_nj2_matches_nj1_and_a_rerun_is_byte_identical(recipe_with_data, tmp_path):
    recipe = recipe_with_data
    result = dump_sh(recipe, 2, "dump/train")
    assert result.returncode == 0, result.stderr
    out = (recipe / "dump/train").resolve()
    assert f"wrote 5 utterances to {out}/feats.scp" in result.stderr
    merged = read_feats(out / "feats.scp")
    assert list(merged) == list(read_kv(recipe / "data/train/wav.scp"))
    one_job = dump_all(recipe / "data/train", tmp_path / "nj1", 1)
    for utt, mat in one_job.items():
        np.testing.assert_array_equal(merged[utt], mat, err_msg=utt)
    frames = read_kv(out / "utt2num_frames")
    assert list(frames) == list(merged)
    assert all(int(frames[u]) == merged[u].shape[0] for u in merged)
    assert "job 2/2: 2/2 utterances" in (out / "log/dump_feats.2.log").read_text()
    arks = {p: p.read_bytes() for p in out.glob("feats.*.ark")}
    scps = {p: p.read_bytes() for p in out.glob("feats.*.scp")}
    dump_all(recipe / "data/train", out, 2)  # the jobs' own code path, run again in place
    assert {p: p.read_bytes() for p in arks} == arks
    assert {p: p.read_bytes() for p in scps} == scps


@needs_run_pl
def test_wrapper_failure_names_the_log_and_merges_nothing(recipe_with_data):
    recipe = recipe_with_data
    out = recipe / "dump/train"
    dump_all(recipe / "data/train", out, 2)
    (out / "feats.scp").write_text("stale merged output of an earlier run\n")
    utt, wav = break_wav(recipe / "data/train", 4)
    result = dump_sh(recipe, 2, "dump/train")
    assert result.returncode != 0
    log = (out / "log/dump_feats.2.log").resolve()
    assert f"feature extraction failed; see {log}" in result.stderr
    assert f"utterance {utt} (wav {wav})" in log.read_text()
    assert not (out / "feats.scp").exists()
    assert not (out / "feats.2.ark").exists() and not (out / "feats.2.scp").exists()
    assert (out / "feats.1.ark").exists()


def test_wrapper_rejects_bad_arguments(recipe_with_data):
    result = run_in(recipe_with_data, "utils/dump_feats.sh", "--nj", "0", "data/train", "dump/x")
    assert result.returncode == 1 and "--nj must be a positive integer" in result.stderr
    result = run_in(recipe_with_data, "utils/dump_feats.sh", "data/missing", "dump/x")
    assert result.returncode == 1 and "data/missing/wav.scp not found" in result.stderr


@needs_run_pl
def test_a_launcher_that_runs_no_task_is_named_not_a_log_that_does_not_exist(recipe_with_data):
    """slurm.pl with no reachable Slurm (SLURM_CONF unset): sbatch fails before any task."""
    recipe = recipe_with_data
    bin_dir = recipe / "fake_bin"
    bin_dir.mkdir()
    sbatch = bin_dir / "sbatch"
    sbatch.write_text("#!/bin/sh\necho 'sbatch: error: resolve_ctls_from_dns_srv' >&2\nexit 1\n")
    sbatch.chmod(0o755)
    env = {"PATH": f"{bin_dir}:{Path(sys.executable).parent}:/usr/bin:/bin", "LC_ALL": "C"}
    result = subprocess.run(
        ["utils/dump_feats.sh", "--cmd", "utils/slurm.pl", "--nj", "2", "data/train", "dump/t"],
        cwd=recipe, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    assert "sbatch: error: resolve_ctls_from_dns_srv" in result.stderr
    assert "submission failed (exit code 1), so no task ran and no task log was written" \
        in result.stderr and "SLURM_CONF=unset" in result.stderr  # fmt: skip
    assert "feature extraction failed before any job wrote its log: see the launcher's " \
        "message above (utils/slurm.pl)" in result.stderr  # fmt: skip
    assert "dump_feats.1.log" not in result.stderr
