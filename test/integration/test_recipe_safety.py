"""Runs that fail safely (issue 19): the stage range and options are checked and a stage's
missing inputs named before any stage runs; one run at a time owns a recipe dir and stops its
jobs when it ends or is interrupted; outputs made from other inputs are redone; a new corpus
root and local/data.sh's own options reach local/data.sh. local/data.sh is replaced here by
scripts that copy small data dirs the tests write (or wait), so nothing is trained."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from fake_corpora import make_data_dir
from recipe_sandbox import copy_package, make_sandbox, run_recipe

STAGE_1 = "stage 1: corpus preparation"


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def gone_within(pid: int, seconds: float = 20.0) -> bool:
    """Whether `pid` has ended within `seconds`; a signal takes a moment to be delivered."""
    deadline = time.monotonic() + seconds
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not alive(pid)


def stop_if_alive(*pids: int) -> None:
    """Clean up after a failed test: only processes this test started (through run.sh)."""
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def wait_for_file(path: Path, seconds: float = 120.0) -> str:
    deadline = time.monotonic() + seconds
    while not path.exists() or not path.read_text().strip():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.1)
    return path.read_text().strip()


def write_data_sh(recipe_dir: Path, body: str) -> None:
    """Replace the recipe's local/data.sh (the last argument is the data dir to write)."""
    script = recipe_dir / "local/data.sh"
    script.write_text(f"#!/usr/bin/env bash\nset -euo pipefail\nout=${{@: -1}}\n{body}\n")
    script.chmod(0o755)


def copying_data_sh(recipe_dir: Path, prepared: Path) -> None:
    """local/data.sh copies the sets of `prepared` into the data dir."""
    write_data_sh(recipe_dir, f'mkdir -p "$out"\ncp -r {prepared}/. "$out"/')


def prepare_sets(root: Path, counts: dict[str, int]) -> Path:
    for name, count in counts.items():
        make_data_dir(root / name, root / "wavs" / name, count=count)
    return root


@pytest.mark.parametrize(
    "args, message",
    [(["--stage", "9", "--stop-stage", "9"], "--stage must be one of the stages 1..8, got 9"),
     (["--stage", "0"], "--stage must be one of the stages 1..8, got 0"),
     (["--stage", "8", "--stop-stage", "9"], "--stop_stage must be one of the stages 1..8, got 9"),
     (["--stage", "5", "--stop-stage", "3"], "--stop_stage 3 comes before --stage 5")],
)  # fmt: skip
def test_a_stage_range_outside_1_to_8_is_an_error_before_any_stage(tmp_path, args, message):
    recipe_dir = make_sandbox(tmp_path, "libritts/grpo")
    result = run_recipe(recipe_dir, *args)
    assert result.returncode == 1
    assert message in result.output and "unbound variable" not in result.output
    assert STAGE_1 not in result.output


