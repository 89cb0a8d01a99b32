"""The comparison report of egs/libritts/compare: hand-checked table cells, best rivals, the
reward model's view paired against its own base, the CPU-seconds plot, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from local_lib.bin.compare_methods import main
from local_lib.eval.method_comparison import (
    best_others,
    corpus_metric,
    parse_method,
    stage5_cost,
)
from local_lib.eval.score_table import write_scores

# Four utterances of ten words: WER = errors / 40.
BASE = [2, 1, 3, 1]  # 17.5 %
ERRORS = {"a": [0, 0, 1, 0], "b": [1, 1, 1, 1], "c": [3, 0, 4, 0]}  # 2.5, 10.0, 17.5 %


def _scores(directory: Path, errors: list[int]) -> None:
    rows = [
        {"utt": f"u{i}", "ref_text": "w " * 10, "word_errors": e, "words": 10, "wer": e / 10,
         "bad_case": 0, "spk_sim": 0.5}
        for i, e in enumerate(errors)
    ]  # fmt: skip
    write_scores(directory / "scores.tsv", rows)


def _metrics(directory: Path, records: list[dict]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


@pytest.fixture()
def exp(tmp_path: Path) -> Path:
    for name, errors in ERRORS.items():
        _scores(tmp_path / f"tts_{name}/synth/test", errors)
        _scores(tmp_path / f"tts_base_{name}/synth/test", BASE)
    # a's reward ASR reads its audio at 10 %, the base's at 20 %: -1 word on every utterance
    _scores(tmp_path / "tts_a/synth/test/reward_asr", [1, 1, 1, 1])
    _scores(tmp_path / "tts_base_a/synth/test/reward_asr", [2, 2, 2, 2])
    _metrics(tmp_path / "tts_a", [
        {"step": 1, "cpu_s": 5.0, "rollout_tokens_per_s": 100.0, "completion_len": 50.0},
        {"step": 2, "cpu_s": 12.0, "rollout_tokens_per_s": 200.0, "completion_len": 25.0},
    ])
    _scores(tmp_path / "tts_base_a_at1/synth/test", [1, 0, 1, 0])  # a's checkpoint 1: 5 %
    _metrics(tmp_path / "tts_b", [{"step": 3, "cpu_s": 11.0}])
    _metrics(tmp_path / "tts_c", [{"step": 4, "cpu_s": 9.5}])
    return tmp_path


def _args(exp: Path, names=("a", "b", "c")) -> list[str]:
    args = ["--out-dir", str(exp / "report"), "--set", "test"]
    args += ["--checkpoint", f"a=1,{exp / 'tts_base_a_at1'}"]
    for n in names:
        args += ["--method", f"{n}={exp / f'tts_{n}'},{exp / f'tts_base_{n}'}"]
    return args


def _row(text: str, first: str, section: str) -> list[str]:
    part = text.split(f"## {section}")[1]
    return next(
        [c.strip() for c in line.strip("|").split("|")]
        for line in part.splitlines() if line.startswith(f"| {first} ")
    )  # fmt: skip


def test_the_table_the_rivals_the_view_and_the_plot(exp: Path) -> None:
    main(_args(exp))
    text = (exp / "report/REPORT.md").read_text()
    a = _row(text, "a", "One table")
    assert a[1].startswith("2.50 [") and a[4] == "10.00 [10.00, 10.00]"
    assert a[3] == "0.500 [0.500, 0.500]"  # speaker SIM, not the bad-case rate (0)
    # steps, CPU s, mean tokens/s, mean samples/s ((100 / 50 + 200 / 25) / 2), best rival
    assert a[5:] == ["2", "12.0", "150.0", "5.00", "b"]
    assert _row(text, "b", "One table")[4:] == ["—", "3", "11.0", "—", "—", "a"]
    assert _row(text, "c", "One table")[-1] == "a"
    assert _row(text, "base", "One table")[1].startswith("17.50 [")
    assert _row(text, "a", "The reward model") == ["a", "-10.00 [-10.00, -10.00]"]
    # the evaluator report follows: against base, and each method against its rival
    assert _row(text, "a − base", "Paired differences against base")[1].startswith("-15.00 [")
    assert _row(text, "c − a", "Other paired differences")[1].startswith("+15.00 [")
    assert (exp / "report/wer_vs_cpu.png").stat().st_size > 0
    assert _row(text, "a", "Evaluator WER against")[1] == "(0.0, 17.50), (5.0, 5.00), (12.0, 2.50)"
    assert _row(text, "c", "Evaluator WER against")[1] == "(0.0, 17.50), (9.5, 17.50)"
    assert "python -m local_lib.bin.compare_methods --out-dir" in text


def test_without_cpu_seconds_there_is_no_plot(exp: Path) -> None:
    _metrics(exp / "tts_c", [{"step": 4}])
    main(_args(exp))
    assert "No CPU-seconds plot: no `cpu_s` logged by c" in (exp / "report/REPORT.md").read_text()
    assert not (exp / "report/wer_vs_cpu.png").exists()


def test_helpers_by_hand(exp: Path) -> None:
    assert best_others({"a": 2.5, "b": 10.0, "c": 2.5}) == {"a": "c", "b": "a", "c": "a"}
    assert best_others({"a": 1.0}) == {}
    assert stage5_cost(exp / "tts_a").tokens_per_s == 150.0
    assert stage5_cost(exp / "tts_a").samples_per_s == 5.0
    assert corpus_metric("spk_sim").name == "speaker SIM"
    run = parse_method("g=exp/x,exp/y")
    assert (run.name, str(run.directory), str(run.base_directory)) == ("g", "exp/x", "exp/y")


def test_bad_input_is_named(exp: Path) -> None:
    with pytest.raises(ValueError, match="expected NAME=METHOD_DIR,BASE_DIR"):
        parse_method("g=exp/x")
    with pytest.raises(SystemExit, match="--checkpoint 'z=1,d': no --method z"):
        main([*_args(exp), "--checkpoint", "z=1,d"])
    with pytest.raises(SystemExit, match=r"tts_b/metrics.jsonl: no cpu_s logged at step 2"):
        main([*_args(exp), "--checkpoint", f"b=2,{exp / 'tts_base_a_at1'}"])
    (exp / "tts_b/metrics.jsonl").unlink()
    with pytest.raises(SystemExit, match=r"tts_b/metrics.jsonl: no stage-5 metrics"):
        main(_args(exp))
