"""The shared rollout path: prompt choice by emotion, labels in the references, per-token
rewards, and the mel reward path against the audio path on a tiny random codec LM."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from local_lib.data.features import LogMelConfig, log_mel_torch
from local_lib.data.kaldi_dir import write_kv
from local_lib.data.speech_tokens import PromptPool, SpeechTokensError, write_speech_tokens
from local_lib.data.text_tokenizer import CharTokenizer
from local_lib.models.codec_lm import CodecLM
from local_lib.models.speech_tokenizer import KMeansMelTokenizer, SpeechTokenizerConfig
from local_lib.rewards import RewardError, RewardReferences, build_rewards
from local_lib.rl.rollout import (
    PromptSource,
    RolloutConfig,
    Rollouts,
    SpeechRenderer,
    repeat_references,
    reward_stats,
    sequence_rewards,
    token_rewards,
)

MEL = LogMelConfig(n_fft=256, win_length=256, hop_length=64, n_mels=16, f_max=8000.0)
TINY_LM = {
    "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 256,
}  # fmt: skip
EMOTIONS = {
    "a_1": "Happy",
    "a_2": "Sad",
    "a_3": "Happy",
    "b_1": "Sad",
    "b_2": "Sad",
    "b_3": "Angry",
}
TEXTS = {
    u: t for u, t in zip(EMOTIONS, ["the cat", "a mat", "on it", "sat on", "the mat", "a cat"])
}


@pytest.fixture(scope="module")
def tokenizer() -> KMeansMelTokenizer:
    rng = np.random.default_rng(0)
    feats = [rng.normal(size=(40, MEL.n_mels)).astype(np.float32) for _ in range(4)]
    cfg = SpeechTokenizerConfig(num_tokens=8, kmeans_iters=3, decoder_channels=8,
                                decoder_layers=1, decoder_steps=2)  # fmt: skip
    return KMeansMelTokenizer.train(feats, cfg, MEL)


def _data_dir(root: Path, emotions: bool = True) -> tuple[Path, Path]:
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    write_kv(data / "text", TEXTS)
    write_kv(data / "utt2spk", {u: u[0] for u in TEXTS})
    write_kv(data / "spk2gender", {"a": "f", "b": "m"})
    if emotions:
        write_kv(data / "utt2emo", EMOTIONS)
    tokens = root / "speech_tokens"
    write_speech_tokens(tokens, {u: [1, 2, 3, i] for i, u in enumerate(TEXTS)})
    return data, tokens


def test_pool_labels_reach_the_references(tmp_path: Path) -> None:
    pool = PromptPool.load(*_data_dir(tmp_path))
    refs = pool.references(["b_3", "a_1"])
    assert refs.texts == ["a cat", "the cat"]
    assert refs.extras == {
        "speaker": ["b", "a"],
        "emotion": ["Angry", "Happy"],
        "gender": ["m", "f"],
    }
    twice = repeat_references(refs, 2)
    assert twice.texts == ["a cat", "a cat", "the cat", "the cat"]
    assert twice.extras["gender"] == ["m", "m", "f", "f"]


def test_a_label_file_missing_an_utterance_is_named(tmp_path: Path) -> None:
    data, tokens = _data_dir(tmp_path)
    write_kv(data / "utt2emo", {u: e for u, e in EMOTIONS.items() if u != "b_2"})
    with pytest.raises(SpeechTokensError, match=r"utt2emo: no entry for b_2 \(1 missing\)"):
        PromptPool.load(data, tokens)


def test_prompt_match_by_emotion(tmp_path: Path) -> None:
    pool = PromptPool.load(*_data_dir(tmp_path))
    # a_1 (Happy): the only other Happy utterance of speaker a is a_3; a Sad one is a_2
    assert pool.pick(["a_1"], seed=0, match="same_emotion") == {"a_1": "a_3"}
    assert pool.pick(["a_1"], seed=0, match="other_emotion") == {"a_1": "a_2"}
    # b_1 (Sad): b_2 is the only other Sad utterance; the other emotion is b_3 (Angry)
    assert pool.pick(["b_1"], seed=5, match="same_emotion") == {"b_1": "b_2"}
    assert pool.pick(["b_1"], seed=5, match="other_emotion") == {"b_1": "b_3"}
    with pytest.raises(
        ValueError, match="b_3: speaker b has no other utterance in the same emotion"
    ):
        pool.pick(["b_3"], seed=0, match="same_emotion")
    plain = PromptPool.load(*_data_dir(tmp_path / "plain", emotions=False))
    with pytest.raises(SpeechTokensError, match="needs utt2emo"):
        plain.pick(["a_1"], seed=0, match="same_emotion")


def test_token_and_sequence_rewards_by_hand() -> None:
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]], dtype=torch.bool)
    # a sequence reward goes to every real token
    seq = token_rewards(torch.tensor([2.0, -1.0]), mask)
    torch.testing.assert_close(seq, torch.tensor([[2.0, 2.0, 2.0, 2.0], [-1.0, -1.0, 0.0, 0.0]]))
    # a per-speech-token reward (3 wide: the end marker has none) on the first positions
    per_token = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    placed = token_rewards(per_token, mask)
    torch.testing.assert_close(placed, torch.tensor([[1.0, 2.0, 3.0, 0.0], [4.0, 5.0, 0.0, 0.0]]))
    with pytest.raises(ValueError, match="do not fit"):
        token_rewards(torch.zeros(2, 5), mask)
    # the sequence score of a per-token reward: the mean over each sequence's speech tokens
    lengths = torch.tensor([3, 1])
    torch.testing.assert_close(sequence_rewards(per_token, lengths), torch.tensor([2.0, 4.0]))
    torch.testing.assert_close(
        sequence_rewards(torch.tensor([0.5, 0.7]), lengths), torch.tensor([0.5, 0.7])
    )


class MelFakeASR:
    """Reads audio and log-mel alike: the score is the mean log-mel energy, so the two paths
    agree only as far as Griffin-Lim's audio re-analyses to the decoded log-mel."""

    def __init__(self, mel_cfg: LogMelConfig) -> None:
        self.mel_cfg, self.sample_rate = mel_cfg, mel_cfg.sample_rate
        self.seen: list[str] = []

    def transcribe(self, wavs) -> list[str]:
        self.seen.append("audio")
        return self.transcribe_mel(
            [log_mel_torch(torch.as_tensor(w), self.mel_cfg) for w in wavs], log=False
        )

    def transcribe_mel(self, mels, log: bool = True) -> list[str]:
        if log:
            self.seen.append("mel")
        return ["the cat" if float(m.mean()) > -4 else "cat" for m in mels]

    def nll(self, wavs, texts) -> torch.Tensor:
        return self.nll_mel([log_mel_torch(torch.as_tensor(w), self.mel_cfg) for w in wavs], texts)

    def nll_mel(self, mels, texts) -> torch.Tensor:
        return torch.tensor([-float(m.mean()) for m in mels])


