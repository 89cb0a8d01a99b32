"""Reward codec vs evaluator: planted codec decisions give the rates worked out by hand, through
the CLI on a tiny tokenizer and a tiny random reward codec; bad inputs fail naming the file."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_codec_models import MEL

from local_lib.bin import reward_codec_agreement
from local_lib.bin.reward_codec_agreement import wav_tokens
from local_lib.data.audio import save_audio
from local_lib.data.kaldi_dir import write_kv
from local_lib.eval.score_table import read_scores, write_scores
from local_lib.models.asr_units import AsrUnits
from local_lib.models.reward_codec import RewardCodec, RewardCodecConfig, RewardCodecNet
from local_lib.models.speech_tokenizer import KMeansMelTokenizer, SpeechTokenizerConfig

EMOTIONS = ["Angry", "Happy", "Sad"]
TEXTS = {"u1": "the cat", "u2": "a mat", "u3": "on the mat", "u4": "the cat sat"}
TARGETS = {"u1": "Angry", "u2": "Happy", "u3": "Sad", "u4": "Angry"}
# Per system and take key: (the codec's emotion, the codec's transcript, the evaluator's emotion).
PLANTED = {
    "base": {  # one take per utterance (scores.tsv)
        "u1": ("Angry", "the bat", "Angry"),  # both right; the codec misreads one character
        "u2": ("Sad", "a mat", "Happy"),  # the codec wrong, the evaluator right
        "u3": ("Sad", "on the mat", "Angry"),  # hacked: the codec right, the evaluator wrong
        "u4": ("Happy", "the cat sat", "Happy"),  # both wrong, agreeing
    },
    "hpro": {  # two takes per utterance (scores_takes.tsv)
        "u1": ("Angry", "the cat", "Angry"), "u1#1": ("Angry", "the cat", "Sad"),
        "u2": ("Happy", "a mat", "Sad"), "u2#1": ("Happy", "a mat", "Sad"),
        "u3": ("Sad", "on the mat", "Sad"), "u3#1": ("Sad", "on the mat", "Sad"),
        "u4": ("Angry", "the cat sat", "Angry"), "u4#1": ("Happy", "the", "Angry"),
    },
    "natural": {u: (e, TEXTS[u], e) for u, e in TARGETS.items()},
}  # fmt: skip


def write_inputs(root: Path) -> tuple[list[str], dict[int, tuple[str, str]]]:
    """A tiny tokenizer and reward codec, the data dir, each system's audio and stage-7 scores.
    Returns the CLI arguments and the planted codec decisions by token count: every wav has
    its own length, so its token count tells the patched codec which take it reads."""
    rng = np.random.default_rng(0)
    feats = [rng.normal(size=(40, MEL.n_mels)).astype(np.float32) for _ in range(4)]
    tok_cfg = SpeechTokenizerConfig(num_tokens=8, kmeans_iters=3, decoder_channels=8,
                                    decoder_layers=1, decoder_steps=2)  # fmt: skip
    tokenizer = KMeansMelTokenizer.train(feats, tok_cfg, MEL)
    tokenizer.save(root / "tokenizer.pt")
    torch.manual_seed(0)
    cfg = RewardCodecConfig(embed_dim=8, channels=8, encoder_layers=1, head_layers=1, dropout=0)
    codec = RewardCodec.build(cfg, 8, AsrUnits.from_texts(TEXTS.values()), EMOTIONS, 3)
    torch.save(codec.state(), root / "codec.pt")
    data = root / "data"
    write_kv(data / "text", TEXTS)
    write_kv(data / "utt2emo", TARGETS)
    by_count: dict[int, tuple[str, str]] = {}
    args = []
    for n, (system, takes) in enumerate(PLANTED.items()):
        sys_dir = root / system
        scp, rows = {}, []
        for i, (key, (codec_emo, hyp, evaluator_emo)) in enumerate(takes.items()):
            scp[key] = str(sys_dir / f"{key}.wav")
            save_audio(scp[key], 0.1 * rng.standard_normal(640 * (10 * n + i + 2)), MEL.sample_rate)
            by_count[len(wav_tokens(tokenizer, scp[key]))] = (codec_emo, hyp)
            utt = key.partition("#")[0]
            rows.append({"utt": key, "emo_label": TARGETS[utt], "emo_pred": evaluator_emo,
                         "emo_correct": int(evaluator_emo == TARGETS[utt]), "char_errors": n,
                         "chars": 10})  # fmt: skip
        write_scores(sys_dir / ("scores_takes.tsv" if system == "hpro" else "scores.tsv"), rows)
        if system == "natural":  # the natural audio's wav.scp is the data dir's, with more in it
            scp["u5"] = scp["u4"]
            write_kv(data / "wav.scp", scp)
            args += ["--wav-scp", f"natural={data / 'wav.scp'}"]
        else:
            write_kv(sys_dir / "wav.scp", scp)
        args += ["--system", f"{system}={sys_dir}"]
    assert len(by_count) == sum(map(len, PLANTED.values()))  # one token count per take
    args += ["--reward-codec", str(root / "codec.pt"), "--tokenizer", str(root / "tokenizer.pt"),
             "--data-dir", str(data), "--out-dir", str(root / "out"), "--batch-size", "3"]
    return args, by_count


@pytest.fixture
def planted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The CLI arguments, with the reward codec's emotion and transcript planted per take."""
    args, by_count = write_inputs(tmp_path)
    forward = RewardCodecNet.forward

    def planted_forward(self, emb, lens, spans=None):
        out = forward(self, emb, lens, spans)
        labels = [EMOTIONS.index(by_count[int(n)][0]) for n in out.lens]
        logits = 5.0 * torch.nn.functional.one_hot(torch.tensor(labels), len(EMOTIONS)).float()
        return dataclasses.replace(out, emotion_logits=logits)

    monkeypatch.setattr(RewardCodecNet, "forward", planted_forward)
    monkeypatch.setattr(RewardCodec, "transcripts",
                        lambda self, out: [by_count[int(n)][1] for n in out.lens])  # fmt: skip
    return args


