"""The webhook receiver as a WSGI application: request → verify → store → answer.

Why a plain WSGI callable: it is pure (no sockets, no threads, no signals), so
it can be tested by calling it, served by any WSGI server, and the server
module only has to serve it.  What it promises, in the order it checks:

- other paths answer 404, other methods 405 (``Allow: POST``) — a GET is how
  people check that the URL is reachable, so it says what the URL is for;
- a body over ``max_body`` bytes answers 413, decided from ``Content-Length``
  before a byte is read, and again while reading (a chunked body has none);
- a body that is not a JSON object, or lacks a field of the envelope
  (``eventId``, ``eventType``, ``eventCreateTs``, ``attempt``, ``data``),
  answers 400;
- with a secret, ``sign`` must equal the lowercase hex SHA-1 of
  ``eventId|attempt|eventCreateTs|secret`` (compared in constant time), else
  403 and nothing is stored; the signature does not cover ``data``, which is
  why a report's fields are checked only after it;
- a delivery report without ``messageId`` or ``status`` answers 400;
- the event is committed to the store before the 2xx goes out; an ``eventId``
  stored before is answered 2xx again and stored once;
- a store that cannot write answers 503, so Mobizon delivers the event again.

Why the body's Content-Type is not checked: the documentation does not say
which one Mobizon sends, and refusing a real event over a header would lose
it; the body is parsed as JSON whatever the header says.

One log line per event (its id, type, attempt, message and status); never the
secret, the signature or the recipient's number.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from mobizon_batch.webhook_store import DELIVERY_REPORT, Event

#: Mobizon's events are well under 1 KB; an unsubscribe form with many fields is bigger.
DEFAULT_MAX_BODY = 16 * 1024
ENVELOPE_FIELDS = ("eventId", "eventType", "eventCreateTs", "attempt", "data")
_READ_BLOCK = 8192

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
log = logging.getLogger("mobizon_batch.webhook")


class Recorder(Protocol):
    """What the application needs of a store: ``EventStore`` is one."""

    def record(self, event: Event) -> bool: ...


class Secret:
    """The shared secret, kept out of every repr, traceback and log line."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not value:
            raise ValueError("an empty secret checks nothing")
        self._value = value.encode("utf-8")

    def sign(self, event_id: str, attempt: str, create_ts: str) -> bytes:
        """Mobizon's signature of an event, as lowercase hex bytes."""
        text = f"{event_id}|{attempt}|{create_ts}|".encode() + self._value
        return hashlib.sha1(text, usedforsecurity=False).hexdigest().encode("ascii")

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


class Refusal(Exception):
    """An answer other than 2xx: the HTTP status and one sentence."""

    def __init__(self, status: str, reason: str, event_id: str = "") -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.event_id = event_id


@dataclass(frozen=True)
class Outcome:
    """What happened to one accepted event (for the log line and the counters)."""

    event: Event
    new: bool


