"""A local Mobizon API server: same wire format, controllable faults.

Why we ship one: the behaviour that matters most — what happens when an answer
is lost after the message was created, when the rate limit bites, when the
service drops connections — cannot be provoked on the live service, and tests,
the offline demo and the benchmarks all need a real HTTP peer on loopback.

It speaks what the API notes describe: case-insensitive
``/service/{module}/{method}``, the ``apiKey`` query parameter, PHP-style form
bodies, the ``{code, data, message}`` envelope with numbers sent as strings.
Implemented: Message/SendSmsMessage, Message/GetSMSStatus, Message/List,
User/GetOwnBalance.  Statuses advance with time NEW → ENQUEUD → ACCEPTD
(→ PDLIVRD for multi-segment texts) → a final status chosen deterministically
per message.  Everything it accepted can be read back (``messages()``) and
every call it answered is logged (``calls()``), so tests can count duplicates
and requests exactly.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, overload
from urllib.parse import parse_qsl, urlsplit

from mobizon_batch.texts import count_segments

TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"
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
    seed: int = 0


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
    final_status: str = "DELIVRD"
    step_seconds: tuple[float, ...] = ()


@dataclass(frozen=True)
class CallRecord:
    """One request the emulator received, with its outcome."""

    method: str  # "module/method", lower case
    params: dict[str, Any]
    code: int | None  # envelope code; None when no envelope was sent
    fault: str = ""  # "", "503", "drop_before", "drop_after", "999_after"
    at: float = 0.0


@dataclass
class _Answer:
    code: int
    data: Any = None
    message: str = ""


@dataclass
class _Bucket:
    tokens: float
    stamp: float


@dataclass
class _State:
    messages: list[EmulatedMessage] = field(default_factory=list)
    by_id: dict[int, EmulatedMessage] = field(default_factory=dict)
    calls: list[CallRecord] = field(default_factory=list)
    buckets: dict[str, _Bucket] = field(default_factory=dict)
    next_message_id: int = 41_000_001
    next_campaign_id: int = 7_300_001


class MobizonEmulator:
    """A Mobizon API server on ``host:port`` (port 0 picks a free one).

    Use as a context manager, or ``start()`` / ``stop()``.  ``clock`` returns
    epoch seconds and may be replaced in tests to move statuses along.
    """

    def __init__(
        self,
        config: EmulatorConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.time,
        **overrides: Any,
    ) -> None:
        self.config = replace(config or EmulatorConfig(), **overrides)
        self.clock = clock
        self._host, self._port = host, port
        self._lock = threading.Lock()
        self._state = _State()
        self._active = 0
        self._balance = self.config.balance
        self._rng = random.Random(self.config.seed)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------- lifecycle

    def start(self) -> str:
        """Start serving in a background thread; return the base URL."""
        if self._server is not None:
            return self.url
        server = _Server((self._host, self._port), _Handler)
        server.emulator = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self.url

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted (the ``emulator`` command)."""
        self.start()
        assert self._thread is not None
        try:
            while self._thread.is_alive():
                self._thread.join(0.5)
        finally:
            self.stop()

    def stop(self) -> None:
        """Stop serving and close the listening socket (idempotent)."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> MobizonEmulator:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the emulator is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # ----------------------------------------------------------- inspection

    def configure(self, **changes: Any) -> None:
        """Change knobs while running (for example, turn faults off)."""
        with self._lock:
            self.config = replace(self.config, **changes)

    def messages(self) -> list[EmulatedMessage]:
        """Copies of every message accepted, in order of creation."""
        with self._lock:
            return [replace(m) for m in self._state.messages]

    def calls(self, method: str | None = None) -> list[CallRecord]:
        """Requests received (optionally only ``module/method``, any case)."""
        with self._lock:
            calls = list(self._state.calls)
        if method is None:
            return calls
        wanted = method.lower()
        return [c for c in calls if c.method == wanted]

    def reset_calls(self) -> None:
        with self._lock:
            self._state.calls.clear()

    def preload(
        self, count: int, *, prefix: str = "7701", text: str = "Preloaded message"
    ) -> range:
        """Create ``count`` messages at once, as if sent now; return their ids.

        A test-support hook, not part of the API: the status-pass benchmark
        needs 100,000 sent messages, and sending them one HTTP call at a time
        would take longer than the thing it measures.  The messages are the
        same as sent ones (ids in sequence, a fate each, balance charged);
        recipients are ``prefix`` followed by a 7-digit counter.
        """
        now = self.clock()
        seg_num = max(count_segments(text).segments, 1)
        with self._lock:
            state = self._state
            first = state.next_message_id
            for index in range(count):
                message = EmulatedMessage(
                    id=state.next_message_id,
                    campaign_id=state.next_campaign_id,
                    to=f"{prefix}{index % 10_000_000:07d}",
                    text=text,
                    sender="Mobizon",
                    seg_num=seg_num,
                    created=now,
                )
                self._store(message)
        return range(first, first + count)

    def status_of(self, message: EmulatedMessage, now: float | None = None) -> dict[str, Any]:
        """Status fields of ``message`` at ``now`` (default: the clock)."""
        return _status_at(message, self.clock() if now is None else now)

    # -------------------------------------------------------------- serving

    def active(self) -> int:
        """Requests being handled right now (a test waits for 0 before it looks)."""
        with self._lock:
            return self._active

    def _handle(self, path: str, params: dict[str, Any]) -> tuple[str, _Answer | None]:
        """Decide the fault and the answer for one request.

        Returns ``(fault, answer)``: fault is "" or one of the fault names; the
        answer is None when nothing is to be sent back.
        """
        with self._lock:
            self._active += 1
        try:
            return self._handle_counted(path, params)
        finally:
            with self._lock:
                self._active -= 1

    def _handle_counted(self, path: str, params: dict[str, Any]) -> tuple[str, _Answer | None]:
        config = self.config
        segments = [s for s in urlsplit(path).path.lower().split("/") if s]
        method = "/".join(segments[1:3]) if len(segments) >= 3 else "/".join(segments)
        if config.latency > 0 and (
            config.latency_methods is None or method in config.latency_methods
        ):
            time.sleep(config.latency)
        fault = self._roll_fault(method)
        if fault in ("503", "drop_before"):
            self._record(method, params, None, fault)
            return fault, None
        answer = self._answer(segments, method, params)
        if fault == "999_after":
            answer = _Answer(999, None, "General service error")
        self._record(method, params, None if fault == "drop_after" else answer.code, fault)
        return fault, answer

    def _roll_fault(self, method: str) -> str:
        config = self.config
        if config.fault_methods is not None and method not in config.fault_methods:
            return ""
        with self._lock:
            roll = self._rng.random()
        for name, rate in (
            ("503", config.fault_503),
            ("drop_before", config.fault_drop_before),
            ("drop_after", config.fault_drop_after),
            ("999_after", config.fault_999_after),
        ):
            if roll < rate:
                return name
            roll -= rate
        return ""

    def _record(self, method: str, params: dict[str, Any], code: int | None, fault: str) -> None:
        params = {k: v for k, v in params.items() if k != "apiKey"}  # a log holds no keys
        with self._lock:
            self._state.calls.append(CallRecord(method, params, code, fault, self.clock()))

    def _answer(self, segments: list[str], method: str, params: dict[str, Any]) -> _Answer:
        config = self.config
        if len(segments) != 3 or segments[0] != "service":
            return _Answer(4, None, "Unknown module: use /service/{module}/{method}")
        if str(params.get("output", "json")).lower() != "json":
            return _Answer(6, None, "Only output=json is supported by this emulator")
        key = str(params.get("apiKey", ""))
        if not key or (config.api_key is not None and key != config.api_key):
            return _Answer(8, None, "Authorization failed: wrong API key")
        if config.wrong_domain:
            return _Answer(13, config.wrong_domain, "Wrong API domain for this user")
        handler = _METHODS.get(method)
        if handler is None:
            module = segments[1]
            if module not in {m.split("/")[0] for m in _METHODS}:
                return _Answer(4, None, f"Unknown module: {module}")
            return _Answer(5, None, f"Unknown method: {segments[2]}")
        if not self._take_token(method):
            return _Answer(30, None, "Request rate limit exceeded for this method")
        return handler(self, params)

    def _take_token(self, method: str) -> bool:
        rate = self.config.rate_limit
        if rate <= 0:
            return True
        now = time.monotonic()
        with self._lock:
            bucket = self._state.buckets.setdefault(method, _Bucket(rate, now))
            bucket.tokens = min(rate, bucket.tokens + (now - bucket.stamp) * rate)
            bucket.stamp = now
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                return True
            return False

    # ------------------------------------------------------------- methods

    def _send_sms(self, params: dict[str, Any]) -> _Answer:
        now = self.clock()
        extra = _as_dict(params.get("params"))
        errors: dict[str, str] = {}
        recipient = str(params.get("recipient", "")).strip().lstrip("+")
        if not (recipient.isdigit() and 10 <= len(recipient) <= 15):
            errors["recipient"] = "Recipient must be an international number of 10-15 digits"
        text = str(params.get("text", ""))
        if not text.strip():
            errors["text"] = "Text must not be empty"
        validity = _optional_int(extra.get("validity"))
        if "validity" in extra and (validity is None or not 60 <= validity <= 1440):
            errors["validity"] = "Validity must be 60-1440 minutes"
        mclass = _optional_int(extra.get("mclass"))
        if "mclass" in extra and mclass not in (0, 1):
            errors["mclass"] = "mclass must be 0 or 1"
        deferred_to: float | None = None
        if extra.get("deferredToTs"):
            deferred_to = _parse_ts(str(extra["deferredToTs"]))
            if deferred_to is None:
                errors["deferredToTs"] = "deferredToTs must be YYYY-MM-DD HH:MM:SS"
            elif not now + 3600 <= deferred_to <= now + 14 * 86400:
                errors["deferredToTs"] = "deferredToTs must be 1 hour to 14 days ahead"
        if errors:
            return _Answer(1, errors, "Validation failed")
        seg_num = max(count_segments(text).segments, 1)
        with self._lock:
            state = self._state
            message = EmulatedMessage(
                id=state.next_message_id,
                campaign_id=state.next_campaign_id,
                to=recipient,
                text=text,
                sender=str(params.get("from") or "Mobizon"),
                seg_num=seg_num,
                created=now,
                name=str(extra.get("name") or ""),
                validity=validity,
                mclass=mclass,
                deferred_to=deferred_to,
            )
            self._store(message)
        return _Answer(
            0,
            {
                "campaignId": str(message.campaign_id),
                "messageId": str(message.id),
                "status": "1" if self.config.moderation else "2",
            },
        )

    def _store(self, message: EmulatedMessage) -> None:
        """Keep a new message (its fate fixed now) and charge it; the lock is held."""
        message.final_status, message.step_seconds = self._fate(message)
        state = self._state
        state.next_message_id += 1
        state.next_campaign_id += 1
        state.messages.append(message)
        state.by_id[message.id] = message
        self._balance -= self.config.price_per_segment * message.seg_num

    def _fate(self, message: EmulatedMessage) -> tuple[str, tuple[float, ...]]:
        """The message's final status and step durations, fixed by seed and id."""
        digest = hashlib.sha256(f"{self.config.seed}:{message.id}".encode()).digest()
        rng = random.Random(digest)
        statuses = [s for s, _ in FINAL_WEIGHTS]
        weights = [w for _, w in FINAL_WEIGHTS]
        final = rng.choices(statuses, weights)[0]
        steps = len(NON_FINAL_STEPS) + (1 if message.seg_num > 1 else 0)
        step = self.config.status_step
        return final, tuple(step * rng.uniform(0.5, 1.5) for _ in range(steps))

    def _get_sms_status(self, params: dict[str, Any]) -> _Answer:
        ids = [i for i in (_optional_int(v) for v in _as_list(params.get("ids"))) if i is not None]
        if not ids:
            return _Answer(2, None, "No ids given")
        if len(ids) > 100:
            return _Answer(12, None, "At most 100 ids per request")
        now = self.clock()
        with self._lock:
            found = [self._state.by_id[i] for i in ids if i in self._state.by_id]
        return _Answer(0, [_status_at(m, now) for m in found])

    def _list(self, params: dict[str, Any]) -> _Answer:
        criteria = _as_dict(params.get("criteria"))
        pagination = _as_dict(params.get("pagination"))
        page_size = _optional_int(pagination.get("pageSize", 25))
        page = _optional_int(pagination.get("currentPage", 0))
        if page_size not in (25, 50, 100) or page is None or page < 0:
            return _Answer(12, None, "pageSize must be 25, 50 or 100 and currentPage >= 0")
        sort = _as_dict(params.get("sort"))
        sort_field, direction = next(iter(sort.items()), ("campaignId", "DESC"))
        attribute = LIST_SORT_FIELDS.get(str(sort_field).lower())
        if attribute is None:
            return _Answer(1, {"sort": f"Unknown sort field {sort_field}"}, "Validation failed")
        now = self.clock()
        with self._lock:
            messages = [m for m in self._state.messages if _matches(m, criteria, now)]
        messages.sort(
            key=lambda m: _sort_value(m, attribute, now),
            reverse=str(direction).upper() == "DESC",
        )
        chunk = messages[page * page_size : (page + 1) * page_size]
        items = [_list_item(m, now, self.config.price_per_segment) for m in chunk]
        return _Answer(0, {"items": items, "totalItemCount": str(len(messages))})

    def _get_balance(self, params: dict[str, Any]) -> _Answer:
        with self._lock:
            balance = self._balance
        return _Answer(0, {"balance": f"{balance:.4f}", "currency": self.config.currency})


