"""Evaluator models, the stage-3 training tools (debug configs) and the stage-7 CLI end to end
on a tiny synthetic data dir."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from local_lib.bin import resynth, score, train_evaluator, train_reward_asr
from local_lib.config import load_config
from local_lib.data.audio import load_audio, save_audio
from local_lib.data.kaldi_dir import read_kv, write_data_dir, write_kv
from local_lib.eval.score_table import read_scores
from local_lib.models.espnet_asr import EspnetRewardASR
from local_lib.models.evaluator_nets import CtcASRNet, EvaluatorNetConfig
from local_lib.data.features import LogMelConfig
from local_lib.data.text_units import TokenListConfig, make_token_list
from local_lib.models.asr_units import AsrUnits
from local_lib.models.config_yaml import stage3_config, stage3_parser
from local_lib.models.evaluators import (
    ClassifierEvaluator,
    CtcEvaluatorASR,
    CtcRewardASR,
    ctc_greedy,
    load_evaluator,
    load_reward_asr,
    snap_to_lexicon,
)

CONF = Path(__file__).resolve().parents[2] / "egs" / "TEMPLATE" / "conf"
SENTENCES = ["a cat", "the dog", "big sun", "red hat"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """8 utterances, 2 speakers (pitch), 2 emotions (loudness), 0.6 s of harmonic tones each."""
    root = tmp_path_factory.mktemp("tiny")
    files = {"wav.scp": {}, "text": {}, "utt2spk": {}, "utt2emo": {}}
    t = np.arange(9600) / 16000
    for s, (spk, f0) in enumerate((("spk1", 120.0), ("spk2", 240.0))):
        for i, text in enumerate(SENTENCES):
            utt = f"{spk}_{i:03d}"
            amp = 0.5 if i % 2 else 0.1
            wav = amp * sum(np.sin(2 * np.pi * f0 * k * t * (1 + 0.1 * i)) / k for k in (1, 2, 3))
            save_audio(root / "wav" / f"{utt}.wav", wav.astype(np.float32))
            files["wav.scp"][utt] = str(root / "wav" / f"{utt}.wav")
            files["text"][utt], files["utt2spk"][utt] = text, spk
            files["utt2emo"][utt] = "Angry" if i % 2 else "Sad"
    write_data_dir(root / "data", files)
    return root / "data"


def _debug_config(tmp_path: Path, name: str, **overrides) -> Path:
    conf = yaml.safe_load((CONF / name).read_text())
    conf.update(overrides)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(conf))
    return path


@pytest.fixture(scope="module")
def trained(data_dir, tmp_path_factory) -> dict[str, Path]:
    exp = tmp_path_factory.mktemp("exp")
    out = {}
    for kind in ("asr", "emotion", "speaker"):
        out[kind] = exp / f"eval_{kind}" / "model.pt"
        train_evaluator.main(
            [
                "--config",
                str(CONF / f"eval_{kind}_debug.yaml"),
                "--train-dir",
                str(data_dir),
                "--valid-dir",
                str(data_dir),
                "--out-dir",
                str(out[kind].parent),
            ]
        )
    out["reward"] = exp / "reward_asr" / "model.pt"
    train_reward_asr.main(
        [
            "--config",
            str(CONF / "reward_asr_debug.yaml"),
            "--train-dir",
            str(data_dir),
            "--valid-dir",
            str(data_dir),
            "--out-dir",
            str(out["reward"].parent),
        ]
    )
    return out


def test_ctc_greedy_merges_repeats_and_drops_blanks():
    path = torch.tensor([[0, 3, 3, 0, 3, 2, 2, 0, 0]])
    log_probs = torch.nn.functional.one_hot(path, 4).float().log()
    assert ctc_greedy(log_probs, torch.tensor([9]), blank=0) == [[3, 3, 2]]
    assert ctc_greedy(log_probs, torch.tensor([3]), blank=0) == [[3]]


@pytest.mark.parametrize("subsample", [2, 4])
def test_ctc_net_output_lengths_follow_the_subsampling(subsample):
    """Output frames are the input frames over the subsampling, rounded up; every frame is a
    distribution over the units."""
    torch.manual_seed(0)
    cfg = EvaluatorNetConfig(kind="asr", n_mels=8, channels=16, conv_layers=2, subsample=subsample)
    net = CtcASRNet(cfg, vocab_size=5).eval()
    with torch.no_grad():
        log_probs, out_lens = net(torch.randn(2, 37, 8), torch.tensor([37, 21]))
    assert out_lens.tolist() == [-(-37 // subsample), -(-21 // subsample)]
    assert log_probs.shape == (2, out_lens[0], 5)
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(2, int(out_lens[0])))


def test_snap_to_lexicon_fixes_near_misses_only():
    lexicon = ["bat", "fence", "hat", "new", "the", "was"]
    # fense/nw: one edit from a known word; fens: two edits, more than a third of 4 letters;
    # xyzzy: far from everything; cat: one edit from bat and hat, the first in lexicon order.
    assert snap_to_lexicon("the fense was nw", lexicon) == "the fence was new"
    assert snap_to_lexicon("the fens was xyzzy", lexicon) == "the fens was xyzzy"
    assert snap_to_lexicon("cat", lexicon) == "bat"
    assert snap_to_lexicon("", lexicon) == ""


def test_trained_evaluators_load_and_answer(trained, data_dir):
    wavs = [np.zeros(8000, np.float32) + 0.01, np.full(12000, 0.02, np.float32)]
    asr = load_evaluator(trained["asr"])
    assert isinstance(asr, CtcEvaluatorASR)
    assert asr.lexicon == ["a", "big", "cat", "dog", "hat", "red", "sun", "the"]
    assert all(isinstance(h, str) for h in asr.transcribe(wavs))
    emo = load_evaluator(trained["emotion"])
    assert isinstance(emo, ClassifierEvaluator) and emo.labels == ["Angry", "Sad"]
    assert set(emo.classify(wavs)) <= {"Angry", "Sad"}
    spk = load_evaluator(trained["speaker"])
    assert spk.labels == ["spk1", "spk2"] and spk.embed(wavs).shape == (2, 16)
    reward = load_evaluator(trained["reward"])
    assert isinstance(reward, EspnetRewardASR)
    assert torch.isfinite(reward.nll(wavs, ["a cat", "the dog"])).all()


def test_training_resumes_from_its_checkpoint(trained, data_dir, tmp_path):
    ckpt = trained["emotion"]
    first = torch.load(ckpt, weights_only=False)["train_state"]["history"]
    two = _debug_config(
        tmp_path, "eval_emotion_debug.yaml", train={"epochs": 2, "batch_size": 32, "seed": 0}
    )
    work = tmp_path / "resume"
    work.mkdir()
    (work / "model.pt").write_bytes(ckpt.read_bytes())
    train_evaluator.main(
        [
            "--config",
            str(two),
            "--train-dir",
            str(data_dir),
            "--valid-dir",
            str(data_dir),
            "--out-dir",
            str(work),
        ]
    )
    history = torch.load(work / "model.pt", weights_only=False)["train_state"]["history"]
    assert [h["epoch"] for h in history] == [1, 2] and history[0] == first[0]
    assert "resuming" in (work / "train.log").read_text()


def test_an_asr_is_never_resumed_on_other_text_units(trained, data_dir, tmp_path):
    """Stage 2 re-made with another --nbpe: the character model's output layer means other
    units, so resuming it is refused, naming the checkpoint."""
    make_token_list(TokenListConfig("bpe", nbpe=17), SENTENCES, tmp_path / "tl", "text")
    work = tmp_path / "resume"
    work.mkdir()
    (work / "model.pt").write_bytes(trained["asr"].read_bytes())
    argv = ["--config", str(CONF / "eval_asr_debug.yaml"), "--train-dir", str(data_dir),
            "--valid-dir", str(data_dir), "--out-dir", str(work)]  # fmt: skip
    other = r"model.pt was trained on other text units \(18 character units, now 18 sentencepiece"
    with pytest.raises(ValueError, match=other):
        train_evaluator.main([*argv, "--token-list", str(tmp_path / "tl")])
    train_evaluator.main(argv)  # the same units: it resumes


def test_unknown_config_key_is_an_error(tmp_path, data_dir):
    bad = _debug_config(tmp_path, "eval_asr_debug.yaml", epochz=3)
    with pytest.raises(ValueError, match="epochz"):
        train_evaluator.main(
            [
                "--config",
                str(bad),
                "--train-dir",
                str(data_dir),
                "--valid-dir",
                str(data_dir),
                "--out-dir",
                str(tmp_path / "x"),
            ]
        )


def test_score_cli_natural_and_resynth_with_paired_comparison(trained, data_dir, tmp_path):
    models = [
        "--asr",
        str(trained["asr"]),
        "--speaker",
        str(trained["speaker"]),
        "--emotion",
        str(trained["emotion"]),
    ]
    natural = tmp_path / "natural"
    score.main(
        [
            "--data-dir",
            str(data_dir),
            "--wav-scp",
            str(data_dir / "wav.scp"),
            "--out-dir",
            str(natural),
            "--reference",
            "data",
            *models,
        ]
    )
    rows = read_scores(natural / "scores.tsv")
    assert len(rows) == 8 and all(
        float(r["spk_sim"]) == pytest.approx(1.0, abs=1e-5) for r in rows.values()
    )
    results = (natural / "RESULTS.md").read_text()
    for name in ("WER (%)", "CER (%)", "emotion accuracy (%)", "speaker SIM", "EER (%)"):
        assert name in results
    resynth.main(
        ["--data-dir", str(data_dir), "--out-dir", str(tmp_path / "resynth"), "--n-iter", "4"]
    )
    assert len(list((tmp_path / "resynth" / "wav").glob("*.wav"))) == 8
    score.main(
        [
            "--data-dir",
            str(data_dir),
            "--wav-dir",
            str(tmp_path / "resynth" / "wav"),
            "--out-dir",
            str(tmp_path / "rs"),
            "--compare-scores",
            str(natural / "scores.tsv"),
            "--compare-name",
            "natural",
            *models,
        ]
    )
    text = (tmp_path / "rs" / "RESULTS.md").read_text()
    assert "Paired difference: this system − natural" in text
    assert float(next(iter(read_scores(tmp_path / "rs" / "scores.tsv").values()))["spk_sim"]) < 1.0


def test_score_cli_averages_the_takes_of_each_utterance(trained, data_dir, tmp_path):
    """Take 1 of each utterance is another utterance's audio: scores.tsv holds the mean of the
    two takes' rows of scores_takes.tsv, and take 0 alone gives the one-take scores."""
    natural = read_kv(data_dir / "wav.scp")
    utts = sorted(natural)
    scp = {u: natural[u] for u in utts} | {
        f"{u}#1": natural[utts[(i + 1) % len(utts)]] for i, u in enumerate(utts)
    }
    write_kv(tmp_path / "takes.scp", scp)
    models = ["--asr", str(trained["asr"]), "--speaker", str(trained["speaker"]), "--no-prosody"]
    for name, wav_scp in (("one", data_dir / "wav.scp"), ("two", tmp_path / "takes.scp")):
        score.main(["--data-dir", str(data_dir), "--wav-scp", str(wav_scp),
                    "--out-dir", str(tmp_path / name), *models])  # fmt: skip
    one = read_scores(tmp_path / "one" / "scores.tsv")
    takes = read_scores(tmp_path / "two" / "scores_takes.tsv")
    means = read_scores(tmp_path / "two" / "scores.tsv")
    assert sorted(takes) == sorted(scp) and sorted(means) == utts
    assert not (tmp_path / "one" / "scores_takes.tsv").exists()
    for u in utts:
        assert takes[u]["hyp_text"] == one[u]["hyp_text"] == means[u]["hyp_text"]
        for column in ("word_errors", "char_errors", "spk_sim"):
            expected = (float(takes[u][column]) + float(takes[f"{u}#1"][column])) / 2
            assert float(means[u][column]) == pytest.approx(expected, abs=1e-5), (u, column)
    assert "the mean of 2 takes" in (tmp_path / "two" / "RESULTS.md").read_text()