class WebhookApp:
    """The receiver. ``secret=None`` accepts unsigned events (``--insecure-no-signature``)."""

    def __init__(
        self,
        store: Recorder,
        *,
        secret: Secret | None,
        path: str = "/",
        max_body: int = DEFAULT_MAX_BODY,
    ) -> None:
        self.store = store
        self.secret = secret
        self.path = normalize_path(path)
        self.max_body = max_body

    def __call__(self, environ: Mapping[str, Any], start_response: StartResponse) -> list[bytes]:
        try:
            outcome = self.handle(environ)
        except Refusal as refusal:
            # A GET or a wrong path is someone checking the URL; the rest are refused events.
            quiet = refusal.status[:3] in ("404", "405")
            log.log(
                logging.INFO if quiet else logging.WARNING,
                "refused %s%s: %s",
                environ.get("REMOTE_ADDR", "?"),
                f" (event {refusal.event_id})" if refusal.event_id else "",
                refusal.reason,
            )
            headers = [("Allow", "POST")] if refusal.status.startswith("405") else []
            return _answer(start_response, refusal.status, {"error": refusal.reason}, headers)
        event = outcome.event
        log.info(
            "event %s %s attempt %d: %s%s",
            event.event_id,
            event.event_type,
            event.attempt,
            "stored" if outcome.new else "already stored",
            f" (message {event.message_id} {event.status})" if event.message_id else "",
        )
        return _answer(start_response, "200 OK", {"ok": True, "duplicate": not outcome.new})

    def handle(self, environ: Mapping[str, Any]) -> Outcome:
        """Verify and store one request; raise ``Refusal`` for anything but a 2xx."""
        path = normalize_path(str(environ.get("SCRIPT_NAME", "")) + str(environ["PATH_INFO"]))
        if path != self.path:
            raise Refusal("404 Not Found", f"nothing here: events go to {self.path}")
        if environ.get("REQUEST_METHOD") != "POST":
            raise Refusal(
                "405 Method Not Allowed",
                "this is a Mobizon webhook receiver: it accepts events by POST only",
            )
        body = self._read_body(environ)
        event = self._parse(body)
        try:
            new = self.store.record(event)
        except Exception as exc:  # any storage failure: Mobizon must try again
            log.error("could not store event %s: %s", event.event_id, type(exc).__name__)
            raise Refusal(
                "503 Service Unavailable", "the event could not be stored", event.event_id
            ) from None
        return Outcome(event, new)

    # ------------------------------------------------------------- reading

    def _read_body(self, environ: Mapping[str, Any]) -> bytes:
        stream = environ["wsgi.input"]
        declared = str(environ.get("CONTENT_LENGTH") or "").strip()
        if declared:
            if not declared.isdigit():
                raise Refusal("400 Bad Request", "Content-Length is not a number")
            length = int(declared)
            if length > self.max_body:
                raise Refusal("413 Content Too Large", f"body over {self.max_body} bytes")
        elif environ.get("wsgi.input_terminated"):
            length = self.max_body + 1  # read to the end; more than the limit is refused
        else:
            raise Refusal("411 Length Required", "the request has no Content-Length")
        chunks: list[bytes] = []
        received = 0
        while received < length:
            block = stream.read(min(_READ_BLOCK, length - received))
            if not block:
                break
            chunks.append(block)
            received += len(block)
            if received > self.max_body:
                raise Refusal("413 Content Too Large", f"body over {self.max_body} bytes")
        if declared and received < length:
            raise Refusal("400 Bad Request", "the body ended before its Content-Length")
        return b"".join(chunks)

    def _parse(self, body: bytes) -> Event:
        try:
            payload = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise Refusal(
                "400 Bad Request", "the body is not JSON (choose data format json for the webhook)"
            ) from None
        if not isinstance(payload, dict):
            raise Refusal("400 Bad Request", "the body is not a JSON object")
        missing = [name for name in ENVELOPE_FIELDS if payload.get(name) in (None, "")]
        if missing:
            raise Refusal("400 Bad Request", f"missing field(s): {', '.join(missing)}")
        event_id = _identity(payload["eventId"])
        attempt = _whole_number(payload["attempt"])
        create_ts = payload["eventCreateTs"]
        event_type = payload["eventType"]
        data = payload["data"]
        if event_id is None or attempt is None:
            raise Refusal("400 Bad Request", "eventId and attempt must be whole numbers")
        if not isinstance(create_ts, str) or not isinstance(event_type, str):
            raise Refusal("400 Bad Request", "eventCreateTs and eventType must be text")
        if not isinstance(data, dict):
            raise Refusal("400 Bad Request", "data must be a JSON object", event_id)
        if self.secret is not None:
            sign = payload.get("sign")
            expected = self.secret.sign(event_id, _spelled(payload["attempt"]), create_ts)
            if not isinstance(sign, str) or not hmac.compare_digest(
                expected, sign.strip().lower().encode("utf-8")
            ):
                raise Refusal("403 Forbidden", "the signature does not match", event_id)
        webhook_id = payload.get("webhookId")
        fields: dict[str, Any] = {}
        if event_type == DELIVERY_REPORT:
            fields = _report_fields(data, event_id)
        return Event(
            event_id=event_id,
            event_type=event_type,
            event_create_ts=create_ts,
            attempt=attempt,
            data=data,
            webhook_id=None if webhook_id is None else str(webhook_id),
            **fields,
        )


def _report_fields(data: Mapping[str, Any], event_id: str) -> dict[str, Any]:
    message_id = _whole_number(data.get("messageId"))
    status = data.get("status")
    if message_id is None or not isinstance(status, str) or not status.strip():
        raise Refusal(
            "400 Bad Request", "a delivery report needs data.messageId and data.status", event_id
        )
    updated = data.get("statusUpdateTs")
    recipient = data.get("to")
    return {
        "message_id": message_id,
        "status": status.strip().upper(),
        "seg_num": _whole_number(data.get("segNum")),
        "status_update_ts": updated if isinstance(updated, str) and updated else None,
        "recipient": None if recipient in (None, "") else str(recipient),
    }


def _identity(value: Any) -> str | None:
    """An event id as text: a whole number, or a non-blank printable string as sent.

    Printable because the id is logged before the signature is checked: a line
    break in it would let anyone write a line of their own into the log.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip() == value and value and value.isprintable():
        return value
    return None


def _whole_number(value: Any) -> int | None:
    """A whole number sent as a JSON number or as its digits (the API does both)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return None


def _spelled(value: Any) -> str:
    """How the sender wrote a number into the signed string (PHP's string conversion)."""
    return str(value)


def normalize_path(path: str) -> str:
    """``/hooks/mobizon/`` and ``/hooks/mobizon`` are the same endpoint."""
    cleaned = "/" + path.strip().strip("/")
    return cleaned


def _answer(
    start_response: StartResponse,
    status: str,
    body: Mapping[str, Any],
    headers: Iterable[tuple[str, str]] = (),
) -> list[bytes]:
    payload = json.dumps(body).encode()
    start_response(
        status,
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(payload))),
            *headers,
        ],
    )
    return [payload]


__all__ = [
    "DEFAULT_MAX_BODY",
    "Outcome",
    "Recorder",
    "Refusal",
    "Secret",
    "WebhookApp",
    "normalize_path",
]
