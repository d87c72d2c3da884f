"""Files that hold phone numbers or texts are created readable by their owner only.

Why: results, journals, logs, reports and job summaries carry personal data
(numbers, names, message texts).  Created through ``open()`` they follow the
umask, which on most systems (022) makes them readable by every account on
the machine.  So every such file is *created* with mode 0600 (less still if
the umask asks for less).  A file that already exists keeps the mode it has:
an operator who made a results folder group-readable on purpose, or who
replaced a file under a shared group, is not overruled on the next run.

One place for the rule, so that every writer — the journal and its
write-ahead files, the locks, the results and reports written atomically,
the job log — follows the same one.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

#: The mode of a file created here: read and write for its owner, nothing for anyone else.
OWNER_ONLY = 0o600


def create_private(path: str | os.PathLike[str]) -> bool:
    """Create ``path`` as an empty owner-only file unless it exists; True if it was created.

    An existing file (or a link to one) is left exactly as it is, mode included.
    Errors are the ``OSError`` of ``open``: callers name the file in their own words.
    """
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, OWNER_ONLY)
    except FileExistsError:
        return False
    os.close(descriptor)
    return True


def open_private_append(path: str | os.PathLike[str]) -> io.TextIOWrapper:
    """``open(path, "a+", encoding="utf-8")``, except that a new file is owner-only.

    For the job log and the lock files: appended to (or rewritten in place)
    and never replaced, so the mode they were created with is the one they keep.
    """
    descriptor = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, OWNER_ONLY)
    try:
        return open(descriptor, "a+", encoding="utf-8")
    except BaseException:
        os.close(descriptor)
        raise


def mode_to_keep(target: str | os.PathLike[str]) -> int | None:
    """The mode a file written to replace ``target`` must get, or None if there is none.

    ``target``'s own mode when it exists: a replacement must not loosen or
    tighten what its owner chose.  None when it does not: the replacement
    keeps the owner-only mode it was created with (``tempfile.mkstemp``
    and ``create_private`` both create 0600).
    """
    try:
        return Path(target).stat().st_mode & 0o777
    except FileNotFoundError:
        return None
