"""ProcessLock: one holder at a time, a refusal that names the holder, release on close."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mobizon_batch.errors import ConfigError, MobizonBatchError
from mobizon_batch.locks import ProcessLock


def in_use(holder: str) -> MobizonBatchError:
    return ConfigError(f"the journal is in use by {holder}; wait for it to finish")


def test_a_second_lock_on_the_same_file_is_refused_with_a_sentence(tmp_path: Path) -> None:
    path = tmp_path / "journal.lock"
    with ProcessLock(path, in_use):
        # flock belongs to the open file, so a second open in this process
        # competes exactly as another process would.
        with pytest.raises(ConfigError) as refused:
            ProcessLock(path, in_use).acquire()
    assert str(refused.value) == (
        f"the journal is in use by process {os.getpid()}; wait for it to finish"
    )


def test_the_lock_is_free_again_once_its_holder_closes(tmp_path: Path) -> None:
    path = tmp_path / "job.lock"
    first = ProcessLock(path, in_use).acquire()
    first.release()
    second = ProcessLock(path, in_use).acquire()
    assert second.took_over == ""  # a clean release leaves no holder behind
    assert path.read_text(encoding="utf-8") == f"process {os.getpid()}\n"
    second.release()
    assert not path.exists()  # a clean run leaves no empty lock file behind


def test_a_holder_that_died_is_named_by_the_next_one(tmp_path: Path) -> None:
    path = tmp_path / "job.lock"
    path.write_text("process 4242\n", encoding="utf-8")  # written, never emptied, no flock
    with ProcessLock(path, in_use) as lock:
        assert lock.took_over == "process 4242"


def test_the_folder_is_made_when_missing(tmp_path: Path) -> None:
    path = tmp_path / "state" / "nested" / "job.lock"
    with ProcessLock(path, in_use):
        assert path.exists()


def test_a_waiter_that_opened_the_file_before_it_was_removed_locks_the_new_one(
    tmp_path: Path,
) -> None:
    import fcntl

    path = tmp_path / "job.lock"
    first = ProcessLock(path, in_use).acquire()
    stale = open(path, encoding="utf-8")  # noqa: SIM115 - opened before the release
    first.release()
    fcntl.flock(stale, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the removed file is free to lock
    with ProcessLock(path, in_use) as second:  # but the path names a new file
        assert path.exists()
        with pytest.raises(ConfigError):
            ProcessLock(path, in_use).acquire()
        assert second.took_over == ""
    stale.close()