_METHODS: dict[str, Callable[[MobizonEmulator, dict[str, Any]], _Answer]] = {
    "message/sendsmsmessage": MobizonEmulator._send_sms,
    "message/getsmsstatus": MobizonEmulator._get_sms_status,
    "message/list": MobizonEmulator._list,
    "user/getownbalance": MobizonEmulator._get_balance,
}


# ----------------------------------------------------------------- statuses


def _status_at(message: EmulatedMessage, now: float) -> dict[str, Any]:
    """GetSMSStatus fields for ``message`` at time ``now`` (all as strings or null)."""
    start = message.deferred_to or message.created
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
        "startSendTs": _format_ts(started),
        "statusUpdateTs": _format_ts(changed),
    }


def _list_item(message: EmulatedMessage, now: float, price: Decimal) -> dict[str, Any]:
    status = _status_at(message, now)
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


def _sort_value(message: EmulatedMessage, attribute: str, now: float) -> tuple[int, Any]:
    if attribute in ("status", "start_send_ts", "status_update_ts"):
        field_name = {
            "status": "status",
            "start_send_ts": "startSendTs",
            "status_update_ts": "statusUpdateTs",
        }[attribute]
        return _sort_key(_status_at(message, now)[field_name] or "")
    return _sort_key(getattr(message, attribute))


