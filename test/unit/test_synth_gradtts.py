"""Stage-6 synthesis tool: shards agree with one job, every utterance gets its own emotion."""

from __future__ import annotations

from pathlib import Path

import pytest
import soundfile
import torch

from local_lib.bin import synth_gradtts
from local_lib.data.text_tokenizer import CharTokenizer
from local_lib.models.gradtts import GradTTS, GradTTSBundle, GradTTSConfig

TINY = GradTTSConfig(
    cond_dim=8, enc_channels=16, enc_filter_channels=32, enc_layers=1, prenet_layers=1,
    dp_filter_channels=16, dec_kind="conv1d", dec_blocks=2, dec_dim=16, dec_groups=4,
)  # fmt: skip
UTTS = {
    "0011_000001": ("0011", "Neutral", "the cat sat"),
    "0011_000002": ("0011", "Sad", "the cat sat"),
    "0012_000001": ("0012", "Happy", "a dog ran"),
    "0012_000002": ("0012", "Sad", "a dog ran home"),
    "0012_000003": ("0012", "Neutral", "the dog sat"),
}


def write_model_and_data(root: Path, emotions: dict[str, str] | None = None) -> tuple[Path, Path]:
    torch.manual_seed(0)
    tok = CharTokenizer.build(t for _, _, t in UTTS.values())
    model = GradTTS(TINY, tok.vocab_size, n_speakers=2, n_emotions=3)
    GradTTSBundle(model, tok, ["0011", "0012"], ["Happy", "Neutral", "Sad"]).save(root / "model.pt")
    data = root / "data"
    data.mkdir()
    emotions = emotions or {u: e for u, (_, e, _) in UTTS.items()}
    files = {
        "text": {u: t for u, (_, _, t) in UTTS.items()},
        "utt2spk": {u: s for u, (s, _, _) in UTTS.items()},
        "utt2emo": emotions,
        "wav.scp": {u: f"/nonexistent/{u}.wav" for u in UTTS},
    }
    for name, table in files.items():
        (data / name).write_text("".join(f"{u} {v}\n" for u, v in sorted(table.items())))
    (data / "spk2utt").write_text(
        "0011 0011_000001 0011_000002\n0012 0012_000001 0012_000002 0012_000003\n"
    )
    conf = root / "gradtts.yaml"
    conf.write_text("synth: {n_steps: 3, temperature: 1.5, vocoder_iters: 2}\n")
    return data, conf


def synth(root: Path, data: Path, conf: Path, out: Path, nj: int = 1, job: int = 1) -> None:
    synth_gradtts.main([
        "--config", str(conf), "--model", str(root / "model.pt"), "--data-dir", str(data),
        "--out-dir", str(out), "--seed", "3", "--nj", str(nj), "--job", str(job),
    ])  # fmt: skip


def read_scp(path: Path) -> dict[str, str]:
    return dict(line.split(maxsplit=1) for line in path.read_text().splitlines())


def test_two_shards_give_the_same_audio_as_one_job(tmp_path: Path) -> None:
    data, conf = write_model_and_data(tmp_path)
    synth(tmp_path, data, conf, tmp_path / "one")
    for job in (1, 2):
        synth(tmp_path, data, conf, tmp_path / "two", nj=2, job=job)
    one = read_scp(tmp_path / "one" / "wav.scp")
    first, second = (read_scp(tmp_path / "two" / f"wav.{j}.scp") for j in (1, 2))
    assert list(one) == sorted(UTTS)
    assert list(first) == sorted(UTTS)[:3] and list(second) == sorted(UTTS)[3:]
    for utt, path in one.items():
        a, rate = soundfile.read(path, dtype="int16")
        b, _ = soundfile.read({**first, **second}[utt], dtype="int16")
        assert rate == 16000 and len(a) > 0 and (a == b).all(), utt
    # Different utterances draw different noise: the two "the cat sat" renderings differ.
    x, _ = soundfile.read(one["0011_000001"], dtype="int16")
    y, _ = soundfile.read(one["0011_000002"], dtype="int16")
    assert len(x) != len(y) or (x != y).any()


def test_utterance_seed_depends_on_seed_and_utterance_only() -> None:
    seed = synth_gradtts.utterance_seed
    assert seed(0, "u1") == seed(0, "u1")
    assert len({seed(0, "u1"), seed(1, "u1"), seed(0, "u2")}) == 3
    assert 0 <= seed(0, "u1") < 2**63


def test_an_emotion_the_model_never_saw_names_the_utterance(tmp_path: Path) -> None:
    emotions = {u: e for u, (_, e, _) in UTTS.items()} | {"0012_000002": "Angry"}
    data, conf = write_model_and_data(tmp_path, emotions)
    with pytest.raises(ValueError, match="0012_000002: unknown emotion 'Angry'"):
        synth(tmp_path, data, conf, tmp_path / "out")
