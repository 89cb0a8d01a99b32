"""A codec-LM method plugs into the recipes with its own files only.

The toy method of toy_method/ (``local_lib/rl/toy.py``: its METHOD spec and loss;
``local_lib/bin/train_toy.py`` on the shared stage-5 entry point; ``conf/toy_debug.yaml``) is
copied into a sandbox whose local_lib is a copy of the checkout's. The GRPO recipe then runs
stages 1-8 with ``--method toy``, and stages 4-8 again under ``--tag x`` from the first run's
base (``--pretrained tts_base=DIR``). Nothing shared is edited, in the sandbox or the checkout.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from recipe_sandbox import REPO_ROOT, copy_package, make_sandbox, run_recipe, tree_bytes

from local_lib.models.codec_lm import CodecLM
from local_lib.train.trainer import read_metrics

# About as long as the GRPO debug run (test_recipe_grpo.py) plus a shorter tagged one.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]
TOY = Path(__file__).parent / "toy_method"
TOY_MODULES = ("local_lib/rl/toy.py", "local_lib/bin/train_toy.py")
TOY_CONFIG = "conf/toy_debug.yaml"
RUN_ARGS = ("--nj", "2", "--config_suffix", "_debug", "--method", "toy")
OUTPUTS = ("data", "dump", "exp", "downloads", ".run.lock")  # what a run writes in the recipe dir


@dataclass
class ToyRuns:
    root: Path
    recipe_dir: Path
    package_before: dict[str, bytes]
    recipe_before: dict[str, bytes]
    untagged_report: bytes  # exp/report/REPORT.md before the tagged run
    output: str
    tagged_output: str


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> ToyRuns:
    root = tmp_path_factory.mktemp("toy")
    package_before = tree_bytes(copy_package(root))
    recipe_dir = make_sandbox(root, "libritts/grpo")
    recipe_before = tree_bytes(recipe_dir)
    for module in TOY_MODULES:
        shutil.copy(TOY / module, root / module)
    shutil.copy(TOY / TOY_CONFIG, recipe_dir / TOY_CONFIG)
    first = run_recipe(recipe_dir, *RUN_ARGS, timeout=3600)
    assert first.returncode == 0, first.output
    report = (recipe_dir / "exp/report/REPORT.md").read_bytes()
    base = recipe_dir / "exp/tts_base/model"
    tagged = run_recipe(
        recipe_dir, *RUN_ARGS, "--stage", "4", "--tag", "x", "--pretrained", f"tts_base={base}",
        timeout=3600,
    )  # fmt: skip
    print(f"libritts/grpo --method toy: stages 1-8 {first.seconds:.1f} s, "
          f"stages 4-8 with --tag x {tagged.seconds:.1f} s")  # fmt: skip
    assert tagged.returncode == 0, tagged.output
    return ToyRuns(
        root, recipe_dir, package_before, recipe_before, report, first.output, tagged.output
    )


def test_the_toy_method_runs_every_stage(toy):
    assert "finished toy: stages 1 2 3 4 5 6 7 8" in toy.output
    assert "not built yet" not in toy.output
    assert "stage 5: train_toy -> exp/tts_toy " in toy.output


def test_the_toy_method_trains_from_the_base(toy):
    base = CodecLM.from_pretrained(toy.recipe_dir / "exp/tts_base/model")
    trained = CodecLM.from_pretrained(toy.recipe_dir / "exp/tts_toy/model")
    pairs = zip(base.model.parameters(), trained.model.parameters(), strict=True)
    assert any(not torch.equal(p, q) for p, q in pairs), "the toy method left the base unchanged"
    last = read_metrics(toy.recipe_dir / "exp/tts_toy/metrics.jsonl")[-1]
    assert last["step"] == 2 and {"loss", "completion_len"} <= set(last)
    command = (toy.recipe_dir / "exp/tts_toy/log/train.log").read_text().splitlines()[0]
    assert "--reward-model reward_ctc=exp/reward_ctc/model.pt" in command


def test_the_reports_list_the_toy_method(toy):
    report = (toy.recipe_dir / "exp/report/REPORT.md").read_text()
    assert "toy" in report and "base" in report
    assert (toy.recipe_dir / "exp/report/curves.png").is_file()
    assert "toy" in (toy.recipe_dir / "exp/report_reward_asr/REPORT.md").read_text()


def test_no_shared_file_differs_from_the_repository(toy):
    package = tree_bytes(toy.root / "local_lib")
    added = {m.removeprefix("local_lib/"): (TOY / m).read_bytes() for m in TOY_MODULES}
    assert package == {**toy.package_before, **added}
    recipe = tree_bytes(toy.recipe_dir, skip=OUTPUTS)
    assert recipe == {**toy.recipe_before, TOY_CONFIG: (TOY / TOY_CONFIG).read_bytes()}
    # the package and the recipe were copies, so the runs could not write into the checkout
    assert not (toy.root / "local_lib").is_symlink() and not toy.recipe_dir.is_symlink()
    assert (toy.root / "egs/TEMPLATE").resolve() == REPO_ROOT / "egs/TEMPLATE"


def test_a_tag_writes_its_own_systems_and_reports_from_the_shared_base(toy):
    recipe_dir = toy.recipe_dir
    base = recipe_dir / "exp/tts_base_x/model"
    assert base.readlink() == (recipe_dir / "exp/tts_base/model").resolve()
    assert "stage 4: exp/tts_base_x/model -> " in toy.tagged_output
    assert not (recipe_dir / "exp/tts_base_x/log").exists()  # linked, not trained
    assert CodecLM.from_pretrained(recipe_dir / "exp/tts_toy_x/model")
    for report in ("exp/report_x/REPORT.md", "exp/report_reward_asr_x/REPORT.md"):
        assert "toy (x)" in (recipe_dir / report).read_text(), report
    assert (recipe_dir / "exp/report/REPORT.md").read_bytes() == toy.untagged_report
    # the shared outputs are reused, not made again
    for done in ("exp/tokenizer_resynth/test/.done", "exp/resynth/test/.done"):
        assert f"{done} is up to date, skipping" in toy.tagged_output, done
    # the same base model and seed synthesise the same audio under either tag
    scores = [recipe_dir / f"exp/{tts}/synth/test/scores.tsv" for tts in ("tts_base", "tts_base_x")]
    assert scores[0].read_text() == scores[1].read_text()
