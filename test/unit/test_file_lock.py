"""exclusive_lock: a second holder waits, says so, and enters once the first leaves."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from local_lib.file_lock import exclusive_lock


def test_a_second_holder_waits_until_the_first_releases(tmp_path: Path, caplog) -> None:
    lock = tmp_path / "heads.lock"
    order: list[str] = []
    # flock locks belong to the open file, so a second open in another thread conflicts too
    second = threading.Thread(target=lambda: _enter(lock, order))
    with caplog.at_level(logging.INFO, logger="local_lib.file_lock"):
        with exclusive_lock(lock, "the heads"):
            order.append("first in")
            second.start()
            second.join(timeout=0.5)
            assert second.is_alive()  # blocked while the first holds the lock
            order.append("first out")
        second.join(timeout=10)
    assert not second.is_alive()
    assert order == ["first in", "first out", "second in"]
    assert f"waiting for another process making the heads ({lock})" in caplog.text


def test_an_unheld_lock_is_taken_at_once_and_logs_nothing(tmp_path: Path, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="local_lib.file_lock"):
        with exclusive_lock(tmp_path / "x.lock", "x"):
            with exclusive_lock(tmp_path / "y.lock", "y"):  # another file: no conflict
                entered = True
    assert entered and "waiting" not in caplog.text


def _enter(lock: Path, order: list[str]) -> None:
    with exclusive_lock(lock, "the heads"):
        order.append("second in")
