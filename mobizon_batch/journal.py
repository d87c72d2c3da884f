"""The send journal: an SQLite file that is the single source of truth of a send.

Why a journal and not the results file: a results file is rewritten, opened
in Excel, edited; the journal is append-and-update only, written with SQLite's
full durability, and it records the *intent* to send a row before the request
leaves.  After a crash the journal says exactly which rows were sent, which
were surely not, and which were in flight (those are reconciled with the API's
message list before anything is sent again).

One row per plan row, keyed by ``row_key`` (hash of recipient, final text and
the occurrence number of that pair in the list), so re-running after the list
was edited, reordered or extended sends only what was not sent.

States::

    pending ─► sending ─► sent | failed | unknown      (unknown ─► reconciled)
    pending ─► already_sent                             the history guard: the account
                                                        sent it lately (message_id is that
                                                        message, owned by no row here)
    invalid, duplicate, opted_out                       decided by the plan, never sent

A process holds the journal exclusively (``flock`` on a side file): two runs
sending from one journal at once could send rows twice.  The lock dies with
the process, so a crash never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import threading
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from mobizon_batch.errors import ConfigError, StorageError, is_storage_trouble
from mobizon_batch.journal_file import check_journal_place, check_version, connect
from mobizon_batch.locks import ProcessLock
from mobizon_batch.paths import journal_beside
from mobizon_batch.vocabulary import PLAN_VERDICTS, TIMESTAMP_FORMAT, SendState

#: States a new plan may overwrite: nothing was ever sent for them (a row keeps
#: following the plan's verdicts while it has never been tried; an
#: ``already_sent`` row is guarded again on every run: the window moves).
UNTRIED = PLAN_VERDICTS | {SendState.PENDING, SendState.ALREADY_SENT}

_FRAME_COLUMNS = (
    "row_key",
    "recipient",
    "text",
    "state",
    "segments",
    "message_id",
    "campaign_id",
    "error_code",
    "error",
    "sent_at",
)
_COLUMNS = (
    "row_key, recipient, text, state, reason, segments, attempts, message_id, "
    "campaign_id, error_code, error, intent_at, sent_at"
)


def now_text() -> str:
    """Local time as the journal and results files store it."""
    return datetime.now().strftime(TIMESTAMP_FORMAT)


def default_journal_path(results_path: str | os.PathLike[str]) -> Path:
    """``out/results.xlsx`` → ``out/results.xlsx.journal.sqlite``."""
    return journal_beside(results_path)


@dataclass(frozen=True, slots=True)
class JournalRow:
    row_key: str
    recipient: str
    text: str
    state: str
    reason: str
    segments: int
    attempts: int
    message_id: int | None
    campaign_id: int | None
    error_code: int | None
    error: str
    intent_at: str | None
    sent_at: str | None


@dataclass(frozen=True, slots=True)
class PlanEntry:
    """What the plan says about one row, as the journal registers it."""

    row_key: str
    recipient: str
    text: str
    verdict: str  # SendState.SENDABLE or one of PLAN_VERDICTS
    reason: str = ""
    segments: int = 0


@dataclass(frozen=True, slots=True)
class Outcome:
    """The end of one attempt, as the send pass reports it to the journal."""

    row_key: str
    state: str  # sent, failed, unknown or pending (released untried)
    attempts: int = 0  # POSTs made in this attempt (added to the row's count)
    message_id: int | None = None
    campaign_id: int | None = None
    error_code: int | None = None
    error: str = ""


@dataclass(frozen=True)
class RegisterSummary:
    new: int
    replanned: int
    kept: int


class JournalLocked(ConfigError):
    """Another process is sending with this journal."""


class Journal:
    """The SQLite journal of one send. Thread-safe; one process at a time."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        # SQLite resolves a relative path itself and fails on one that climbs
        # past the root ("../../../../x"); the operating system's reading of it
        # is the one every other file follows.
        where = Path(os.path.abspath(self.path))
        check_journal_place(self.path, where)
        lock_path = self.path.with_name(self.path.name + ".lock")
        self._lock_file = ProcessLock(
            lock_path,
            lambda holder: JournalLocked(
                f"{self.path} is in use by {holder}: another send with this journal is "
                f"running; wait for it to finish (two at once could send rows twice)"
            ),
        ).acquire()
        self._lock = threading.RLock()
        try:
            self._db = connect(where)
            check_version(self._db, self.path, now_text())
        except (sqlite3.Error, OSError) as exc:
            self._lock_file.release()
            if is_storage_trouble(exc):
                raise self._write_failure(exc) from exc
            if isinstance(exc, OSError):
                raise ConfigError(f"cannot create the journal {self.path}: {exc.strerror}") from exc
            raise ConfigError(f"{self.path} is not a usable journal ({exc})") from exc

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            self._db.close()
            self._lock_file.release()

    def transaction(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """One immediate, fully synced transaction (for the campaign records)."""
        return self._transaction()

    def meta(self, key: str, default: str | None = None) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return str(row[0]) if row else default

    def set_meta(self, key: str, value: str) -> None:
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; a full or failing disk becomes a ``StorageError``.

        When a write fails, everything committed before stays as it was (that
        is SQLite's promise, and why the intent is committed before a request
        leaves): the caller stops, and the same command run again resumes.
        """
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                    self._db.execute("COMMIT")
                except BaseException:
                    # SQLite may already have rolled back (a full disk does that).
                    if self._db.in_transaction:
                        with contextlib.suppress(sqlite3.Error):
                            self._db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                if is_storage_trouble(exc):
                    raise self._write_failure(exc) from exc
                raise

    def _write_failure(self, exc: BaseException) -> StorageError:
        full = isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
        full = full or "full" in str(exc).lower()
        reason = "the disk is full" if full else f"the disk failed ({exc})"
        return StorageError(f"cannot write the journal {self.path}: {reason}", str(self.path))

    # ------------------------------------------------------------- the plan

    def register(
        self, entries: Iterable[PlanEntry], *, retry_failed: bool = False
    ) -> RegisterSummary:
        """Add the plan's rows; rows never tried follow the new plan's verdict.

        A row that was ever attempted (sent, failed, unknown, sending) keeps its
        state: history is never rewritten by a new plan — except ``failed`` rows
        with ``retry_failed``, which go back to pending.
        """
        stamp = now_text()
        new = replanned = kept = 0
        with self._transaction() as db:
            seq = db.execute("SELECT COALESCE(MAX(seq), 0) FROM rows").fetchone()[0]
            existing = dict(db.execute("SELECT row_key, state FROM rows").fetchall())
            inserts: list[tuple[Any, ...]] = []
            updates: list[tuple[Any, ...]] = []
            for entry in entries:
                state = SendState.PENDING if entry.verdict == SendState.SENDABLE else entry.verdict
                old = existing.get(entry.row_key)
                if old is None:
                    seq += 1
                    inserts.append(
                        (
                            entry.row_key,
                            seq,
                            entry.recipient,
                            entry.text,
                            state,
                            entry.reason,
                            entry.segments,
                            stamp,
                        )
                    )
                    new += 1
                elif old in UNTRIED or (retry_failed and old == SendState.FAILED):
                    if old != state or old == SendState.FAILED:
                        replanned += 1
                    updates.append((state, entry.reason, entry.segments, stamp, entry.row_key))
                else:
                    kept += 1
            db.executemany(
                "INSERT INTO rows (row_key, seq, recipient, text, state, reason, segments,"
                " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                inserts,
            )
            db.executemany(
                "UPDATE rows SET state=?, reason=?, segments=?, error='', error_code=NULL,"
                " message_id=NULL, campaign_id=NULL, updated_at=? WHERE row_key=?",
                updates,
            )
        return RegisterSummary(new=new, replanned=replanned, kept=kept)

    def recover_interrupted(self) -> int:
        """Rows left ``sending`` by a crash become ``unknown`` (to be reconciled)."""
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE rows SET state=?, error=?, updated_at=? WHERE state=?",
                (
                    SendState.UNKNOWN,
                    "the run stopped while this row was being sent",
                    now_text(),
                    SendState.SENDING,
                ),
            )
            return cursor.rowcount

    def mark_already_sent(self, found: Iterable[tuple[str, int, int | None, str]]) -> int:
        """``(row_key, message_id, campaign_id, reason)``: pending rows the account already sent.

        Only ``pending`` rows change; a message id another row of this journal
        owns is never given to a second row.  Returns how many rows changed.
        """
        stamp = now_text()
        changed = 0
        with self._transaction() as db:
            for row_key, message_id, campaign_id, reason in found:
                try:
                    cursor = db.execute(
                        "UPDATE rows SET state=?, message_id=?, campaign_id=?, error=?,"
                        " updated_at=? WHERE row_key=? AND state=?",
                        (
                            SendState.ALREADY_SENT,
                            message_id,
                            campaign_id,
                            reason,
                            stamp,
                            row_key,
                            SendState.PENDING,
                        ),
                    )
                except sqlite3.IntegrityError:
                    continue
                changed += cursor.rowcount
        return changed

    def setting(self, key: str) -> str | None:
        """A value kept in the journal between runs (what a run learned of the API)."""
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return str(row[0]) if row else None

    def keep_setting(self, key: str, value: str) -> None:
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # --------------------------------------------------------- the send pass

    def claim(
        self, row_keys: Sequence[str], outcomes: Sequence[Outcome] = ()
    ) -> tuple[str, list[str]]:
        """Commit the intent to send these rows now: ``(intent time, keys claimed)``.

        Committed (with a full sync) before any request for them is made.  Only
        rows still ``pending`` or ``unknown`` are claimed: a row already sent,
        failed or in flight is never handed out again, whatever the caller asks.

        ``outcomes`` of attempts that ended are recorded first, in the same
        transaction: a send pass hands out new rows as answers come in, and
        one full sync for both halves the syncs a row costs (the sync, not
        the request, is what bounds a fast pass); each outcome is as durable,
        and no later, as with ``record`` just before.
        """
        stamp = now_text()
        claimed: list[str] = []
        with self._transaction() as db:
            self._record_in(db, outcomes, stamp)
            for key in row_keys:
                cursor = db.execute(
                    "UPDATE rows SET state=?, intent_at=?, updated_at=? "
                    "WHERE row_key=? AND state IN (?, ?)",
                    (SendState.SENDING, stamp, stamp, key, SendState.PENDING, SendState.UNKNOWN),
                )
                if cursor.rowcount:
                    claimed.append(key)
        return stamp, claimed

    def record(self, outcomes: Sequence[Outcome]) -> None:
        """Commit the outcomes of finished attempts, in one transaction.

        A ``sent`` outcome whose message id another row already owns is stored
        as ``unknown`` instead: one message can answer for one row only, and
        which row it belongs to is then for a person to decide.
        """
        if not outcomes:
            return
        with self._transaction() as db:
            self._record_in(db, outcomes, now_text())

    @staticmethod
    def _record_in(db: sqlite3.Connection, outcomes: Sequence[Outcome], stamp: str) -> None:
        for outcome in outcomes:
            state, error = outcome.state, outcome.error
            if outcome.message_id is not None:
                owner = db.execute(
                    "SELECT row_key FROM rows WHERE message_id=?", (outcome.message_id,)
                ).fetchone()
                if owner is not None and owner[0] != outcome.row_key:
                    state = SendState.UNKNOWN
                    error = (
                        f"the API answered with message id {outcome.message_id}, "
                        f"which already belongs to another row"
                    )
                    outcome = Outcome(outcome.row_key, state, outcome.attempts, error=error)
            db.execute(
                "UPDATE rows SET state=?, attempts=attempts+?,"
                " message_id=COALESCE(?, message_id), campaign_id=COALESCE(?, campaign_id),"
                " error_code=?, error=?, sent_at=COALESCE(?, sent_at), updated_at=?"
                " WHERE row_key=?",
                (
                    state,
                    outcome.attempts,
                    outcome.message_id,
                    outcome.campaign_id,
                    outcome.error_code,
                    error,
                    stamp if state == SendState.SENT else None,
                    stamp,
                    outcome.row_key,
                ),
            )

    def adopt(self, row_key: str, candidates: Sequence[tuple[int, int | None]]) -> int | None:
        """Give ``row_key`` the first candidate message no other row owns.

        ``candidates`` are ``(message_id, campaign_id)`` pairs found in the
        message list, best first.  Returns the adopted id, or None when every
        candidate already belongs to another row.  Its ``sent_at`` is the
        moment the intent was committed, just before the request: the
        adoption comes later, after Mobizon had long started sending it.
        """
        stamp = now_text()
        with self._transaction() as db:
            for message_id, campaign_id in candidates:
                owner = db.execute(
                    "SELECT row_key FROM rows WHERE message_id=?", (message_id,)
                ).fetchone()
                if owner is not None and owner[0] != row_key:
                    continue
                db.execute(
                    "UPDATE rows SET state=?, message_id=?, campaign_id=?, error_code=NULL,"
                    " error='', sent_at=COALESCE(sent_at, intent_at, ?), updated_at=?"
                    " WHERE row_key=?",
                    (SendState.SENT, message_id, campaign_id, stamp, stamp, row_key),
                )
                return message_id
        return None

    # -------------------------------------------------------------- reading

    def rows(self, states: Iterable[str] | None = None) -> list[JournalRow]:
        """Rows (optionally only in ``states``), in registration order."""
        query = f"SELECT {_COLUMNS} FROM rows"
        params: list[str] = []
        if states is not None:
            wanted = list(states)
            query += f" WHERE state IN ({','.join('?' * len(wanted))})"
            params = wanted
        with self._lock:
            found = self._db.execute(query + " ORDER BY seq", params).fetchall()
        return [JournalRow(*row) for row in found]

    def get(self, row_key: str) -> JournalRow | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM rows WHERE row_key=?", (row_key,)
            ).fetchone()
        return JournalRow(*row) if row else None

    def counts(self, keys: Collection[str] | None = None) -> Counter[str]:
        """Rows by state; with ``keys``, only those rows (the current list's)."""
        with self._lock:
            if keys is None:
                query = "SELECT state, COUNT(*) FROM rows GROUP BY state"
                return Counter(dict(self._db.execute(query).fetchall()))
            pairs = self._db.execute("SELECT row_key, state FROM rows").fetchall()
        return Counter(state for key, state in pairs if key in keys)

    def frame(self) -> pd.DataFrame:
        """Every row's outcome as a DataFrame (for rendering results files)."""
        with self._lock:
            cursor = self._db.execute(f"SELECT {', '.join(_FRAME_COLUMNS)} FROM rows ORDER BY seq")
            records = cursor.fetchall()
        frame = pd.DataFrame.from_records(records, columns=list(_FRAME_COLUMNS))
        for column in ("message_id", "campaign_id", "error_code"):
            frame[column] = frame[column].astype("Int64")
        return frame

    def recent_sends(self, limit: int = 3) -> list[JournalRow]:
        """The rows this journal saw accepted last (with the times around their request).

        What a run that has nothing new to send learns the account's clock from.
        """
        with self._lock:
            found = self._db.execute(
                f"SELECT {_COLUMNS} FROM rows WHERE state=? AND campaign_id IS NOT NULL"
                " AND intent_at IS NOT NULL AND sent_at IS NOT NULL"
                " ORDER BY sent_at DESC LIMIT ?",
                (SendState.SENT, limit),
            ).fetchall()
        return [JournalRow(*row) for row in found]

    def owned_ids(self) -> set[int]:
        with self._lock:
            return {
                r[0]
                for r in self._db.execute(
                    "SELECT message_id FROM rows WHERE message_id IS NOT NULL"
                )
            }
