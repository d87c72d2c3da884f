"""How a Campaign-module campaign looks from outside: fields, counters, List criteria.

The state-changing calls (Create, AddRecipients, Send, Delete) live in
``campaign_api``; this module only reads a campaign (the lock is held by the
caller) and renders it the way the public docs show it: ``commonStatus``
derived from the clock, counters that may lag (``counters_lag``), times on
the account's clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from mobizon_batch.emulator.model import EmulatedMessage, as_list, format_ts, status_at

if TYPE_CHECKING:
    from mobizon_batch.emulator.campaign_api import Campaign
    from mobizon_batch.emulator.core import MobizonEmulator

STATUS_KEYS = ("New", "Acceptd", "Delivrd", "Rejectd", "Expired", "Undeliv", "Deleted", "Pdlivrd")
DECLINE_COMMENT = "The text breaks the rules of the service (emulated moderator)"


def ts(emu: MobizonEmulator, moment: float | None) -> str | None:
    """A time as the account's clock shows it (its zone, ``clock_offset`` ahead)."""
    return format_ts(moment + emu.config.clock_offset if moment is not None else None, emu.zone)


def common_status(emu: MobizonEmulator, campaign: Campaign, now: float) -> str:
    if campaign.sent_at is None:
        return "READY_FOR_SEND"
    if now < campaign.moderation_ends:
        return "MODERATION"
    if campaign.moderation == "decline":
        return "DECLINED"
    messages = [emu.state.by_id[i] for i in campaign.message_ids]
    if any(m.released is not None and m.released > now for m in messages):
        return "RUNNING" if any((m.released or 0) <= now for m in messages) else "READY_FOR_SEND"
    finals = {"DELIVRD", "UNDELIV", "REJECTD", "EXPIRED", "DELETED"}
    if all(
        status_at(m, now, emu.zone, emu.config.clock_offset)["status"] in finals for m in messages
    ):
        return "DONE"
    return "SENT"


def fields(emu: MobizonEmulator, campaign: Campaign, now: float) -> dict[str, Any]:
    common = common_status(emu, campaign, now)
    moderation = {
        "MODERATION": "MODERATION",
        "DECLINED": "DECLINED",
    }.get(common, "AUTO_READY_FOR_SEND" if campaign.sent_at is not None else None)
    started = None
    if campaign.sent_at is not None and common not in ("MODERATION", "DECLINED"):
        started = max(campaign.moderation_ends, campaign.deferred_to or 0.0)
        started = started if started <= now else None
    return {
        "id": str(campaign.id),
        "name": campaign.name,
        "text": campaign.text,
        "type": str(campaign.type),
        "from": campaign.sender,
        "msgType": "SMS",
        "rateLimit": str(campaign.rate_limit) if campaign.rate_limit else None,
        "ratePeriod": str(campaign.rate_period) if campaign.rate_period else None,
        "validity": str(campaign.validity) if campaign.validity else None,
        "mclass": str(campaign.mclass) if campaign.mclass is not None else "1",
        "deferredToTs": ts(emu, campaign.deferred_to),
        "createTs": ts(emu, campaign.created),
        "startSendTs": ts(emu, started),
        "endSendTs": None,
        "commonStatus": common,
        "moderationStatus": moderation,
        "sendStatus": "SENT" if started is not None else None,
        "isDeleted": "1" if campaign.deleted else "0",
        "globalComment": DECLINE_COMMENT if common == "DECLINED" else None,
        "groups": "",
        "groupsList": [],
    }


def counters(emu: MobizonEmulator, campaign: Campaign, now: float) -> dict[str, Any]:
    """GetInfo's counters, as strings; messages staged within ``counters_lag`` are not in yet."""
    cutoff = now - emu.config.counters_lag
    price: Decimal = emu.config.price_per_segment
    messages = [emu.state.by_id[i] for i in campaign.message_ids]
    counted = [m for m in messages if m.created <= cutoff]
    counters: dict[str, Any] = {"updateTs": ts(emu, cutoff)}
    by_status: dict[str, list[EmulatedMessage]] = {key: [] for key in STATUS_KEYS}
    by_status["Unknown"] = []
    for message in counted:
        key = status_at(message, now, emu.zone, emu.config.clock_offset)["status"].capitalize()
        by_status.get(key, by_status["Acceptd"]).append(message)  # ENQUEUD counts as accepted
    for key, group in by_status.items():
        segments = sum(m.seg_num for m in group)
        counters[f"total{key}MsgNum"] = str(len(group))
        counters[f"total{key}SegNum"] = str(segments)
        counters[f"total{key}MsgCost"] = f"{price * segments:.4f}"
    segments = sum(m.seg_num for m in counted)
    counters["totalMsgNum"] = str(len(counted))
    counters["totalSegNum"] = str(segments)
    counters["totalCost"] = f"{price * segments:.4f}"
    counters["recipientsRejected"] = str(campaign.rejected)
    return counters


def matches(
    emu: MobizonEmulator, campaign: Campaign, criteria: Mapping[str, Any], now: float
) -> bool:
    if now < campaign.created + emu.config.campaign_list_lag:
        return False  # not listed yet
    for name, value in criteria.items():
        if value in (None, ""):
            continue
        if name == "id" and str(campaign.id) != str(value).strip():
            return False
        if name == "ids" and str(campaign.id) not in {str(v).strip() for v in as_list(value)}:
            return False
        if name == "text" and campaign.text != str(value):
            return False
        if name == "from" and campaign.sender != str(value):
            return False
        if name == "type" and str(campaign.type) != str(value).strip():
            return False
        if name == "createTsFrom" and (ts(emu, campaign.created) or "") < str(value):
            return False
        if name == "createTsTo" and (ts(emu, campaign.created) or "") > str(value):
            return False
        if name == "recipient" and not any(str(value) in n for n in campaign.numbers):
            return False
        if name == "status" and not has_status(emu, campaign, str(value), now):
            return False
    return True


def has_status(emu: MobizonEmulator, campaign: Campaign, wanted: str, now: float) -> bool:
    """Campaign/List ``criteria[status]``: NEW means "not sent by its owner yet"."""
    if wanted == "NEW":
        return campaign.sent_at is None
    common = common_status(emu, campaign, now)
    if wanted == "NOT_YET_SENT":
        return common in ("READY_FOR_SEND", "MODERATION") or campaign.sent_at is None
    return common == wanted
