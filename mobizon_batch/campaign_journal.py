"""Campaign mode's records in the send journal: campaigns, and the rows each carries.

Why beside the row records rather than in them: a row's *outcome* (sent with
a message id, failed with a reason, pending) is the same in both modes and
stays in ``rows``, so results files and the status pass do not care how a row
was sent.  What campaign mode adds is the state of the provider's objects
and of the staging, each step committed before the request that makes it:

    campaign:  creating ─► staging ─► sending ─► sent
                   └──────────┴──────────┴─► deleted (never sent; rows pending again)
    member:    queued ─► adding ─► staged            (rejected: row failed, member gone)

A row is ``pending`` while queued, ``sending`` from the moment its chunk's
intent is committed until its campaign is known to be sent (then ``sent``,
with the message id AddRecipients gave it) or deleted (then ``pending``).
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from mobizon_batch.campaign_plan import CampaignDraft, Member, campaign_name
from mobizon_batch.journal import Journal, now_text
from mobizon_batch.vocabulary import SendState

CREATING, STAGING, CAMPAIGN_SENDING, CAMPAIGN_SENT, DELETED = (
    "creating",
    "staging",
    "sending",
    "sent",
    "deleted",
)
#: Campaign states that still need this journal's attention.
UNFINISHED = (CREATING, STAGING, CAMPAIGN_SENDING)
QUEUED, ADDING, STAGED = "queued", "adding", "staged"
#: The ``error`` of a sent row whose campaign went to a moderator: the status pass
#: looks up these rows' campaigns, to report a declined one.
UNDER_MODERATION = "campaign under moderation"


@dataclass(frozen=True, slots=True)
class CampaignRecord:
    local_id: int
    group: str
    kind: int
    text: str
    name: str
    state: str
    campaign_id: int | None
    moderation: bool
    comment: str
    intent_at: str | None
    sent_at: str | None


@dataclass(frozen=True, slots=True)
class MemberRecord:
    row_key: str
    local_id: int
    state: str
    chunk: int | None
    message_id: int | None
    tries: int
    member: Member


@dataclass(frozen=True, slots=True)
class Staged:
    """A recipient the API staged; ``message_id`` None when it answered code 4."""

    row_key: str
    message_id: int | None


@dataclass(frozen=True, slots=True)
class Rejected:
    """A recipient the API refused: the row fails with this code and sentence."""

    row_key: str
    code: int | None
    error: str


_CAMPAIGN_COLUMNS = (
    "local_id, grp, kind, text, name, state, campaign_id, moderation, comment, intent_at, sent_at"
)
_MEMBER_COLUMNS = "row_key, local_id, state, chunk, message_id, tries, payload"


class CampaignJournal:
    """Campaign records of one ``Journal`` (same file, same lock, same transactions)."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    def token(self) -> str:
        """This journal's tag for campaign names, made once (random, 6 hex digits)."""
        token = self.journal.meta("campaign_token")
        if token is None:
            token = secrets.token_hex(3)
            self.journal.set_meta("campaign_token", token)
        return token

    # ------------------------------------------------------------- reading

    def campaigns(self, states: Iterable[str] | None = None) -> list[CampaignRecord]:
        wanted = list(states) if states is not None else None
        query = f"SELECT {_CAMPAIGN_COLUMNS} FROM campaigns"
        if wanted is not None:
            query += f" WHERE state IN ({','.join('?' * len(wanted))})"
        with self.journal.transaction() as db:
            found = db.execute(query + " ORDER BY local_id", wanted or []).fetchall()
        return [_campaign(row) for row in found]

    def campaign(self, local_id: int) -> CampaignRecord:
        with self.journal.transaction() as db:
            row = db.execute(
                f"SELECT {_CAMPAIGN_COLUMNS} FROM campaigns WHERE local_id=?", (local_id,)
            ).fetchone()
        return _campaign(row)

    def members(
        self, local_id: int, states: Iterable[str] | None = None, *, limit: int = -1
    ) -> list[MemberRecord]:
        """A campaign's members (optionally only in ``states``; at most ``limit``), in order."""
        wanted = list(states) if states is not None else None
        query = f"SELECT {_MEMBER_COLUMNS} FROM campaign_members WHERE local_id=?"
        if wanted is not None:
            query += f" AND state IN ({','.join('?' * len(wanted))})"
        with self.journal.transaction() as db:
            found = db.execute(
                query + " ORDER BY seq LIMIT ?", [local_id, *(wanted or []), limit]
            ).fetchall()
        return [_member(row) for row in found]

    def count_members(self, local_id: int, states: Iterable[str]) -> int:
        wanted = list(states)
        with self.journal.transaction() as db:
            return int(
                db.execute(
                    "SELECT COUNT(*) FROM campaign_members WHERE local_id=?"
                    f" AND state IN ({','.join('?' * len(wanted))})",
                    [local_id, *wanted],
                ).fetchone()[0]
            )

    def assigned_keys(self) -> set[str]:
        """Rows that belong to a campaign this journal has not finished with."""
        with self.journal.transaction() as db:
            found = db.execute(
                "SELECT m.row_key FROM campaign_members m JOIN campaigns c USING (local_id)"
                f" WHERE c.state IN ({','.join('?' * len(UNFINISHED))})",
                UNFINISHED,
            ).fetchall()
        return {row[0] for row in found}

    def unfinished(self) -> bool:
        """True while a campaign is created, staged or being sent but not settled."""
        return bool(self.campaigns(UNFINISHED))

    # -------------------------------------------------------------- writing

    def add(self, draft: CampaignDraft, base_name: str) -> CampaignRecord:
        """Record a campaign to create and its members (queued), before any request."""
        stamp = now_text()
        token = self.token()
        with self.journal.transaction() as db:
            cursor = db.execute(
                "INSERT INTO campaigns (grp, kind, text, name, state, updated_at)"
                " VALUES (?, ?, ?, '', ?, ?)",
                (draft.group, draft.kind, draft.text, CREATING, stamp),
            )
            local_id = int(cursor.lastrowid or 0)
            name = campaign_name(base_name, token, local_id)
            db.execute("UPDATE campaigns SET name=? WHERE local_id=?", (name, local_id))
            db.executemany(
                "INSERT INTO campaign_members (row_key, local_id, seq, payload, state)"
                " VALUES (?, ?, ?, ?, ?)",
                [
                    (m.row_key, local_id, seq, _payload(m), QUEUED)
                    for seq, m in enumerate(draft.members)
                ],
            )
        return self.campaign(local_id)

    def create_intent(self, local_id: int) -> str:
        """Commit the intent to call Campaign/Create now; its time."""
        stamp = now_text()
        with self.journal.transaction() as db:
            db.execute(
                "UPDATE campaigns SET intent_at=?, updated_at=? WHERE local_id=?",
                (stamp, stamp, local_id),
            )
        return stamp

    def created(self, local_id: int, campaign_id: int) -> None:
        with self.journal.transaction() as db:
            db.execute(
                "UPDATE campaigns SET campaign_id=?, state=?, updated_at=? WHERE local_id=?",
                (campaign_id, STAGING, now_text(), local_id),
            )

    def claim_chunk(self, local_id: int, row_keys: Sequence[str]) -> int:
        """Commit the intent to add these members now (rows become ``sending``)."""
        stamp = now_text()
        with self.journal.transaction() as db:
            chunk = db.execute(
                "SELECT COALESCE(MAX(chunk), 0) + 1 FROM campaign_members WHERE local_id=?"
                " AND state IN (?, ?)",
                (local_id, ADDING, STAGED),
            ).fetchone()[0]
            db.executemany(
                "UPDATE campaign_members SET state=?, chunk=?, tries=tries+1"
                " WHERE row_key=? AND local_id=?",
                [(ADDING, chunk, key, local_id) for key in row_keys],
            )
            db.executemany(
                "UPDATE rows SET state=?, intent_at=?, updated_at=? WHERE row_key=?",
                [(SendState.SENDING, stamp, stamp, key) for key in row_keys],
            )
        return int(chunk)

    def record_staging(
        self,
        local_id: int,
        staged: Sequence[Staged],
        rejected: Sequence[Rejected],
        requeued: Sequence[str] = (),
    ) -> None:
        """Commit what AddRecipients did: staged (with ids), rejected, or to add again."""
        stamp = now_text()
        with self.journal.transaction() as db:
            db.executemany(
                "UPDATE campaign_members SET state=?, message_id=COALESCE(?, message_id)"
                " WHERE row_key=? AND local_id=?",
                [(STAGED, item.message_id, item.row_key, local_id) for item in staged],
            )
            for refused in rejected:
                db.execute(
                    "DELETE FROM campaign_members WHERE row_key=? AND local_id=?",
                    (refused.row_key, local_id),
                )
                db.execute(
                    "UPDATE rows SET state=?, error_code=?, error=?, attempts=attempts+1,"
                    " updated_at=? WHERE row_key=?",
                    (SendState.FAILED, refused.code, refused.error, stamp, refused.row_key),
                )
            for key in requeued:
                db.execute(
                    "UPDATE campaign_members SET state=? WHERE row_key=? AND local_id=?",
                    (QUEUED, key, local_id),
                )
                db.execute(
                    "UPDATE rows SET state=?, updated_at=? WHERE row_key=?",
                    (SendState.PENDING, stamp, key),
                )

    def set_message_ids(self, local_id: int, ids: Iterable[tuple[str, int]]) -> None:
        """Message ids found for staged members (those that answered code 4)."""
        with self.journal.transaction() as db:
            db.executemany(
                "UPDATE campaign_members SET message_id=? WHERE row_key=? AND local_id=?",
                [(message_id, key, local_id) for key, message_id in ids],
            )

    def drop_queued(self, local_id: int, row_keys: Collection[str]) -> None:
        """Take rows not added yet out of a campaign (the list no longer has them)."""
        with self.journal.transaction() as db:
            db.executemany(
                "DELETE FROM campaign_members WHERE row_key=? AND local_id=? AND state=?",
                [(key, local_id, QUEUED) for key in row_keys],
            )

    def send_intent(self, local_id: int) -> None:
        """Commit the intent to call Campaign/Send now."""
        stamp = now_text()
        with self.journal.transaction() as db:
            db.execute(
                "UPDATE campaigns SET state=?, intent_at=?, updated_at=? WHERE local_id=?",
                (CAMPAIGN_SENDING, stamp, stamp, local_id),
            )

    def sent(self, local_id: int, *, moderation: bool, comment: str = "") -> None:
        """The campaign is sent: its staged rows are ``sent`` with their message ids."""
        stamp = now_text()
        with self.journal.transaction() as db:
            campaign_id = db.execute(
                "SELECT campaign_id FROM campaigns WHERE local_id=?", (local_id,)
            ).fetchone()[0]
            db.execute(
                "UPDATE campaigns SET state=?, moderation=?, comment=?, sent_at=?, updated_at=?"
                " WHERE local_id=?",
                (CAMPAIGN_SENT, int(moderation), comment, stamp, stamp, local_id),
            )
            staged = db.execute(
                "SELECT row_key, message_id FROM campaign_members WHERE local_id=? AND state=?",
                (local_id, STAGED),
            ).fetchall()
            db.executemany(
                "UPDATE rows SET state=?, message_id=?, campaign_id=?, error_code=NULL,"
                " error=?, attempts=attempts+1, sent_at=?, updated_at=? WHERE row_key=?",
                [
                    (
                        SendState.SENT,
                        message_id,
                        campaign_id,
                        UNDER_MODERATION if moderation else "",
                        stamp,
                        stamp,
                        key,
                    )
                    for key, message_id in staged
                ],
            )

    def deleted(self, local_id: int, reason: str) -> None:
        """The campaign was deleted (or never made): its rows are pending again."""
        stamp = now_text()
        with self.journal.transaction() as db:
            keys = _close_campaign(db, local_id, reason, stamp)
            db.executemany(
                "UPDATE rows SET state=?, error=?, updated_at=?"
                " WHERE row_key=? AND state IN (?, ?)",
                [
                    (SendState.PENDING, reason, stamp, key, SendState.PENDING, SendState.SENDING)
                    for key in keys
                ],
            )

    def abandon(self, local_id: int, code: int | None, error: str) -> None:
        """Mobizon refused to create the campaign: its rows fail with the reason."""
        stamp = now_text()
        with self.journal.transaction() as db:
            keys = _close_campaign(db, local_id, error, stamp)
            db.executemany(
                "UPDATE rows SET state=?, error_code=?, error=?, attempts=attempts+1,"
                " updated_at=? WHERE row_key=? AND state IN (?, ?)",
                [
                    (
                        SendState.FAILED,
                        code,
                        error,
                        stamp,
                        key,
                        SendState.PENDING,
                        SendState.SENDING,
                    )
                    for key in keys
                ],
            )


