"""Method discovery (local_lib.rl.method_spec) and its shell view (local_lib.bin.method_info)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import local_lib.rl
from local_lib.bin import method_info
from local_lib.rl.method_spec import MethodSpec, UnknownMethodError, find_method, known_methods

TOY = "from local_lib.rl.method_spec import MethodSpec\n\nMETHOD = MethodSpec({})\n"


@pytest.fixture
def rl_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A second directory of local_lib.rl, for toy modules the real tree never sees."""
    monkeypatch.setattr(local_lib.rl, "__path__", [*local_lib.rl.__path__, str(tmp_path)])
    yield tmp_path
    for path in tmp_path.glob("*.py"):
        sys.modules.pop(f"local_lib.rl.{path.stem}", None)


def test_easpo_is_a_gradtts_method():
    spec = find_method("easpo")
    assert spec == MethodSpec(family="gradtts", curve_keys=("score_gap", "loss", "acc"))


def test_a_toy_module_with_method_is_found_and_listed(rl_dir):
    (rl_dir / "toy_method.py").write_text(TOY.format('family="codec_lm", curve_keys=("loss",)'))
    (rl_dir / "toy_helpers.py").write_text("X = 1\n")  # a module without METHOD is no method
    assert find_method("toy_method") == MethodSpec("codec_lm", ("loss",))
    known = known_methods()
    assert "toy_method" in known and "easpo" in known and known == sorted(known)
    assert "toy_helpers" not in known and "method_spec" not in known
    with pytest.raises(UnknownMethodError, match="method 'toy_helpers'; known: .*toy_method"):
        find_method("toy_helpers")


@pytest.mark.parametrize("name", ["no_such_method", "method_spec", "easpo.x", ""])
def test_an_unknown_method_names_the_known_ones(name):
    with pytest.raises(UnknownMethodError) as err:
        find_method(name)
    assert str(err.value) == f"unknown method {name!r}; known: {' '.join(known_methods())}"


def test_a_method_that_fails_to_import_is_not_called_unknown(rl_dir):
    (rl_dir / "broken_method.py").write_text("import no_such_dependency_here\n")
    with pytest.raises(ModuleNotFoundError, match="no_such_dependency_here"):
        find_method("broken_method")


@pytest.mark.parametrize(
    "kwargs, message",
    [({"family": "vits"}, "family 'vits'"),
     ({"family": "gradtts", "curve_keys": ("a b",)}, "curve key 'a b'"),
     ({"family": "gradtts", "curve_keys": ("",)}, "curve key ''")],
)  # fmt: skip
def test_a_bad_spec_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MethodSpec(**kwargs)


def test_method_info_prints_shell_lines_for_a_toy_method(rl_dir, capsys):
    (rl_dir / "toy_method.py").write_text(TOY.format('"codec_lm", ("reward/mean", "kl")'))
    method_info.main(["toy_method"])
    assert capsys.readouterr().out.splitlines() == [
        "method_family=codec_lm", "method_curve_keys='reward/mean kl'", "method_built=true",
        "method_reward_asr_view=true",
    ]  # fmt: skip


def test_method_info_declares_a_method_not_built_yet():
    assert method_info.shell_lines("not_built_yet", "codec_lm") == [
        "method_family=codec_lm", "method_curve_keys=''", "method_built=false",
        "method_reward_asr_view=true",
    ]  # fmt: skip


def run_method_info(venv_python: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv_python), "-m", "local_lib.bin.method_info", *args],
        capture_output=True, text=True, check=False,
    )  # fmt: skip


def test_method_info_on_easpo_sources_in_bash(venv_python):
    lines = run_method_info(venv_python, "easpo")
    assert lines.returncode == 0, lines.stderr
    shell = subprocess.run(
        ["bash", "-c", 'eval "$1"; echo "${method_family}|${method_curve_keys}|${method_built}"',
         "-", lines.stdout], capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert shell.stdout == "gradtts|score_gap loss acc|true\n"


@pytest.mark.parametrize(
    "args, message",
    [(["no_such_method"], "unknown method 'no_such_method'; known: "),
     (["--family", "codec_lm", "easpo"], "method 'easpo' is of the gradtts family, not codec_lm")],
)  # fmt: skip
def test_method_info_fails_naming_the_problem(venv_python, args, message):
    result = run_method_info(venv_python, *args)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith(message)
    if "known: " in message:
        assert "easpo" in result.stderr.split("known: ")[1].split()


def test_a_method_whose_reward_reads_tokens_has_no_reward_asr_view():
    assert "method_reward_asr_view=false" in method_info.shell_lines("diffro", None)
    assert "method_reward_asr_view=true" in method_info.shell_lines("grpo", None)
