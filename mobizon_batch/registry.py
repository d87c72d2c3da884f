"""What this machine knows beyond one journal: the other journals, and the account's clock.

Why: a lost answer is looked up in the account's message list, and a message
there may belong to a send from another results file on this machine (a list
sent twice at once, a job and a manual send).  Adopting it would mark a row
sent that got nothing.  Every journal that sends registers its path here, so a
lookup can ask the others whether they own a message.  The account's clock
offset, once learned from our own sends, is kept here too, per API host, so
the history guard of the next run can place its window before it has sent
anything itself.

The state lives in ``$MOBIZON_BATCH_STATE``, else ``$XDG_STATE_HOME/mobizon-batch``,
else ``~/.local/state/mobizon-batch``.  Nothing secret is kept: paths, host
names, seconds.  A state folder that cannot be written is logged and skipped:
it narrows what is known, it never stops a send.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from collections.abc import Collection
from pathlib import Path

from mobizon_batch.vocabulary import SendState

log = logging.getLogger(__name__)

JOURNALS = "journals.txt"
CLOCKS = "clocks.json"


def state_dir() -> Path:
    explicit = os.environ.get("MOBIZON_BATCH_STATE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "mobizon-batch"


def register_journal(path: Path, host: str) -> None:
    """Note that the journal at ``path`` sends through ``host`` from this machine (once)."""
    entry = f"{host}\t{path.resolve()}"
    listing = state_dir() / JOURNALS
    try:
        if entry in _entries(listing):
            return
        listing.parent.mkdir(parents=True, exist_ok=True)
        # One short line, appended: atomic with O_APPEND, so two processes never mix lines.
        with open(listing, "a", encoding="utf-8") as handle:
            handle.write(entry + "\n")
    except OSError as exc:
        log.warning("could not register the journal in %s (%s)", listing, exc)


def _entries(listing: Path) -> list[str]:
    try:
        return [line for line in listing.read_text(encoding="utf-8").splitlines() if line]
    except (FileNotFoundError, UnicodeDecodeError):
        return []


def _journals_of(host: str) -> list[str]:
    """Journal paths registered for ``host`` (message ids are only unique within one API)."""
    paths = []
    for entry in _entries(state_dir() / JOURNALS):
        entry_host, _, path = entry.partition("\t")
        if entry_host == host and path:
            paths.append(path)
    return list(dict.fromkeys(paths))


def owned_elsewhere(ids: Collection[int], own: Path, host: str) -> set[int]:
    """Which of ``ids`` a journal other than ``own`` sending through ``host`` owns.

    A row its history guard marked ``already_sent`` only points at a message
    the account sent before (perhaps this very journal's row whose answer was
    lost): it owns nothing, so it never keeps that row from adopting it.
    Journals are read with read-only connections (no lock taken: another run
    may be sending with one).  A journal that has gone, or cannot be read, is
    skipped.
    """
    if not ids:
        return set()
    wanted = sorted(set(ids))
    marks = ",".join("?" * len(wanted))
    own_path = str(own.resolve())
    found: set[int] = set()
    for path in _journals_of(host):
        if path == own_path or not Path(path).exists():
            continue
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
                rows = db.execute(
                    f"SELECT message_id FROM rows WHERE message_id IN ({marks}) AND state != ?",
                    [*wanted, str(SendState.ALREADY_SENT)],
                ).fetchall()
        except sqlite3.Error as exc:
            log.debug("skipped journal %s (%s)", path, exc)
            continue
        found.update(int(row[0]) for row in rows)
    return found


def known_offset(host: str) -> float | None:
    """The account clock's lead (seconds) an earlier run learned for ``host``, if any."""
    try:
        clocks = json.loads((state_dir() / CLOCKS).read_text(encoding="utf-8"))
        value = clocks.get(host)
        return float(value) if isinstance(value, int | float) else None
    except (OSError, ValueError, AttributeError):
        return None


def remember_offset(host: str, seconds: float) -> None:
    path = state_dir() / CLOCKS
    try:
        try:
            clocks = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            clocks = {}
        if not isinstance(clocks, dict):
            clocks = {}
        clocks[host] = round(seconds, 3)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(clocks, indent=1), encoding="utf-8")
        temporary.replace(path)
    except OSError as exc:
        log.warning("could not keep the account's clock offset in %s (%s)", path, exc)
