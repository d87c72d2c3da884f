"""The words every layer shares: row states, Mobizon statuses, the timestamp format.

Why one module at the bottom: a state such as ``duplicate`` is written by the
plan, stored by the journal, rendered by the results file, counted by the
report and printed by the command line.  Spelled out as a bare string in each
of those places, a typo is a silent bug; defined twice, the two copies drift.
These enumerations are ``StrEnum``s, so a member *is* its string: it compares
equal to the text read back from a journal or a results file, and it is
written out as that text.
"""

from __future__ import annotations

from enum import StrEnum

#: How every time we write down or send looks: the API's ``YYYY-MM-DD HH:MM:SS``
#: (account-local, no time zone), also used in journals, results files and reports.
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"

#: How ``send`` sends: a request per row, or the list staged in Mobizon campaigns
#: (here, not in ``runs.campaign``, so that ``send --help`` names them cheaply).
SEND_MODES = ("message", "campaign")

#: Message/List: the sort fields the API documents, by a forgiving key (lower case,
#: no "_").  Here rather than in ``listing`` so that ``list --help`` names them
#: without loading pandas.
SORT_FIELDS = {
    "campaignid": "campaignId",
    "from": "from",
    "to": "to",
    "text": "text",
    "status": "status",
    "startsendts": "startSendTs",
    "statusupdatets": "statusUpdateTs",
    "segnum": "segNum",
}


class SendState(StrEnum):
    """What the plan decided for a row and what then happened to it.

    The plan's verdicts (``sendable``, ``invalid``, ``duplicate``,
    ``opted_out``) are decided before sending; all but ``sendable`` are also
    the row's ``send_status`` in a results file; ``pending`` → ``sending`` → ``sent`` /
    ``failed`` / ``unknown`` is the journal's life of a row; ``planned`` is
    what a dry run shows for a row a real send would send.  ``sending`` only
    ever lives in the journal (the intent is committed, the answer not yet).
    """

    SENDABLE = "sendable"
    SENT = "sent"
    FAILED = "failed"
    INVALID = "invalid"
    DUPLICATE = "duplicate"
    OPTED_OUT = "opted_out"
    ALREADY_SENT = "already_sent"
    UNKNOWN = "unknown"
    PENDING = "pending"
    PLANNED = "planned"
    SENDING = "sending"


#: Verdicts the plan gives to rows that are never to be sent.
PLAN_VERDICTS = frozenset({SendState.INVALID, SendState.DUPLICATE, SendState.OPTED_OUT})


class SmsStatus(StrEnum):
    """Delivery statuses GetSMSStatus reports (see the API notes).

    A status string not listed here is kept verbatim wherever it appears and
    counts as not final (``is_final_status``): a new status from Mobizon must
    never make us stop asking about a message that may still change.
    """

    NEW = "NEW"
    ENQUEUD = "ENQUEUD"
    ACCEPTD = "ACCEPTD"
    PDLIVRD = "PDLIVRD"
    DELIVRD = "DELIVRD"
    UNDELIV = "UNDELIV"
    REJECTD = "REJECTD"
    EXPIRED = "EXPIRED"
    DELETED = "DELETED"


#: Statuses that never change again: asking about them again only spends calls.
FINAL_STATUSES = frozenset(
    {SmsStatus.DELIVRD, SmsStatus.UNDELIV, SmsStatus.REJECTD, SmsStatus.EXPIRED, SmsStatus.DELETED}
)
#: Statuses of messages still on their way.
NON_FINAL_STATUSES = frozenset(
    {SmsStatus.NEW, SmsStatus.ENQUEUD, SmsStatus.ACCEPTD, SmsStatus.PDLIVRD}
)
#: Our marker in ``status`` for an id GetSMSStatus left out of its answer (not final:
#: a later pass asks again).  Not a Mobizon status, so not an ``SmsStatus``.
NOT_FOUND = "NOT_FOUND"


#: Our marker in ``status`` for a message whose campaign a Mobizon moderator declined:
#: it will never be sent, so it is final.  Not a Mobizon SMS status, so not an ``SmsStatus``.
DECLINED = "DECLINED"


def is_final_status(status: str) -> bool:
    """Whether ``status`` can never change again. Unknown strings are not final."""
    word = status.strip().upper()
    return word in FINAL_STATUSES or word == DECLINED
