"""EASPM agreement diagnostic: branch bookkeeping with fake judges, the summary by hand, the CLI."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import pytest
import torch
from test_easpm_training import EMOTIONS, N_MELS, write_fake_corpus
from test_easpo_loop import TINY_EASPM, TINY_TTS

from local_lib.bin import easpm_agreement
from local_lib.bin.easpm_agreement import COLUMNS, branch_outcomes, summarise
from local_lib.data.text_tokenizer import CharTokenizer
from local_lib.models.easpm import EASPM, EASPMBundle, save_easpm
from local_lib.models.evaluator_nets import EvaluatorNetConfig, UtteranceClassifierNet
from local_lib.models.gradtts import GradTTS, GradTTSBundle
from local_lib.rl.easpo import EASPOConfig

CFG = EASPOConfig(n_steps=4, k=3, kappa=0.25, t_max=0.75, temperature=1.5)
TEXT = "sentence number one"


def tiny_bundle(texts: list[str]) -> GradTTSBundle:
    torch.manual_seed(0)
    tokenizer = CharTokenizer.build(texts)
    tts = GradTTS(TINY_TTS, tokenizer.vocab_size, n_speakers=2, n_emotions=3)
    return GradTTSBundle(tts, tokenizer, ["0011", "0012"], list(EMOTIONS))


def energy(mel: torch.Tensor, *_) -> torch.Tensor:
    """A fake scorer: the louder candidate wins."""
    return mel.mean(dim=(1, 2))


def loud(mel: torch.Tensor, _: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A fake judge that agrees with ``energy``; it calls only the loudest candidate right."""
    return energy(mel), energy(mel) == energy(mel).max()