def _matches(message: EmulatedMessage, criteria: Mapping[str, Any], now: float) -> bool:
    """Message/List criteria: ``to`` is a substring match, the others exact."""
    for name, value in criteria.items():
        if value in (None, ""):
            continue
        key = str(name).lower()
        if key == "to" and str(value) not in message.to:
            return False
        if key == "text" and message.text != str(value):
            return False
        if key == "from" and message.sender != str(value):
            return False
        if key == "campaignids" and str(message.campaign_id) not in {
            str(s) for s in _as_list(value)
        }:
            return False
        if key == "campaigncreatetsfrom" and _format_ts(message.created) < str(value):
            return False
        if key == "campaigncreatetsto" and _format_ts(message.created) > str(value):
            return False
        if key == "status" and _status_at(message, now)["status"] not in {
            str(s) for s in _as_list(value)
        }:
            return False
    return True


def _number_info(number: str) -> tuple[str, str]:
    for prefix, country, operator in NUMBER_INFO:
        if number.startswith(prefix):
            return country, operator
    return "", ""


# ------------------------------------------------------------------ helpers


@overload
def _format_ts(moment: float) -> str: ...
@overload
def _format_ts(moment: None) -> None: ...
@overload
def _format_ts(moment: float | None) -> str | None: ...
def _format_ts(moment: float | None) -> str | None:
    if moment is None:
        return None
    return datetime.fromtimestamp(moment).strftime(TIMESTAMP_FORMAT)