def test_score_cli_seedtts_mode(trained, data_dir, tmp_path):
    wav_dir = data_dir.parent / "wav"
    lst = tmp_path / "meta.lst"
    lst.write_text(
        f"spk1_000|prompt|{wav_dir / 'spk1_001.wav'}|a cat\n"
        f"spk2_001|prompt|{wav_dir / 'spk2_000.wav'}|the dog\n"
    )
    score.main(
        [
            "--seedtts-list",
            str(lst),
            "--wav-dir",
            str(wav_dir),
            "--out-dir",
            str(tmp_path / "st"),
            "--asr",
            str(trained["asr"]),
            "--speaker",
            str(trained["speaker"]),
        ]
    )
    text = (tmp_path / "st" / "RESULTS.md").read_text()
    assert "WER (%), mean of per-utterance WER" in text and "SIM to prompt" in text
    rows = read_scores(tmp_path / "st" / "scores.tsv")
    assert (
        list(rows) == ["spk1_000", "spk2_001"] and -1.0 <= float(rows["spk1_000"]["spk_sim"]) <= 1.0
    )


def test_resynth_shards_add_up_to_the_whole_set(data_dir, tmp_path):
    common = ["--data-dir", str(data_dir), "--n-iter", "4"]
    resynth.main([*common, "--out-dir", str(tmp_path / "whole")])
    for job in (1, 2, 3):
        resynth.main(
            [*common, "--out-dir", str(tmp_path / "sharded"), "--nj", "3", "--job", str(job)]
        )
    whole = sorted((tmp_path / "whole" / "wav").glob("*.wav"))
    assert [p.name for p in whole] == sorted(
        p.name for p in (tmp_path / "sharded" / "wav").glob("*.wav")
    )
    for wav in whole:
        assert wav.read_bytes() == (tmp_path / "sharded" / "wav" / wav.name).read_bytes()
    shard_ids = [
        line.split()[0]
        for job in (1, 2, 3)
        for line in (tmp_path / "sharded" / f"wav.{job}.scp").read_text().splitlines()
    ]
    assert shard_ids == [line.split()[0] for line in (tmp_path / "whole" / "wav.scp").open()]


