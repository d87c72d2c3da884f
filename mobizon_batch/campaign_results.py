"""What a campaign pass reports, and what a recipient's answer code means for its row.

Kept apart from the pass itself (``campaign_pass``) so that the pass reads as
its steps; these are the words it reports in — options, the price, the
summary — and the one table that turns AddRecipients' per-recipient codes
into row outcomes with sentences.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from mobizon_batch.campaign_client import RecipientResult
from mobizon_batch.campaign_journal import MemberRecord, Rejected, Staged
from mobizon_batch.errors import RunAborted
from mobizon_batch.vocabulary import SendState

#: Per-recipient codes of AddRecipients that reject the row, with the sentence it gets.
REJECTIONS = {
    1: "Mobizon found no number in this row (code 1)",
    2: "Mobizon found no number in this row (code 2)",
    3: "Mobizon refused the number: not in international format (code 3)",
    5: "the number is in a Mobizon stop list, the account's or the system's (code 5)",
    6: "sending to this country is restricted by the account's settings (code 6)",
    7: "Mobizon cannot tell this number's operator or country (code 7)",
    8: "Mobizon does not send to this number's operator (code 8)",
    20: "the template's data for this row did not reach Mobizon; rejected rather than "
    "sent with a hole (code 20)",
}
#: Per-recipient codes worth adding again (a system error, short links unavailable).
RETRY_CODES = frozenset({51, 99})


@dataclass(frozen=True)
class CampaignOptions:
    """How campaigns are made and when the pass must stop before sending."""

    name: str
    sender: str | None = None
    validity: int | None = None
    deferred_to: datetime | None = None
    rate: float | None = None  # messages a second (→ rateLimit/ratePeriod); None: provider's pace
    flash: bool = False
    max_cost: Decimal | None = None
    max_attempts: int = 5
    settle_seconds: float = 5.0
    #: how often counters and listings are read again before a mismatch is believed
    verify_rounds: int = 4


@dataclass(frozen=True)
class Quote:
    """What sending the staged campaigns will cost, and what the account holds."""

    campaigns: int
    messages: int
    segments: int
    cost: Decimal
    balance: Decimal
    currency: str


@dataclass(frozen=True)
class CampaignProgress:
    phase: str  # "staging"
    done: int
    total: int


@dataclass
class CampaignSummary:
    """What a pass did; ``counts`` are the journal states of the list's rows."""

    counts: Counter[str]
    quote: Quote | None = None
    stopped: str = ""  # why nothing was sent: a limit the user set, or "no" at the prompt
    created: int = 0
    staged_now: int = 0
    rejected_now: int = 0
    sent_campaigns: list[int] = field(default_factory=list)
    sent_now: int = 0
    moderation: list[int] = field(default_factory=list)
    declined: list[tuple[int, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    requests: int = 0
    staging_seconds: float = 0.0
    elapsed: float = 0.0
    interrupted: bool = False
    aborted: RunAborted | None = None
    unreachable: str = ""

    @property
    def incomplete(self) -> int:
        return sum(
            self.counts[s]
            for s in (SendState.FAILED, SendState.UNKNOWN, SendState.PENDING, SendState.SENDING)
        )


def recipient_outcomes(
    chunk: Sequence[MemberRecord], results: Sequence[RecipientResult], max_attempts: int
) -> tuple[list[Staged], list[Rejected], list[str]]:
    """What one AddRecipients answer means for each member of the chunk.

    Staged (with its id, or code 4: already in the campaign, id looked up
    later), rejected (the row fails with the sentence for its code; a code
    the docs do not list fails it too, naming the code), or to be added
    again (codes 51 and 99, or no item for it in the answer) while it has
    attempts left.
    """
    by_number = {_digits(r.number or r.recipient or ""): r for r in results}
    staged: list[Staged] = []
    rejected: list[Rejected] = []
    requeued: list[str] = []
    for member in chunk:
        result = by_number.get(_digits(member.member.recipient))
        code = result.code if result is not None else None
        if result is not None and code == 0 and result.message_id is not None:
            staged.append(Staged(member.row_key, result.message_id))
        elif code in (0, 4):  # already in the campaign (a lost answer): id looked up
            staged.append(Staged(member.row_key, None))
        elif code in REJECTIONS:
            rejected.append(Rejected(member.row_key, code, REJECTIONS[code]))
        elif code is not None and code not in RETRY_CODES:
            rejected.append(
                Rejected(member.row_key, code, f"Mobizon refused this number (code {code})")
            )
        elif member.tries < max_attempts:  # 99, 51, or no item for it: added again
            requeued.append(member.row_key)
        else:
            rejected.append(
                Rejected(
                    member.row_key,
                    code,
                    f"Mobizon could not add this number in {member.tries} attempts "
                    f"(code {code if code is not None else 'missing'})",
                )
            )
    return staged, rejected, requeued


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)
