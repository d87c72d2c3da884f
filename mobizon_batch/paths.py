"""A command never writes a file it reads, nor writes one file for two purposes.

Why one check for all of them: a send reads a list and an opt-out list and
writes results, a journal (with its ``-wal``, ``-shm`` and lock), a report,
a log and a summary.  Any two of those that turn out to be one file — a
typo in a job file, a symbolic link, ``../`` one level too many — lose
data: the log appended to the list (and read back as rows on the next run),
the report written over the input workbook.  Names are compared after the
operating system resolves them (links, ``..``), and files that exist are
also compared by identity, which catches hard links.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from mobizon_batch.errors import ConfigError


def resolved(path: str | os.PathLike[str]) -> Path:
    """``path`` as the operating system will find it: absolute, links and ``..`` resolved."""
    return Path(os.path.realpath(os.path.abspath(os.fspath(path))))


def same_file(one: str | os.PathLike[str], other: str | os.PathLike[str]) -> bool:
    """True when the two names lead to one file (or would, once it is created)."""
    if resolved(one) == resolved(other):
        return True
    try:
        return os.path.samefile(one, other)
    except OSError:  # one of them does not exist (yet): the names decided
        return False


def journal_beside(results: str | os.PathLike[str]) -> Path:
    """``out/results.xlsx`` → ``out/results.xlsx.journal.sqlite``: a send's default journal.

    Here, at the bottom, because job files (an edge) must know the name too,
    to check it against the other files a job uses.
    """
    path = Path(results)
    return path.with_name(path.name + ".journal.sqlite")


def sqlite_companions(label: str, path: Path) -> dict[str, Path]:
    """The files SQLite and our lock keep beside a database: they are written too."""
    return {
        f"{label}'s {suffix} file": path.with_name(path.name + suffix)
        for suffix in ("-wal", "-shm", ".lock")
    }


def check_distinct(
    writes: Mapping[str, str | os.PathLike[str] | None],
    reads: Mapping[str, str | os.PathLike[str] | None],
    *,
    where: str = "",
) -> None:
    """Refuse when a file written is also read, or is written for two purposes.

    ``writes`` and ``reads`` map what a file is for ("the results file",
    "'log'") to its path (None: not used).  The sentence names both purposes
    and the one file, so the fix is obvious; ``where`` (a job file) goes first.
    """
    prefix = f"{where}: " if where else ""
    written = [(what, path) for what, path in writes.items() if path is not None]
    read = [(what, path) for what, path in reads.items() if path is not None]
    for index, (what, path) in enumerate(written):
        for source, source_path in read:
            if same_file(path, source_path):
                raise ConfigError(
                    f"{prefix}{what} ({path}) is the same file as {source} ({source_path}): "
                    f"writing it would destroy what is read; give {what} another name"
                )
        for other, other_path in written[:index]:
            if same_file(path, other_path):
                raise ConfigError(
                    f"{prefix}{what} and {other} are the same file ({path}): one would "
                    f"overwrite the other; give them different names"
                )