def test_stage3_config_applies_and_records_the_overrides(tmp_path):
    conf = CONF / "eval_emotion_debug.yaml"
    args = stage3_parser("x").parse_args([
        "--config", str(conf), "--train-dir", "d", "--valid-dir", "d", "--out-dir", str(tmp_path),
        "--seed", "7", "--max-utts", "30",
    ])  # fmt: skip
    resolved = stage3_config(args, train_evaluator.EvaluatorRecipeConfig)
    plain = load_config(conf, train_evaluator.EvaluatorRecipeConfig)
    assert resolved.model.kind == "emotion" and (plain.train.seed, plain.max_utts) != (7, 30)
    assert resolved == dataclasses.replace(
        plain, train=dataclasses.replace(plain.train, seed=7), max_utts=30
    )
    assert load_config(tmp_path / "config.yaml", train_evaluator.EvaluatorRecipeConfig) == resolved
    assert (tmp_path / "command.sh").is_file()


def test_same_seed_gives_the_same_evaluator(trained, data_dir, tmp_path):
    """The initial weights are seeded too: a rerun must reproduce the trained model exactly."""
    again = tmp_path / "eval_speaker"
    train_evaluator.main([
        "--config", str(CONF / "eval_speaker_debug.yaml"), "--train-dir", str(data_dir),
        "--valid-dir", str(data_dir), "--out-dir", str(again),
    ])  # fmt: skip
    first = torch.load(trained["speaker"], weights_only=False)["model"]
    second = torch.load(again / "model.pt", weights_only=False)["model"]
    assert first.keys() == second.keys()
    for name, value in first.items():
        assert torch.equal(value, second[name]), name


