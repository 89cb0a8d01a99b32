"""Checkpoints: atomic files, pruning, full state and RNG restore."""

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from local_lib.train.checkpoint import (
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)


def _model_and_opt() -> (
    tuple[nn.Module, torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]
):
    model = nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    return model, opt, torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)


def test_save_load_restores_everything(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model, opt, sched = _model_and_opt()
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    sched.step()
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    path = save_checkpoint(tmp_path, 7, model, opt, sched, extra={"best": 0.5})
    want = (random.random(), np.random.rand(), torch.rand(1))

    model2, opt2, sched2 = _model_and_opt()
    step, extra = load_checkpoint(path, model2, opt2, sched2)
    assert (step, extra) == (7, {"best": 0.5})
    assert (random.random(), np.random.rand()) == want[:2] and torch.equal(torch.rand(1), want[2])
    for a, b in zip(model.parameters(), model2.parameters(), strict=True):
        assert torch.equal(a, b)
    assert opt2.state_dict()["state"][0]["step"] == 1
    assert sched2.get_last_lr() == sched.get_last_lr() == [0.05]


def test_pruning_and_latest_ignore_temp_files(tmp_path: Path) -> None:
    model, opt, _ = _model_and_opt()
    assert latest_checkpoint(tmp_path) is None
    for step in (2, 4, 6):
        save_checkpoint(tmp_path, step, model, opt, keep=2)
    (tmp_path / ".checkpoint_00000008.pt.tmpxyz").write_bytes(b"half written")
    assert [p.name for p in list_checkpoints(tmp_path)] == [
        "checkpoint_00000004.pt",
        "checkpoint_00000006.pt",
    ]
    assert latest_checkpoint(tmp_path).name == "checkpoint_00000006.pt"


def test_unreadable_checkpoint_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "checkpoint_00000001.pt"
    bad.write_bytes(b"garbage")
    with pytest.raises(RuntimeError, match="checkpoint_00000001.pt: cannot read"):
        load_checkpoint(bad, nn.Linear(1, 1))
