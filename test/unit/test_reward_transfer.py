"""Reward transfer: the slope, the gains, the predicted change and the shortfall by hand, and the
CLI on two fake best_of_n out-dirs (its report, and its refusals)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml
from PIL import Image

from local_lib.bin import best_of_n, reward_transfer
from local_lib.eval.picks import TextSamples
from local_lib.eval.reward_transfer import render, transfer

# The base's samples of 2 texts. Within text a: rewards 0, 1 and WERs 0.5, 0.3 (Σ dr·dw = −0.1,
# Σ dr² = 0.5); within b: 1, 3 and 0.8, 0.4 (−0.4, 2). Pooled slope 100 · −0.5 / 2.5 = −20 WER
# points per unit of reward; each text alone has that slope too.
BASE = [
    TextSamples("a", reward=[0.0, 1.0], wer=[0.5, 0.3], cer=[0.2, 0.1]),
    TextSamples("b", reward=[1.0, 3.0], wer=[0.8, 0.4], cer=[0.4, 0.2]),
]


def test_reward_gained_without_wer_is_a_shortfall_by_hand():
    # reward means 0.5 -> 2 (+1.5) and 2 -> 3 (+1): gain 1.25; WER means unchanged
    system = [
        TextSamples("b", reward=[3.0, 3.0], wer=[0.6, 0.6], cer=[0.3, 0.3]),
        TextSamples("a", reward=[2.0, 2.0], wer=[0.4, 0.4], cer=[0.2, 0.2]),
    ]
    t = transfer(BASE, system, seed=0)
    assert t.text_reward_gains == pytest.approx((1.5, 1.0))  # the base's order: a, b
    assert t.text_wer_changes == pytest.approx((0.0, 0.0), abs=1e-12)
    assert t.slope.estimate == pytest.approx(-20.0)
    assert t.reward_gain.estimate == pytest.approx(1.25)
    assert t.wer_change.estimate == pytest.approx(0.0)
    assert t.predicted.estimate == pytest.approx(-25.0)
    assert t.shortfall.estimate == pytest.approx(25.0)
    assert t.shortfall.low > 0  # every resample: slope −20, gains of 1 or 1.5, no WER change
    assert t.slope.n == 2


def test_a_gain_bought_as_selection_buys_it_has_no_shortfall():
    # Δr 1 and 0.5 with Δw = −20 points per unit in each text: the shortfall is 0 on every
    # resample, since both texts have the slope −20
    system = [
        TextSamples("a", reward=[1.0, 2.0], wer=[0.3, 0.1], cer=[0.1, 0.1]),
        TextSamples("b", reward=[2.0, 3.0], wer=[0.6, 0.4], cer=[0.3, 0.2]),
    ]
    t = transfer(BASE, system, seed=1)
    assert t.wer_change.estimate == pytest.approx(-15.0)
    assert t.predicted.estimate == pytest.approx(-15.0)
    for value in (t.shortfall.estimate, t.shortfall.low, t.shortfall.high):
        assert value == pytest.approx(0.0, abs=1e-9)
    table = render({"sys": t}, texts=2, seed=1)
    assert "| sys | +0.750 [" in table and "-15.00 [" in table
    assert "Slope among the base's samples of a text: -20.00 [-20.00, -20.00]" in table


def test_refusals():
    other = [TextSamples("a", reward=[1.0, 1.0], wer=[0.1, 0.1], cer=[0.1, 0.1])]
    with pytest.raises(ValueError, match=r"sys: .*only the base has \['b'\]"):
        transfer(BASE, other, "sys")
    flat = [TextSamples(u, reward=[1.0, 1.0], wer=[0.1, 0.2], cer=[0.1, 0.1]) for u in "ab"]
    with pytest.raises(ValueError, match="constant within every text"):
        transfer(flat, flat)


def _out_dir(root: Path, name: str, texts: list[TextSamples], **changes) -> Path:
    out = root / name
    out.mkdir()
    cfg = {"base_dir": f"exp/tts_{name}/model", "reward_model": "exp/token2text/model.pt",
           "evaluator_asr": "exp/eval_asr/model.pt", "n": 2, "texts": 2, "seed": 0}  # fmt: skip
    cfg.update(changes)
    (out / "config.yaml").write_text(yaml.safe_dump(cfg))
    with (out / best_of_n.SAMPLES).open("w", newline="") as f:
        writer = csv.DictWriter(f, best_of_n.COLUMNS, delimiter="\t")
        writer.writeheader()
        for t in texts:
            for k in range(2):
                writer.writerow({"utt": t.utt, "k": k, "reward": t.reward[k], "wer": t.wer[k],
                                 "cer": t.cer[k], "sim": "", "tokens": 10, "prompt": "p",
                                 "hyp": "x"})  # fmt: skip
    return out


def test_cli_reports_and_refuses_other_settings(tmp_path, capsys):
    system = [
        TextSamples("a", reward=[2.0, 2.0], wer=[0.4, 0.4], cer=[0.2, 0.2]),
        TextSamples("b", reward=[3.0, 3.0], wer=[0.6, 0.6], cer=[0.3, 0.3]),
    ]
    base, sys_dir = _out_dir(tmp_path, "base", BASE), _out_dir(tmp_path, "sys", system)
    out = tmp_path / "transfer"
    argv = ["--base", str(base), "--system", f"sys={sys_dir}", "--out-dir", str(out)]
    reward_transfer.main(argv)
    report = (out / reward_transfer.REPORT).read_text()
    assert "| sys | +1.250 [" in report and "| +25.00 [" in report
    assert "exp/tts_sys/model" in report and "exp/tts_base/model" in report
    assert "--system" in (out / "command.sh").read_text()
    assert f"]({reward_transfer.FIGURE})" in report
    with Image.open(out / reward_transfer.FIGURE) as image:
        assert image.format == "PNG" and image.size[0] == 360  # one 3.6-inch panel at 100 dpi
    assert "+25.00" in capsys.readouterr().out

    seeded = _out_dir(tmp_path, "seeded", system, seed=1)

    def run(system_arg: str) -> None:
        reward_transfer.main(["--base", str(base), "--system", system_arg, "--out-dir", str(out)])

    with pytest.raises(ValueError, match=r"seeded/config.yaml: .*seed is 1, the base's 0"):
        run(f"s={seeded}")
    short = _out_dir(tmp_path, "short", system[:1])
    with pytest.raises(ValueError, match=r"short/samples.tsv: 1 texts .* wanted 2"):
        run(f"s={short}")
    with pytest.raises(SystemExit):
        run("nodir")
    warm = _out_dir(tmp_path, "warm", system, rollout={"temperature": 1.0, "top_k": 0})
    (base / "config.yaml").write_text(yaml.safe_dump(
        {**yaml.safe_load((base / "config.yaml").read_text()),
         "rollout": {"temperature": 0.6, "top_k": 0}}))  # fmt: skip
    with pytest.raises(ValueError, match=r"rollout.temperature is 1.0, the base's 0.6 "
                                         r"\(differing: rollout.temperature\)"):  # fmt: skip
        run(f"s={warm}")
    (base / "config.yaml").write_text(yaml.safe_dump({**yaml.safe_load(
        (base / "config.yaml").read_text()), "rollout": {"temperature": 1.0, "top_k": 0}}))
    bad = _out_dir(tmp_path, "bad", system, rollout={"temperature": 1.0, "top_k": 0})
    tsv = bad / best_of_n.SAMPLES
    tsv.write_text(tsv.read_text().replace("\t3.0\t", "\tnan?\t"))
    with pytest.raises(ValueError, match=r"bad/samples.tsv: text b: could not convert"):
        run(f"s={bad}")
