"""Replacing a file all at once: readers and crashes see the old file or the new one."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from mobizon_batch.errors import ConfigError, StorageError, is_storage_trouble
from mobizon_batch.private_files import mode_to_keep


@contextlib.contextmanager
def atomic_file(target: Path) -> Iterator[str]:
    """A temporary path beside ``target``, renamed over it when the block succeeds.

    What is written there is synced to disk first, so a reader — or a crash —
    sees the old file or the new one, never half a file.  The new file gets
    the old one's permissions, or is owner-only when there was none (see
    ``private_files``: what we write holds numbers and texts).  A full or
    failing disk is a StorageError, any other OSError a ConfigError; both
    name the file.
    """
    parent = target.parent if str(target.parent) else Path(".")
    try:
        descriptor, temporary = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=".tmp", dir=parent
        )
    except OSError as exc:
        if is_storage_trouble(exc):
            raise _storage_error(target, exc) from exc
        raise ConfigError(f"cannot write in {parent}: {exc.strerror}") from exc
    os.close(descriptor)
    try:
        yield temporary
        with open(temporary, "rb+") as written:
            os.fsync(written.fileno())
        mode = mode_to_keep(target)
        if mode is not None:  # else mkstemp's owner-only mode stays
            os.chmod(temporary, mode)
        os.replace(temporary, target)
    except OSError as exc:
        if is_storage_trouble(exc):
            raise _storage_error(target, exc) from exc
        raise ConfigError(
            f"cannot write {target}: {exc.strerror or exc} (is it open in another program?)"
        ) from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def _storage_error(target: Path, exc: OSError) -> StorageError:
    full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
    reason = "the disk is full" if full else f"the disk failed ({exc.strerror or exc})"
    return StorageError(f"cannot write {target}: {reason}", str(target))