def test_rates_by_hand(planted: list[str], tmp_path: Path) -> None:
    reward_codec_agreement.main(planted)
    out = tmp_path / "out"
    result = json.loads((out / "agreement.json").read_text())
    assert list(result) == ["base", "hpro", "natural"]
    assert [(result[s]["takes"], result[s]["utterances"]) for s in result] == [
        (4, 4), (8, 4), (4, 4)  # natural: u5 of its wav.scp has no scores and is left out
    ]  # fmt: skip

    def estimates(system: str, part: str = "single") -> dict[str, float]:
        return {k: v["estimate"] for k, v in result[system][part].items()}

    # base: codec right on u1, u3; evaluator on u1, u2; they agree on u1, u4; u3 is hacked.
    # Codec CER: one error in 6 + 4 + 8 + 9 = 27 reference characters.
    assert estimates("base") == pytest.approx({
        "codec_correct": 50.0, "evaluator_correct": 50.0, "agree": 50.0, "hacked": 25.0,
        "codec_char_errors": 100 / 27, "evaluator_char_errors": 0.0,
    })  # fmt: skip
    # hpro, per utterance (mean of two takes): codec 1, 1, 1, .5; evaluator .5, 0, 1, 1;
    # agreement .5, 0, 1, .5; hacked .5, 1, 0, 0. Codec CER: "the" for "the cat sat", 6 of 54.
    assert estimates("hpro") == pytest.approx({
        "codec_correct": 87.5, "evaluator_correct": 62.5, "agree": 50.0, "hacked": 37.5,
        "codec_char_errors": 100 * 6 / 54, "evaluator_char_errors": 10.0,
    })  # fmt: skip
    assert estimates("hpro", "paired") == pytest.approx({
        "codec_correct": 37.5, "evaluator_correct": 12.5, "agree": 0.0, "hacked": 12.5,
        "codec_char_errors": 100 * 6 / 54 - 100 / 27, "evaluator_char_errors": 10.0,
    })  # fmt: skip
    assert estimates("natural") == pytest.approx({
        "codec_correct": 100.0, "evaluator_correct": 100.0, "agree": 100.0, "hacked": 0.0,
        "codec_char_errors": 0.0, "evaluator_char_errors": 20.0,
    })  # fmt: skip
    assert "paired" not in result["base"]
    hacked = result["hpro"]["single"]["hacked"]
    assert hacked["low"] <= 37.5 <= hacked["high"] and hacked["n"] == 4

    with (out / "takes.tsv").open() as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert [(r["system"], r["utt"]) for r in rows] == [
        (s, k) for s, takes in PLANTED.items() for k in takes
    ]
    u3 = rows[2]
    assert (u3["codec_pred"], u3["evaluator_pred"], u3["hacked"], u3["agree"]) == (
        "Sad", "Angry", "1", "0"
    )  # fmt: skip
    assert float(u3["codec_p_target"]) == pytest.approx(np.exp(5) / (np.exp(5) + 2))
    table = (out / "agreement.md").read_text()
    assert "| hpro | 8 / 4 | 87.5 [" in table
    assert "## Paired difference: system − base" in table
    assert "| hpro | +37.5 [" in table


