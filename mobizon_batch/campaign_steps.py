"""Campaign mode's requests, each with the retry rule its effect allows.

Why the rules differ by call (compare ``retries.should_retry_send``):

* **Create** makes an empty campaign: repeated only when surely nothing was
  made (no connection, 429/503 without an envelope, codes 30 and 10).  A lost
  answer is settled by finding the campaign in Campaign/List by its tagged
  name; an empty campaign left behind reaches nobody and is never sent.
* **AddRecipients** only stages: a number added twice answers code 4, and
  nothing is delivered before Campaign/Send.  So it is simply repeated after
  *any* transient failure, lost answers included — that is how a lost answer
  is settled.
* **Send** is the one call that delivers.  Repeated only when surely not
  acted on (no connection, code 30); a lost answer, a 999 or a code 10 is
  settled by reading the campaign (GetInfo; for the one ambiguous status,
  READY_FOR_SEND, Campaign/List with ``status=NEW``).
* Reads (GetInfo, List, Message/List, balance) are repeated freely.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import TypeVar

from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from mobizon_batch.campaign_client import (
    REJECT_MISSING_PLACEHOLDERS,
    TEMPLATE,
    CampaignApi,
    CampaignInfo,
    CampaignSpec,
    RecipientResult,
)
from mobizon_batch.campaign_journal import CampaignRecord
from mobizon_batch.campaign_plan import Member, tag_of
from mobizon_batch.client import MobizonClient, to_datetime
from mobizon_batch.errors import (
    AnswerLost,
    ConcurrentSave,
    NotSent,
    RateLimited,
    ServiceError,
)
from mobizon_batch.listing import ListFilter, export_messages
from mobizon_batch.retries import ReadPolicy, call_read

T = TypeVar("T")
log = logging.getLogger(__name__)

#: Campaign statuses that mean "Send was accepted" (moderation, sending, sent, done).
SENT_STATUSES = frozenset({"MODERATION", "DECLINED", "RUNNING", "SENT", "DONE"})
#: How far back a lost Create is looked for (the API's times carry no zone).
CREATE_WINDOW = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class SendCheck:
    """What reading a campaign says about an earlier Send."""

    sent: bool
    moderation: bool = False
    declined: str = ""  # the moderator's comment when declined
    deleted: bool = False
    #: READY_FOR_SEND and not listed as NEW: sent and scheduled, or a listing that lags
    unsure: bool = False


@dataclass(frozen=True, slots=True)
class Listed:
    """A campaign's messages as Message/List shows them: number → (id, cost)."""

    by_number: dict[str, tuple[int, Decimal]]


