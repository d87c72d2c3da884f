"""Webhook delivery: the emulator pushes events as Mobizon does, so the loop runs offline.

When a message reaches its final status (statuses advance with the clock), an
``sms-delivery-report`` event is made for it and POSTed as JSON to
``config.webhook_url``, signed with ``config.webhook_secret`` when one is set:
``sign`` = hex SHA-1 of ``eventId|attempt|eventCreateTs|secret``, written
here from the documentation on purpose, not borrowed from the receiver.

Delivery as documented: an answer other than 2xx (or none within
``webhook_timeout``) is retried up to ``webhook_retries`` times with the same
``eventId`` and ``attempt`` + 1, after a pause that grows by
``webhook_retry_pause`` each time (a minute on the live service).  Knobs for
what the documentation allows but does not promise a receiver: every event is
delivered ``webhook_redeliveries`` extra times even after a 2xx (as when the
2xx came too late), ``webhook_senders`` deliver concurrently (so events
arrive out of order), and ``webhook_numbers_as_text`` sends the numbers as
strings, as the API's own answers do.

A background thread looks for newly final messages every
``webhook_scan_interval`` seconds; it does nothing while no URL is set, and
messages that became final meanwhile are delivered once one is.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import json
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mobizon_batch.emulator.model import EmulatedMessage, format_ts, status_at
from mobizon_batch.vocabulary import FINAL_STATUSES

if TYPE_CHECKING:
    from mobizon_batch.emulator.core import MobizonEmulator

WEBHOOK_ID = 1
FIRST_EVENT_ID = 9_100_001


@dataclass(frozen=True)
class WebhookDelivery:
    """One POST of one event, and how the receiver answered (``status`` 0: no answer)."""

    event_id: int
    event_type: str
    attempt: int
    message_id: int | None
    status: int
    error: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass
class _Pending:
    event_id: int
    event_type: str
    data: dict[str, Any]
    created: str
    message_id: int | None
    attempt: int = 1
    extra_left: int = 0
    failures: int = 0


class WebhookSender:
    """The emulator's outgoing side; ``start``/``stop`` follow the emulator's own."""

    def __init__(self, emulator: MobizonEmulator) -> None:
        self._emu = emulator
        self._lock = threading.Lock()
        self._waiting: dict[int, EmulatedMessage] = {}
        self._seen = 0
        self._due: list[tuple[float, int, _Pending]] = []
        self._order = itertools.count()
        self._in_flight = 0
        self._log: list[WebhookDelivery] = []
        self._event_ids = itertools.count(FIRST_EVENT_ID)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._pool = ThreadPoolExecutor(
            max(1, self._emu.config.webhook_senders), thread_name_prefix="webhook"
        )
        self._thread = threading.Thread(target=self._run, daemon=True, name="webhook-scan")
        self._thread.start()

    def stop(self) -> None:
        """Stop scanning and wait for POSTs in flight (each ends within its timeout)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    # ----------------------------------------------------------- inspection

    def deliveries(self) -> list[WebhookDelivery]:
        with self._lock:
            return list(self._log)

    def outstanding(self) -> int:
        """Events not yet through (queued, in flight) plus messages not final yet."""
        with self._lock, self._emu.lock:
            unseen = len(self._emu.state.messages) - self._seen
            return unseen + len(self._due) + self._in_flight + len(self._waiting)

    def push_unsubscribe(self, values: list[tuple[str, str]], form_id: int = 846) -> int:
        """Queue a ``form-contact-unsubscribe`` event with these (fieldType, value) items."""
        items = [
            {
                "submissionId": 3675,
                "submissionDataId": 12289 + index,
                "fieldId": 3745 + index,
                "fieldType": field_type,
                "fieldName": field_type.title(),
                "value": value,
                "confirmationTs": "",
            }
            for index, (field_type, value) in enumerate(values)
        ]
        now = format_ts(self._emu.clock(), self._emu.zone)
        data = {"formId": form_id, "unsubscribeTs": now, "items": items}
        return self._queue("form-contact-unsubscribe", data, None)

    # -------------------------------------------------------------- working

    def _run(self) -> None:
        interval = self._emu.config.webhook_scan_interval
        while not self._stop.wait(interval):
            if not self._emu.config.webhook_url:
                continue
            self._scan()
            self._send_due()

    def _scan(self) -> None:
        """Make an event for every message that has become final since the last look.

        All under one lock, so that ``outstanding`` never sees a message in
        none of its counts.
        """
        now = self._emu.clock()
        with self._lock:
            with self._emu.lock:
                fresh = self._emu.state.messages[self._seen :]
                self._seen += len(fresh)
            for message in fresh:
                self._waiting[message.id] = message
            for message in list(self._waiting.values()):
                status = status_at(message, now, self._emu.zone)
                if status["status"] not in FINAL_STATUSES:
                    continue
                del self._waiting[message.id]
                data = {
                    "campaignId": message.campaign_id,
                    "messageId": message.id,
                    "segNum": message.seg_num,
                    "statusUpdateTs": status["statusUpdateTs"],
                    "status": status["status"],
                    "to": message.to,
                }
                self._queue_locked("sms-delivery-report", data, message.id)

    def _queue(self, event_type: str, data: dict[str, Any], message_id: int | None) -> int:
        with self._lock:
            return self._queue_locked(event_type, data, message_id)

    def _queue_locked(self, event_type: str, data: dict[str, Any], message_id: int | None) -> int:
        event_id = next(self._event_ids)
        pending = _Pending(
            event_id,
            event_type,
            data,
            format_ts(self._emu.clock(), self._emu.zone),
            message_id,
            extra_left=self._emu.config.webhook_redeliveries,
        )
        heapq.heappush(self._due, (0.0, next(self._order), pending))
        return event_id

    def _send_due(self) -> None:
        now = self._emu.clock()
        with self._lock:
            batch = []
            while self._due and self._due[0][0] <= now:
                batch.append(heapq.heappop(self._due)[2])
            self._in_flight += len(batch)
        pool = self._pool
        for pending in batch:
            if pool is None or self._stop.is_set():
                with self._lock:
                    self._in_flight -= 1
                continue
            pool.submit(self._deliver, pending)

    def _deliver(self, pending: _Pending) -> None:
        config = self._emu.config
        delivery = self._post(pending, config.webhook_url or "", config.webhook_timeout)
        with self._lock:
            self._in_flight -= 1
            self._log.append(delivery)
            again: float | None = None
            if not delivery.ok:
                pending.failures += 1
                if pending.attempt <= config.webhook_retries:
                    again = config.webhook_retry_pause * pending.failures
            elif pending.extra_left > 0:
                pending.extra_left -= 1
                again = config.webhook_retry_pause
            if again is not None:
                pending.attempt += 1
                due = self._emu.clock() + again
                heapq.heappush(self._due, (due, next(self._order), pending))

    def _post(self, pending: _Pending, url: str, timeout: float) -> WebhookDelivery:
        body = json.dumps(self.payload(pending)).encode()
        request = urllib.request.Request(
            url, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                answer.read()
                status, error = int(answer.status), ""
        except urllib.error.HTTPError as exc:
            status, error = exc.code, str(exc.reason)
        except (OSError, ValueError) as exc:
            status, error = 0, type(exc).__name__
        return WebhookDelivery(
            pending.event_id, pending.event_type, pending.attempt, pending.message_id, status, error
        )

    def payload(self, pending: _Pending) -> dict[str, Any]:
        """The event as Mobizon's documentation shows it (numbers as text on request)."""
        config = self._emu.config
        as_text = config.webhook_numbers_as_text

        def number(value: Any) -> Any:
            return str(value) if as_text and isinstance(value, int) else value

        payload: dict[str, Any] = {
            "eventId": number(pending.event_id),
            "eventType": pending.event_type,
            "eventCreateTs": pending.created,
            "webhookId": number(WEBHOOK_ID),
            "attempt": number(pending.attempt),
            "data": {key: number(value) for key, value in pending.data.items()},
        }
        if config.webhook_secret:
            text = f"{pending.event_id}|{pending.attempt}|{pending.created}|{config.webhook_secret}"
            payload["sign"] = hashlib.sha1(text.encode("utf-8")).hexdigest()
        return payload


__all__ = ["WebhookDelivery", "WebhookSender"]