def edit_scores(path: Path, key: str, **changes: str) -> None:
    """Rewrite one row of a stage-7 score file (``utt`` renames it)."""
    rows = list(read_scores(path).values())
    write_scores(path, [{**r, **changes} if r["utt"] == key else r for r in rows])


def test_bad_inputs_name_the_file_and_take(planted: list[str], tmp_path: Path) -> None:
    def fails(match: str) -> None:
        with pytest.raises((ValueError, FileNotFoundError), match=match):
            reward_codec_agreement.main(planted)

    base = tmp_path / "base"
    scp, scores = (base / "wav.scp").read_text(), (base / "scores.tsv").read_text()
    (base / "wav.scp").write_text(scp.replace("u2 ", "u2#1 "))  # take 1 without take 0
    fails(r"system base: .*scores\.tsv scores u2 \(1 such takes\), which .*wav\.scp lacks")
    (base / "wav.scp").write_text(scp + f"x9 {base / 'u3.wav'}\n")
    edit_scores(base / "scores.tsv", "u3", utt="x9")
    fails(r"system base: .*scores\.tsv: x9 is no utterance of the data dir")
    (base / "wav.scp").write_text(scp)
    (base / "scores.tsv").write_text(scores)
    edit_scores(base / "scores.tsv", "u3", emo_label="Happy")
    fails(r"system base: .*scores\.tsv: u3: target Happy, utt2emo says Sad")
    (base / "scores.tsv").write_text(scores)
    edit_scores(base / "scores.tsv", "u1", emo_pred="")
    fails(r"system base: .*scores\.tsv: u1: no emo_pred")
    (base / "scores.tsv").unlink()
    fails(r"system base: .*base/scores\.tsv does not exist")
    (base / "scores.tsv").write_text(scores)
    (base / "u4.wav").rename(base / "moved.wav")
    fails(r"system base: u4: .*u4\.wav: audio file does not exist")
    (base / "moved.wav").rename(base / "u4.wav")
    hpro = tmp_path / "hpro"
    for name in ("wav.scp", "scores_takes.tsv"):
        lines = (hpro / name).read_text().splitlines(keepends=True)
        (hpro / name).write_text("".join(x for x in lines if not x.startswith("u4")))
    fails(r"systems hpro and base score different utterances \(e\.g\. u4\)")
    with pytest.raises(SystemExit):
        reward_codec_agreement.main([*planted, "--wav-scp", f"other={hpro / 'wav.scp'}"])
    write_kv(tmp_path / "data" / "utt2emo", {**TARGETS, "u1": "Calm"})
    fails(r"data/utt2emo: emotions \['Calm'\] are not among the reward codec's")
