"""Token2Text, DiffRO's reward model on speech tokens: the CTC text score against a brute-force
sum over alignments, soft tokens against hard ones, the label heads by hand, the checkpoint
and the stage-3 trainer on a tiny data dir."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from local_lib.bin import train_token2text
from local_lib.data.features import LogMelConfig
from local_lib.data.kaldi_dir import write_kv
from local_lib.data.speech_tokens import write_speech_tokens
from local_lib.models.asr_units import AsrUnits
from local_lib.models.speech_tokenizer import KMeansMelTokenizer, SpeechTokenizerConfig
from local_lib.models.token2text import (
    INFEASIBLE_LOGP,
    Token2Text,
    Token2TextConfig,
    ctc_min_frames,
    load_token2text,
)

NUM_SPEECH = 6


def _fixed_model(frame_probs: list[float], head_probs: list[float], upsample: int) -> Token2Text:
    """A model whose every frame has the CTC distribution ``frame_probs`` and whose speaker
    head gives ``head_probs`` over ("a", "b"), whatever the tokens: zero weights, log biases."""
    units = AsrUnits.from_texts(["ab"])  # blank 0, <unk> 1, a 2, b 3, <sos/eos> 4
    cfg = Token2TextConfig(embed_dim=4, channels=4, conv_layers=0, upsample=upsample, dropout=0.0)
    model = Token2Text.build(cfg, NUM_SPEECH, units, {"speaker": ["a", "b"]})
    with torch.no_grad():
        head = model.net.heads["speaker"]
        for layer, probs in ((model.net.ctc, frame_probs), (head, head_probs)):
            layer.weight.zero_()
            layer.bias.copy_(torch.tensor(probs).log())
    model.net.eval()
    return model


def _brute_force_ctc(probs: list[float], frames: int, target: list[int], blank: int = 0) -> float:
    """P(target) as the sum over every frame labelling that collapses to it."""
    total = 0.0
    for path in itertools.product(range(len(probs)), repeat=frames):
        merged = [k for i, k in enumerate(path) if i == 0 or k != path[i - 1]]
        if [k for k in merged if k != blank] == target:
            total += math.prod(probs[k] for k in path)
    return total


FRAME_PROBS = [0.3, 0.05, 0.4, 0.2, 0.05]


@pytest.mark.parametrize(
    ("text", "num_tokens", "upsample"),
    [("a", 1, 2), ("ab", 2, 2), ("aa", 2, 2), ("ba", 1, 3), ("aba", 2, 3)],
)
def test_text_logp_is_the_ctc_sum_over_alignments_per_unit(text, num_tokens, upsample) -> None:
    model = _fixed_model(FRAME_PROBS, [0.5, 0.5], upsample)
    target = model.units.encode(text)
    expected = math.log(_brute_force_ctc(FRAME_PROBS, num_tokens * upsample, target)) / len(target)
    # the row is scored in a batch beside a longer one, so padding is exercised too
    out = model.run_ids([[1] * num_tokens, [2] * (num_tokens + 2)])
    score = model.text_logp(out, [text, "ab"])
    assert score.values[0].item() == pytest.approx(expected, rel=1e-5)
    assert bool(score.feasible.all())


def test_a_text_longer_than_its_frames_is_infeasible_not_infinite() -> None:
    model = _fixed_model(FRAME_PROBS, [0.5, 0.5], upsample=2)
    assert ctc_min_frames(model.units.encode("aa")) == 3  # a blank must separate the two a's
    score = model.text_logp(model.run_ids([[1], [1, 2]]), ["aa", "aa"])
    assert score.feasible.tolist() == [False, True]
    assert score.values[0].item() == INFEASIBLE_LOGP and math.isfinite(score.values[1].item())
    with pytest.raises(ValueError, match="no units"):
        model.text_logp(model.run_ids([[1]]), ["!"])


def test_label_logp_by_hand() -> None:
    model = _fixed_model(FRAME_PROBS, [0.2, 0.8], upsample=2)
    out = model.run_ids([[1, 2], [3]])
    logp = model.label_logp(out, "speaker", ["b", "a"])
    assert logp.tolist() == pytest.approx([math.log(0.8), math.log(0.2)], rel=1e-6)
    assert model.predictions(out, "speaker") == ["b", "b"]
    with pytest.raises(ValueError, match="not among"):
        model.label_logp(out, "speaker", ["c", "a"])
    with pytest.raises(KeyError, match="no 'emotion' head"):
        model.label_logp(out, "emotion", ["a", "a"])


def _random_model(dtype: torch.dtype = torch.float32) -> Token2Text:
    torch.manual_seed(0)
    cfg = Token2TextConfig(embed_dim=8, channels=12, conv_layers=3, upsample=2, dropout=0.0)
    labels = {"speaker": ["s1", "s2", "s3"], "gender": ["F", "M"]}
    model = Token2Text.build(cfg, NUM_SPEECH, AsrUnits.from_texts(["a cab"]), labels)
    return Token2Text(model.net.to(dtype).eval(), model.units, model.labels)


def test_one_hot_soft_tokens_score_exactly_as_the_hard_ones() -> None:
    model = _random_model(torch.float64)
    tokens = [[0, 5, 2, 2, 4], [3, 1, 0]]
    hard = model.run_ids(tokens)
    probs = torch.zeros(2, 5, NUM_SPEECH, dtype=torch.float64)
    for row, seq in enumerate(tokens):
        probs[row, torch.arange(len(seq)), torch.tensor(seq)] = 1.0
    soft = model.run_probs(probs, torch.tensor([5, 3]))
    torch.testing.assert_close(soft.log_probs, hard.log_probs, rtol=0, atol=1e-12)
    for name in model.labels:
        torch.testing.assert_close(soft.head_logits[name], hard.head_logits[name])
    texts = ["a cab", "ab"]
    torch.testing.assert_close(
        model.text_logp(soft, texts).values, model.text_logp(hard, texts).values
    )
    with pytest.raises(ValueError, match="soft tokens over 5"):
        model.run_probs(probs[..., :5], torch.tensor([5, 3]))


def test_scores_do_not_depend_on_the_batch() -> None:
    """Padding frames are zeroed after every block: alone or beside a longer row, the same."""
    model = _random_model()
    alone = model.run_ids([[3, 1, 0]])
    batched = model.run_ids([[0, 5, 2, 2, 4, 1, 1], [3, 1, 0]])
    torch.testing.assert_close(batched.log_probs[1, :6], alone.log_probs[0])
    torch.testing.assert_close(batched.head_logits["gender"][1], alone.head_logits["gender"][0])


def test_text_reward_is_differentiable_into_the_soft_tokens() -> None:
    model = _random_model(torch.float64)
    logits = torch.randn(2, 5, NUM_SPEECH, dtype=torch.float64, requires_grad=True)
    out = model.run_probs(torch.softmax(logits, dim=-1), torch.tensor([5, 4]))
    reward = model.text_logp(out, ["a cab", "cab"]).values.sum()
    reward = reward + model.label_logp(out, "gender", ["F", "M"]).sum()
    (grad,) = torch.autograd.grad(reward, logits)
    assert torch.isfinite(grad).all() and grad[0].abs().sum() > 0
    assert grad[1, 4].abs().sum() == 0  # past the row's length: ignored


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    model = _random_model()
    torch.save(model.state(), tmp_path / "model.pt")
    loaded = load_token2text(tmp_path / "model.pt")
    tokens = [[0, 5, 2], [4, 4]]
    assert loaded.labels == model.labels and loaded.units.tokens == model.units.tokens
    torch.testing.assert_close(loaded.run_ids(tokens).log_probs, model.run_ids(tokens).log_probs)
    assert loaded.transcribe(tokens) == model.transcribe(tokens)
    torch.save({"kind": "evaluator"}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a Token2Text checkpoint"):
        load_token2text(tmp_path / "other.pt")


def test_heads_are_the_labels_with_two_classes_unless_named() -> None:
    labels = {"speaker": ["1", "2", "1"], "language": ["en"] * 3, "gender": ["F", "M", "F"]}
    assert train_token2text.choose_heads(None, labels) == {
        "speaker": ["1", "2"], "gender": ["F", "M"]
    }  # fmt: skip
    assert train_token2text.choose_heads(["gender"], labels) == {"gender": ["F", "M"]}
    assert train_token2text.choose_heads([], labels) == {}
    with pytest.raises(ValueError, match="only one class"):
        train_token2text.choose_heads(["language"], labels)
    with pytest.raises(ValueError, match="has labels"):
        train_token2text.choose_heads(["emotion"], labels)


MEL = LogMelConfig(n_fft=256, win_length=256, hop_length=64, n_mels=16, f_max=8000.0)


def _data_dir(root: Path, speakers: dict[str, str], texts: list[str]) -> tuple[Path, Path]:
    """A data dir (text, utt2spk, spk2gender) with its speech tokens: each speaker says each
    text with tokens that spell it (one token per letter, twice), shifted by speaker."""
    data, utt2spk, text, tokens = root / "data", {}, {}, {}
    for spk in speakers:
        for i, sentence in enumerate(texts):
            utt = f"{spk}_{i}"
            utt2spk[utt], text[utt] = spk, sentence
            letters = [min(ord(c) - ord("a"), 4) if c != " " else 5 for c in sentence]
            tokens[utt] = [t for t in letters for _ in range(2)] + [int(spk[-1]) % NUM_SPEECH]
    data.mkdir(parents=True)
    write_kv(data / "text", text)
    write_kv(data / "utt2spk", utt2spk)
    write_kv(data / "spk2gender", speakers)
    write_speech_tokens(root / "speech_tokens", tokens)
    return data, root / "speech_tokens"


def test_trainer_writes_a_model_and_logs_wer_and_head_accuracies(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    feats = [rng.normal(size=(40, MEL.n_mels)).astype(np.float32) for _ in range(4)]
    tok_cfg = SpeechTokenizerConfig(num_tokens=NUM_SPEECH, kmeans_iters=2, decoder_channels=4,
                                    decoder_layers=1, decoder_steps=1)  # fmt: skip
    KMeansMelTokenizer.train(feats, tok_cfg, MEL).save(tmp_path / "tokenizer.pt")
    texts = ["a cab", "bad", "dab a cad", "ace"]
    speakers = {"s1": "F", "s2": "M", "s3": "F"}
    train_dir, train_tokens = _data_dir(tmp_path / "train", speakers, texts)
    dev_dir, dev_tokens = _data_dir(tmp_path / "dev", {"s4": "M"}, texts[:2])
    (tmp_path / "conf.yaml").write_text(
        "model: {embed_dim: 8, channels: 16, conv_layers: 2, dropout: 0.0}\n"
        "train: {epochs: 2, batch_size: 4, lr: 0.01}\n"
        "head_holdout: 0.25\n"
        "token_noise: 0.1\n"
    )
    out = tmp_path / "exp"
    train_token2text.main([
        "--config", str(tmp_path / "conf.yaml"), "--seed", "3", "--train-dir", str(train_dir),
        "--valid-dir", str(dev_dir), "--out-dir", str(out), "--tokenizer",
        str(tmp_path / "tokenizer.pt"), "--train-tokens", str(train_tokens),
        "--valid-tokens", str(dev_tokens),
    ])  # fmt: skip
    model = load_token2text(out / "model.pt")
    assert model.labels == {"speaker": ["s1", "s2", "s3"], "gender": ["F", "M"]}
    assert model.net.num_speech_tokens == NUM_SPEECH
    state = torch.load(out / "model.pt", weights_only=False)
    last = state["train_state"]["history"][-1]
    assert last["epoch"] == 2 and 0.0 <= last["valid_wer"]
    assert math.isnan(last["dev_acc_speaker"])  # the dev speaker is not a training speaker
    assert 0.0 <= last["dev_acc_gender"] <= 1.0 and 0.0 <= last["holdout_acc_speaker"] <= 1.0
    assert "seed: 3" in (out / "config.yaml").read_text()
    with pytest.raises(SystemExit):
        train_token2text.main([
            "--config", str(tmp_path / "conf.yaml"), "--train-dir", str(train_dir),
            "--valid-dir", str(dev_dir), "--out-dir", str(out),
        ])  # fmt: skip