def _rollouts(tokenizer, tmp_path: Path, scorer, reward_input: str) -> Rollouts:
    torch.manual_seed(0)
    lm = CodecLM.from_config(TINY_LM, CharTokenizer.build(TEXTS.values()), 8)
    pool = PromptPool.load(*_data_dir(tmp_path))
    cfg = RolloutConfig(group_size=2, prompts_per_step=2, max_new_tokens=10, vocoder_iters=4,
                        min_wav_s=0.05, reward_input=reward_input)  # fmt: skip
    rewards = build_rewards({"components": {"asr_wer": {}, "asr_nll": {}}}, {"scorer": scorer})
    prompts = PromptSource(lm, pool, 3, cfg.prompts_per_step, cfg.prompt_match)
    return Rollouts(lm, prompts, SpeechRenderer(tokenizer, 4, 0.05), rewards, cfg, seed=3)


def test_mel_and_audio_paths_score_the_same_samples(tokenizer, tmp_path: Path) -> None:
    audio_asr, mel_asr = MelFakeASR(MEL), MelFakeASR(MEL)
    audio = _rollouts(tokenizer, tmp_path / "a", audio_asr, "audio")(0)
    mel = _rollouts(tokenizer, tmp_path / "m", mel_asr, "mel")(0)
    assert audio_asr.seen == ["audio"] and mel_asr.seen == ["mel"]
    torch.testing.assert_close(audio.rollout.completion_ids, mel.rollout.completion_ids)
    assert audio.references.texts == mel.references.texts and len(audio.references.texts) == 4
    assert audio.references.extras["emotion"] == mel.references.extras["emotion"]
    assert mel.timings["time/vocode"] < audio.timings["time/vocode"]
    # the mel path reads the decoded log-mel itself: its NLL is exactly minus its mean
    renderer = SpeechRenderer(tokenizer, 4, 0.05)
    want = torch.tensor([float(renderer.mel(t).mean()) for t in mel.rollout.speech_tokens])
    torch.testing.assert_close(mel.rewards.components["asr_nll"], torch.exp(want / 3.0))
    stats = reward_stats(mel.rewards, torch.tensor([len(t) for t in mel.rollout.speech_tokens]))
    assert set(stats) == {
        "reward/asr_wer",
        "reward/asr_wer_std",
        "reward/asr_nll",
        "reward/asr_nll_std",
    }


