"""Best-of-N headroom: the picks and the summary by hand with a fake judge, then the CLI end to
end on tiny random models (resume, a cut-short text sampled again, a changed N refused)."""

from __future__ import annotations

import csv
import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from test_benchmark_reward_path import _inputs
from tiny_codec_models import MEL, TEXTS

from local_lib.bin import best_of_n
from local_lib.bin.synth_gradtts import utterance_seed
from local_lib.data.audio import save_audio
from local_lib.data.kaldi_dir import write_kv
from local_lib.eval.picks import (
    EVALUATOR,
    MEAN,
    RANDOM,
    REWARD,
    Picks,
    TextSamples,
    evenly_spaced,
    pick,
    render,
    summarise,
)
from local_lib.models.evaluator_nets import EvaluatorNetConfig
from local_lib.models.evaluators import build_evaluator

# A fake judge's scores of 2 texts x 3 samples.
T1 = TextSamples("t1", reward=[0.2, 0.9, 0.9], wer=[0.5, 0.25, 0.0], cer=[0.3, 0.1, 0.0],
                 sim=[0.5, 0.6, 0.7])  # fmt: skip
T2 = TextSamples("t2", reward=[0.1, 0.7, 0.3], wer=[0.5, 0.0, 0.0], cer=[0.3, 0.2, 0.1],
                 sim=[0.1, 0.2, 0.3])  # fmt: skip


def test_picks_by_hand() -> None:
    # reward: the first of the tied maxima; evaluator: lowest WER, the WER tie broken by CER
    assert pick(T1, seed=0) == Picks(reward=1, random=2, evaluator=2)
    assert pick(T2, seed=0) == Picks(reward=1, random=0, evaluator=2)
    for seed in range(5):
        for t in (T1, T2):
            want = np.random.default_rng(utterance_seed(seed, t.utt)).integers(3)
            assert pick(t, seed).random == want == pick(t, seed).random
    assert len({pick(T2, seed).random for seed in range(5)}) > 1  # the seed matters
    tied = TextSamples("t3", reward=[1.0, 1.0], wer=[0.2, 0.2], cer=[0.1, 0.1])
    assert (pick(tied, 0).reward, pick(tied, 0).evaluator) == (0, 0)


def test_summary_by_hand() -> None:
    h = summarise([T1, T2], seed=0)
    assert h.metrics == ["wer", "cer", "sim", "reward"]
    means = {p: {m: iv.estimate for m, iv in h.picks[p].items()} for p in h.picks}
    assert means[REWARD]["wer"] == pytest.approx((0.25 + 0.0) / 2)
    assert means[RANDOM]["wer"] == pytest.approx((0.0 + 0.5) / 2)  # samples 2 and 0
    assert means[EVALUATOR]["wer"] == pytest.approx(0.0)
    assert means[MEAN]["wer"] == pytest.approx((0.75 / 3 + 0.5 / 3) / 2)
    diff = {k: {m: iv.estimate for m, iv in v.items()} for k, v in h.differences.items()}
    assert diff[REWARD, RANDOM]["wer"] == pytest.approx(0.125 - 0.25)
    assert diff[REWARD, RANDOM]["cer"] == pytest.approx(0.15 - 0.15)
    assert diff[REWARD, RANDOM]["reward"] == pytest.approx(0.8 - 0.5)
    assert diff[EVALUATOR, RANDOM]["wer"] == pytest.approx(0.0 - 0.25)
    assert diff[EVALUATOR, RANDOM]["cer"] == pytest.approx(0.05 - 0.15)
    assert diff[EVALUATOR, RANDOM]["sim"] == pytest.approx((0.7 + 0.3) / 2 - (0.7 + 0.1) / 2)
    assert diff[REWARD, MEAN]["wer"] == pytest.approx(0.125 - 1.25 / 6)
    # ranks within t1: reward (1, 2.5, 2.5) vs WER (3, 2, 1); t2: (1, 3, 2) vs (3, 1.5, 1.5)
    assert h.spearman.estimate == pytest.approx(-math.sqrt(3) / 2)
    assert h.spearman.n == 2
    table = render(h)
    assert "| (a) reward pick − (b) random pick | -12.50 [" in table
    assert "| (c) evaluator pick | 0.00 [0.00, 0.00] | 5.00 [0.00, 10.00] | 0.500 [" in table


def test_summary_without_sim_and_with_constant_rewards() -> None:
    flat = [dataclasses.replace(t, reward=[0.5] * 3, sim=None) for t in (T1, T2)]
    h = summarise(flat, seed=0)
    assert h.metrics == ["wer", "cer", "reward"] and h.spearman is None
    assert "SIM" not in render(h) and "undefined" in render(h)
    with pytest.raises(ValueError, match="some texts have a speaker SIM"):
        summarise([T1, flat[0]], seed=0)


def test_evenly_spaced_spans_the_set() -> None:
    assert evenly_spaced(4, 3) == [0, 2, 3]
    assert evenly_spaced(10, 2) == [0, 9]
    assert evenly_spaced(2, 5) == [0, 1]


