"""HPRO's stage-5 loop on a tiny codec LM and a tiny reward codec: the teacher-forced batch, the
progressive schedule in the loop switching terms at the configured steps, each term reading its
own stream, gradients reaching the LM through the soft tokens alone, a reachable term that
falls, an exact resume, and the checks made before any step (docs/methods.md#hpro)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from local_lib.config import load_config
from local_lib.data.speech_tokens import PromptPool
from local_lib.data.text_tokenizer import CharTokenizer
from local_lib.models.asr_units import AsrUnits
from local_lib.models.codec_lm import CodecLM
from local_lib.models.reward_codec import RewardCodec, RewardCodecConfig
from local_lib.rl.hpro import TERMS, HPROLossConfig, HPROWeights
from local_lib.rl.hpro_loop import (
    HPROBatchConfig,
    HPROLoop,
    HPROLoopConfig,
    fitting_targets,
    level_terms,
    reference_codes,
    teacher_forced_completions,
)
from local_lib.rl.method_spec import find_method
from local_lib.train.config import TrainSection
from local_lib.train.trainer import Trainer, TrainerConfig, read_metrics

REPO = Path(__file__).resolve().parents[2]
TINY_LM = {
    "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
    "num_attention_heads": 2, "num_key_value_heads": 1, "max_position_embeddings": 256,
}  # fmt: skip
NUM_SPEECH = 8
EMOTIONS = ("Angry", "Sad")
# two speakers, each saying two sentences in both emotions; "a_5" is too short for its text
TEXTS = {
    "a_1": "the cat sat", "a_2": "on a mat", "a_3": "the cat sat", "a_4": "on a mat",
    "b_1": "a dog ran", "b_2": "to the sea", "b_3": "a dog ran", "b_4": "to the sea",
    "a_5": "a long sentence here",
}  # fmt: skip


def _pool() -> PromptPool:
    gen = np.random.default_rng(0)
    utt2spk = {u: u[0] for u in TEXTS}
    tokens = {u: gen.integers(0, NUM_SPEECH, size=8 + i % 3).tolist() for i, u in enumerate(TEXTS)}
    tokens["a_5"] = [1, 2, 3]
    emotion = {u: EMOTIONS[int(u[-1]) > 2] for u in TEXTS}
    labels = {"speaker": utt2spk, "emotion": emotion}
    return PromptPool(dict(TEXTS), utt2spk, tokens, "fake", labels)


def _lm(dtype: torch.dtype = torch.float32) -> CodecLM:
    torch.manual_seed(0)
    lm = CodecLM.from_config(TINY_LM, CharTokenizer.build(TEXTS.values()), NUM_SPEECH)
    lm.model.to(dtype)
    return lm


def _codec(seed: int = 1) -> RewardCodec:
    torch.manual_seed(seed)
    cfg = RewardCodecConfig(embed_dim=8, channels=8, encoder_layers=1, head_layers=1, dropout=0.0)
    codec = RewardCodec.build(cfg, NUM_SPEECH, AsrUnits.from_texts(TEXTS.values()), EMOTIONS, 3)
    codec.net.eval()
    return codec


def _cfg(beta: float = 0.1, grad_accum: int = 1, lr: float = 1e-2, **loss) -> HPROLoopConfig:
    return HPROLoopConfig(
        train=TrainSection(num_steps=2, lr=lr, grad_accum=grad_accum, save_every=1, log_every=1),
        batch=HPROBatchConfig(prompts_per_step=3),
        loss=HPROLossConfig(beta=beta, **loss),
    )


def _loop(cfg: HPROLoopConfig, codec: RewardCodec | None = None) -> HPROLoop:
    return HPROLoop(_lm(), codec or _codec(), _pool(), cfg, seed=5)


def _fit(loop: HPROLoop, out_dir: Path, num_steps: int) -> Trainer:
    opt = torch.optim.AdamW(loop.policy.parameters(), lr=loop.cfg.train.lr)
    tcfg = TrainerConfig(out_dir=out_dir, num_steps=num_steps, grad_accum=loop.cfg.train.grad_accum,
                         save_every=1, log_every=1)  # fmt: skip
    trainer = Trainer(loop.policy, opt, tcfg)
    trainer.fit(loop.loss, loop.batch)
    return trainer


def test_method_spec():
    spec = find_method("hpro")
    assert spec.family == "codec_lm" and not spec.reward_asr_view  # the codec reads tokens


def test_teacher_forced_completions_by_hand():
    lm = _lm()
    ids, mask = teacher_forced_completions(lm, [[1, 2], [3]])
    s, end, pad = lm.layout.speech_offset, lm.layout.speech_end_id, lm.layout.pad_id
    assert ids.tolist() == [[s + 1, s + 2, end], [s + 3, end, pad]]
    assert mask.tolist() == [[True, True, True], [True, True, False]]


def test_the_batch_is_the_reference_after_a_prompt_of_another_emotion():
    loop = _loop(_cfg())
    pool = loop.pool
    assert "a_5" not in loop.prompts.targets == fitting_targets(loop.codec, pool)
    for index in range(4):
        batch = loop.batch(index)
        for row, utt in enumerate(batch.utts):
            prompt = loop.prompts.prompt_of[utt]
            assert pool.utt2spk[prompt] == pool.utt2spk[utt]
            assert pool.labels["emotion"][prompt] != pool.labels["emotion"][utt]
            want = [*loop.lm.layout.speech_ids(pool.tokens[utt]), loop.lm.layout.speech_end_id]
            assert batch.completion_ids[row][batch.mask[row]].tolist() == want
            assert batch.prompts[row] == loop.lm.prompt_ids(
                pool.texts[utt], pool.texts[prompt], pool.tokens[prompt]
            )
            target = batch.references.extras["emotion"][row]
            assert loop.codec.emotions[int(batch.emotion[row])] == target
        assert batch.ref.lens.tolist() == [len(pool.tokens[u]) for u in batch.utts]


def test_the_schedule_switches_terms_at_the_configured_steps(tmp_path):
    cfg = _cfg(beta=0.2, frame_steps=2, word_steps=1, weights=HPROWeights(word=0.5, text=2.0))
    loop = _loop(cfg)
    _fit(loop, tmp_path, 5)
    records = read_metrics(tmp_path / "metrics.jsonl")
    on = [{t for t in TERMS if r[f"on/{t}"]} for r in records]
    frame = {"frame_content", "frame_style", "text"}
    assert on == [frame, frame, frame | {"word"}, set(TERMS), set(TERMS)]
    assert [r["terms_on"] for r in records] == [3, 3, 4, 5, 5]
    weights = cfg.loss.weights
    for record, active in zip(records, on, strict=True):
        # every term is logged, on or off; the loss counts those on, weighted, plus beta * KL
        want = sum(getattr(weights, t) * record[f"loss/{t}"] for t in active)
        want += 0.2 * record["kl"]
        assert record["loss/total"] == pytest.approx(want, rel=1e-5)
        assert set(TERMS) <= {k[len("loss/"):] for k in record if k.startswith("loss/")}


def test_the_schedule_counts_updates_not_micro_batches():
    loop = _loop(_cfg(grad_accum=2, frame_steps=1, word_steps=1))
    stats = [loop.loss(loop.policy, loop.batch(i))[1] for i in range(5)]
    assert [s["terms_on"] for s in stats] == [3, 3, 4, 4, 5]


@pytest.mark.parametrize("schedule, on", [("summed", TERMS), ("sentence_only", ("sentence",))])
def test_the_variants_in_the_loop(schedule, on):
    loop = _loop(_cfg(schedule=schedule, frame_steps=10**6))
    _, stats = loop.loss(loop.policy, loop.batch(0))
    assert {t for t in TERMS if stats[f"on/{t}"]} == set(on)


def test_each_term_reads_only_its_own_stream():
    codec, pool = _codec(), _pool()
    utts = ["a_1", "b_2"]
    tokens, texts = [pool.tokens[u] for u in utts], [pool.texts[u] for u in utts]
    _, ref = reference_codes(codec, tokens, texts)
    codec.net.requires_grad_(False)
    width = max(map(len, tokens))
    padded = torch.tensor([t + [0] * (width - len(t)) for t in tokens])
    probs = torch.nn.functional.one_hot(padded, NUM_SPEECH).float()
    probs = (0.7 * probs + 0.3 / NUM_SPEECH).requires_grad_(True)
    gen = codec.run_probs(probs, ref.lens, ref.spans)
    terms = level_terms(codec, gen, ref, texts, codec.emotion_index(["Angry", "Sad"]))
    streams = {"frame_content": "content", "text": "content", "frame_style": "style",
               "word": "style", "sentence": "style"}  # fmt: skip
    for name, stream in streams.items():
        content, style, soft = torch.autograd.grad(
            terms[name], [gen.content, gen.style, probs], retain_graph=True, allow_unused=True
        )
        reads, other = (content, style) if stream == "content" else (style, content)
        assert other is None, f"{name} reaches the other stream"
        assert reads is not None and reads.abs().sum() > 0, name
        assert soft.abs().sum() > 0, name


def test_gradients_reach_the_lm_through_the_soft_tokens_alone():
    """With beta = 0 the whole gradient of every weight is the soft tokens' gradient carried
    back into the LM: nothing else of the LM enters the loss."""
    loop = _loop(_cfg(beta=0.0, schedule="summed"))
    batch = loop.batch(0)
    captured = []
    loop.policy.register_forward_hook(lambda _m, _i, out: captured.append(out))
    loss, _ = loop.loss(loop.policy, batch)
    soft = captured[0].soft
    params = [p for p in loop.lm.model.parameters() if p.requires_grad]
    full = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    (via_soft,) = torch.autograd.grad(loss, [soft], retain_graph=True)
    chained = torch.autograd.grad(soft, params, via_soft, allow_unused=True)
    for a, b in zip(full, chained, strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b)
    moved = [p for p, g in zip(params, full, strict=True) if g is not None and g.abs().sum() > 0]
    assert len(moved) == len(params)  # every weight of the LM gets a gradient


def test_each_term_alone_gives_the_lm_a_gradient():
    for name in TERMS:
        weights = HPROWeights(**{t: float(t == name) for t in TERMS})
        loop = _loop(_cfg(beta=0.0, schedule="summed", weights=weights))
        loss, _ = loop.loss(loop.policy, loop.batch(0))
        (grad,) = torch.autograd.grad(loss, [loop.lm.model.lm_head.weight])
        assert grad.abs().sum() > 0, name


def test_a_reachable_term_falls(tmp_path):
    """Every target Angry (prompts of any emotion): the sentence term alone pushes the soft
    tokens towards what the emotion head calls Angry; measured on one fixed batch."""
    pool = _pool()
    angry = PromptPool(pool.texts, pool.utt2spk, pool.tokens, "fake",
                       {"speaker": pool.utt2spk, "emotion": {u: "Angry" for u in pool.texts}})
    cfg = _cfg(beta=0.0, schedule="sentence_only", lr=3e-2)
    cfg = HPROLoopConfig(cfg.train, HPROBatchConfig(3, prompt_match="speaker"), cfg.loss)
    loop = HPROLoop(_lm(), _codec(), angry, cfg, seed=5)
    fixed = loop.batch(100)
    before = loop.loss(loop.policy, fixed)[1]["loss/sentence"]
    _fit(loop, tmp_path, 10)
    after = loop.loss(loop.policy, fixed)[1]["loss/sentence"]
    assert after < before - 0.05, (before, after)
    assert not loop.lm.model.training  # dropout stays off although the Trainer calls train()


def test_the_kl_is_zero_at_the_start_and_grows_after_a_change():
    loop = _loop(_cfg(beta=0.5))
    batch = loop.batch(0)
    assert loop.loss(loop.policy, batch)[1]["kl"] == pytest.approx(0.0, abs=1e-6)
    with torch.no_grad():
        loop.lm.model.lm_head.weight.mul_(1.5)
    assert loop.loss(loop.policy, batch)[1]["kl"] > 1e-4
    assert _loop(_cfg(beta=0.0)).reference is None


def test_checkpoint_resume_gives_the_same_next_step(tmp_path):
    cfg = _cfg(beta=0.2, frame_steps=1, word_steps=1)
    whole = _loop(cfg)
    _fit(whole, tmp_path / "whole", 3)
    _fit(_loop(cfg), tmp_path / "split", 2)
    resumed = _loop(cfg)  # a new process: base weights, then the checkpoint
    assert _fit(resumed, tmp_path / "split", 3).step == 3
    for a, b in zip(whole.lm.model.parameters(), resumed.lm.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    want = read_metrics(tmp_path / "whole" / "metrics.jsonl")[-1]
    got = read_metrics(tmp_path / "split" / "metrics.jsonl")[-1]
    for key in ("loss", "loss/total", *(f"loss/{t}" for t in TERMS), "kl", "terms_on"):
        assert got[key] == want[key], key


def test_checks_before_any_step():
    pool = _pool()
    no_emotion = PromptPool(pool.texts, pool.utt2spk, pool.tokens, "fake",
                            {"speaker": pool.utt2spk})  # fmt: skip
    with pytest.raises(ValueError, match="utt2emo"):
        HPROLoop(_lm(), _codec(), no_emotion, _cfg(), seed=0)
    unseen = dict(pool.labels, emotion={u: "Happy" for u in pool.texts})
    with pytest.raises(ValueError, match="never saw"):
        HPROLoop(_lm(), _codec(), PromptPool(pool.texts, pool.utt2spk, pool.tokens, "fake", unseen),
                 _cfg(), seed=0)  # fmt: skip
    torch.manual_seed(0)
    other = RewardCodec.build(_codec().net.cfg, NUM_SPEECH + 1, _codec().units, EMOTIONS, 3)
    with pytest.raises(ValueError, match="speech tokens"):
        HPROLoop(_lm(), other, pool, _cfg(), seed=0)
    with pytest.raises(ValueError, match="prompts_per_step"):
        HPROBatchConfig(prompts_per_step=0)


@pytest.mark.parametrize("variant, schedule", [("", "progressive"), ("_summed", "summed"),
                                               ("_sentence", "sentence_only")])  # fmt: skip
@pytest.mark.parametrize("size", ["", "_mini", "_debug"])
def test_recipe_configs_give_each_variant_its_schedule(variant, schedule, size):
    cfg = load_config(REPO / f"egs/TEMPLATE/conf/hpro{variant}{size}.yaml", HPROLoopConfig)
    assert cfg.loss.schedule == schedule and cfg.batch.prompt_match == "other_emotion"
    if schedule == "progressive":
        assert cfg.loss.frame_steps + cfg.loss.word_steps < cfg.train.num_steps