ERRORS = {"open": "word_errors", "lexicon": "open_word_errors"}


def test_score_cli_open_vocabulary_scores_the_raw_asr_output(trained, data_dir, tmp_path):
    asr = load_evaluator(trained["asr"])
    lexicon = list(asr.lexicon)
    wavs = [load_audio(path, 16000) for path in read_kv(data_dir / "wav.scp").values()]
    asr.lexicon = None
    raw = asr.transcribe(wavs)
    assert asr.transcribe_open(wavs) == raw
    hyps, errors = {}, {}
    for extra in ([], ["--open-vocabulary"]):
        out = tmp_path / ("open" if extra else "lexicon")
        score.main(
            [
                "--data-dir",
                str(data_dir),
                "--wav-scp",
                str(data_dir / "wav.scp"),
                "--out-dir",
                str(out),
                "--asr",
                str(trained["asr"]),
                "--no-prosody",
                *extra,
            ]
        )
        rows = list(read_scores(out / "scores.tsv").values())
        hyps[out.name] = [row["hyp_text"] for row in rows]
        errors[out.name] = [row[ERRORS[out.name]] for row in rows]
    assert hyps["open"] == raw
    assert hyps["lexicon"] == [snap_to_lexicon(h, lexicon) for h in raw]
    # the lexicon run also scores the raw output: its open-vocabulary errors are the open run's
    assert errors["lexicon"] == errors["open"]
    assert "WER, open vocabulary (%)" in (tmp_path / "lexicon/RESULTS.md").read_text()
    assert any(raw), "the tiny evaluator must say something for this test to mean anything"


