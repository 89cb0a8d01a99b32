"""The GRPO recipe (egs/libritts/grpo) on sentencepiece units: stages 1-8 with the debug configs
and ``--token_type bpe --nbpe 100``.

Stage 2 trains one unigram model on the training text into dump/token_list; the codec LM, the
CTC reward ASR and the evaluator ASR all take their units from it; scoring stays on words. The
tests then check that a re-run with the same units keeps the list, and that a changed --nbpe
re-makes it and never resumes a stage-3 ASR trained on the old units.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
import yaml
from recipe_sandbox import make_sandbox, run_recipe

from local_lib.data.text_units import MODEL_FILE, TOKENS_FILE, read_token_list
from local_lib.eval.text_norm import normalize_text
from local_lib.models.asr_units import AsrUnits
from local_lib.models.codec_lm import CodecLM

# About 5 minutes on two idle cores; the generous limit only catches a hang on a loaded CPU.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]
BPE = ("--nj", "2", "--config_suffix", "_debug", "--token_type", "bpe")
ASRS = ("reward_ctc", "eval_asr")


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> tuple[Path, str]:
    recipe_dir = make_sandbox(tmp_path_factory.mktemp("bpe"), "libritts/grpo")
    result = run_recipe(recipe_dir, *BPE, "--nbpe", "100", timeout=3600)
    print(f"libritts/grpo stages 1-8 (debug configs, bpe 100) took {result.seconds:.1f} s")
    assert result.returncode == 0, result.output
    return recipe_dir, result.output


def asr_units(recipe_dir: Path, name: str) -> AsrUnits:
    state = torch.load(recipe_dir / f"exp/{name}/model.pt", map_location="cpu", weights_only=False)
    return AsrUnits.from_state(state)


def test_every_stage_runs(recipe):
    _, output = recipe
    assert "finished grpo: stages 1 2 3 4 5 6 7 8" in output
    assert "make_token_list: dump/token_list: bpe (unigram, 100) units of data/train/text" in output


def test_stage_2_writes_the_sentencepiece_model_and_its_record(recipe):
    recipe_dir, _ = recipe
    token_list = recipe_dir / "dump/token_list"
    record = yaml.safe_load((token_list / "config.yaml").read_text())
    assert (record["token_type"], record["nbpe"], record["bpemode"]) == ("bpe", 100, "unigram")
    assert len(record["text_sha256"]) == 64
    assert len((token_list / TOKENS_FILE).read_text().splitlines()) == 100
    assert (token_list / MODEL_FILE).stat().st_size > 0


def test_every_model_that_reads_text_has_the_same_units(recipe):
    recipe_dir, _ = recipe
    shared = read_token_list(recipe_dir / "dump/token_list")
    lms = [CodecLM.from_pretrained(recipe_dir / f"exp/tts_{s}/model") for s in ("base", "grpo")]
    asrs = [asr_units(recipe_dir, name) for name in ASRS]
    for lm in lms:
        assert lm.text_units.tokens == shared.tokens
    for units in asrs:
        assert units.tokens == [*shared.tokens, "<sos/eos>"]
    text = (recipe_dir / "data/test/text").read_text().splitlines()[0].split(" ", 1)[1]
    plain = normalize_text(text)  # what WER is computed on
    ids = shared.encode(plain)
    assert len(ids) < len(plain)  # pieces, not characters
    assert all(lm.layout.encode_text(plain) == ids for lm in lms)
    assert all(units.encode(plain) == ids for units in asrs)


def test_scores_stay_on_words(recipe):
    recipe_dir, _ = recipe
    for sys in ("base", "grpo"):
        with (recipe_dir / f"exp/tts_{sys}/synth/test/scores.tsv").open() as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        assert rows and all("\u2581" not in row["hyp_text"] for row in rows), sys
        assert "WER" in (recipe_dir / f"exp/tts_{sys}/synth/test/RESULTS.md").read_text()


def test_same_units_keep_the_list_and_a_new_nbpe_is_never_mixed_with_the_old(recipe):
    recipe_dir, _ = recipe
    model = recipe_dir / "dump/token_list" / MODEL_FILE
    stamp = model.stat().st_mtime_ns
    again = run_recipe(recipe_dir, *BPE, "--nbpe", "100", "--stage", "2", "--stop-stage", "2")
    assert again.returncode == 0, again.output
    assert "units of data/train/text, up to date" in again.output
    assert model.stat().st_mtime_ns == stamp

    changed = run_recipe(recipe_dir, *BPE, "--nbpe", "80", "--stage", "2", "--stop-stage", "3")
    assert "bpe (unigram, 80) units of data/train/text, written" in changed.output
    assert read_token_list(recipe_dir / "dump/token_list").vocab_size == 80
    # Stage 3 redoes the ASRs (their markers record dump/token_list), and a model trained on the
    # old units is not resumed on the new ones: the run stops, naming it.
    assert changed.returncode != 0
    assert "exp/reward_ctc/model.pt was trained on other text units (101 sentencepiece units, " \
        "now 81 sentencepiece units)" in (recipe_dir / "exp/reward_ctc/log/train.log").read_text()
    assert asr_units(recipe_dir, "reward_ctc").size == 100 + 1  # left as it was


@pytest.mark.parametrize(
    "option, message",
    [
        (("--token_type", "phn"), "--token_type must be char or bpe, got 'phn'"),
        (("--nbpe", "0"), "--nbpe must be a positive integer, got '0'"),
        (("--bpemode", "word"), "--bpemode must be unigram or bpe, got 'word'"),
    ],
)
def test_a_bad_units_option_fails_before_any_stage(tmp_path, option, message):
    recipe_dir = make_sandbox(tmp_path, "libritts/grpo")
    result = run_recipe(recipe_dir, *option)
    assert result.returncode != 0 and message in result.output
    assert "stage 1: corpus preparation" not in result.output