def test_mel_path_refuses_an_audio_only_or_mismatched_reward_asr(tokenizer, tmp_path: Path) -> None:
    class AudioOnly:
        def transcribe(self, wavs):
            return ["the cat"] * len(wavs)

        def nll(self, wavs, texts):
            return torch.zeros(len(wavs))

    with pytest.raises(RewardError, match="reads audio only"):
        _rollouts(tokenizer, tmp_path / "a", AudioOnly(), "mel")(0)
    other = MelFakeASR(LogMelConfig(n_mels=80))
    with pytest.raises(RewardError, match="log-mel settings .* differ from the tokenizer's"):
        _rollouts(tokenizer, tmp_path / "b", other, "mel")(0)


def test_rollout_without_rewards_only_samples(tokenizer, tmp_path: Path) -> None:
    ro = _rollouts(tokenizer, tmp_path, MelFakeASR(MEL), "audio")
    ro.rewards = None
    scored = ro(1)
    assert scored.rewards is None and set(scored.timings) == {"time/generate"}
    assert scored.utt_ids() == [f"{u}#{k}" for u in scored.targets for k in range(2)]
    assert isinstance(scored.references, RewardReferences)


def test_a_seed_tts_eval_set_prompts_each_utterance_with_its_own_audio(tmp_path: Path) -> None:
    data, tokens = _data_dir(tmp_path)
    own = {u: f"prompt of {u}" for u in TEXTS}
    write_kv(data / "utt2prompt_text", own)
    pool = PromptPool.load(data, tokens)
    assert pool.prompt_texts == own
    lm = CodecLM.from_config(TINY_LM, CharTokenizer.build([*TEXTS.values(), *own.values()]), 8)
    prompts = lm.zero_shot_prompt_ids(["a_2", "b_1"], pool, seed=0)
    # target text a_2 after a_2's own prompt transcript, then a_2's own (prompt) speech tokens
    assert prompts["a_2"] == lm.prompt_ids("a mat", "prompt of a_2", [1, 2, 3, 1])
    assert prompts["b_1"] == lm.prompt_ids("sat on", "prompt of b_1", [1, 2, 3, 3])
    write_kv(data / "utt2prompt_text", {u: t for u, t in own.items() if u != "b_3"})
    with pytest.raises(SpeechTokensError, match=r"utt2prompt_text: no entry for b_3"):
        PromptPool.load(data, tokens)
