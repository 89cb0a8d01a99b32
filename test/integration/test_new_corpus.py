"""A new corpus in a layout the repository does not know, as README.md's "Adding a corpus" walks
a user through it: utils/copy_recipe.sh copies the GRPO recipe three levels under egs/, the
copy gets its own local/data.sh (written here, reading an LJSpeech-style metadata.csv), db.sh
(a root under a new name) and the debug configs, and runs stages 1-8."""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

import pytest
from recipe_sandbox import REPO_ROOT, make_sandbox, run_recipe

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]

VOICES = {"ann": "en+f3", "bob": "en+m3"}  # espeak-ng voices standing in for the speakers
PER_VOICE = 22  # 2 dev, 3 test and 17 training utterances per speaker
WORDS = ("the small red boat came back to the quiet harbour before dark and every sailor on "
         "board was glad to see the old light house shining over green water").split()  # fmt: skip

README = REPO_ROOT / "README.md"


def readme_data_sh() -> str:
    """The local/data.sh of README.md's "Adding a corpus", so the README is what is tested."""
    section = README.read_text().split("## Adding a corpus", 1)[1].split("\n## ", 1)[0]
    script = section.split("```sh\n#!/usr/bin/env bash\n", 1)[1].split("```", 1)[0]
    return "#!/usr/bin/env bash\n" + script


def write_corpus(root: Path) -> Path:
    """wavs/<speaker>-<nnn>.wav spoken by espeak-ng and metadata.csv, seeded."""
    rng = random.Random(0)
    (root / "wavs").mkdir(parents=True)
    lines = []
    for speaker, voice in VOICES.items():
        for n in range(PER_VOICE):
            utt = f"{speaker}-{n:03d}"
            text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 6)))
            subprocess.run(["espeak-ng", "-v", voice, "-w", str(root / "wavs" / f"{utt}.wav"),
                            text], check=True, capture_output=True, timeout=60)  # fmt: skip
            lines.append(f"{utt}|{text.capitalize()}.|{text}\n")
    (root / "metadata.csv").write_text("".join(lines))
    return root


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_a_copied_recipe_runs_a_new_corpus_three_levels_under_egs(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    make_sandbox(repo, "libritts/grpo")
    corpus = write_corpus(tmp_path / "MyTTS-1.0")
    copy = subprocess.run(["utils/copy_recipe.sh", "egs/libritts/grpo", "egs/lab/mytts/grpo"],
                          cwd=repo, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert copy.returncode == 0, copy.stderr
    recipe = repo / "egs/lab/mytts/grpo"
    (recipe / "local/data.sh").write_text(readme_data_sh())
    (recipe / "db.sh").write_text(f"MYTTS={corpus}\n")
    data_opts = ("--local_data_opts", "--dev_per_spk 2 --test_per_spk 3")

    # README's steps 5 and 6: stage 1 and its checks, a small test set, every stage.
    first = run_recipe(recipe, "--stage", "1", "--stop-stage", "1", *data_opts)
    assert first.returncode == 0, first.output
    assert "configs: conf/<name>.yaml, the full ones (--config_suffix auto: corpus root " \
        f"MYTTS={corpus})" in first.output  # fmt: skip
    for dset, count in (("train", 34), ("dev", 4), ("test", 6)):
        utts = (recipe / f"data/{dset}/utt2spk").read_text().splitlines()
        assert len(utts) == count and {u.split()[1] for u in utts} == set(VOICES), dset
    for tool in (["validate_data_dir.sh", "--min-utts-per-spk", "2", "--min-dur", "0.1",
                  "data/dev"],
                 ["subset_data_dir.sh", "--per-spk", "2", "data/test", "data/test_small"]):
        done = subprocess.run([f"utils/{tool[0]}", *tool[1:]], cwd=recipe, capture_output=True,
                              text=True, timeout=120)  # fmt: skip
        assert done.returncode == 0, done.stderr
    run = run_recipe(recipe, "--config_suffix", "_debug", "--nj", "2", *data_opts,
                     "--test_sets", "test test_small", timeout=3600)  # fmt: skip
    print(f"new corpus, stages 1-8: {run.seconds:.1f} s")
    assert run.returncode == 0, run.output
    assert "stage 1: data/.done is up to date, skipping" in run.output
    assert "configs: conf/<name>_debug.yaml (--config_suffix _debug)" in run.output
    assert "finished grpo: stages 1 2 3 4 5 6 7 8" in run.output
    reports = {"exp/report": "grpo: test", "exp/report_test_small": "grpo: test_small"}
    for report, title in reports.items():
        text = (recipe / report / "REPORT.md").read_text()
        assert title in text and "base" in text, report
    # nothing was written into the recipe it was copied from
    assert not any((repo / "egs/libritts/grpo" / d).exists() for d in ("data", "dump", "exp"))