def test_help_is_printed_on_stdout(tmp_path):
    recipe_dir = make_sandbox(tmp_path, "libritts/grpo")
    result = subprocess.run(["./run.sh", "--help"], cwd=recipe_dir, capture_output=True,
                            text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    usage = result.stdout.splitlines()[0]  # run.sh execs tts_rl.sh, which bash names in full
    assert usage.startswith("Usage: ") and usage.endswith("tts_rl.sh --method <name> [options]")
    assert "--esd_root --libritts_root --seedtts_root DIR" in result.stdout
    assert result.stderr == ""


def test_a_truncated_pretrained_model_is_refused_before_any_stage(tmp_path):
    recipe_dir = make_sandbox(tmp_path, "libritts/grpo")
    model = tmp_path / "eval_asr.pt"
    torch.save({"weights": torch.zeros(1000)}, model)
    model.write_bytes(model.read_bytes()[:-200])
    result = run_recipe(recipe_dir, "--pretrained", f"eval_asr={model}")
    assert result.returncode == 1
    assert f"{model}: not a complete torch checkpoint" in result.output
    assert "--pretrained eval_asr: not a usable model file" in result.output
    assert STAGE_1 not in result.output


def test_missing_inputs_are_named_before_any_stage_starts(tmp_path):
    """--stage 3 --stop-stage 6 before stage 2 ever ran: nothing is trained."""
    recipe_dir = make_sandbox(tmp_path, "libritts/grpo")
    (recipe_dir / "data/train").mkdir(parents=True)
    (recipe_dir / "data/train/wav.scp").touch()
    result = run_recipe(recipe_dir, "--stage", "3", "--stop-stage", "6")
    assert result.returncode == 1
    assert "missing inputs, no stage has run:" in result.output
    for line in ("stage 3 needs data/dev/wav.scp (written by stage 1)",
                 "stage 4 needs dump/speech_tokenizer/tokenizer.pt (written by stage 2)",
                 "stage 6 needs dump/test/speech_tokens (written by stage 2)"):  # fmt: skip
        assert line in result.output
    assert "stage 3 needs data/train/wav.scp" not in result.output  # there
    assert "stage 5 needs exp/tts_base/model" not in result.output  # stage 4 writes it
    assert not (recipe_dir / "exp").exists()


def test_a_new_corpus_root_and_data_options_reach_local_data_sh(tmp_path):
    recipe_dir = make_sandbox(tmp_path, "libritts/grpo")
    with open(recipe_dir / "db.sh", "a") as db:
        db.write("MYTTS=\n")
    seen = tmp_path / "seen"
    write_data_sh(recipe_dir, f'echo "MYTTS=$MYTTS args: $*" > {seen}\nexit 3')
    help_text = run_recipe(recipe_dir, "--help").output
    assert "--esd_root --libritts_root --seedtts_root --mytts_root DIR" in help_text
    opts = ("--mytts_root", "/corpora/mytts", "--local_data_opts", "--lang en --speakers 2")
    result = run_recipe(recipe_dir, "--stage", "1", "--stop-stage", "1", *opts)
    assert result.returncode != 0
    assert seen.read_text() == "MYTTS=/corpora/mytts args: --lang en --speakers 2 --seed 0 " \
        "--nj 2 data\n"  # fmt: skip
    # A root under a new name is a real corpus: the full configs, and the log says so.
    assert "configs: conf/<name>.yaml, the full ones (--config_suffix auto: corpus root " \
        "MYTTS=/corpora/mytts)" in result.output  # fmt: skip


def test_a_dev_speaker_with_one_utterance_fails_stage_1_where_prompts_need_two(tmp_path):
    recipe_dir = make_sandbox(tmp_path, "libritts/grpo")
    prepared = prepare_sets(tmp_path / "prepared", {"train": 4, "dev": 3, "test": 4})
    copying_data_sh(recipe_dir, prepared)
    result = run_recipe(recipe_dir, "--stage", "1", "--stop-stage", "1")
    assert result.returncode != 0
    assert "data/dev/utt2spk:3: spk1-utt001: speaker spk1 has 1 utterance(s), fewer than 2" \
        in result.output  # fmt: skip
    assert not (recipe_dir / "data/.done").exists()


def test_a_subset_made_after_stage_1_is_checked_in_stage_2(tmp_path):
    """utils/subset_data_dir.sh --per-spk 1 leaves each speaker one utterance: no prompts."""
    recipe_dir = make_sandbox(tmp_path, "libritts/grpo")
    prepared = prepare_sets(tmp_path / "prepared", {"train": 4, "dev": 4, "test": 4})
    copying_data_sh(recipe_dir, prepared)
    assert run_recipe(recipe_dir, "--stage", "1", "--stop-stage", "1").returncode == 0
    subprocess.run(["utils/subset_data_dir.sh", "--per-spk", "1", "data/test", "data/test_small"],
                   cwd=recipe_dir, check=True, capture_output=True, timeout=120)  # fmt: skip
    result = run_recipe(recipe_dir, "--stage", "2", "--stop-stage", "2", "--nj", "1",
                        "--test_sets", "test_small")  # fmt: skip
    assert result.returncode != 0
    assert "data/test_small/utt2spk:1: spk0-utt000: speaker spk0 has 1 utterance(s)" \
        in result.output  # fmt: skip
    assert not (recipe_dir / "dump/test_small").exists()


def test_stale_outputs_are_redone_and_up_to_date_ones_skipped(tmp_path):
    """Stage 1 re-run with a changed local/data.sh shrinks data/train: stage 2 redoes its
    features (and only those), instead of trusting dump/train/.done."""
    recipe_dir = make_sandbox(tmp_path, "esd/easpo")
    prepared = prepare_sets(tmp_path / "prepared", {"train": 6, "dev": 4, "test": 4})
    copying_data_sh(recipe_dir, prepared)
    args = ("--stage", "1", "--stop-stage", "2", "--nj", "1")
    first = run_recipe(recipe_dir, *args)
    assert first.returncode == 0, first.output
    assert len((recipe_dir / "dump/train/feats.scp").read_text().splitlines()) == 6
    again = run_recipe(recipe_dir, *args)
    assert again.returncode == 0, again.output
    for marker in ("data/.done", "dump/train/.done", "dump/dev/.done", "dump/test/.done"):
        assert f"{marker} is up to date, skipping" in again.output
    # the corpus loses an utterance
    with open(recipe_dir / "local/data.sh", "a") as script:
        script.write('sed -i 1d "$out/train/wav.scp"; utils/fix_data_dir.sh "$out/train"\n')
    shrunk = run_recipe(recipe_dir, *args)
    assert shrunk.returncode == 0, shrunk.output
    assert "stage 1: data/.done is stale: local changed; local/data.sh changed; redoing" \
        in shrunk.output  # fmt: skip
    assert "stage 2: dump/train/.done is stale: data/train changed; redoing" in shrunk.output
    assert "dump/dev/.done is up to date, skipping" in shrunk.output
    assert len((recipe_dir / "dump/train/feats.scp").read_text().splitlines()) == 5


@pytest.mark.parametrize("stop", ["Ctrl-C", "kill"])
def test_one_run_at_a_time_and_an_interrupt_stops_its_jobs(tmp_path, stop):
    recipe_dir = make_sandbox(tmp_path, "libritts/grpo")
    job_pid = tmp_path / "job.pid"
    write_data_sh(recipe_dir, f"echo $$ > {job_pid}\nexec sleep 600")
    # A session of its own, so that Ctrl-C can be sent to its process group, as a terminal does.
    first = subprocess.Popen(["./run.sh", "--stage", "1", "--stop-stage", "1"], cwd=recipe_dir,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             start_new_session=True)  # fmt: skip
    job = 0
    try:
        job = int(wait_for_file(job_pid))
        holder = int((recipe_dir / ".run.lock").read_text().split()[0])
        assert alive(holder)
        second = run_recipe(recipe_dir, "--stage", "1", "--stop-stage", "1")
        assert second.returncode == 1
        assert f"another run is using {recipe_dir} (PID {holder}, lock .run.lock)" \
            in second.output  # fmt: skip
        assert STAGE_1 not in second.output
        if stop == "Ctrl-C":  # SIGINT to the process group of the run.sh started here
            os.killpg(first.pid, signal.SIGINT)
        else:  # SIGTERM to run.sh alone (run.sh execs tts_rl.sh, which holds the lock)
            assert holder == first.pid
            first.terminate()
        first.communicate(timeout=120)
        assert first.returncode != 0
        assert gone_within(job), "stage 1's job outlived the interrupted run.sh"
    finally:
        stop_if_alive(first.pid, job)
    # The lock file stays, naming a PID that is gone: the next run needs no clean-up.
    assert not alive(int((recipe_dir / ".run.lock").read_text().split()[0]))
    write_data_sh(recipe_dir, "exit 3")
    third = run_recipe(recipe_dir, "--stage", "1", "--stop-stage", "1")
    assert STAGE_1 in third.output and "another run" not in third.output


def test_jobs_of_a_run_that_died_keep_the_lock_and_are_named(tmp_path):
    """run.sh killed with SIGKILL cannot stop its jobs; they keep the lock, so no second run
    writes beside them, and the refusal says so."""
    recipe_dir = make_sandbox(tmp_path, "libritts/grpo")
    (recipe_dir / ".run.lock").write_text("4194999 2026-01-01T00:00:00\n")  # a PID long gone
    locked = tmp_path / "locked"
    orphan = subprocess.Popen(["flock", ".run.lock", "sh", "-c", f"echo $$ > {locked}; "
                               "exec sleep 600"], cwd=recipe_dir)  # fmt: skip
    try:
        wait_for_file(locked)
        result = run_recipe(recipe_dir, "--stage", "1", "--stop-stage", "1")
        assert result.returncode == 1
        assert "jobs of an earlier run (run.sh PID 4194999, gone) are still running in " \
            f"{recipe_dir} and hold .run.lock" in result.output  # fmt: skip
        assert STAGE_1 not in result.output
    finally:
        if locked.exists():  # the sleep that flock started for this test
            stop_if_alive(int(locked.read_text()))
        orphan.kill()
        orphan.wait()


def test_a_failing_stage_stops_the_background_stage_3_jobs(tmp_path):
    """Stage 4 fails while stage 3's trainers still run: run.sh returns only after they stop."""
    package = copy_package(tmp_path)
    recipe_dir = make_sandbox(tmp_path, "libritts/grpo")
    (package / "bin/train_evaluator.py").write_text(
        "import argparse, os, pathlib, time\n"
        "parser = argparse.ArgumentParser()\n"
        "parser.add_argument('--out-dir', type=pathlib.Path)\n"
        "args, _ = parser.parse_known_args()\n"
        "args.out_dir.mkdir(parents=True, exist_ok=True)\n"
        "(args.out_dir / 'pid').write_text(str(os.getpid()))\n"
        "time.sleep(600)\n"
    )  # fmt: skip
    (package / "bin/train_codec_lm.py").write_text(
        "import pathlib, sys, time\n"
        "names = ('reward_ctc', 'eval_asr', 'eval_speaker')\n"
        "while not all(pathlib.Path(f'exp/{n}/pid').exists() for n in names):\n"
        "    time.sleep(0.1)\n"
        "sys.exit('stage 4 fails while stage 3 trains')\n"
    )  # fmt: skip
    for name in ("data/train/wav.scp", "data/dev/wav.scp", "dump/speech_tokenizer/tokenizer.pt",
                 "dump/train/speech_tokens", "dump/dev/speech_tokens"):  # fmt: skip
        (recipe_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (recipe_dir / name).touch()
    result = run_recipe(recipe_dir, "--stage", "3", "--stop-stage", "4", "--nproc", "1")
    pids = [int((recipe_dir / f"exp/{n}/pid").read_text())
            for n in ("reward_ctc", "eval_asr", "eval_speaker")]  # fmt: skip
    try:
        assert result.returncode != 0
        assert "stage 4 fails while stage 3 trains" in (
            recipe_dir / "exp/tts_base/log/train.log").read_text()  # fmt: skip
        # run.sh returns only once its jobs have ended
        assert not any(alive(pid) for pid in pids), "a stage-3 trainer outlived run.sh"
    finally:
        stop_if_alive(*pids)


def test_a_running_job_shows_its_progress_on_the_console(tmp_path):
    """A job that logs trainer-style steps under exp/*/log gets a console line while it runs."""
    recipe_dir = make_sandbox(tmp_path, "libritts/grpo")
    job_pid = tmp_path / "job.pid"
    write_data_sh(recipe_dir, f"""echo $$ > {job_pid}
mkdir -p exp/prep/log exp/done/log
echo "INFO trainer: step 3/7 loss 1.5 | 0.5 steps/s, eta 12s" > exp/prep/log/train.log
printf 'step 9/9 loss 1 | eta 0s\n# Accounting: time=1 threads=1\n# Ended (code 0) at now\n' \
  > exp/done/log/train.log
exec sleep 600""")
    run = subprocess.Popen(
        ["./run.sh", "--stage", "1", "--stop-stage", "1", "--progress_every", "1"],
        cwd=recipe_dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    job = 0
    expected = "progress: exp/prep: step 3/7, about 12s left (exp/prep/log/train.log)"
    seen = []
    try:
        job = int(wait_for_file(job_pid))
        assert run.stdout is not None
        for line in run.stdout:  # ends when the run ends
            seen.append(line)
            if expected in line:
                break
        else:
            pytest.fail(f"no progress line: {expected}")
        # exp/done's log, listed before exp/prep's in the same round, has ended: no line
        assert not any("exp/done" in line for line in seen), seen
    finally:
        os.killpg(run.pid, signal.SIGINT)
        run.communicate(timeout=120)
        stop_if_alive(run.pid, job)


def test_checkpoints_of_a_run_with_another_config_are_refused_not_resumed(tmp_path):
    """Stage 4 killed after a checkpoint, then lr and num_steps edited: the re-run names the
    changed config and leaves the checkpoints alone; with the config restored it resumes."""
    package = copy_package(tmp_path)
    recipe_dir = make_sandbox(tmp_path, "libritts/grpo")
    (package / "bin/train_codec_lm.py").write_text(
        "import argparse, pathlib, sys\n"
        "parser = argparse.ArgumentParser()\n"
        "parser.add_argument('--out-dir', type=pathlib.Path)\n"
        "args, _ = parser.parse_known_args()\n"
        "ckpt = args.out_dir / 'checkpoints'\n"
        "ckpt.mkdir(parents=True, exist_ok=True)\n"
        "with open(args.out_dir / 'starts', 'a') as f:\n"
        "    f.write('started\\n')\n"
        "(ckpt / 'checkpoint_00000150.pt').write_bytes(b'step 150')\n"
        "sys.exit('killed after step 150')\n"
    )  # fmt: skip
    for name in ("data/train/wav.scp", "data/dev/wav.scp", "dump/speech_tokenizer/tokenizer.pt",
                 "dump/train/speech_tokens", "dump/dev/speech_tokens"):  # fmt: skip
        (recipe_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (recipe_dir / name).touch()
    args = ("--stage", "4", "--stop-stage", "4", "--config_suffix", "_debug")
    assert run_recipe(recipe_dir, *args).returncode != 0  # "killed"
    conf = recipe_dir / "conf/codec_lm_debug.yaml"
    good = conf.read_text()
    edited = good.replace("lr: 3.0e-3", "lr: 1.0e-4").replace("num_steps: 10", "num_steps: 20")
    assert edited != good
    conf.write_text(edited)
    changed = run_recipe(recipe_dir, *args)
    assert changed.returncode != 0
    assert "exp/tts_base/checkpoints holds checkpoints of a run made from other inputs " \
        "(conf/codec_lm_debug.yaml changed); resuming would mix the two" \
        in changed.output  # fmt: skip
    out = recipe_dir / "exp/tts_base"
    assert (out / "starts").read_text() == "started\n"  # not started again
    assert (out / "checkpoints/checkpoint_00000150.pt").read_bytes() == b"step 150"
    conf.write_text(good)
    assert run_recipe(recipe_dir, *args).returncode != 0  # the same config: resumed (and killed)
    assert (out / "starts").read_text() == "started\n" * 2
