"""utils/parse_options.sh: Kaldi-style --options for the variables a script declares."""

from __future__ import annotations

from pathlib import Path

import pytest
from shell_tools import UTILS, run_tool

SCRIPT = f"""#!/usr/bin/env bash
set -euo pipefail
stage=1
stop_stage=100
use_gpu=false
name=default
tag=""
help_message="Usage: demo.sh [options] <dir>"
. {UTILS}/parse_options.sh
printf 'stage=%s\\nstop_stage=%s\\nuse_gpu=%s\\nname=%s\\ntag=%s\\nnargs=%s\\n' \\
  "$stage" "$stop_stage" "$use_gpu" "$name" "$tag" "$#"
for arg in "$@"; do printf 'arg=%s\\n' "$arg"; done
"""


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    script = tmp_path / "demo.sh"
    script.write_text(SCRIPT)
    script.chmod(0o755)
    return script


def parsed(demo: Path, *args: str) -> dict[str, list[str]]:
    result = run_tool([demo, *args], cwd=demo.parent)
    assert result.returncode == 0, result.stderr
    values: dict[str, list[str]] = {}
    for line in result.stdout.splitlines():
        key, _, value = line.partition("=")
        values.setdefault(key, []).append(value)
    return values


def test_defaults_survive_without_options(demo):
    values = parsed(demo)
    assert values["stage"] == ["1"] and values["stop_stage"] == ["100"]
    assert values["use_gpu"] == ["false"] and values["nargs"] == ["0"]


def test_dash_underscore_and_equals_forms_set_the_variable(demo):
    values = parsed(demo, "--stop-stage", "3", "--stage=2", "--use_gpu", "true", "--name", "a b")
    assert values["stop_stage"] == ["3"]
    assert values["stage"] == ["2"]
    assert values["use_gpu"] == ["true"]
    assert values["name"] == ["a b"]


def test_positional_arguments_are_left_in_order(demo):
    values = parsed(demo, "--tag", "", "data/train", "--not-an-option")
    assert values["tag"] == [""]
    assert values["arg"] == ["data/train", "--not-an-option"]


def test_double_dash_ends_option_parsing(demo):
    values = parsed(demo, "--", "--stage", "3")
    assert values["stage"] == ["1"]
    assert values["arg"] == ["--stage", "3"]


def test_unknown_option_is_an_error_naming_it(demo):
    result = run_tool([demo, "--stgae", "3"], cwd=demo.parent)
    assert result.returncode == 1
    assert "--stgae" in result.stderr
    assert result.stdout == ""


def test_boolean_option_takes_only_true_or_false(demo):
    result = run_tool([demo, "--use-gpu", "yes"], cwd=demo.parent)
    assert result.returncode == 1
    assert "true or false" in result.stderr and "yes" in result.stderr


def test_option_without_value_is_an_error(demo):
    result = run_tool([demo, "--stage"], cwd=demo.parent)
    assert result.returncode == 1
    assert "--stage needs a value" in result.stderr


def test_config_file_is_sourced_and_later_options_override_it(demo, tmp_path):
    conf = tmp_path / "opts.conf"
    conf.write_text('# comment\n\nstage=5\nname="from config"\n')
    values = parsed(demo, "--config", str(conf), "--stage", "6")
    assert values["stage"] == ["6"]
    assert values["name"] == ["from config"]


def test_config_file_with_unknown_variable_names_file_and_line(demo, tmp_path):
    conf = tmp_path / "bad.conf"
    conf.write_text("stage=2\nstagex=5\n")
    result = run_tool([demo, "--config", str(conf)], cwd=demo.parent)
    assert result.returncode == 1
    assert f"{conf}:2" in result.stderr and "stagex" in result.stderr


def test_help_prints_the_help_message(demo):
    result = run_tool([demo, "--help"], cwd=demo.parent)
    assert result.returncode == 0
    assert "Usage: demo.sh [options] <dir>" in result.stdout and result.stderr == ""
