"""The Campaign module of the Mobizon API, typed, on top of ``MobizonClient``.

Why a module beside the client rather than in it: the client is the one place
that speaks HTTP (and it is already long); these are the campaign calls'
parameters and answers — what ``data[...]`` a Create takes, how a 98/99
answer of AddRecipients still carries one result per recipient — with every
number coerced (the live service sends numbers as strings).  Errors are the
client's: the same ``errors.py`` families, translated once, in ``client.py``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from mobizon_batch.client import MobizonClient, to_datetime, to_decimal, to_int
from mobizon_batch.errors import AnswerLost, PartialBulk

#: AddRecipients takes at most this many recipients a call (more: code 12, nothing added).
MAX_RECIPIENTS_PER_CALL = 500
BULK, TEMPLATE = 2, 3
#: placeholdersFlag: a recipient whose placeholder data is missing is rejected (code 20).
REJECT_MISSING_PLACEHOLDERS = 3
#: Campaign/Send's answer: the campaign went to a moderator first.
SENT_TO_MODERATION = 1


@dataclass(frozen=True, slots=True)
class CampaignSpec:
    """What Campaign/Create is given (``data[...]``); None leaves a field out."""

    name: str
    text: str
    kind: int = BULK
    sender: str | None = None
    rate_limit: int | None = None
    rate_period: int | None = None
    deferred_to: datetime | None = None
    validity: int | None = None
    mclass: int | None = None

    def data(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "text": self.text,
            "type": self.kind,
            "from": self.sender or None,
            "rateLimit": self.rate_limit,
            "ratePeriod": self.rate_period,
            "deferredToTs": self.deferred_to,
            "validity": self.validity,
            "mclass": self.mclass,
        }


@dataclass(frozen=True, slots=True)
class RecipientResult:
    """One item of an AddRecipients answer: the number and its per-recipient code."""

    number: str  # as we gave it
    recipient: str | None  # as the API normalized it
    code: int | None
    message_id: int | None


@dataclass(frozen=True, slots=True)
class CampaignCounters:
    """The part of GetInfo's counters a sender needs before and after sending."""

    messages: int
    segments: int
    cost: Decimal
    new_messages: int
    rejected: int
    updated: datetime | None


@dataclass(frozen=True, slots=True)
class CampaignInfo:
    """Campaign/Get, GetInfo or a Campaign/List item, typed."""

    id: int
    name: str
    text: str
    common_status: str
    moderation_status: str
    comment: str
    started: datetime | None
    deleted: bool
    counters: CampaignCounters | None


class CampaignApi:
    """Campaign/Create, AddRecipients, Send, Get, GetInfo, List and Delete."""

    def __init__(self, client: MobizonClient) -> None:
        self.client = client

    def create(self, spec: CampaignSpec) -> int:
        """Campaign/Create; the new campaign's id."""
        data = self.client.call("campaign", "create", {"data": spec.data()})
        campaign_id = to_int(data.get("id") if isinstance(data, Mapping) else data)
        if campaign_id is None:
            # Code 0 says it exists; without its id it must be found again.
            raise AnswerLost(
                f"{self.client.host} created a campaign but its answer carries no id",
                host=self.client.host,
            )
        return campaign_id

    def add_recipients(
        self,
        campaign_id: int,
        recipients: Sequence[str | Mapping[str, str]],
        *,
        placeholders_flag: int | None = None,
    ) -> list[RecipientResult]:
        """Campaign/AddRecipients for at most 500 numbers (or template rows).

        Envelope codes 98 (some added) and 99 (none added) still answer one
        item per recipient: they come back as results, not as an error.  A
        template row is a mapping with ``recipient`` and the placeholder values.
        """
        if len(recipients) > MAX_RECIPIENTS_PER_CALL:
            raise ValueError(
                f"AddRecipients takes at most {MAX_RECIPIENTS_PER_CALL} recipients, "
                f"got {len(recipients)}"
            )
        params: dict[str, Any] = {"id": campaign_id, "recipients": list(recipients)}
        if placeholders_flag is not None:
            params["params"] = {"placeholdersFlag": placeholders_flag}
        try:
            data = self.client.call("campaign", "addRecipients", params)
        except PartialBulk as exc:
            if not isinstance(exc.data, list):
                raise
            data = exc.data
        results = []
        for item in data if isinstance(data, list) else []:
            if not isinstance(item, Mapping):
                continue
            recipient = item.get("recipient")
            results.append(
                RecipientResult(
                    number=str(item.get("number") or recipient or ""),
                    recipient=str(recipient) if recipient not in (None, "") else None,
                    code=to_int(item.get("code")),
                    message_id=to_int(item.get("messageId")),
                )
            )
        return results

    def send(self, campaign_id: int) -> bool:
        """Campaign/Send; True when the campaign went to moderation first."""
        data = self.client.call("campaign", "send", {"id": campaign_id})
        return to_int(data) == SENT_TO_MODERATION

    def get(self, campaign_id: int) -> CampaignInfo:
        """Campaign/Get: the campaign's data without counters."""
        return _info(self.client.call("campaign", "get", {"id": campaign_id}))

    def get_info(self, campaign_id: int) -> CampaignInfo:
        """Campaign/GetInfo: status, moderation and counters (messages, segments, cost)."""
        return _info(self.client.call("campaign", "getInfo", {"id": campaign_id}))

    def list(
        self,
        criteria: Mapping[str, Any],
        *,
        page: int = 0,
        page_size: int = 100,
        sort: Mapping[str, str] | None = None,
    ) -> tuple[list[CampaignInfo], int]:
        """One page of Campaign/List: ``(campaigns, totalItemCount)``."""
        params = {
            "criteria": dict(criteria),
            "pagination": {"currentPage": page, "pageSize": page_size},
            "sort": dict(sort) if sort else {"id": "DESC"},
        }
        data = self.client.call("campaign", "list", params)
        fields = data if isinstance(data, Mapping) else {}
        items = [_info(item) for item in fields.get("items") or [] if isinstance(item, Mapping)]
        total = to_int(fields.get("totalItemCount"))
        return items, total if total is not None else len(items)

    def delete(self, campaign_id: int) -> None:
        """Campaign/Delete: only before sending starts (code 10 after)."""
        self.client.call("campaign", "delete", {"id": campaign_id})


def _info(data: Any) -> CampaignInfo:
    fields = data if isinstance(data, Mapping) else {}
    counters = fields.get("counters")
    return CampaignInfo(
        id=to_int(fields.get("id")) or 0,
        name=str(fields.get("name") or ""),
        text=str(fields.get("text") or ""),
        common_status=str(fields.get("commonStatus") or "").upper(),
        moderation_status=str(fields.get("moderationStatus") or "").upper(),
        comment=str(fields.get("globalComment") or ""),
        started=to_datetime(fields.get("startSendTs")),
        deleted=to_int(fields.get("isDeleted")) == 1,
        counters=_counters(counters) if isinstance(counters, Mapping) else None,
    )


def _counters(fields: Mapping[str, Any]) -> CampaignCounters:
    cost = to_decimal(fields.get("totalCost"))
    if cost is None:
        cost = to_decimal(fields.get("totalNewMsgCost")) or Decimal(0)
    return CampaignCounters(
        messages=to_int(fields.get("totalMsgNum")) or 0,
        segments=to_int(fields.get("totalSegNum")) or 0,
        cost=cost,
        new_messages=to_int(fields.get("totalNewMsgNum")) or 0,
        rejected=to_int(fields.get("recipientsRejected")) or 0,
        updated=to_datetime(fields.get("updateTs")),
    )