def quiet(mel: torch.Tensor, _: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A fake judge that ranks the other way and calls every candidate wrong."""
    return -energy(mel), torch.zeros(mel.shape[0], dtype=torch.bool)


def outcomes(evaluator, seed: int = 0) -> list[easpm_agreement.Branch]:
    return branch_outcomes(
        tiny_bundle([TEXT]), energy, loud, evaluator, TEXT, "0011", "Sad", CFG, [1, 2, 3], True,
        torch.Generator().manual_seed(seed),
    )  # fmt: skip


def test_gaps_follow_the_judges() -> None:
    """An evaluator that judges like the scorer agrees with the finished-mel score exactly; one
    that judges the other way disagrees exactly: winner and loser reach both judges unswapped."""
    same = outcomes(loud)
    opposite = outcomes(quiet)
    assert [b.step for b in same] == [1, 2, 3]
    assert [b.t for b in same] == pytest.approx([0.5, 0.25, 0.0])
    for b, o in zip(same, opposite, strict=True):
        assert b.evaluator_gap == pytest.approx(b.final_gap)
        assert o.evaluator_gap == pytest.approx(-b.final_gap)
        assert b.score_gap > 0 and b.score_spread > 0
        assert b.evaluator_correct == b.easpm_correct and o.evaluator_correct == 0.0
        # the loud judge calls only its best candidate right: picking it gains 1 − 1/3
        assert b.accuracy_headroom == pytest.approx(2 / 3) and o.accuracy_headroom == 0.0
        assert b.evaluator_headroom > 0 and o.evaluator_headroom > 0
    # The last step's candidates are already clean: the finished mel is the candidate itself.
    assert same[-1].final_gap == pytest.approx(same[-1].score_gap)
    assert [b.easpm_correct for b in same] == pytest.approx([1 / 3] * 3)
    assert outcomes(loud, seed=0) == same
    assert outcomes(loud, seed=1) != same


def test_summary_by_hand(tmp_path: Path) -> None:
    tsv = tmp_path / "agreement.tsv"
    rows = [  # step, final_gap, evaluator_gap, easpm_correct, evaluator_correct, headroom
        (1, 0.5, 0.2, 1.0, 0.5, 0.1), (1, -0.1, 0.3, 1.0, 0.25, 0.3), (2, 0.0, -1.0, 0.5, 0.0, 0.0),
        (2, 1.0, -1.0, 1.0, 1.0, 0.2),
    ]  # fmt: skip
    with tsv.open("w", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS, delimiter="\t")
        writer.writeheader()
        for n, (step, final, ev, easpm_ok, ev_ok, room) in enumerate(rows):
            writer.writerow({"utt": f"u{n}", "emotion": "Sad", "step": step, "t": 0.9 - 0.1 * step,
                             "score_spread": 0.1, "score_gap": 0.3, "final_gap": final,
                             "evaluator_gap": ev, "easpm_correct": easpm_ok,
                             "evaluator_correct": ev_ok, "evaluator_headroom": room,
                             "accuracy_headroom": 1.0 - ev_ok})  # fmt: skip
    lines = summarise(tsv).splitlines()
    split = [[c.strip() for c in line.split("|")[1:-1]] for line in lines[2:]]
    cells = {row[0]: row[1:] for row in split}
    # step 1: EASPM 1 of 2 positive, evaluator 2 of 2; step 2: a tie counts as disagreement.
    assert cells["1"][:2] == ["0.80", "2"]
    assert cells["1"][3].startswith("50 ") and cells["1"][4].startswith("100 ")
    assert cells["1"][5:8] == ["+0.250", "100", "38"]
    assert cells["1"][8].startswith("+0.200 [+0.100, +0.300]")
    assert cells["1"][9] == "+62.5 [+50.0, +75.0]"
    assert cells["2"][3].startswith("50 ") and cells["2"][4].startswith("0 ")
    assert cells["all"][1] == "4" and cells["all"][3].startswith("50 ")
    assert cells["all"][4].startswith("50 ")
    assert cells["all"][5:8] == ["-0.375", "88", "44"]
    assert cells["all"][8].startswith("+0.150 [") and cells["all"][9].startswith("+56.2 [")


def test_cli_writes_resumes_and_extends(tmp_path: Path) -> None:
    data = write_fake_corpus(tmp_path, "dev", n_sentences=2, seed=0)
    texts = [line.split(maxsplit=1)[1] for line in (data / "text").read_text().splitlines()]
    tiny_bundle(texts).save(tmp_path / "tts.pt")
    torch.manual_seed(1)
    save_easpm(EASPMBundle(EASPM(TINY_EASPM, n_emotions=3), ["Sad", "Angry", "Neutral"], 3),
               tmp_path / "easpm.pt")  # fmt: skip
    net_cfg = EvaluatorNetConfig(kind="emotion", n_mels=N_MELS, channels=8, embed_dim=4)
    feats = {"sample_rate": 16000, "n_fft": 256, "win_length": 256, "hop_length": 64,
             "n_mels": N_MELS, "f_max": 8000.0}  # fmt: skip
    torch.save({"kind": "evaluator", "net_config": dataclasses.asdict(net_cfg),
                "mel_config": feats, "labels": list(EMOTIONS),
                "model": UtteranceClassifierNet(net_cfg, 3).state_dict()},
               tmp_path / "emotion.pt")  # fmt: skip
    (tmp_path / "feats.yaml").write_text("".join(f"{k}: {v}\n" for k, v in feats.items()))
    (tmp_path / "easpo.yaml").write_text("rollout: {n_steps: 4, k: 3, kappa: 0.25, t_max: 0.75}\n")
    out = tmp_path / "agree"

    def run(n: int, *extra: str) -> list[dict]:
        easpm_agreement.main([
            "--config", str(tmp_path / "easpo.yaml"), "--model", str(tmp_path / "tts.pt"),
            "--easpm", str(tmp_path / "easpm.pt"), "--emotion", str(tmp_path / "emotion.pt"),
            "--data-dir", str(data), "--feats-config", str(tmp_path / "feats.yaml"),
            "--out-dir", str(out), "--num-prompts", str(n), "--vocoder-iters", "2", *extra,
        ])  # fmt: skip
        with (out / "agreement.tsv").open() as f:
            return list(csv.DictReader(f, delimiter="\t"))

    first = run(2)
    # Eligible steps of n_steps 4, kappa 0.25, t_max 0.75: 1, 2 and 3; two prompts (first, last).
    assert [(r["utt"], r["step"]) for r in first] == [
        (u, s) for u in ("0011_000001", "0012_000202") for s in ("1", "2", "3")
    ]
    assert run(2) == first  # re-run: nothing recomputed, nothing duplicated
    third = run(3)
    assert third[:6] == first and {r["utt"] for r in third[6:]} == {"0012_000001"}
    assert "| all |" in (out / "agreement.md").read_text()
    # a table from a version with other columns is refused, naming it, not appended to
    old_tsv = (out / "agreement.tsv").read_text().replace("\taccuracy_headroom", "", 1)
    (out / "agreement.tsv").write_text(old_tsv)
    with pytest.raises(ValueError, match="agreement.tsv: columns .* not this version"):
        run(3)
    restored = old_tsv.replace("headroom", "headroom\taccuracy_headroom", 1)
    (out / "agreement.tsv").write_text(restored)
    with pytest.raises(ValueError, match="--steps"):
        run(2, "--steps", "4")
    # A speaker model given as the emotion evaluator, and prompts without emotions, fail up front.
    torch.save({"kind": "evaluator", "net_config": dataclasses.asdict(net_cfg),
                "mel_config": feats, "labels": ["0011", "0012"]}, tmp_path / "emotion.pt")
    with pytest.raises(ValueError, match="lack the emotions"):
        run(2)
    (data / "utt2emo").unlink()
    with pytest.raises(ValueError, match="no utt2emo"):
        run(2)


def test_classifier_judges_finished_mels(tmp_path: Path) -> None:
    """[ours] A classifier as the preference model scores the ODE-finished candidates, so its
    branch gap is its gap on the finished mels; with the branch judge it is refused."""
    data = write_fake_corpus(tmp_path, "dev", n_sentences=1, seed=0)
    texts = [line.split(maxsplit=1)[1] for line in (data / "text").read_text().splitlines()]
    tiny_bundle(texts).save(tmp_path / "tts.pt")
    net_cfg = EvaluatorNetConfig(kind="emotion", n_mels=N_MELS, channels=8, embed_dim=4)
    feats = {"sample_rate": 16000, "n_fft": 256, "win_length": 256, "hop_length": 64,
             "n_mels": N_MELS, "f_max": 8000.0}  # fmt: skip
    for name, seed in (("emotion.pt", 2), ("clf.pt", 3)):
        torch.manual_seed(seed)
        torch.save({"kind": "evaluator", "net_config": dataclasses.asdict(net_cfg),
                    "mel_config": feats, "labels": ["Sad", "Angry", "Neutral"],
                    "model": UtteranceClassifierNet(net_cfg, 3).state_dict()},
                   tmp_path / name)  # fmt: skip
    (tmp_path / "feats.yaml").write_text("".join(f"{k}: {v}\n" for k, v in feats.items()))
    rollout = "rollout: {n_steps: 4, k: 3, kappa: 0.25, t_max: 0.75, judge: %s}\n"

    def run(judge: str) -> list[dict]:
        (tmp_path / "easpo.yaml").write_text(rollout % judge)
        out = tmp_path / f"agree_{judge}"
        easpm_agreement.main([
            "--config", str(tmp_path / "easpo.yaml"), "--model", str(tmp_path / "tts.pt"),
            "--easpm", str(tmp_path / "clf.pt"), "--emotion", str(tmp_path / "emotion.pt"),
            "--data-dir", str(data), "--feats-config", str(tmp_path / "feats.yaml"),
            "--out-dir", str(out), "--num-prompts", "1", "--vocoder-iters", "2",
        ])  # fmt: skip
        with (out / "agreement.tsv").open() as f:
            return list(csv.DictReader(f, delimiter="\t"))

    rows = run("finished")
    assert [r["step"] for r in rows] == ["1", "2", "3"]
    for r in rows:
        assert float(r["final_gap"]) == pytest.approx(float(r["score_gap"]), abs=1e-5)
        assert float(r["score_gap"]) > 0.0  # three random candidates do not tie
    with pytest.raises(ValueError, match="clf.pt: an emotion classifier .* judge: finished"):
        run("branch")


def test_headroom_cell_by_hand() -> None:
    """Mean and bootstrap interval over prompts; a non-finite value leaves the bare mean."""
    assert easpm_agreement._mean_with_interval([0.1, 0.1, 0.1], "+.3f") == "+0.100 [+0.100, +0.100]"
    cell = easpm_agreement._mean_with_interval([0.0, 1.0], "+.1f")
    assert cell.startswith("+0.5 [+0.0, ") and cell.endswith("+1.0]")
    assert easpm_agreement._mean_with_interval([1.0, float("nan")], "+.1f") == "+nan"
