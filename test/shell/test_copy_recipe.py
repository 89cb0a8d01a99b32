"""utils/copy_recipe.sh on a fake recipe inside a fake repository."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from shell_tools import UTILS, run_tool


@pytest.fixture
def fake_repo(tmp_path: Path) -> Path:
    """repo/utils (holding copy_recipe.sh) and a recipe egs/esd/easpo with run outputs."""
    repo = tmp_path / "repo"
    (repo / "utils").mkdir(parents=True)
    shutil.copy2(UTILS / "copy_recipe.sh", repo / "utils" / "copy_recipe.sh")
    recipe = repo / "egs/esd/easpo"
    for sub in ("conf", "local", "data/train", "dump", "exp/tts_base"):
        (recipe / sub).mkdir(parents=True)
    for name in ("run.sh", "cmd.sh", "path.sh", "db.sh", "conf/tts_mini.yaml", "local/data.sh",
                 "data/train/wav.scp", "exp/tts_base/model.pth"):
        (recipe / name).write_text(f"{name}\n")
    (recipe / "utils").symlink_to("../../../utils")
    return repo


def test_copy_makes_a_runnable_recipe_skeleton(fake_repo):
    result = run_tool(["utils/copy_recipe.sh", "egs/esd/easpo", "egs/mycorpus/new/easpo"],
                      cwd=fake_repo)
    assert result.returncode == 0, result.stderr
    dst = fake_repo / "egs/mycorpus/new/easpo"
    for name in ("run.sh", "cmd.sh", "path.sh", "db.sh", "conf/tts_mini.yaml", "local/data.sh"):
        assert (dst / name).read_text() == f"{name}\n"
    for output in ("data", "dump", "exp"):
        assert not (dst / output).exists()
    # One level deeper than the source, so the link needs one more "..".
    assert os.readlink(dst / "utils") == "../../../../utils"
    assert (dst / "utils" / "copy_recipe.sh").is_file()
    for hint in ("local/data.sh", "db.sh", "conf/"):
        assert hint in result.stdout


def test_existing_destination_is_refused_untouched(fake_repo):
    dst = fake_repo / "egs/other/easpo"
    dst.mkdir(parents=True)
    (dst / "keep.txt").write_text("mine\n")
    result = run_tool(["utils/copy_recipe.sh", "egs/esd/easpo", "egs/other/easpo"], cwd=fake_repo)
    assert result.returncode == 1
    assert "already exists" in result.stderr
    assert sorted(p.name for p in dst.iterdir()) == ["keep.txt"]


def test_source_without_run_sh_is_refused(fake_repo):
    result = run_tool(["utils/copy_recipe.sh", "egs/esd", "egs/x/y"], cwd=fake_repo)
    assert result.returncode == 1
    assert "has no run.sh" in result.stderr
    assert not (fake_repo / "egs/x").exists()


def test_shared_links_are_re_pointed_from_the_new_place(fake_repo):
    template = fake_repo / "egs/TEMPLATE"
    template.mkdir()
    (template / "tts_rl.sh").write_text("pipeline\n")
    recipe = fake_repo / "egs/esd/easpo"
    (recipe / "tts_rl.sh").symlink_to("../../TEMPLATE/tts_rl.sh")
    result = run_tool(["utils/copy_recipe.sh", "egs/esd/easpo", "egs/mycorpus/new/easpo"],
                      cwd=fake_repo)
    assert result.returncode == 0, result.stderr
    dst = fake_repo / "egs/mycorpus/new/easpo"
    assert os.readlink(dst / "tts_rl.sh") == "../../../TEMPLATE/tts_rl.sh"
    assert (dst / "tts_rl.sh").read_text() == "pipeline\n"


@pytest.mark.parametrize(
    "dst, reason",
    [("mycorpus/easpo", "is not under"), ("egs/TEMPLATE/x", "is inside egs/TEMPLATE"),
     ("egs/esd/easpo/v2", "is inside the source recipe"), ("../out/easpo", "is not under")],
)  # fmt: skip
def test_a_destination_outside_egs_is_refused(fake_repo, dst, reason):
    result = run_tool(["utils/copy_recipe.sh", "egs/esd/easpo", dst], cwd=fake_repo)
    assert result.returncode == 1
    assert reason in result.stderr
    assert not (fake_repo / dst).exists()


def test_a_repository_of_links_gets_links_inside_itself(fake_repo, tmp_path):
    """A sandbox whose utils/ and egs/TEMPLATE are links into another tree: the copy's links
    stay inside the sandbox, one level deeper or shallower than the source."""
    sandbox = tmp_path / "sandbox"
    (sandbox / "egs/esd").mkdir(parents=True)
    (sandbox / "utils").symlink_to(fake_repo / "utils")
    template = fake_repo / "egs/TEMPLATE"
    template.mkdir()
    (template / "path.sh").write_text("path\n")
    (sandbox / "egs/TEMPLATE").symlink_to(template)
    shutil.copytree(fake_repo / "egs/esd/easpo", sandbox / "egs/esd/easpo", symlinks=True)
    (sandbox / "egs/esd/easpo/path.sh").unlink()
    (sandbox / "egs/esd/easpo/path.sh").symlink_to("../../TEMPLATE/path.sh")
    for dst, up in (("egs/lab/mycorpus/easpo", "../../.."), ("egs/easpo", "..")):
        result = run_tool(["utils/copy_recipe.sh", "egs/esd/easpo", dst], cwd=sandbox)
        assert result.returncode == 0, result.stderr
        assert os.readlink(sandbox / dst / "path.sh") == f"{up}/TEMPLATE/path.sh"
        assert os.readlink(sandbox / dst / "utils") == f"{up}/../utils"
        assert (sandbox / dst / "path.sh").read_text() == "path\n"