def _parse_ts(text: str) -> float | None:
    try:
        return datetime.strptime(text.strip(), TIMESTAMP_FORMAT).timestamp()
    except ValueError:
        return None


def _optional_int(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def _as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _as_list(value: Any) -> list[Any]:
    """ids[0]=..&ids[1]=.. (a dict after parsing), ids[]=.. (a list) or "1,2,3"."""
    if value is None:
        return []
    if isinstance(value, dict):
        return [value[k] for k in sorted(value, key=lambda k: _optional_int(k) or 0)]
    if isinstance(value, list):
        return value
    return [part for part in str(value).split(",") if part.strip()]


def _sort_key(value: Any) -> tuple[int, Any]:
    return (0, value) if isinstance(value, int) else (1, str(value))


def parse_php_form(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Nest ``a[b][c]=v`` pairs into dicts; ``a[]=v`` appends to a list."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        head, _, rest = key.partition("[")
        parts = [head] + ([p.rstrip("]") for p in ("[" + rest).split("[")[1:]] if rest else [])
        target: Any = result
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            if part == "" and isinstance(target, list):
                if last:
                    target.append(value)
                else:
                    target.append({})
                    target = target[-1]
                continue
            if not isinstance(target, dict):
                break
            if last:
                target[part] = value
            else:
                following = parts[index + 1]
                default: Any = [] if following == "" else {}
                if not isinstance(target.get(part), dict | list):
                    target[part] = default
                target = target[part]
    return result


# ------------------------------------------------------------------ server


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Keep-alive connections sit idle in their threads; never wait for them on stop.
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 256
    emulator: MobizonEmulator

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet about clients that went away (killed senders, timeouts); loud otherwise."""
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; without this, Nagle's algorithm and
    # the client's delayed ACK add 40 ms to every answer.
    disable_nagle_algorithm = True
    server: _Server
    timeout = 30

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the query string carries the key."""

    def do_GET(self) -> None:
        self._serve(b"")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self._serve(self.rfile.read(length) if length > 0 else b"")

    def _serve(self, body: bytes) -> None:
        query = parse_qsl(urlsplit(self.path).query, keep_blank_values=True)
        form = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
        params = parse_php_form(query + form)
        fault, answer = self.server.emulator._handle(self.path, params)
        if fault == "503":
            self._write(
                503, b"<html><body><h1>503 Service Unavailable</h1></body></html>", "text/html"
            )
        elif fault in ("drop_before", "drop_after") or answer is None:
            self._drop()
        else:
            envelope = {"code": answer.code, "data": answer.data, "message": answer.message}
            self._write(200, json.dumps(envelope, ensure_ascii=False).encode(), "application/json")

    def _write(self, status: int, payload: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", f"{content_type}; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _drop(self) -> None:
        """Close the connection without a byte of answer (a reset, not a clean close)."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def emulator_url_for_env(emulator: MobizonEmulator) -> dict[str, str]:
    """The environment that points the command line at ``emulator``."""
    return {
        "MOBIZON_API_URL": emulator.url,
        "MOBIZON_API_KEY": emulator.config.api_key or "any-key",
    }
