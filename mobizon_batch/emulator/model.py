"""What the emulator is made of: its knobs, its messages, its call log, and the
small parsing helpers every API module of it shares."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from decimal import Decimal
from typing import Any, overload

from mobizon_batch.vocabulary import TIMESTAMP_FORMAT

NON_FINAL_STEPS = ("NEW", "ENQUEUD", "ACCEPTD")
FINAL_WEIGHTS = (("DELIVRD", 86), ("UNDELIV", 6), ("EXPIRED", 4), ("REJECTD", 4))
# The sort fields Message/List documents (not "id"): a client must not rely on others.
LIST_SORT_FIELDS = {
    "campaignid": "campaign_id",
    "from": "sender",
    "to": "to",
    "text": "text",
    "status": "status",
    "segnum": "seg_num",
    "startsendts": "start_send_ts",
    "statusupdatets": "status_update_ts",
}
# Country and operator by number prefix, for Message/List's countryA2/operatorName.
NUMBER_INFO = (
    ("7700", "KZ", "Altel"),
    ("7701", "KZ", "Kcell"),
    ("7702", "KZ", "Kcell"),
    ("7705", "KZ", "Beeline KZ"),
    ("7707", "KZ", "Tele2 KZ"),
    ("7747", "KZ", "Tele2 KZ"),
    ("7771", "KZ", "Beeline KZ"),
    ("7775", "KZ", "Kcell"),
    ("7776", "KZ", "Beeline KZ"),
    ("7777", "KZ", "Beeline KZ"),
    ("7778", "KZ", "Kcell"),
    ("79", "RU", "MTS RU"),
    ("998", "UZ", "Ucell"),
    ("380", "UA", "Kyivstar"),
    ("55", "BR", "Vivo"),
)


@dataclass
class EmulatorConfig:
    """The knobs. Rates are fractions of calls (0.0-1.0); times are seconds.

    ``latency`` delays the methods in ``latency_methods`` (all when None).
    ``rate_limit`` caps calls per second *per method* (token bucket, one second
    of burst); beyond it the answer is code 30, as on the live service.
    ``fault_*`` apply to the methods in ``fault_methods`` (all when None):
    ``fault_503`` answers HTTP 503 with an HTML page and does nothing;
    ``fault_drop_before`` closes the connection without doing anything;
    ``fault_drop_after`` does the work (creates the message) and then closes
    the connection without answering — the ambiguous case; ``fault_999_after``
    does the work and then answers code 999 (general service error), the
    ambiguous case with an envelope.

    ``timezone`` is the account's zone (an IANA name): the timestamps it
    writes and the ``deferredToTs`` it checks are in that zone's local time,
    as on the live service; None means this machine's local time.

    ``webhook_*`` drive the delivery reports pushed to ``webhook_url`` (see
    ``emulator.webhooks``): signed with ``webhook_secret`` when set; each event
    delivered ``webhook_redeliveries`` extra times even after a 2xx; a failed
    delivery retried up to ``webhook_retries`` times, the pause growing by
    ``webhook_retry_pause``; ``webhook_senders`` POSTs at once.

    Behaviours the docs allow and a client must not assume away:
    ``list_lag`` — a new message shows in Message/List only that many seconds
    after it was created (GetSMSStatus knows it at once); ``random_ids`` —
    message and campaign ids are drawn at random instead of growing with time;
    ``normalize_whitespace`` — texts are stored (and listed, and matched by
    ``criteria[text]``) with runs of whitespace collapsed to one space and the
    ends trimmed; ``clock_offset`` — the account's clock (every timestamp the
    API shows or reads) is that many seconds ahead of ``timezone``'s (a skewed
    clock, or a zone known only as an offset).

    Campaign module knobs: ``stop_list`` numbers answer per-recipient code 5
    and ``unserved_prefixes`` code 8 in Campaign/AddRecipients;
    ``campaign_moderation`` is "" (sent at once), "approve" or "decline"
    (Campaign/Send answers 1 and the moderator decides after
    ``moderation_seconds``); ``campaign_list_lag`` hides a campaign from
    Campaign/List for that many seconds after its creation (the docs promise
    no freshness); ``counters_lag`` makes Campaign/GetInfo counters
    leave out messages staged in the last that many seconds (the docs say
    counters may lag); ``campaign_pace`` (messages a second, 0: at once) is
    how fast a sent campaign releases its messages when it sets no rate;
    ``add_seconds`` is how long AddRecipients keeps its campaign locked.
    ``placeholder_max`` (0: no limit) cuts template values to that many
    characters, as a provider might (the docs state no limit).
    ``hold_after`` seconds pass between doing the work of a method in
    ``hold_methods`` and answering (a test kills the client in that gap).
    """

    api_key: str | None = "test-key"
    latency: float = 0.0
    latency_methods: frozenset[str] | None = None
    rate_limit: float = 0.0
    fault_503: float = 0.0
    fault_drop_before: float = 0.0
    fault_drop_after: float = 0.0
    fault_999_after: float = 0.0
    fault_methods: frozenset[str] | None = None
    status_step: float = 2.0
    moderation: bool = False
    balance: Decimal = Decimal("100000.00")
    currency: str = "KZT"
    price_per_segment: Decimal = Decimal("9.50")
    wrong_domain: str | None = None
    list_lag: float = 0.0
    random_ids: bool = False
    normalize_whitespace: bool = False
    clock_offset: float = 0.0
    seed: int = 0
    timezone: str | None = None
    webhook_url: str | None = None
    webhook_secret: str | None = None
    webhook_redeliveries: int = 0
    webhook_retries: int = 10
    webhook_retry_pause: float = 0.2
    webhook_timeout: float = 5.0
    webhook_senders: int = 4
    webhook_scan_interval: float = 0.05
    webhook_numbers_as_text: bool = False
    stop_list: frozenset[str] = frozenset()
    unserved_prefixes: frozenset[str] = frozenset()
    campaign_moderation: str = ""
    moderation_seconds: float = 1.0
    counters_lag: float = 0.0
    campaign_list_lag: float = 0.0
    campaign_pace: float = 0.0
    add_seconds: float = 0.0
    placeholder_max: int = 0
    hold_after: float = 0.0
    hold_methods: frozenset[str] = frozenset()


@dataclass
class EmulatedMessage:
    """One message the emulator accepted. ``created`` and times are epoch seconds."""

    id: int
    campaign_id: int
    to: str
    text: str
    sender: str
    seg_num: int
    created: float
    name: str = ""
    validity: int | None = None
    mclass: int | None = None
    deferred_to: float | None = None
    #: when its campaign was sent (None: only staged, it reaches nobody)
    campaign_sent: float | None = None
    final_status: str = "DELIVRD"
    step_seconds: tuple[float, ...] = ()
    #: staged in a campaign not sent yet: NEW, undelivered, not charged
    held: bool = False
    #: when a sent campaign let this message go (its statuses start then)
    released: float | None = None


@dataclass(frozen=True)
class CallRecord:
    """One request the emulator received, with its outcome."""

    method: str  # "module/method", lower case
    params: dict[str, Any]
    code: int | None  # envelope code; None when no envelope was sent
    fault: str = ""  # "", "503", "drop_before", "drop_after", "999_after"
    at: float = 0.0


@dataclass
class Answer:
    code: int
    data: Any = None
    message: str = ""


@dataclass
class Bucket:
    tokens: float
    stamp: float


@dataclass
class State:
    messages: list[EmulatedMessage] = field(default_factory=list)
    by_id: dict[int, EmulatedMessage] = field(default_factory=dict)
    calls: list[CallRecord] = field(default_factory=list)
    buckets: dict[str, Bucket] = field(default_factory=dict)
    next_message_id: int = 41_000_001
    next_campaign_id: int = 7_300_001
    #: changes whenever what Message/List could answer changes (a message, a knob)
    generation: int = 0
    #: the last listing's key and its matching messages, sorted (pages 2, 3, … reuse it)
    listing: tuple[Any, list[EmulatedMessage]] | None = None
    #: Campaign-module campaigns by id (``campaign_api.Campaign``)
    campaigns: dict[int, Any] = field(default_factory=dict)


def status_at(
    message: EmulatedMessage, now: float, zone: tzinfo | None = None, offset: float = 0.0
) -> dict[str, Any]:
    """GetSMSStatus fields for ``message`` at time ``now`` (all as strings or null).

    Times are written in ``zone`` (the account's), this machine's when None,
    ``offset`` seconds ahead (the account clock's lead: ``clock_offset``).
    """
    if message.held:
        return {
            "id": str(message.id),
            "status": "NEW",
            "segNum": str(message.seg_num),
            "startSendTs": None,
            "statusUpdateTs": None,
        }
    start = message.deferred_to or message.released or message.created
    steps = list(NON_FINAL_STEPS) + (["PDLIVRD"] if len(message.step_seconds) > 3 else [])
    status, changed = steps[0], None
    moment = start
    for index, duration in enumerate(message.step_seconds):
        moment += duration
        if now < moment:
            break
        status = steps[index + 1] if index + 1 < len(steps) else message.final_status
        changed = moment
    started = start + message.step_seconds[0] if status != "NEW" else None
    return {
        "id": str(message.id),
        "status": status,
        "segNum": str(message.seg_num),
        "startSendTs": format_ts(None if started is None else started + offset, zone),
        "statusUpdateTs": format_ts(None if changed is None else changed + offset, zone),
    }


@overload
def format_ts(moment: float, zone: tzinfo | None = None) -> str: ...
@overload
def format_ts(moment: None, zone: tzinfo | None = None) -> None: ...
@overload
def format_ts(moment: float | None, zone: tzinfo | None = None) -> str | None: ...
def format_ts(moment: float | None, zone: tzinfo | None = None) -> str | None:
    """Epoch seconds as the API writes them, in ``zone`` (this machine's when None)."""
    if moment is None:
        return None
    return datetime.fromtimestamp(moment, zone).strftime(TIMESTAMP_FORMAT)


def normalize_spaces(text: str) -> str:
    """How a service may store a text: runs of whitespace as one space, ends trimmed."""
    return " ".join(text.split())


def parse_ts(text: str, zone: tzinfo | None = None) -> float | None:
    """The API's ``YYYY-MM-DD HH:MM:SS`` read in ``zone`` (this machine's when None)."""
    try:
        moment = datetime.strptime(text.strip(), TIMESTAMP_FORMAT)
    except ValueError:
        return None
    return (moment.replace(tzinfo=zone) if zone is not None else moment).timestamp()


def optional_int(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    """ids[0]=..&ids[1]=.. (a dict after parsing), ids[]=.. (a list) or "1,2,3"."""
    if value is None:
        return []
    if isinstance(value, dict):
        return [value[k] for k in sorted(value, key=lambda k: optional_int(k) or 0)]
    if isinstance(value, list):
        return value
    return [part for part in str(value).split(",") if part.strip()]


def sort_key(value: Any) -> tuple[int, Any]:
    return (0, value) if isinstance(value, int) else (1, str(value))