class CampaignSteps:
    """The Campaign-module requests of one pass (see the module docstring)."""

    def __init__(
        self,
        client: MobizonClient,
        *,
        attempts: int,
        sleep: Callable[[float], None],
        halt: threading.Event,
    ) -> None:
        self.client = client
        self.api = CampaignApi(client)
        self.attempts = max(attempts, 1)
        self.sleep = sleep
        self.halt = halt
        self.policy = ReadPolicy(attempts=self.attempts, sleep=sleep)
        self.requests = 0

    def _retry(self, call: Callable[[], T], retry_on: tuple[type[BaseException], ...]) -> T:
        def attempt() -> T:
            self.requests += 1
            return call()

        def stop(state: object) -> bool:
            return self.halt.is_set() or stop_after_attempt(self.attempts)(state)  # type: ignore[arg-type]

        return Retrying(
            retry=retry_if_exception(lambda exc: isinstance(exc, retry_on)),
            stop=stop,
            wait=wait_random_exponential(multiplier=0.5, max=30),
            sleep=self.sleep,
            reraise=True,
        )(attempt)

    def _read(self, call: Callable[[], T]) -> T:
        def counted() -> T:
            self.requests += 1
            return call()

        return call_read(counted, policy=self.policy)

    # ------------------------------------------------------------- create

    def create(self, spec: CampaignSpec) -> int:
        """Campaign/Create; repeated only when surely nothing was made."""
        return self._retry(partial(self.api.create, spec), (NotSent, RateLimited, ConcurrentSave))

    def find_created(self, record: CampaignRecord) -> list[int]:
        """Ids of unsent campaigns bearing this record's (tagged) name and text."""
        intent = to_datetime(record.intent_at) or datetime.now()
        criteria = {
            "text": record.text,
            "status": "NEW",
            "createTsFrom": (intent - CREATE_WINDOW).strftime("%Y-%m-%d %H:%M:%S"),
        }
        found: list[int] = []
        page = 0
        while True:
            items, total = self._read(partial(self.api.list, criteria, page=page))
            # By the tag: the provider may trim or re-space the rest of a name.
            found.extend(item.id for item in items if ours(item.name, record) and item.id)
            page += 1
            if len(items) < 100 or page * 100 >= total:
                return found

    # ------------------------------------------------------------ staging

    def add(self, campaign_id: int, kind: int, members: Sequence[Member]) -> list[RecipientResult]:
        """Campaign/AddRecipients for one chunk; repeated after any transient failure."""
        flag = REJECT_MISSING_PLACEHOLDERS if kind == TEMPLATE else None
        payload = [member.payload() for member in members]
        return self._retry(
            partial(self.api.add_recipients, campaign_id, payload, placeholders_flag=flag),
            (NotSent, RateLimited, ConcurrentSave, AnswerLost, ServiceError),
        )

    def list_staged(self, campaign_id: int) -> Listed:
        """Every message of the campaign, from Message/List ``criteria[campaignIds]``."""
        listed = export_messages(
            self.client,
            ListFilter(campaign_ids=(campaign_id,)),
            sort={"campaignId": "ASC"},
            policy=self.policy,
        )
        self.requests += listed.calls
        by_number: dict[str, tuple[int, Decimal]] = {}
        for item in listed.items:
            message_id = item.get("id")
            cost = item.get("segUserBuy")
            if isinstance(message_id, int):
                by_number[str(item.get("to", ""))] = (
                    message_id,
                    cost if isinstance(cost, Decimal) else Decimal(0),
                )
        return Listed(by_number)

    # ------------------------------------------------------------ reading

    def info(self, campaign_id: int) -> CampaignInfo:
        return self._read(partial(self.api.get_info, campaign_id))

    def balance(self) -> tuple[Decimal, str]:
        return self._read(self.client.get_balance)

    # ------------------------------------------------------------ sending

    def send(self, campaign_id: int) -> bool:
        """Campaign/Send; True if it went to moderation.  Repeated only if surely not acted on."""
        return self._retry(partial(self.api.send, campaign_id), (NotSent, RateLimited))

    def check_sent(self, campaign_id: int) -> SendCheck:
        """Was the campaign sent?  GetInfo, and for READY_FOR_SEND also Campaign/List NEW.

        READY_FOR_SEND is the one ambiguous status: the docs give it both to a
        campaign nobody sent yet and to a sent one waiting for its scheduled
        time.  Campaign/List's ``status=NEW`` means "not sent by its owner".
        """
        info = self.info(campaign_id)
        if info.deleted:
            return SendCheck(sent=False, deleted=True)
        moderation = info.common_status in ("MODERATION", "DECLINED") or (
            info.moderation_status in ("MODERATION", "DECLINED", "READY_FOR_SEND")
        )
        declined = ""
        if info.common_status == "DECLINED":
            declined = info.comment or "declined by the moderator"
        if info.common_status in SENT_STATUSES or info.started is not None:
            return SendCheck(sent=True, moderation=moderation, declined=declined)
        items, _ = self._read(
            partial(self.api.list, {"id": campaign_id, "status": "NEW"}, page_size=25)
        )
        if any(item.id == campaign_id for item in items):
            return SendCheck(sent=False)
        # Not listed as NEW: sent (and waiting for its time), or Campaign/List has
        # not caught up.  Only a Send can tell, and a second Send cannot send twice.
        return SendCheck(sent=True, moderation=moderation, unsure=True)

    def find_staged(self, campaign_id: int, number: str) -> int | None:
        """The id of ``number``'s message in the campaign (Message/List by campaign and ``to``)."""
        items, _ = self._read(
            partial(self.client.list_messages, {"campaignIds": [campaign_id], "to": number}, 0, 25)
        )
        ids = [
            i["id"]
            for i in items
            if str(i.get("to", "")) == number and isinstance(i.get("id"), int)
        ]
        return ids[0] if len(ids) == 1 else None

    def sample_texts(self, campaign_id: int) -> dict[str, str]:
        """The first page of the campaign's messages: number → the text Mobizon made."""
        items, _ = self._read(
            partial(self.client.list_messages, {"campaignIds": [campaign_id]}, 0, 100)
        )
        return {str(item.get("to", "")): str(item.get("text", "")) for item in items}

    def delete(self, campaign_id: int) -> None:
        """Campaign/Delete (ours, never sent); a lost answer is harmless to repeat."""
        self._retry(
            partial(self.api.delete, campaign_id),
            (NotSent, RateLimited, ConcurrentSave, AnswerLost, ServiceError),
        )


def ours(name: str, record: CampaignRecord) -> bool:
    """Whether a campaign name carries this record's tag (so the campaign is this journal's)."""
    tag = tag_of(record.name)
    return bool(tag) and tag_of(name) == tag
