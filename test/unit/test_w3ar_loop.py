"""The W3AR loop end to end on a tiny random codec LM and a tiny random ESPnet reward ASR:
logged keys, the per-token advantages, resume equality, the reference model, the heads file
and the configs."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from local_lib.bin import train_w3ar
from local_lib.bin.select_attention_heads import HeadsFileError, heads_file
from local_lib.config import ConfigError, load_config
from local_lib.data.audio import save_audio
from local_lib.data.features import LogMelConfig
from local_lib.data.kaldi_dir import DataDirError, write_data_dir
from local_lib.data.speech_tokens import PromptPool
from local_lib.data.text_tokenizer import CharTokenizer
from local_lib.models.asr_units import AsrUnits
from local_lib.models.codec_lm import CodecLM
from local_lib.models.espnet_asr import EspnetASRConfig, EspnetRewardASR, build_espnet_asr
from local_lib.models.speech_tokenizer import KMeansMelTokenizer, SpeechTokenizerConfig
from local_lib.rl.rollout import RolloutConfig, SpeechRenderer
from local_lib.rl.w3ar import W3ARLossConfig, W3ARRewardConfig
from local_lib.rl.w3ar_loop import W3ARLoop, W3ARLoopConfig
from local_lib.train.config import TrainSection
from local_lib.train.trainer import Trainer, TrainerConfig, read_metrics

TINY_LM = {
    "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
    "num_key_value_heads": 2, "max_position_embeddings": 256,
}  # fmt: skip
MEL = LogMelConfig(n_fft=256, win_length=256, hop_length=64, n_mels=16, f_max=8000.0)
TEXTS = {"a_1": "the cat sat", "a_2": "a mat", "b_1": "on the mat", "b_2": "the cat"}
HEADS = [(0, 1), (1, 0)]
CONF = Path(__file__).resolve().parents[2] / "egs" / "TEMPLATE" / "conf"


@pytest.fixture(scope="module")
def tokenizer() -> KMeansMelTokenizer:
    rng = np.random.default_rng(0)
    feats = [rng.normal(size=(40, MEL.n_mels)).astype(np.float32) for _ in range(4)]
    cfg = SpeechTokenizerConfig(num_tokens=8, kmeans_iters=3, decoder_channels=8,
                                decoder_layers=1, decoder_steps=2)  # fmt: skip
    return KMeansMelTokenizer.train(feats, cfg, MEL)


@pytest.fixture(scope="module")
def asr() -> EspnetRewardASR:
    torch.manual_seed(0)
    units = AsrUnits.from_texts(TEXTS.values())
    cfg = EspnetASRConfig(d_model=32, heads=2, ffn=64, encoder_layers=1, decoder_layers=2,
                          dropout=0.0, lsm_weight=0.0)  # fmt: skip
    return EspnetRewardASR(build_espnet_asr(units, cfg), units, cfg)


def _pool() -> PromptPool:
    """Two speakers with two utterances each, so every target has a same-speaker prompt."""
    tokens = {utt: [1, 2, 3, 4 + i % 4, 0] for i, utt in enumerate(TEXTS)}
    return PromptPool(TEXTS, {u: u[0] for u in TEXTS}, tokens, "fake")


def _cfg(gamma: float = 0.0, num_steps: int = 2, **reward) -> W3ARLoopConfig:
    return W3ARLoopConfig(
        rollout=RolloutConfig(group_size=3, prompts_per_step=2, max_new_tokens=12,
                              vocoder_iters=2, min_wav_s=0.3),
        train=TrainSection(num_steps=num_steps, lr=1e-2, save_every=1, log_every=1),
        reward=W3ARRewardConfig(**reward),
        loss=W3ARLossConfig(gamma=gamma),
    )  # fmt: skip


def _loop(tokenizer, asr, cfg: W3ARLoopConfig, rank: int = 0) -> W3ARLoop:
    torch.manual_seed(0)
    lm = CodecLM.from_config(TINY_LM, CharTokenizer.build(TEXTS.values()), 8)
    renderer = SpeechRenderer(tokenizer, cfg.rollout.vocoder_iters, cfg.rollout.min_wav_s)
    return W3ARLoop(lm, renderer, asr, HEADS, _pool(), cfg, tokenizer.token_rate, 7, rank)


def _fit(loop: W3ARLoop, out_dir: Path, num_steps: int) -> Trainer:
    opt = torch.optim.AdamW(loop.policy.parameters(), lr=loop.cfg.train.lr)
    loop.attach(opt)
    tcfg = TrainerConfig(out_dir=out_dir, num_steps=num_steps, save_every=1, log_every=1)
    trainer = Trainer(loop.policy, opt, tcfg)
    trainer.fit(loop.loss, loop.batch)
    return trainer


def test_two_steps_update_the_policy_and_log_the_w3ar_keys(tokenizer, asr, tmp_path) -> None:
    loop = _loop(tokenizer, asr, _cfg(gamma=0.1))
    assert all(not p.requires_grad for p in loop.reference.model.parameters())
    before = [p.detach().clone() for p in loop.lm.model.parameters()]
    _fit(loop, tmp_path, 2)
    records = read_metrics(tmp_path / "metrics.jsonl")
    keys = {
        "loss", "reward/word", "reward/word_std", "reward/purity", "reward/monotonicity",
        "sft_ce", "kl", "entropy", "adv/abs_mean", "truncated_frac", "completion_len",
        "time/generate", "time/decode", "time/vocode", "time/reward",
    }  # fmt: skip
    assert keys <= set(records[0]) and "time/update" in records[1]
    assert records[0]["kl"] == pytest.approx(0.0, abs=1e-6)  # policy == reference at step 1
    assert records[1]["kl"] > 0.0
    for r in records:
        assert 0.0 < r["reward/purity"] <= 1.0 and -1.0 <= r["reward/monotonicity"] <= 1.0
        assert r["sft_ce"] > 0.0 and r["adv/abs_mean"] > 0.0
    assert any(not torch.equal(a, b) for a, b in zip(before, loop.lm.model.parameters()))
    assert not loop.lm.model.training  # dropout stays off although the Trainer calls train()


def test_advantages_sit_on_speech_tokens_and_each_group_shares_its_words(tokenizer, asr) -> None:
    loop = _loop(tokenizer, asr, _cfg())
    batch = loop.make_rollout(0)
    ro = batch.scored.rollout
    lengths = [len(t) for t in ro.speech_tokens]
    for b, n in enumerate(lengths):
        assert (batch.advantages[b, n:] == 0).all()  # the end marker and padding: no word
    assert batch.advantages.shape == ro.mask.shape
    # the CE batch holds each text once, with its ground-truth speech tokens as labels
    labels = batch.sft_batch["labels"]
    assert labels.shape[0] == 2 and int((labels != -100).sum(dim=1)[0]) == 5 + 1


def test_ablations_change_the_reward_not_the_samples(tokenizer, asr) -> None:
    full = _loop(tokenizer, asr, _cfg()).make_rollout(0)
    for switch in ({"use_purity": False}, {"use_monotonicity": False}, {"group_relative": False}):
        other = _loop(tokenizer, asr, _cfg(**switch)).make_rollout(0)
        assert torch.equal(full.scored.rollout.completion_ids, other.scored.rollout.completion_ids)
        assert not torch.allclose(full.advantages, other.advantages), switch
    raw = _loop(tokenizer, asr, _cfg(group_relative=False)).make_rollout(0)
    assert (raw.advantages[raw.scored.rollout.mask] >= -1.0).all()


def test_checkpoint_resume_gives_the_same_next_step(tokenizer, asr, tmp_path) -> None:
    whole = _loop(tokenizer, asr, _cfg(gamma=0.1))
    _fit(whole, tmp_path / "whole", 2)
    _fit(_loop(tokenizer, asr, _cfg(gamma=0.1)), tmp_path / "split", 1)
    resumed = _loop(tokenizer, asr, _cfg(gamma=0.1))  # a new process: base, then checkpoint
    assert _fit(resumed, tmp_path / "split", 2).step == 2
    for a, b in zip(whole.lm.model.parameters(), resumed.lm.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    want = read_metrics(tmp_path / "whole" / "metrics.jsonl")[-1]
    got = read_metrics(tmp_path / "split" / "metrics.jsonl")[-1]
    for key in ("loss", "reward/word", "reward/purity", "sft_ce", "kl", "entropy"):
        assert got[key] == want[key], key


def test_head_attention_matches_cross_attention_on_espnet(asr) -> None:
    rng = np.random.default_rng(3)
    wavs = [0.1 * rng.standard_normal(n).astype(np.float32) for n in (8000, 5000)]
    texts = ["the cat", "a mat"]
    got = asr.head_attention(wavs, texts, [(1, 0)])
    want = asr.cross_attention(wavs, texts, layers=[1], heads=[0])
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g.mean(), w.weights, rtol=1e-5, atol=1e-7)
        assert g.tokens == w.tokens and g.heads == [(1, 0)]


def _speech_dir(root: Path, name: str = "train", texts: dict[str, str] = TEXTS) -> Path:
    rng = np.random.default_rng(4)
    for utt in texts:
        save_audio(root / f"{utt}.wav", 0.1 * rng.standard_normal(6000).astype(np.float32))
    write_data_dir(root / name, {
        "wav.scp": {u: str(root / f"{u}.wav") for u in texts}, "text": texts,
        "utt2spk": {u: u[0] for u in texts},
    })  # fmt: skip
    return root / name


def test_train_w3ar_reads_the_heads_file_or_chooses_heads_when_asked(asr, tmp_path) -> None:
    model = tmp_path / "reward_asr" / "model.pt"
    model.parent.mkdir()
    torch.save(asr.checkpoint(), model)
    ctx = SimpleNamespace(
        args=SimpleNamespace(train_dir=_speech_dir(tmp_path)), dist=SimpleNamespace(is_main=True)
    )
    with pytest.raises(HeadsFileError, match="select_attention_heads --model"):
        train_w3ar.reward_heads(ctx, model, asr, _cfg())
    chosen = train_w3ar.reward_heads(ctx, model, asr, _cfg(select_heads_utts=3, heads_top_k=3))
    assert len(chosen) == 3 and heads_file(model).is_file()
    assert "3 utterances of" in heads_file(model).read_text()
    assert train_w3ar.reward_heads(ctx, model, asr, _cfg()) == chosen  # read back, not redone


def test_train_w3ar_chooses_the_heads_on_the_configured_held_out_dir(asr, tmp_path) -> None:
    model = tmp_path / "reward_asr" / "model.pt"
    model.parent.mkdir()
    torch.save(asr.checkpoint(), model)
    ctx = SimpleNamespace(
        args=SimpleNamespace(train_dir=_speech_dir(tmp_path)), dist=SimpleNamespace(is_main=True)
    )
    dev = _speech_dir(tmp_path, "dev", {"c_1": "the mat", "c_2": "a cat sat"})
    train_w3ar.reward_heads(
        ctx, model, asr, _cfg(select_heads_utts=5, select_heads_dir=str(dev))
    )
    record = json.loads(heads_file(model).read_text())
    assert record["source"] == f"2 utterances of {dev}"  # both dev ones, none of the 4 training
    with pytest.raises(DataDirError, match="nowhere: missing required file"):
        train_w3ar.reward_heads(
            ctx, tmp_path / "other.pt", asr,
            _cfg(select_heads_utts=2, select_heads_dir=str(tmp_path / "nowhere")),
        )  # fmt: skip


def test_config_errors(tmp_path) -> None:
    with pytest.raises(ValueError, match="group_size >= 2"):
        W3ARLoopConfig(RolloutConfig(group_size=1), TrainSection())
    raw = W3ARRewardConfig(group_relative=False)
    assert W3ARLoopConfig(RolloutConfig(group_size=1), TrainSection(), raw).reward == raw
    with pytest.raises(ValueError, match="reward_input: audio"):
        W3ARLoopConfig(RolloutConfig(reward_input="mel"), TrainSection())
    bad = tmp_path / "bad.yaml"
    bad.write_text("rollout: {}\ntrain: {}\nreward: {use_purty: false}\n")
    with pytest.raises(ConfigError, match="bad.yaml.*reward.use_purty"):
        load_config(bad, W3ARLoopConfig)


@pytest.mark.parametrize("conf", sorted(CONF.glob("w3ar*.yaml")), ids=lambda p: p.name)
def test_template_configs_load_with_their_switches(conf: Path) -> None:
    cfg = load_config(conf, W3ARLoopConfig)
    name = conf.stem.removesuffix("_mini").removesuffix("_debug")
    switches = {
        "w3ar": (True, True, True), "w3ar_nopurity": (False, True, True),
        "w3ar_nomono": (True, False, True), "w3ar_nogroup": (True, True, False),
        "w3ar_compare": (True, True, True),  # egs/libritts/compare: W3AR under a CPU budget
    }  # fmt: skip
    r = cfg.reward
    assert (r.use_purity, r.use_monotonicity, r.group_relative) == switches[name]
    assert r.select_heads_utts > 0  # the recipe has no separate head-selection stage
    assert r.select_heads_dir == "data/dev"  # held-out natural speech
