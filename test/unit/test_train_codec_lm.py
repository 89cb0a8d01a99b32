"""Stage 4 SFT of the codec LM: schedule and dev loss by hand, data order, CLI, exact resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from codec_lm_data import (
    NUM_TOKENS,
    TINY_MODEL,
    make_token_set,
    make_tokenizer,
    write_codec_lm_config,
)

from local_lib.bin import train_codec_lm
from local_lib.bin.train_codec_lm import (
    CodecLMConfig,
    SFTData,
    SFTTrainSection,
    lr_factor,
    mean_token_loss,
)
from local_lib.config import ConfigError, from_mapping, load_config
from local_lib.data.speech_tokens import PromptPool
from local_lib.data.text_tokenizer import CharTokenizer
from local_lib.models.codec_lm import CodecLM
from local_lib.train.distributed import DistInfo

TRAIN = {
    "batch_size": 4, "lr": 3e-3, "warmup_steps": 2, "num_steps": 6, "save_every": 3,
    "log_every": 3, "valid_every": 3, "valid_utts": 4,
}  # fmt: skip


def _dist(rank: int = 0, world: int = 1) -> DistInfo:
    return DistInfo(rank=rank, world_size=world, local_rank=rank, device=torch.device("cpu"))


def _lm(pool: PromptPool) -> CodecLM:
    torch.manual_seed(0)
    return CodecLM.from_config(TINY_MODEL, CharTokenizer.build(pool.texts.values()), NUM_TOKENS)


def test_lr_schedule_by_hand() -> None:
    f = lr_factor(SFTTrainSection(warmup_steps=2, num_steps=6, min_lr_ratio=0.1))
    # warm-up (s+1)/2; then 0.1 + 0.9 * (1 + cos(pi * (s-2)/4)) / 2
    assert [round(f(s), 6) for s in range(7)] == [0.5, 1.0, 1.0, 0.868198, 0.55, 0.231802, 0.1]


def test_config_errors() -> None:
    for data, message in [
        ({"train": {"epochs": 3}}, "unknown key.s. train.epochs; known: train.num_steps"),
        ({"train": {"valid_every": 30, "log_every": 20}},
         "train: valid_every 30 is not a multiple of log_every 20"),
        ({"positions": "aligned"}, "CodecLMConfig: positions 'aligned': expected one of"),
    ]:  # fmt: skip
        with pytest.raises(ConfigError, match=f"^c.yaml: {message}"):
            from_mapping(CodecLMConfig, data, "c.yaml")


def test_dev_loss_is_per_token_not_per_batch(tmp_path: Path) -> None:
    pool = PromptPool.load(*make_token_set(tmp_path))
    lm = _lm(pool)
    lm.model.eval()
    utts = sorted(pool.utt2spk)
    prompts = lm.zero_shot_prompt_ids(utts, pool, seed=0)
    batches = [lm.training_batch([prompts[u]], [pool.tokens[u]]) for u in utts[:2]]
    batches.append(
        lm.training_batch([prompts[u] for u in utts[2:]], [pool.tokens[u] for u in utts[2:]])
    )
    total, count = 0.0, 0
    for batch in batches:  # cross-entropy summed over every target token, then one division
        with torch.no_grad():
            logits = lm.model(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
            ).logits
        labels = batch["labels"][:, 1:]
        ce = torch.nn.functional.cross_entropy(
            logits[:, :-1].transpose(1, 2), labels, reduction="sum", ignore_index=-100
        )
        total, count = total + float(ce), count + int((labels != -100).sum())
    assert mean_token_loss(lm.model, batches) == pytest.approx(total / count, rel=1e-5)


def test_batches_depend_only_on_the_step_and_ranks_split_them(tmp_path: Path) -> None:
    pool = PromptPool.load(*make_token_set(tmp_path, speakers=2, per_speaker=4))
    lm = _lm(pool)
    cfg = SFTTrainSection(batch_size=4)
    one = SFTData(lm, pool, cfg, seed=1, dist=_dist(), max_length=256)
    again = SFTData(lm, pool, cfg, seed=1, dist=_dist(), max_length=256)
    for step in (3, 0, 2):  # out of order: a resumed run starts mid-way
        assert torch.equal(one(step)["input_ids"], again(step)["input_ids"])
    # one epoch (2 batches) covers every target exactly once
    targets = [row[row != -100].tolist() for step in (0, 1) for row in one(step)["labels"]]
    expected = [
        [t + lm.layout.speech_offset for t in pool.tokens[u]] + [lm.layout.speech_end_id]
        for u in pool.utt2spk
    ]
    assert sorted(targets) == sorted(expected)
    # two ranks each take every other example of the same global batch
    halves = [
        SFTData(lm, pool, cfg, seed=1, dist=_dist(r, 2), max_length=256)(0)["labels"]
        for r in (0, 1)
    ]
    full = one(0)["labels"]
    rows = {tuple(r[r != -100].tolist()) for h in halves for r in h}
    assert rows == {tuple(r[r != -100].tolist()) for r in full}
    # too-long examples are left out, and none fitting is an error naming the token file
    with pytest.raises(ValueError, match="no example fits"):
        SFTData(lm, pool, cfg, seed=1, dist=_dist(), max_length=5)(0)


def _run(tmp_path: Path, out: Path, data: tuple[Path, Path], tokenizer: Path) -> None:
    config = write_codec_lm_config(tmp_path / "codec_lm.yaml", train=TRAIN)
    train_codec_lm.main([
        "--config", str(config), "--seed", "3", "--tokenizer", str(tokenizer),
        "--train-dir", str(data[0]), "--train-tokens", str(data[1]),
        "--valid-dir", str(data[0]), "--valid-tokens", str(data[1]), "--out-dir", str(out),
    ])  # fmt: skip


def test_cli_trains_saves_and_resumes_exactly(tmp_path: Path) -> None:
    data = make_token_set(tmp_path / "set")
    tokenizer = make_tokenizer(tmp_path / "tokenizer.pt")
    _run(tmp_path, tmp_path / "a", data, tokenizer)
    records = [
        json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()
    ]
    assert [r["step"] for r in records] == [3, 6]
    assert all(r["dev_loss"] > 0 and r["loss"] > 0 for r in records)
    lm = CodecLM.from_pretrained(tmp_path / "a" / "model")
    assert lm.layout.num_speech_tokens == NUM_TOKENS
    # the resolved config beside the model
    saved = load_config(tmp_path / "a" / "config.yaml", CodecLMConfig)
    assert saved == load_config(tmp_path / "codec_lm.yaml", CodecLMConfig)
    assert saved.train.num_steps == 6
    assert (tmp_path / "a" / "command.sh").read_text().startswith("# ")

    # a run killed after step 3 (its step-6 checkpoint and model never written) resumes there
    _run(tmp_path, tmp_path / "b", data, tokenizer)
    (tmp_path / "b" / "checkpoints" / "checkpoint_00000006.pt").unlink()
    resumed_from = torch.load(
        tmp_path / "b" / "checkpoints" / "checkpoint_00000003.pt", weights_only=False
    )
    assert resumed_from["step"] == 3
    _run(tmp_path, tmp_path / "b", data, tokenizer)
    again = CodecLM.from_pretrained(tmp_path / "b" / "model")
    for (name, p), q in zip(
        lm.model.state_dict().items(), again.model.state_dict().values(), strict=True
    ):
        assert torch.equal(p, q), name
    # the second run logged only the step it trained after resuming
    steps = [
        json.loads(line)["step"]
        for line in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    ]
    assert steps == [3, 6, 6]
