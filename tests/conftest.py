"""Shared fixtures: the emulator on loopback, clients, and the generated input files."""

from __future__ import annotations

import hashlib
import http.client
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from mobizon_batch.client import MobizonClient
from mobizon_batch.emulator import MobizonEmulator
from mobizon_batch.runs.webhook import Receiver, ReceiverOptions
from tests.fixtures.make_fixtures import build
from tests.helpers import TEST_KEY
from tests.scripted_server import ScriptedServer


@pytest.fixture
def emulator() -> Iterator[MobizonEmulator]:
    with MobizonEmulator(api_key=TEST_KEY, status_step=0.05) as emu:
        yield emu


@pytest.fixture
def client(emulator: MobizonEmulator) -> Iterator[MobizonClient]:
    with MobizonClient(TEST_KEY, emulator.url, timeout=(2.0, 5.0)) as api:
        yield api


@pytest.fixture
def scripted() -> Iterator[ScriptedServer]:
    with ScriptedServer() as server:
        yield server


@pytest.fixture
def api_env(monkeypatch: pytest.MonkeyPatch, emulator: MobizonEmulator) -> MobizonEmulator:
    """Point the command line at the emulator through the environment."""
    monkeypatch.setenv("MOBIZON_API_KEY", TEST_KEY)
    monkeypatch.setenv("MOBIZON_API_URL", emulator.url)
    return emulator


@pytest.fixture(scope="session")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every fixture file, written once per test session."""
    return build(tmp_path_factory.mktemp("fixtures"))


# ------------------------------------------------------------------ webhooks

WEBHOOK_SECRET = "wh-S3cr3t-9f8e7d6c5b4a39281706f5e4d3c2b1a0"


def webhook_event(
    event_id: int = 26,
    *,
    attempt: int = 1,
    message_id: int = 169275418,
    status: str = "DELIVRD",
    secret: str | None = WEBHOOK_SECRET,
    event_type: str = "sms-delivery-report",
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An event as the documentation shows it, signed by hand from the documented rule."""
    created = "2026-01-15 11:42:28"
    payload: dict[str, Any] = {
        "eventId": event_id,
        "eventType": event_type,
        "eventCreateTs": created,
        "webhookId": 1,
        "attempt": attempt,
        "data": data
        if data is not None
        else {
            "campaignId": 245455096,
            "messageId": message_id,
            "segNum": 3,
            "statusUpdateTs": "2026-01-15 11:42:08",
            "status": status,
            "to": "380737893456",
        },
    }
    if secret is not None:
        text = f"{event_id}|{attempt}|{created}|{secret}"
        payload["sign"] = hashlib.sha1(text.encode()).hexdigest()
    return payload


def post(
    url: str,
    body: bytes | dict[str, Any],
    *,
    method: str = "POST",
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    """One request over loopback; returns (HTTP status, body)."""
    parts = urlsplit(url)
    payload = json.dumps(body).encode() if isinstance(body, dict) else body
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        connection.request(
            method,
            parts.path or "/",
            body=payload if method != "GET" else None,
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    """The webhook receiver on loopback (real waitress, port 0), path /mobizon/events."""
    options = ReceiverOptions(
        store=tmp_path / "events.sqlite", path="/mobizon/events", secret=WEBHOOK_SECRET
    )
    with Receiver(options).running() as running:
        yield running


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Poll until ``condition`` holds; fail naming ``what`` if it never does (not a timing test)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.02)