def _cli(root: Path) -> list[str]:
    """The benchmark's tiny models and data, plus natural audio and a speaker evaluator."""
    args = _inputs(root)
    del args[args.index("--steps") : args.index("--steps") + 2]
    rng = np.random.default_rng(1)
    scp = {}
    for utt in TEXTS:
        scp[utt] = str(root / f"{utt}.wav")
        save_audio(scp[utt], 0.1 * rng.standard_normal(4000).astype(np.float32))
    write_kv(root / "data" / "wav.scp", scp)
    net = EvaluatorNetConfig(kind="speaker", n_mels=MEL.n_mels, channels=8, conv_layers=1,
                             embed_dim=8)  # fmt: skip
    state = {
        "kind": "evaluator",
        "net_config": dataclasses.asdict(net),
        "mel_config": dataclasses.asdict(MEL),
        "labels": ["a", "b"],
    }
    state["model"] = build_evaluator(state).net.state_dict()
    torch.save(state, root / "speaker.pt")
    return [
        *args, "--evaluator-asr", str(root / "asr.pt"), "--evaluator-speaker",
        str(root / "speaker.pt"), "--n", "3", "--texts", "3", "--out-dir", str(root / "out"),
    ]  # fmt: skip


def _rows(tsv: Path) -> list[dict[str, str]]:
    with tsv.open(newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def test_cli_writes_resumes_and_refuses_a_changed_n(tmp_path, capsys, monkeypatch) -> None:
    args = _cli(tmp_path)
    out = tmp_path / "out"
    best_of_n.main(args)
    printed = capsys.readouterr().out
    rows = _rows(out / "samples.tsv")
    assert [(r["utt"], r["k"]) for r in rows] == [
        (u, str(k)) for u in ("a_1", "b_1", "b_2") for k in range(3)
    ]
    assert all(r["sim"] and -1 <= float(r["sim"]) <= 1 and 0 <= float(r["reward"]) for r in rows)
    report = (out / "BEST_OF_N.md").read_text()
    assert report.strip() in printed
    done = best_of_n.finished_texts(out / "samples.tsv", 3)
    assert render(summarise([done[u] for u in ("a_1", "b_1", "b_2")], 0)) in report

    # a second run samples nothing; a text a kill cut short is sampled again, identically
    calls = []
    sample_rows = best_of_n.sample_rows
    monkeypatch.setattr(
        best_of_n, "sample_rows", lambda *a: calls.append(a[3]) or sample_rows(*a)
    )
    best_of_n.main(args)
    assert calls == [] and (out / "BEST_OF_N.md").read_text() == report
    lines = (out / "samples.tsv").read_text().splitlines(keepends=True)
    (out / "samples.tsv").write_text("".join(lines[:-1]) + lines[-1][:10])
    best_of_n.main(args)
    assert calls == ["b_2"] and _rows(out / "samples.tsv") == rows

    n = args.index("--n") + 1
    with pytest.raises(SystemExit, match="n: 3 there, 4 now"):
        best_of_n.main(args[:n] + ["4"] + args[n + 1 :])


def test_cli_measures_a_reward_from_its_own_yaml(tmp_path) -> None:
    args = _cli(tmp_path)
    (tmp_path / "wer.yaml").write_text("components:\n  asr_wer: {scale: 3.0}\n")
    best_of_n.main([*args, "--texts", "1", "--rewards-config", str(tmp_path / "wer.yaml")])
    report = (tmp_path / "out" / "BEST_OF_N.md").read_text()
    assert f"- reward: asr_wer (sum, {tmp_path / 'wer.yaml'})" in report
    assert "1 texts;" in report
    (tmp_path / "bad.yaml").write_text("components:\n  asr_wer: {sclae: 3.0}\n")
    bad = [*args, "--rewards-config", str(tmp_path / "bad.yaml"), "--out-dir", str(tmp_path / "b")]
    with pytest.raises(ValueError, match=r"bad.yaml: reward 'asr_wer': unknown option"):
        best_of_n.main(bad)


def test_any_method_config_gives_the_sampling_and_one_without_rewards_needs_them(tmp_path) -> None:
    args = _cli(tmp_path)
    grpo = Path(args[args.index("--config") + 1])
    conf = yaml.safe_load(grpo.read_text())
    w3ar = tmp_path / "w3ar.yaml"  # a rollout section and no rewards, as conf/w3ar*.yaml
    w3ar.write_text(yaml.safe_dump({"rollout": conf["rollout"], "reward": {"beta": 0.1}}))
    rollout, rewards = best_of_n.sampling_and_rewards(grpo, None)
    assert rewards == conf["rewards"] and rollout.group_size == conf["rollout"]["group_size"]
    with pytest.raises(ValueError, match="w3ar.yaml has no rewards: section"):
        best_of_n.sampling_and_rewards(w3ar, None)
    (tmp_path / "wer.yaml").write_text("components:\n  asr_wer: {}\n")
    assert best_of_n.sampling_and_rewards(w3ar, tmp_path / "wer.yaml") == (
        rollout, {"components": {"asr_wer": {}}}
    )
    w3ar.write_text(yaml.safe_dump({"reward": {}}))
    with pytest.raises(ValueError, match="no rollout: section"):
        best_of_n.sampling_and_rewards(w3ar, tmp_path / "wer.yaml")
