"""The webhook event store: every event Mobizon pushed, kept durably, once.

Why SQLite in WAL mode with ``synchronous=FULL``: Mobizon stops redelivering an
event as soon as it gets a 2xx, so an event acknowledged but not on disk is
lost for good.  ``record`` returns only after the event's transaction is
committed and synced; the receiver answers 2xx only after ``record`` returned.
WAL lets the status pass read the store while the receiver keeps writing.

Why the event id is the key: Mobizon repeats an event (same ``eventId``,
``attempt`` + 1) until it sees a 2xx in time, so the same event can arrive
several times; it is stored once and its deliveries are counted.

The store holds recipients' phone numbers, so the database and its WAL and
shared-memory files are created readable by their owner only (0600).  The
signature (``sign``) is not stored: it is a hash over the shared secret, and a
copy of it would let anyone with the file try guesses at a weak secret.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from mobizon_batch.errors import ConfigError, InputError
from mobizon_batch.vocabulary import TIMESTAMP_FORMAT

#: ``PRAGMA application_id`` of an event store: tells it apart from a journal.
APPLICATION_ID = 0x4D425748  # "MBWH"
SCHEMA_VERSION = 1
DELIVERY_REPORT = "sms-delivery-report"
UNSUBSCRIBE = "form-contact-unsubscribe"
_OWNER_ONLY = 0o600
_SQLITE_MAGIC = b"SQLite format 3\x00"
_CHUNK = 500  # ids per SELECT … IN (…): well under SQLite's variable limit

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    event_id         TEXT PRIMARY KEY,
    event_type       TEXT NOT NULL,
    event_create_ts  TEXT NOT NULL,
    webhook_id       TEXT,
    attempt          INTEGER NOT NULL,
    deliveries       INTEGER NOT NULL DEFAULT 1,
    received_at      TEXT NOT NULL,
    last_received_at TEXT NOT NULL,
    message_id       INTEGER,
    status           TEXT,
    seg_num          INTEGER,
    status_update_ts TEXT,
    recipient        TEXT,
    data             TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_message ON events (message_id)
    WHERE message_id IS NOT NULL;
"""


@dataclass(frozen=True)
class Event:
    """One event as the receiver accepted it (signature already checked).

    ``event_id`` is kept as text, exactly as the sender spelled the number:
    it is an identity, never arithmetic.  The delivery-report fields are
    None for other event types.
    """

    event_id: str
    event_type: str
    event_create_ts: str
    attempt: int
    data: Mapping[str, Any]
    webhook_id: str | None = None
    message_id: int | None = None
    status: str | None = None
    seg_num: int | None = None
    status_update_ts: str | None = None
    recipient: str | None = None


@dataclass(frozen=True)
class DeliveryReport:
    """The final status an event reported for one message."""

    message_id: int
    status: str
    seg_num: int | None
    status_update_ts: str | None
    received_at: str


@dataclass(frozen=True)
class StoreCounts:
    events: int
    deliveries: int
    reports: int
    unsubscribes: int


