"""The emulator's core: lifecycle, dispatch, faults, rate limits and message storage.

API modules live in their own files (``message_api``) and register their
handlers in ``METHODS``; this file only decides, for each request, whether a
fault strikes and which handler answers.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import replace
from datetime import tzinfo
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from mobizon_batch.emulator import campaign_api, message_api
from mobizon_batch.emulator.model import (
    FINAL_WEIGHTS,
    NON_FINAL_STEPS,
    Answer,
    Bucket,
    CallRecord,
    EmulatedMessage,
    EmulatorConfig,
    State,
    status_at,
)
from mobizon_batch.emulator.webhooks import WebhookDelivery, WebhookSender
from mobizon_batch.emulator.wire import EmulatorHandler, EmulatorServer
from mobizon_batch.texts import count_segments

# Every module/method the emulator answers, lower case.
METHODS: Mapping[str, Callable[[MobizonEmulator, dict[str, Any]], Answer]] = {
    **message_api.METHODS,
    **campaign_api.METHODS,
}


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
        self.lock = threading.Lock()
        self.state = State()
        self._active = 0
        self.balance = self.config.balance
        self._rng = random.Random(self.config.seed)
        self._campaign_ids: dict[int, EmulatedMessage] = {}
        self._server: EmulatorServer | None = None
        self._thread: threading.Thread | None = None
        self.webhooks = WebhookSender(self)

    # ------------------------------------------------------------- lifecycle

    def start(self) -> str:
        """Start serving in a background thread; return the base URL."""
        if self._server is not None:
            return self.url
        server = EmulatorServer((self._host, self._port), EmulatorHandler)
        server.emulator = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        self.webhooks.start()
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
        """Stop serving and delivering webhooks, close the listening socket (idempotent)."""
        self.webhooks.stop()
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
    def zone(self) -> tzinfo | None:
        """The account's time zone (``timezone`` knob); None: this machine's."""
        name = self.config.timezone
        return ZoneInfo(name) if name else None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the emulator is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # ----------------------------------------------------------- inspection

    def configure(self, **changes: Any) -> None:
        """Change knobs while running (for example, turn faults off); a new seed reseeds."""
        with self.lock:
            self.config = replace(self.config, **changes)
            self.state.generation += 1
            if "seed" in changes:
                self._rng = random.Random(self.config.seed)

    def messages(self) -> list[EmulatedMessage]:
        """Copies of every message accepted, in order of creation."""
        with self.lock:
            return [replace(m) for m in self.state.messages]

    def calls(self, method: str | None = None) -> list[CallRecord]:
        """Requests received (optionally only ``module/method``, any case)."""
        with self.lock:
            calls = list(self.state.calls)
        if method is None:
            return calls
        wanted = method.lower()
        return [c for c in calls if c.method == wanted]

    def webhook_deliveries(self) -> list[WebhookDelivery]:
        """Every webhook POST made so far, with the receiver's answer."""
        return self.webhooks.deliveries()

    def webhooks_outstanding(self) -> int:
        """Webhook events still to be delivered, plus messages not final yet."""
        return self.webhooks.outstanding()

    def reset_calls(self) -> None:
        with self.lock:
            self.state.calls.clear()

    def preload(
        self,
        count: int,
        *,
        prefix: str = "7701",
        text: str = "Preloaded message",
        age: float = 0.0,
        sent: bool = True,
    ) -> Sequence[int]:
        """Create ``count`` messages at once, as if sent ``age`` seconds ago; return their ids.

        A test-support hook, not part of the API: the status-pass benchmark
        needs 100,000 sent messages, and sending them one HTTP call at a time
        would take longer than the thing it measures.  The messages are the
        same as sent ones (ids in sequence, a fate each, balance charged);
        recipients are ``prefix`` followed by a 7-digit counter.  With
        ``sent=False`` they are only staged (their campaign was never sent).
        """
        now = self.clock() - age
        seg_num = max(count_segments(text).segments, 1)
        ids: list[int] = []
        with self.lock:
            state = self.state
            for index in range(count):
                message = EmulatedMessage(
                    id=state.next_message_id,
                    campaign_id=state.next_campaign_id,
                    to=f"{prefix}{index % 10_000_000:07d}",
                    text=text,
                    sender="Mobizon",
                    seg_num=seg_num,
                    created=now,
                    campaign_sent=now if sent else None,
                )
                self.store(message)
                ids.append(message.id)
        # In sequence unless the ids are random: a range says so, and is small.
        return ids if self.config.random_ids or not ids else range(ids[0], ids[-1] + 1)

    def status_of(self, message: EmulatedMessage, now: float | None = None) -> dict[str, Any]:
        """Status fields of ``message`` at ``now`` (default: the clock)."""
        now = self.clock() if now is None else now
        return status_at(message, now, self.zone, self.config.clock_offset)

    # -------------------------------------------------------------- serving

    def active(self) -> int:
        """Requests being handled right now (a test waits for 0 before it looks)."""
        with self.lock:
            return self._active

    def handle(self, path: str, params: dict[str, Any]) -> tuple[str, Answer | None]:
        """Decide the fault and the answer for one request.

        Returns ``(fault, answer)``: fault is "" or one of the fault names; the
        answer is None when nothing is to be sent back.
        """
        with self.lock:
            self._active += 1
        try:
            return self._handle_counted(path, params)
        finally:
            with self.lock:
                self._active -= 1

    def _handle_counted(self, path: str, params: dict[str, Any]) -> tuple[str, Answer | None]:
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
            answer = Answer(999, None, "General service error")
        self._record(method, params, None if fault == "drop_after" else answer.code, fault)
        if config.hold_after > 0 and method in config.hold_methods:
            time.sleep(config.hold_after)  # done and logged, not answered yet
        return fault, answer

    def _roll_fault(self, method: str) -> str:
        config = self.config
        if config.fault_methods is not None and method not in config.fault_methods:
            return ""
        with self.lock:
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
        with self.lock:
            self.state.calls.append(CallRecord(method, params, code, fault, self.clock()))

    def _answer(self, segments: list[str], method: str, params: dict[str, Any]) -> Answer:
        config = self.config
        if len(segments) != 3 or segments[0] != "service":
            return Answer(4, None, "Unknown module: use /service/{module}/{method}")
        if str(params.get("output", "json")).lower() != "json":
            return Answer(6, None, "Only output=json is supported by this emulator")
        key = str(params.get("apiKey", ""))
        if not key or (config.api_key is not None and key != config.api_key):
            return Answer(8, None, "Authorization failed: wrong API key")
        if config.wrong_domain:
            return Answer(13, config.wrong_domain, "Wrong API domain for this user")
        handler = METHODS.get(method)
        if handler is None:
            module = segments[1]
            if module not in {m.split("/")[0] for m in METHODS}:
                return Answer(4, None, f"Unknown module: {module}")
            return Answer(5, None, f"Unknown method: {segments[2]}")
        if not self._take_token(method):
            return Answer(30, None, "Request rate limit exceeded for this method")
        return handler(self, params)

    def _take_token(self, method: str) -> bool:
        rate = self.config.rate_limit
        if rate <= 0:
            return True
        now = time.monotonic()
        with self.lock:
            bucket = self.state.buckets.setdefault(method, Bucket(rate, now))
            bucket.tokens = min(rate, bucket.tokens + (now - bucket.stamp) * rate)
            bucket.stamp = now
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                return True
            return False

    # ------------------------------------------------------------ messages

    def store(self, message: EmulatedMessage, *, staged: bool = False) -> None:
        """Keep a new message; the lock is held.

        A message sent on its own gets a campaign of its own, its fate, and is
        charged now; a ``staged`` one belongs to a Campaign-module campaign, is
        held (NEW, undelivered) and gets its fate and its charge when that
        campaign is sent.
        """
        state = self.state
        state.next_message_id += 1
        state.generation += 1
        if self.config.random_ids:  # the docs never say ids grow with time
            message.id = self._fresh_id(state.by_id)
        state.messages.append(message)
        state.by_id[message.id] = message
        if staged:  # its fate (fixed by seed and id all the same) is drawn when it is let go
            message.held = True
            return
        state.next_campaign_id += 1
        if self.config.random_ids:
            message.campaign_id = self._fresh_id(set(self._campaign_ids) | set(state.campaigns))
            self._campaign_ids[message.campaign_id] = message
        self.fix_fate(message)
        self.balance -= self.config.price_per_segment * message.seg_num

    def new_campaign_id(self) -> int:
        """An id for a Campaign-module campaign (random with ``random_ids``); the lock is held."""
        state = self.state
        campaign_id = state.next_campaign_id
        state.next_campaign_id += 1
        if self.config.random_ids:
            campaign_id = self._fresh_id(set(self._campaign_ids) | set(state.campaigns))
        return campaign_id

    def _fresh_id(self, taken: Container[int]) -> int:
        """A random id not yet used (``random_ids``); the lock is held."""
        while True:
            candidate = self._rng.randrange(10_000_000, 99_999_999)
            if candidate not in taken:
                return candidate

    def shift_messages(self, seconds: float) -> None:
        """Move every message's creation ``seconds`` back in time.

        A test-support hook, not part of the API: what an earlier day's send
        looks like, without waiting a day.
        """
        with self.lock:
            self.state.generation += 1
            for message in self.state.messages:
                message.created -= seconds
                if message.campaign_sent is not None:
                    message.campaign_sent -= seconds
                if message.released is not None:
                    message.released -= seconds
            for campaign in self.state.campaigns.values():
                campaign.created -= seconds
                if campaign.sent_at is not None:
                    campaign.sent_at -= seconds
                    campaign.moderation_ends -= seconds

    def fix_fate(self, message: EmulatedMessage) -> None:
        """Draw the message's final status and step durations (the lock is held)."""
        message.final_status, message.step_seconds = self._fate(message)

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


def emulator_url_for_env(emulator: MobizonEmulator) -> dict[str, str]:
    """The environment that points the command line at ``emulator``."""
    return {
        "MOBIZON_API_URL": emulator.url,
        "MOBIZON_API_KEY": emulator.config.api_key or "any-key",
    }
