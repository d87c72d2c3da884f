"""The journal's SQLite file: where it may live, how it is opened, its tables.

``journal.Journal`` is what a send talks to; this module is what it stands
on: a place checked before SQLite would fail there obscurely, a file created
owner-only and opened with full durability (an intent must survive a power
loss), the tables of message mode and campaign mode, and the schema version
that keeps another version of mobizon-batch from misreading the file.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from mobizon_batch.errors import ConfigError
from mobizon_batch.private_files import create_private

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rows (
    row_key     TEXT PRIMARY KEY,
    seq         INTEGER NOT NULL,
    recipient   TEXT NOT NULL,
    text        TEXT NOT NULL,
    state       TEXT NOT NULL,
    reason      TEXT NOT NULL DEFAULT '',
    segments    INTEGER NOT NULL DEFAULT 0,
    attempts    INTEGER NOT NULL DEFAULT 0,
    message_id  INTEGER,
    campaign_id INTEGER,
    error_code  INTEGER,
    error       TEXT NOT NULL DEFAULT '',
    intent_at   TEXT,
    sent_at     TEXT,
    updated_at  TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS rows_message_id ON rows(message_id)
    WHERE message_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS rows_state ON rows(state, seq);
-- Campaign mode (campaign_journal.py): the campaigns this journal created, and
-- which rows each carries; a row's outcome stays in ``rows``.
CREATE TABLE IF NOT EXISTS campaigns (
    local_id    INTEGER PRIMARY KEY,
    grp         TEXT NOT NULL,
    kind        INTEGER NOT NULL,
    text        TEXT NOT NULL,
    name        TEXT NOT NULL,
    state       TEXT NOT NULL,
    campaign_id INTEGER UNIQUE,
    moderation  INTEGER NOT NULL DEFAULT 0,
    comment     TEXT NOT NULL DEFAULT '',
    intent_at   TEXT,
    sent_at     TEXT,
    updated_at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS campaign_members (
    row_key     TEXT PRIMARY KEY,
    local_id    INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    payload     TEXT NOT NULL,
    state       TEXT NOT NULL,
    chunk       INTEGER,
    message_id  INTEGER,
    tries       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS members_campaign ON campaign_members(local_id, state, seq);
"""


def check_journal_place(path: Path, where: Path) -> None:
    """Say plainly why a journal cannot live at ``path``, before SQLite says it obscurely."""
    if where.is_dir():
        raise ConfigError(f"the journal {path} is a folder: give a file name such as send.journal")
    folder = where.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise ConfigError(f"cannot create the journal {path}: {folder} is a file, not a folder")
    if not where.parent.exists() and not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(
            f"cannot create the journal {path}: the folder {where.parent} does not exist "
            f"and cannot be made in {folder}"
        )


def connect(where: Path) -> sqlite3.Connection:
    """The journal's database at ``where``, its tables created if new."""
    # Created owner-only before SQLite opens it: SQLite gives its -wal
    # and -shm files the mode of the database file (see private_files).
    create_private(where)
    db = sqlite3.connect(where, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    # FULL: an intent must survive a power loss, not only a killed process.
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA busy_timeout=10000")
    db.executescript(SCHEMA)
    return db


def check_version(db: sqlite3.Connection, path: Path, created_at: str) -> None:
    """Stamp a new journal with the schema version; refuse one written by another version."""
    row = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
    if row is None:
        db.execute(
            "INSERT INTO meta VALUES ('schema', ?), ('created_at', ?)",
            (str(SCHEMA_VERSION), created_at),
        )
    elif row[0] != str(SCHEMA_VERSION):
        raise ConfigError(
            f"{path} was written by another version of mobizon-batch "
            f"(journal schema {row[0]}, this one reads {SCHEMA_VERSION})"
        )
