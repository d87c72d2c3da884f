"""``-`` as the input: standard input, kept in a temporary file for the readers.

Why a file: a list is looked at twice (its first bytes tell what it is and
how it is encoded, then it is parsed, and a workbook is a zip that needs
seeking), and a pipe can be read only once.  The copy is named ``stdin`` so
that messages say where the rows came from; it is removed at exit.
"""

from __future__ import annotations

import atexit
import shutil
import sys
import tempfile
from pathlib import Path

from mobizon_batch.errors import InputError

#: the stream copied, and where to (a stream is read once; a new one, again)
_copy: tuple[object, Path] | None = None


def stdin_copy(limit: int | None = None) -> Path:
    """The path of a copy of standard input (made once per stream).

    ``limit`` (bytes) stops the copy as soon as more arrives: a list piped
    in is bounded like a file on disk, and never fills the disk first.
    """
    global _copy
    if _copy is not None and _copy[0] is sys.stdin:
        return _copy[1]
    if sys.stdin is None or sys.stdin.isatty():
        raise InputError(
            "INPUT is '-' but nothing is piped in: give a file, or pipe the list "
            "(mobizon-batch validate - < list.csv)"
        )
    folder = Path(tempfile.mkdtemp(prefix="mobizon-batch-stdin-"))
    atexit.register(shutil.rmtree, folder, True)
    target = folder / "stdin"
    source = getattr(sys.stdin, "buffer", None)
    with target.open("wb") as handle:
        if source is not None:
            copied = 0
            while chunk := source.read(1 << 20):
                copied += len(chunk)
                if limit is not None and copied > limit:
                    raise InputError(
                        f"the list piped in is over the {limit // (1 << 20):,} MB limit for a "
                        f"list; if it is genuine, raise the limit with --max-input-mb"
                    )
                handle.write(chunk)
        else:  # a text stream put in place by a caller
            handle.write(sys.stdin.read().encode("utf-8"))
    _copy = (sys.stdin, target)
    return target