def _payload(member: Member) -> str:
    return json.dumps(
        {"recipient": member.recipient, "text": member.text, "values": list(member.values)},
        ensure_ascii=False,
    )


def _campaign(row: Sequence[object]) -> CampaignRecord:
    local_id, group, kind, text, name, state, campaign_id, moderation, comment, intent, sent = row
    return CampaignRecord(
        local_id=int(str(local_id)),
        group=str(group),
        kind=int(str(kind)),
        text=str(text),
        name=str(name),
        state=str(state),
        campaign_id=int(str(campaign_id)) if campaign_id is not None else None,
        moderation=bool(moderation),
        comment=str(comment),
        intent_at=str(intent) if intent is not None else None,
        sent_at=str(sent) if sent is not None else None,
    )


def _member(row: Sequence[object]) -> MemberRecord:
    row_key, local_id, state, chunk, message_id, tries, payload = row
    data = json.loads(str(payload))
    member = Member(
        str(row_key),
        str(data["recipient"]),
        str(data["text"]),
        tuple((str(k), str(v)) for k, v in data["values"]),
    )
    return MemberRecord(
        row_key=str(row_key),
        local_id=int(str(local_id)),
        state=str(state),
        chunk=int(str(chunk)) if chunk is not None else None,
        message_id=int(str(message_id)) if message_id is not None else None,
        tries=int(str(tries)),
        member=member,
    )


def _close_campaign(db: sqlite3.Connection, local_id: int, comment: str, stamp: str) -> list[str]:
    """Mark a campaign record gone (with why) and release its members; their row keys.

    Deleting a campaign and Mobizon refusing to create one end the same way for
    the record; what happens to the rows differs, and is the caller's.
    """
    keys = [
        row[0]
        for row in db.execute("SELECT row_key FROM campaign_members WHERE local_id=?", (local_id,))
    ]
    db.execute(
        "UPDATE campaigns SET state=?, comment=?, updated_at=? WHERE local_id=?",
        (DELETED, comment, stamp, local_id),
    )
    db.execute("DELETE FROM campaign_members WHERE local_id=?", (local_id,))
    return keys
