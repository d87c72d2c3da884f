"""Replacing a file all at once: readers and crashes see the old file or the new one."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from mobizon_batch.errors import ConfigError


@contextlib.contextmanager
def atomic_file(target: Path) -> Iterator[str]:
    """A temporary path beside ``target``, renamed over it when the block succeeds.

    What is written there is synced to disk first, and the new file gets the
    old one's permissions (or the usual ones: ``mkstemp`` makes files
    private), so a reader — or a crash — sees the old file or the new one,
    never half a file.  Any OSError becomes a ConfigError naming the file.
    """
    parent = target.parent if str(target.parent) else Path(".")
    try:
        descriptor, temporary = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=".tmp", dir=parent
        )
    except OSError as exc:
        raise ConfigError(f"cannot write in {parent}: {exc.strerror}") from exc
    os.close(descriptor)
    try:
        yield temporary
        with open(temporary, "rb+") as written:
            os.fsync(written.fileno())
        _match_mode(target, temporary)
        os.replace(temporary, target)
    except OSError as exc:
        raise ConfigError(
            f"cannot write {target}: {exc.strerror or exc} (is it open in another program?)"
        ) from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def _match_mode(target: Path, temporary: str) -> None:
    """Give the new file the old file's permissions, or the usual ones (mkstemp uses 0600)."""
    try:
        mode = target.stat().st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    os.chmod(temporary, mode)
