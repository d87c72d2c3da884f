"""The Campaign module: Create, AddRecipients, Send, Get, GetInfo, List, Delete.

What it keeps of the public docs (folder src/v1/en/campaign), because the
campaign send pass relies on exactly these: recipients added to a campaign
that was not sent are *staged* — their messages get ids at once, show as NEW
in GetSMSStatus and Message/List ``criteria[campaignIds]``, and reach nobody
until Campaign/Send; at most 500 recipients a call (more: code 12, nothing
added); one per-recipient code each (0 added, 3 format, 4 already in this
campaign, 5 stop list, 8 operator not served, 20 missing placeholder data);
a campaign is locked while recipients are added (a parallel call: code 10);
a second Send, or a Delete after sending, answers code 10.

Where the docs leave a behaviour open, the emulator takes the side that is
harder on a client: an unsent campaign's ``commonStatus`` is READY_FOR_SEND
(the same word a sent, scheduled campaign has), an item answering code 4
carries no messageId, and counters may lag (``counters_lag``).
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mobizon_batch.emulator import campaign_views as views
from mobizon_batch.emulator.model import (
    Answer,
    EmulatedMessage,
    as_dict,
    as_list,
    optional_int,
    parse_ts,
)
from mobizon_batch.texts import count_segments

if TYPE_CHECKING:
    from mobizon_batch.emulator.core import MobizonEmulator

MAX_RECIPIENTS = 500
RATE_PERIODS = (60, 3600, 86400)
MAX_RATE_PER_SECOND = 100
PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_-]+)\}")
#: Delete refuses a scheduled campaign this close to its time (the docs' 5 minutes).
DELETE_MARGIN = 300.0


@dataclass
class Campaign:
    """One Campaign-module campaign. Times are epoch seconds."""

    id: int
    name: str
    text: str
    type: int
    sender: str
    created: float
    rate_limit: int | None = None
    rate_period: int | None = None
    deferred_to: float | None = None
    validity: int | None = None
    mclass: int | None = None
    message_ids: list[int] = field(default_factory=list)
    numbers: set[str] = field(default_factory=set)
    rejected: int = 0
    sent_at: float | None = None
    moderation: str = ""  # fixed at Send: "", "approve" or "decline"
    moderation_ends: float = 0.0
    deleted: bool = False
    adding: bool = False


# ------------------------------------------------------------------- methods


def create(emu: MobizonEmulator, params: dict[str, Any]) -> Answer:
    now = emu.clock()
    data = as_dict(params.get("data"))
    errors: dict[str, str] = {}
    text = str(data.get("text", ""))
    if not text.strip():
        errors["text"] = "Text must not be empty"
    name = str(data.get("name") or "")
    if len(name) > 255:
        errors["name"] = "Name must be at most 255 characters"
    kind = optional_int(data.get("type", 2))
    if kind not in (1, 2, 3):
        errors["type"] = "Type must be 1, 2 or 3"
    rate_limit = optional_int(data.get("rateLimit")) if "rateLimit" in data else None
    rate_period = optional_int(data.get("ratePeriod")) if "ratePeriod" in data else None
    if (rate_limit is None) != (rate_period is None):
        errors["rateLimit"] = "rateLimit and ratePeriod go together"
    elif rate_limit is not None and rate_period is not None:
        if rate_period not in RATE_PERIODS:
            errors["ratePeriod"] = "ratePeriod must be 60, 3600 or 86400"
        elif rate_limit < 1 or rate_limit / rate_period > MAX_RATE_PER_SECOND:
            errors["rateLimit"] = "rateLimit must be 1 to 100 messages a second"
    validity = optional_int(data.get("validity")) if "validity" in data else None
    if "validity" in data and (validity is None or not 60 <= validity <= 1440):
        errors["validity"] = "Validity must be 60-1440 minutes"
    mclass = optional_int(data.get("mclass")) if "mclass" in data else None
    if "mclass" in data and mclass not in (0, 1):
        errors["mclass"] = "mclass must be 0 or 1"
    deferred_to: float | None = None
    if data.get("deferredToTs"):
        deferred_to = parse_ts(str(data["deferredToTs"]), emu.zone)
        if deferred_to is not None:  # the account's clock may run ahead (clock_offset)
            deferred_to -= emu.config.clock_offset
        if deferred_to is None or not now + 3600 <= deferred_to <= now + 14 * 86400:
            errors["deferredToTs"] = "deferredToTs must be 1 hour to 14 days ahead"
    if errors:
        return Answer(1, errors, "Validation failed")
    assert kind is not None
    with emu.lock:
        state = emu.state
        campaign = Campaign(
            id=emu.new_campaign_id(),
            name=name,
            text=text,
            type=kind,
            sender=str(data.get("from") or "Mobizon"),
            created=now,
            rate_limit=rate_limit,
            rate_period=rate_period,
            deferred_to=deferred_to,
            validity=validity,
            mclass=mclass,
        )
        state.campaigns[campaign.id] = campaign
    return Answer(0, str(campaign.id))


def add_recipients(emu: MobizonEmulator, params: dict[str, Any]) -> Answer:
    extra = as_dict(params.get("params"))
    flag = optional_int(extra.get("placeholdersFlag", 1)) or 1
    entries = _recipient_entries(params.get("recipients"))
    if not entries:
        return Answer(12, None, "No recipients given")
    if len(entries) > MAX_RECIPIENTS:
        return Answer(12, None, f"At most {MAX_RECIPIENTS} recipients a request")
    with emu.lock:
        campaign = _campaign(emu, params)
        if campaign is None:
            return Answer(2, None, "Campaign not found")
        if campaign.adding or campaign.sent_at is not None:
            return Answer(10, None, "The campaign is locked or its status forbids adding")
        campaign.adding = True
    try:
        if emu.config.add_seconds > 0:
            time.sleep(emu.config.add_seconds)  # the provider's processing time, locked
        with emu.lock:
            if optional_int(extra.get("replace")) == 1:
                _drop_messages(emu, campaign)
            items = [_add_one(emu, campaign, number, values, flag) for number, values in entries]
    finally:
        with emu.lock:
            campaign.adding = False
    added = sum(1 for item in items if item["code"] == "0")
    if added == len(items):
        return Answer(0, items)
    if added:
        return Answer(98, items, "Not all recipients were added")
    return Answer(99, items, "No recipient was added")


def send(emu: MobizonEmulator, params: dict[str, Any]) -> Answer:
    now = emu.clock()
    config = emu.config
    with emu.lock:
        campaign = _campaign(emu, params)
        if campaign is None:
            return Answer(2, None, "Campaign not found")
        if campaign.sent_at is not None or campaign.adding or not campaign.message_ids:
            return Answer(10, None, "The campaign status does not allow sending")
        campaign.sent_at = now
        campaign.moderation = config.campaign_moderation
        campaign.moderation_ends = now + (config.moderation_seconds if campaign.moderation else 0)
        if campaign.moderation != "decline":
            _release(emu, campaign)
    return Answer(0, "1" if campaign.moderation else "2")


def get(emu: MobizonEmulator, params: dict[str, Any]) -> Answer:
    with emu.lock:
        campaign = _campaign(emu, params, deleted_too=True)
        if campaign is None:
            return Answer(2, None, "Campaign not found")
        return Answer(0, views.fields(emu, campaign, emu.clock()))


def get_info(emu: MobizonEmulator, params: dict[str, Any]) -> Answer:
    now = emu.clock()
    with emu.lock:
        campaign = _campaign(emu, params, deleted_too=True)
        if campaign is None:
            return Answer(2, None, "Campaign not found")
        data = views.fields(emu, campaign, now)
        data["counters"] = views.counters(emu, campaign, now)
        return Answer(0, data)


def list_campaigns(emu: MobizonEmulator, params: dict[str, Any]) -> Answer:
    criteria = as_dict(params.get("criteria"))
    pagination = as_dict(params.get("pagination"))
    page_size = optional_int(pagination.get("pageSize", 25))
    page = optional_int(pagination.get("currentPage", 0))
    if page_size not in (25, 50, 100) or page is None or page < 0:
        return Answer(12, None, "pageSize must be 25, 50 or 100 and currentPage >= 0")
    sort = as_dict(params.get("sort"))
    sort_field, direction = next(iter(sort.items()), ("id", "DESC"))
    if str(sort_field) not in ("id", "createTs", "name"):
        return Answer(1, {"sort": f"Unsupported sort field {sort_field}"}, "Validation failed")
    now = emu.clock()
    with emu.lock:
        found = [
            c
            for c in emu.state.campaigns.values()
            if not c.deleted and views.matches(emu, c, criteria, now)
        ]
        attribute = {"id": "id", "createTs": "created", "name": "name"}[str(sort_field)]
        found.sort(key=lambda c: getattr(c, attribute), reverse=str(direction).upper() == "DESC")
        chunk = found[page * page_size : (page + 1) * page_size]
        items = [
            {**views.fields(emu, c, now), "counters": views.counters(emu, c, now)} for c in chunk
        ]
    return Answer(0, {"items": items, "totalItemCount": str(len(found))})


def delete(emu: MobizonEmulator, params: dict[str, Any]) -> Answer:
    now = emu.clock()
    with emu.lock:
        campaign = _campaign(emu, params)
        if campaign is None:
            return Answer(2, None, "Campaign not found")
        started = campaign.sent_at is not None and (
            campaign.deferred_to is None or now > campaign.deferred_to - DELETE_MARGIN
        )
        if started or campaign.adding:
            return Answer(10, None, "The campaign can no longer be deleted")
        campaign.deleted = True
        _drop_messages(emu, campaign)
    return Answer(0, None)


# ------------------------------------------------------------------- helpers


def _campaign(
    emu: MobizonEmulator, params: Mapping[str, Any], *, deleted_too: bool = False
) -> Campaign | None:
    """The campaign named by ``id`` (the lock is held)."""
    campaign_id = optional_int(params.get("id"))
    campaign = emu.state.campaigns.get(campaign_id) if campaign_id is not None else None
    if campaign is None or (campaign.deleted and not deleted_too):
        return None
    assert isinstance(campaign, Campaign)
    return campaign


def _recipient_entries(value: Any) -> list[tuple[str, dict[str, str]]]:
    """``(number as given, placeholder values)`` from any documented recipients form."""
    if isinstance(value, str):
        parts = re.split(r"[,\n]", value)
        return [(part.strip(), {}) for part in parts if part.strip()]
    entries = []
    for item in as_list(value):
        if isinstance(item, dict):
            values = {str(k): str(v) for k, v in item.items() if k != "recipient"}
            entries.append((str(item.get("recipient", "")), values))
        else:
            entries.append((str(item), {}))
    return entries


def _add_one(
    emu: MobizonEmulator, campaign: Campaign, given: str, values: dict[str, str], flag: int
) -> dict[str, Any]:
    """Check and stage one recipient (the lock is held); its answer item."""
    number = re.sub(r"\D", "", given)
    config = emu.config

    def item(code: int, message_id: int | None = None) -> dict[str, Any]:
        if code:
            campaign.rejected += 1
        return {
            "recipient": number or None,
            "code": str(code),
            "messageId": str(message_id) if message_id is not None else None,
            "number": given,
        }

    if not number:
        return item(1)
    if not 10 <= len(number) <= 15:
        return item(3)
    if number in config.stop_list:
        return item(5)
    if any(number.startswith(prefix) for prefix in config.unserved_prefixes):
        return item(8)
    if number in campaign.numbers:
        return item(4)
    text = campaign.text
    if campaign.type == 3:
        missing = [n for n in PLACEHOLDER.findall(text) if n not in values]
        if missing and flag == 3:
            return item(20)

        def fill(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in values:
                limit = config.placeholder_max
                return values[name][:limit] if limit > 0 else values[name]
            return "" if flag == 2 else match.group(0)

        text = PLACEHOLDER.sub(fill, text)
    state = emu.state
    message = EmulatedMessage(
        id=state.next_message_id,
        campaign_id=campaign.id,
        to=number,
        text=text,
        sender=campaign.sender,
        seg_num=_segments(text),
        created=emu.clock(),
        name=campaign.name,
        validity=campaign.validity,
        mclass=campaign.mclass,
    )
    emu.store(message, staged=True)
    campaign.message_ids.append(message.id)
    campaign.numbers.add(number)
    return item(0, message.id)


@functools.lru_cache(maxsize=1024)
def _segments(text: str) -> int:
    """Segments of a text (a bulk campaign's 500 recipients share one text)."""
    return max(count_segments(text).segments, 1)


def _drop_messages(emu: MobizonEmulator, campaign: Campaign) -> None:
    """Forget a campaign's staged messages (replace=1, Delete); the lock is held."""
    gone = set(campaign.message_ids)
    state = emu.state
    state.generation += 1  # what Message/List can answer changed
    state.messages = [m for m in state.messages if m.id not in gone]
    for message_id in gone:
        state.by_id.pop(message_id, None)
    campaign.message_ids.clear()
    campaign.numbers.clear()


def _release(emu: MobizonEmulator, campaign: Campaign) -> None:
    """Let a sent campaign's messages go, paced, and charge them; the lock is held."""
    start = max(campaign.moderation_ends, campaign.deferred_to or 0.0)
    if campaign.rate_limit and campaign.rate_period:
        pace = campaign.rate_limit / campaign.rate_period
    else:
        pace = emu.config.campaign_pace
    emu.state.generation += 1  # statuses, and Message/List's sent times, change
    for index, message_id in enumerate(campaign.message_ids):
        message = emu.state.by_id[message_id]
        emu.fix_fate(message)
        message.held = False
        message.campaign_sent = campaign.sent_at
        message.released = start + (index / pace if pace > 0 else 0.0)
        emu.balance -= emu.config.price_per_segment * message.seg_num


METHODS: Mapping[str, Callable[[MobizonEmulator, dict[str, Any]], Answer]] = {
    "campaign/create": create,
    "campaign/addrecipients": add_recipients,
    "campaign/send": send,
    "campaign/get": get,
    "campaign/getinfo": get_info,
    "campaign/list": list_campaigns,
    "campaign/delete": delete,
}