class EventStore:
    """An open event store. Thread-safe: the receiver's worker threads share one.

    ``create=False`` opens an existing store only (the status pass and the
    export must not leave an empty database behind a typo).
    """

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True) -> None:
        self.path = Path(path)
        if create:
            _create_owner_only(self.path)
        else:
            _check_is_store_file(self.path)
        try:
            self._db = sqlite3.connect(
                self.path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot open the event store {self.path}: {exc}") from None
        self._lock = threading.Lock()
        try:
            self._prepare(create)
        except BaseException:
            self._db.close()
            raise

    def _prepare(self, create: bool) -> None:
        db = self._db
        try:
            application_id = db.execute("PRAGMA application_id").fetchone()[0]
            has_tables = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise InputError(f"{self.path} is not a webhook event store ({exc})") from None
        if application_id != APPLICATION_ID and (has_tables or not create):
            raise InputError(
                f"{self.path} is not a webhook event store (it is some other SQLite file): "
                f"give the file the webhook command writes"
            )
        if db.execute("PRAGMA journal_mode=WAL").fetchone()[0].lower() != "wal":
            raise ConfigError(f"the event store {self.path} cannot use write-ahead logging")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA busy_timeout=30000")
        if create and application_id != APPLICATION_ID:
            with self._transaction():
                _run_script(db, _SCHEMA)
                db.execute(f"PRAGMA application_id={APPLICATION_ID}")
                db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        if create:
            # The WAL and shared-memory files exist now; SQLite gives them the main
            # file's mode, but files made by hand or an older version may be looser.
            for suffix in ("", "-wal", "-shm"):
                sidecar = Path(f"{self.path}{suffix}")
                if sidecar.exists() and sidecar.stat().st_mode & 0o077:
                    sidecar.chmod(_OWNER_ONLY)

    # ------------------------------------------------------------- writing

    def record(self, event: Event, *, now: datetime | None = None) -> bool:
        """Store ``event`` and commit; True if new, False if its id was stored before.

        A repeated event only counts one more delivery: what was stored first
        stays (a redelivery carries the same event).
        """
        moment = (now or datetime.now()).strftime(TIMESTAMP_FORMAT)
        data = json.dumps(event.data, ensure_ascii=False, separators=(",", ":"))
        with self._lock, self._transaction():
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO events (event_id, event_type, event_create_ts, "
                "webhook_id, attempt, received_at, last_received_at, message_id, status, "
                "seg_num, status_update_ts, recipient, data) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    event.event_id,
                    event.event_type,
                    event.event_create_ts,
                    event.webhook_id,
                    event.attempt,
                    moment,
                    moment,
                    event.message_id,
                    event.status,
                    event.seg_num,
                    event.status_update_ts,
                    event.recipient,
                    data,
                ),
            )
            if cursor.rowcount:
                return True
            self._db.execute(
                "UPDATE events SET deliveries = deliveries + 1, last_received_at = ? "
                "WHERE event_id = ?",
                (moment, event.event_id),
            )
            return False

    # ------------------------------------------------------------- reading

    def reports_for(self, message_ids: Iterable[int]) -> dict[int, DeliveryReport]:
        """The reported status of each of ``message_ids`` that has a delivery report.

        One report per message is what Mobizon sends; should two different
        events name the same message, the later status update wins (then the
        later arrival).
        """
        wanted = list(dict.fromkeys(message_ids))
        found: dict[int, DeliveryReport] = {}
        with self._lock:
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    "SELECT message_id, status, seg_num, status_update_ts, received_at "
                    f"FROM events WHERE event_type = ? AND message_id IN ({marks}) "
                    "ORDER BY coalesce(status_update_ts, ''), rowid",
                    (DELIVERY_REPORT, *chunk),
                ).fetchall()
                for message_id, status, seg_num, updated, received in rows:
                    found[int(message_id)] = DeliveryReport(
                        int(message_id), str(status or ""), seg_num, updated, received
                    )
        return found

    def unsubscribed_values(self) -> list[tuple[str, str]]:
        """``(fieldType, value)`` of every item of every unsubscribe event, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT data FROM events WHERE event_type = ? ORDER BY rowid", (UNSUBSCRIBE,)
            ).fetchall()
        values: list[tuple[str, str]] = []
        for (text,) in rows:
            data = json.loads(text)
            items = data.get("items") if isinstance(data, dict) else None
            if isinstance(data, dict) and isinstance(data.get("item"), dict):
                items = [data["item"]]
            for item in items if isinstance(items, list) else []:
                if isinstance(item, dict) and item.get("value") not in (None, ""):
                    values.append((str(item.get("fieldType") or ""), str(item["value"])))
        return values

    def counts(self) -> StoreCounts:
        with self._lock:
            events, deliveries, reports, unsubscribes = self._db.execute(
                "SELECT count(*), coalesce(sum(deliveries), 0), "
                "coalesce(sum(event_type = ?), 0), coalesce(sum(event_type = ?), 0) FROM events",
                (DELIVERY_REPORT, UNSUBSCRIBE),
            ).fetchone()
        return StoreCounts(int(events), int(deliveries), int(reports), int(unsubscribes))

    # ------------------------------------------------------------ lifecycle

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    """BEGIN IMMEDIATE … COMMIT, ROLLBACK on any error (autocommit connection)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            try:
                self._db.execute("COMMIT")
            except sqlite3.Error:
                # A failed COMMIT (disk full) can leave the transaction open: end it,
                # so that the next event starts clean, and let the caller answer 503.
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        elif self._db.in_transaction:
            self._db.execute("ROLLBACK")


def _run_script(db: sqlite3.Connection, script: str) -> None:
    # executescript would COMMIT the open transaction first; run statement by statement.
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


def _create_owner_only(path: Path) -> None:
    """Create ``path`` with mode 0600 unless it exists (SQLite copies the mode to its -wal/-shm).

    An existing file keeps its mode here: it may be no store at all (a journal
    given by mistake), and ``_prepare`` tightens it only once it is known as one.
    """
    if not path.parent.is_dir():
        raise ConfigError(f"the folder of the event store does not exist: {path.parent}")
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, _OWNER_ONLY)
    except FileExistsError:
        return
    except OSError as exc:
        raise ConfigError(f"cannot create the event store {path}: {exc.strerror}") from None
    os.close(descriptor)
    if path.stat().st_mode & 0o077:
        path.chmod(_OWNER_ONLY)


def _check_is_store_file(path: Path) -> None:
    if not path.is_file():
        raise InputError(f"event store not found: {path}")
    with path.open("rb") as handle:
        head = handle.read(len(_SQLITE_MAGIC))
    if head != _SQLITE_MAGIC:
        raise InputError(f"{path} is not a webhook event store (not an SQLite file)")


__all__ = [
    "DELIVERY_REPORT",
    "UNSUBSCRIBE",
    "DeliveryReport",
    "Event",
    "EventStore",
    "StoreCounts",
]
