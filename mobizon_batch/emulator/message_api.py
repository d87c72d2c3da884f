"""The Message and User modules: SendSmsMessage, GetSMSStatus, List, GetOwnBalance.

Each handler takes the emulator and the parsed request parameters and returns
an ``Answer``; ``METHODS`` maps ``module/method`` (lower case) to handlers, so
the emulator's core knows nothing about any one module.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping
from datetime import tzinfo
from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING, Any

from mobizon_batch.emulator.model import (
    LIST_SORT_FIELDS,
    NUMBER_INFO,
    Answer,
    EmulatedMessage,
    as_dict,
    as_list,
    format_ts,
    normalize_spaces,
    optional_int,
    parse_ts,
    sort_key,
    status_at,
)
from mobizon_batch.texts import count_segments

if TYPE_CHECKING:
    from mobizon_batch.emulator.core import MobizonEmulator


def send_sms_message(emu: MobizonEmulator, params: dict[str, Any]) -> Answer:
    now = emu.clock()
    extra = as_dict(params.get("params"))
    errors: dict[str, str] = {}
    recipient = str(params.get("recipient", "")).strip().lstrip("+")
    if not (recipient.isdigit() and 10 <= len(recipient) <= 15):
        errors["recipient"] = "Recipient must be an international number of 10-15 digits"
    text = str(params.get("text", ""))
    if not text.strip():
        errors["text"] = "Text must not be empty"
    validity = optional_int(extra.get("validity"))
    if "validity" in extra and (validity is None or not 60 <= validity <= 1440):
        errors["validity"] = "Validity must be 60-1440 minutes"
    mclass = optional_int(extra.get("mclass"))
    if "mclass" in extra and mclass not in (0, 1):
        errors["mclass"] = "mclass must be 0 or 1"
    deferred_to: float | None = None
    if extra.get("deferredToTs"):
        deferred_to = parse_ts(str(extra["deferredToTs"]), emu.zone)
        if deferred_to is not None:  # the account's clock → the machine's
            deferred_to -= emu.config.clock_offset
        if deferred_to is None:
            errors["deferredToTs"] = "deferredToTs must be YYYY-MM-DD HH:MM:SS"
        elif not now + 3600 <= deferred_to <= now + 14 * 86400:
            errors["deferredToTs"] = "deferredToTs must be 1 hour to 14 days ahead"
    if errors:
        return Answer(1, errors, "Validation failed")
    seg_num = max(count_segments(text).segments, 1)
    if emu.config.normalize_whitespace:
        text = normalize_spaces(text)
    with emu.lock:
        state = emu.state
        message = EmulatedMessage(
            id=state.next_message_id,
            campaign_id=state.next_campaign_id,
            to=recipient,
            text=text,
            sender=str(params.get("from") or "Mobizon"),
            seg_num=seg_num,
            created=now,
            campaign_sent=now,
            name=str(extra.get("name") or ""),
            validity=validity,
            mclass=mclass,
            deferred_to=deferred_to,
        )
        emu.store(message)
    return Answer(
        0,
        {
            "campaignId": str(message.campaign_id),
            "messageId": str(message.id),
            "status": "1" if emu.config.moderation else "2",
        },
    )


def get_sms_status(emu: MobizonEmulator, params: dict[str, Any]) -> Answer:
    ids = [i for i in (optional_int(v) for v in as_list(params.get("ids"))) if i is not None]
    if not ids:
        return Answer(2, None, "No ids given")
    if len(ids) > 100:
        return Answer(12, None, "At most 100 ids per request")
    now = emu.clock()
    with emu.lock:
        found = [emu.state.by_id[i] for i in ids if i in emu.state.by_id]
    zone, offset = emu.zone, emu.config.clock_offset
    return Answer(0, [status_at(m, now, zone, offset) for m in found])


def list_messages(emu: MobizonEmulator, params: dict[str, Any]) -> Answer:
    criteria = as_dict(params.get("criteria"))
    if isinstance(criteria.get("status"), dict | list):
        # The docs type criteria[status] as one value; the live service may
        # refuse or ignore an array, and ignoring it would list every status.
        return Answer(1, {"criteria[status]": "Status must be a single value"}, "Validation failed")
    pagination = as_dict(params.get("pagination"))
    page_size = optional_int(pagination.get("pageSize", 25))
    page = optional_int(pagination.get("currentPage", 0))
    if page_size not in (25, 50, 100) or page is None or page < 0:
        return Answer(12, None, "pageSize must be 25, 50 or 100 and currentPage >= 0")
    sort = as_dict(params.get("sort"))
    sort_field, direction = next(iter(sort.items()), ("campaignId", "DESC"))
    attribute = LIST_SORT_FIELDS.get(str(sort_field).lower())
    if attribute is None:
        return Answer(1, {"sort": f"Unknown sort field {sort_field}"}, "Validation failed")
    now, zone = emu.clock(), emu.zone
    config = emu.config
    descending = str(direction).upper() == "DESC"
    # Paging through a big account asks the same question page after page; like
    # the service's own indexes, the answer is kept while nothing it depends on
    # changes (never when the list lags or the answer moves with time).
    steady = (
        config.list_lag == 0
        and attribute in _STEADY_SORTS
        and not any(str(name).lower() == "status" for name in criteria)
    )
    key = (repr(sorted(criteria.items())), attribute, descending)
    with emu.lock:
        cached = emu.state.listing
        generation = emu.state.generation
        if steady and cached is not None and cached[0] == (key, generation):
            messages = cached[1]
        else:
            # A message is listed only ``list_lag`` seconds after its creation.
            listed_before = now - config.list_lag
            matches = _criteria_test(criteria, now, zone, config.clock_offset)
            messages = [m for m in emu.state.messages if m.created <= listed_before and matches(m)]
            messages.sort(key=lambda m: _sort_value(m, attribute, now, zone), reverse=descending)
            emu.state.listing = ((key, generation), messages) if steady else None
    chunk = messages[page * page_size : (page + 1) * page_size]
    price, offset = config.price_per_segment, config.clock_offset
    items = [_list_item(m, now, price, zone, offset) for m in chunk]
    return Answer(0, {"items": items, "totalItemCount": str(len(messages))})


#: Sort fields whose order does not move with time.
_STEADY_SORTS = frozenset({"campaign_id", "sender", "to", "text", "seg_num"})


def get_own_balance(emu: MobizonEmulator, params: dict[str, Any]) -> Answer:
    with emu.lock:
        balance = emu.balance
    return Answer(0, {"balance": f"{balance:.4f}", "currency": emu.config.currency})


def _list_item(
    message: EmulatedMessage, now: float, price: Decimal, zone: tzinfo | None, offset: float
) -> dict[str, Any]:
    status = status_at(message, now, zone, offset)
    country, operator = _number_info(message.to)
    return {
        "id": str(message.id),
        "campaignId": str(message.campaign_id),
        "segNum": str(message.seg_num),
        "segUserBuy": f"{price * message.seg_num:.4f}",
        "from": message.sender,
        "to": message.to,
        "text": message.text,
        "status": status["status"],
        "groups": [],
        "uuid": hashlib.md5(str(message.id).encode()).hexdigest(),
        "countryA2": country,
        "operatorName": operator,
        "startSendTs": status["startSendTs"],
        "statusUpdateTs": status["statusUpdateTs"],
    }


def _sort_value(
    message: EmulatedMessage, attribute: str, now: float, zone: tzinfo | None
) -> tuple[int, Any]:
    if attribute in ("status", "start_send_ts", "status_update_ts"):
        field_name = {
            "status": "status",
            "start_send_ts": "startSendTs",
            "status_update_ts": "statusUpdateTs",
        }[attribute]
        return sort_key(status_at(message, now, zone)[field_name] or "")
    return sort_key(getattr(message, attribute))


def _criteria_test(
    criteria: Mapping[str, Any], now: float, zone: tzinfo | None, offset: float
) -> Callable[[EmulatedMessage], bool]:
    """Message/List criteria as one test: ``to`` is a substring match, the others exact.

    Times compare in the account's clock (``zone``, ``offset`` ahead), to the
    second, as the API's ``YYYY-MM-DD HH:MM:SS`` does.  Each criterion is
    parsed once per request: a list of 100,000 messages is filtered per call.
    """
    tests: list[Callable[[EmulatedMessage], bool]] = []
    for name, value in criteria.items():
        if value in (None, ""):
            continue
        key, text = str(name).lower(), str(value)
        if key in _FIELD_CRITERIA:
            tests.append(partial(_field_is, _FIELD_CRITERIA[key], text))
        elif key == "campaignids":
            tests.append(partial(_campaign_in, {str(v) for v in as_list(value)}))
        elif key in _TIME_CRITERIA:
            tests.append(_time_test(key, text, zone, offset))
        elif key == "status":
            tests.append(partial(_status_in, text, now))
    return lambda message: all(test(message) for test in tests)


_FIELD_CRITERIA = {"to": "to", "text": "text", "from": "sender"}


def _field_is(attribute: str, wanted: str, message: EmulatedMessage) -> bool:
    value = str(getattr(message, attribute))
    return wanted in value if attribute == "to" else value == wanted


def _campaign_in(wanted: set[str], message: EmulatedMessage) -> bool:
    return str(message.campaign_id) in wanted


def _status_in(wanted: str, now: float, message: EmulatedMessage) -> bool:
    return str(status_at(message, now)["status"]) == wanted


_TIME_CRITERIA = {
    "campaigncreatetsfrom": ("created", True),
    "campaigncreatetsto": ("created", False),
    "campaignsenttsfrom": ("campaign_sent", True),
    "campaignsenttsto": ("campaign_sent", False),
}


def _time_test(
    key: str, text: str, zone: tzinfo | None, offset: float
) -> Callable[[EmulatedMessage], bool]:
    attribute, is_from = _TIME_CRITERIA[key]
    bound = parse_ts(text, zone)

    def test(message: EmulatedMessage) -> bool:
        moment: float | None = getattr(message, attribute)
        if moment is None:  # a campaign never sent has no sent time
            return False
        if bound is None:  # not a time: compare as the API's text would
            shown = format_ts(moment + offset, zone)
            return bool(shown >= text if is_from else shown <= text)
        second = float(math.floor(moment + offset))
        return bool(second >= bound if is_from else second <= bound)

    return test


def _number_info(number: str) -> tuple[str, str]:
    for prefix, country, operator in NUMBER_INFO:
        if number.startswith(prefix):
            return country, operator
    return "", ""


METHODS: Mapping[str, Callable[[MobizonEmulator, dict[str, Any]], Answer]] = {
    "message/sendsmsmessage": send_sms_message,
    "message/getsmsstatus": get_sms_status,
    "message/list": list_messages,
    "user/getownbalance": get_own_balance,
}
