"""One process at a time: an exclusive ``flock`` on a small side file.

Why flock: the kernel drops it when its holder dies, however it dies, so a
crash never leaves a stale lock that an operator must find and delete.  The
file records who holds it; a holder that ended cleanly removes it, so a
file found free with a name in it means the last holder died, and
``took_over`` names it.  A new lock file is owner-only (``private_files``), like
the files it guards.  Used for the send journal (two runs sending from one journal
could send rows twice) and for job runs.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO

from mobizon_batch.errors import (
    ConfigError,
    MobizonBatchError,
    StorageError,
    is_storage_trouble,
)
from mobizon_batch.private_files import open_private_append


class ProcessLock:
    """Holds ``path`` exclusively between ``acquire()`` and ``release()``.

    ``busy(holder)`` builds the error raised when another process holds it;
    ``holder`` is what that process wrote ("process 1234").
    """

    def __init__(self, path: Path, busy: Callable[[str], MobizonBatchError]) -> None:
        self.path = path
        self.busy = busy
        self.took_over = ""
        self._handle: IO[str] | None = None

    def acquire(self) -> ProcessLock:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._cannot_create(exc) from exc
        while True:
            try:
                handle = open_private_append(self.path)  # held until release()
            except OSError as exc:
                raise self._cannot_create(exc) from exc
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                handle.close()
                raise self.busy(holder) from None
            if self._still_there(handle):
                break
            handle.close()  # the holder before us removed it as we opened it: again
        handle.seek(0)
        self.took_over = handle.read().strip()
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()}\n")
        handle.flush()
        self._handle = handle
        return self

    def _cannot_create(self, exc: OSError) -> MobizonBatchError:
        if is_storage_trouble(exc):
            return StorageError(
                f"cannot create the lock file {self.path}: the disk is full or failing",
                str(self.path),
            )
        return ConfigError(f"cannot create the lock file {self.path}: {exc.strerror or exc}")

    def _still_there(self, handle: IO[str]) -> bool:
        """True when ``handle`` is the file at ``path`` (not one a clean holder just removed)."""
        try:
            return os.stat(self.path).st_ino == os.fstat(handle.fileno()).st_ino
        except FileNotFoundError:
            return False

    def release(self) -> None:
        """Remove the file while still holding it, then let go: a clean run leaves nothing.

        A process that opened the file just before it was removed finds, once
        it gets the lock, that the path no longer names its file, and opens
        the path again (``acquire``): two holders at once cannot happen.
        """
        if self._handle is not None:
            try:
                self.path.unlink()
            except OSError:  # gone already, or a folder we may not write: empty it instead
                self._handle.seek(0)
                self._handle.truncate()
            self._handle.close()
            self._handle = None

    def __enter__(self) -> ProcessLock:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()