class _FixedCtcNet(torch.nn.Module):
    """Two frames, each blank 0.3, <unk> 0.1, "a" 0.5, <sos/eos> 0.1, whatever the audio."""

    def __init__(self):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, mel, lens):
        probs = torch.tensor([0.3, 0.1, 0.5, 0.1]).expand(mel.shape[0], 2, 4)
        return probs.log(), torch.full((mel.shape[0],), 2)


def test_ctc_reward_nll_by_hand():
    units = AsrUnits.from_texts(["a"])  # <pad>=blank 0, <unk> 1, a 2, <sos/eos> 3
    reward = CtcRewardASR(CtcEvaluatorASR(_FixedCtcNet(), units, LogMelConfig()))
    # "a" in two frames: a a, a blank, blank a -> 0.25 + 0.15 + 0.15 = 0.55, one unit
    nll = reward.nll([np.zeros(1600, np.float32)], ["a"])
    assert nll.tolist() == pytest.approx([-np.log(0.55)], rel=1e-5)
    assert reward.transcribe([np.zeros(1600, np.float32)]) == ["a"]
    with pytest.raises(ValueError, match="no units"):
        reward.nll([np.zeros(1600, np.float32)], [""])


def test_load_reward_asr_takes_espnet_and_open_vocabulary_ctc(trained):
    assert isinstance(load_reward_asr(trained["reward"]), EspnetRewardASR)
    with pytest.raises(ValueError, match="open-vocabulary"):
        load_reward_asr(trained["asr"])  # the debug evaluator has a lexicon
    with pytest.raises(ValueError, match="not an ASR"):
        load_reward_asr(trained["emotion"])
    asr = load_evaluator(trained["asr"])
    asr.lexicon = None
    nll = CtcRewardASR(asr).nll([np.full(8000, 0.01, np.float32)] * 2, ["a cat", "the dog"])
    assert nll.shape == (2,) and torch.isfinite(nll).all() and (nll > 0).all()
