"""One process at a time: an exclusive ``flock`` on a small side file.

Why flock: the kernel drops it when its holder dies, however it dies, so a
crash never leaves a stale lock that an operator must find and delete.  The
file records who holds it; a holder that ended cleanly empties it, so a
non-empty file found free means the last holder died, and ``took_over``
names it.  Used for the send journal (two runs sending from one journal
could send rows twice) and for job runs.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO

from mobizon_batch.errors import MobizonBatchError


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
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held until release()
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise self.busy(holder) from None
        handle.seek(0)
        self.took_over = handle.read().strip()
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()}\n")
        handle.flush()
        self._handle = handle
        return self

    def release(self) -> None:
        if self._handle is not None:
            self._handle.seek(0)
            self._handle.truncate()
            self._handle.close()
            self._handle = None

    def __enter__(self) -> ProcessLock:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()
