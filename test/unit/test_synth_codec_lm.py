"""Stage 6 synthesis: shards agree with a one-job run; tokenizer resynthesis; short outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from codec_lm_data import (
    NUM_TOKENS,
    TINY_MODEL,
    make_token_set,
    make_tokenizer,
    write_codec_lm_config,
)

from local_lib.bin import synth_codec_lm
from local_lib.data.features import LogMelConfig
from local_lib.data.kaldi_dir import read_kv
from local_lib.data.speech_tokens import PromptPool
from local_lib.data.text_tokenizer import CharTokenizer
from local_lib.models.codec_lm import CodecLM
from local_lib.models.vocoder import GriffinLimVocoder

FEATS_YAML = Path(__file__).resolve().parents[2] / "egs" / "TEMPLATE" / "conf" / "feats.yaml"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("synth")
    data, tokens = make_token_set(root, speakers=2, per_speaker=3)
    pool = PromptPool.load(data, tokens)
    torch.manual_seed(0)
    CodecLM.from_config(
        TINY_MODEL, CharTokenizer.build(pool.texts.values()), NUM_TOKENS
    ).save_pretrained(root / "lm")
    config = write_codec_lm_config(
        root / "codec_lm.yaml", sample={"temperature": 1.0, "max_new_tokens": 12}
    )
    return {"root": root, "data": data, "tokens": tokens, "lm": root / "lm", "config": config,
            "tokenizer": make_tokenizer(root / "tokenizer.pt")}  # fmt: skip


def _synth(
    inputs: dict[str, Path], out: Path, *mode: str, nj: int = 1, job: int = 1, takes: int = 1
) -> None:
    synth_codec_lm.main([
        *mode, "--tokenizer", str(inputs["tokenizer"]), "--data-dir", str(inputs["data"]),
        "--tokens", str(inputs["tokens"]), "--feats-config", str(FEATS_YAML), "--out-dir", str(out),
        "--seed", "5", "--griffin-lim-iters", "2", "--nj", str(nj), "--job", str(job),
        "--num-samples", str(takes),
    ])  # fmt: skip


def test_shards_agree_with_a_one_job_run(inputs: dict[str, Path], tmp_path: Path) -> None:
    model = ("--model-dir", str(inputs["lm"]), "--config", str(inputs["config"]))
    _synth(inputs, tmp_path / "one", *model)
    for job in (1, 2):
        _synth(inputs, tmp_path / "two", *model, nj=2, job=job)
    one = read_kv(tmp_path / "one" / "wav.scp")
    shards = {**read_kv(tmp_path / "two" / "wav.1.scp"), **read_kv(tmp_path / "two" / "wav.2.scp")}
    assert sorted(one) == sorted(shards) == sorted(read_kv(inputs["data"] / "text"))
    for utt, path in one.items():
        assert Path(path).read_bytes() == Path(shards[utt]).read_bytes(), utt
    # different utterances draw different samples (each has its own generator)
    assert len({Path(p).read_bytes() for p in one.values()}) > 1


def test_takes_keep_take_0_and_differ(inputs: dict[str, Path], tmp_path: Path) -> None:
    model = ("--model-dir", str(inputs["lm"]), "--config", str(inputs["config"]))
    _synth(inputs, tmp_path / "one", *model)
    for job in (1, 2):
        _synth(inputs, tmp_path / "three", *model, nj=2, job=job, takes=3)
    one = read_kv(tmp_path / "one" / "wav.scp")
    three = read_kv(tmp_path / "three" / "wav.1.scp") | read_kv(tmp_path / "three" / "wav.2.scp")
    assert sorted(three) == sorted(f"{u}{t}" for u in one for t in ("", "#1", "#2"))
    for utt, path in one.items():  # take 0 is the audio of a one-take run
        assert Path(three[utt]).read_bytes() == Path(path).read_bytes(), utt
    assert any(
        len({Path(three[f"{u}{t}"]).read_bytes() for t in ("", "#1", "#2")}) > 1 for u in one
    )
    with pytest.raises(SystemExit):
        _synth(inputs, tmp_path / "x", "--tokens-only", takes=2)
    with pytest.raises(SystemExit):
        _synth(inputs, tmp_path / "x", *model, takes=0)


def test_tokens_only_decodes_the_sets_own_tokens(inputs: dict[str, Path], tmp_path: Path) -> None:
    _synth(inputs, tmp_path / "resynth", "--tokens-only")
    hop = LogMelConfig.from_yaml(FEATS_YAML).hop_length
    tokens = read_kv(inputs["tokens"])
    for utt, path in read_kv(tmp_path / "resynth" / "wav.scp").items():
        wav, rate = soundfile.read(path)
        frames = 2 * len(tokens[utt].split())  # stack 2; short outputs padded to >= 8 frames
        assert rate == 16000 and len(wav) == (max(frames, 8) - 1) * hop, utt


def test_mode_must_be_chosen(inputs: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        _synth(inputs, tmp_path / "x")
    with pytest.raises(SystemExit):
        _synth(
            inputs,
            tmp_path / "x",
            "--tokens-only",
            "--model-dir",
            str(inputs["lm"]),
            "--config",
            str(inputs["config"]),
        )


def test_generators_and_padding() -> None:
    a = synth_codec_lm.utterance_generator(0, "u1")
    assert torch.equal(
        torch.rand(4, generator=a),
        torch.rand(4, generator=synth_codec_lm.utterance_generator(0, "u1")),
    )
    first = torch.rand(4, generator=synth_codec_lm.utterance_generator(0, "u2"))
    second = torch.rand(4, generator=synth_codec_lm.utterance_generator(1, "u1"))
    assert not torch.equal(first, second)
    cfg = LogMelConfig()
    vocode = synth_codec_lm.padded_vocoder(GriffinLimVocoder(cfg, n_iter=2), cfg)
    assert (
        len(vocode(np.zeros((0, cfg.n_mels), np.float32))) == 7 * cfg.hop_length
    )  # 8 silent frames
    assert len(vocode(np.zeros((20, cfg.n_mels), np.float32))) == 19 * cfg.hop_length  # untouched
