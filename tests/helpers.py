"""What several test modules share: the test key, a free port, a fake clock, sample tables,
signed webhook events and a way to post them, lists to send, the send command run as a
process.

One home for them, so that no test module imports another and a test file can be
renamed or split without breaking the files that used its helpers.
"""

from __future__ import annotations

import csv
import hashlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, AnyStr
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import pytest

from mobizon_batch.client import StatusRecord
from mobizon_batch.emulator import CallRecord, MobizonEmulator
from mobizon_batch.retries import ReadPolicy
from mobizon_batch.table import InputTable
from mobizon_batch.webhook_server import WsgiServer

# Long enough to be redacted as plain text, unlike a one-letter key.
TEST_KEY = "k3yS3cr3tAbCdEf0123456789abcdef01234567"

STATUS_CALL = "message/getsmsstatus"
#: Retries without pauses, for tests of read passes.
INSTANT = ReadPolicy(sleep=lambda _seconds: None)

KZ1, KZ2, KZ3 = "77012345678", "77021112233", "77051112233"


class ScriptedStatuses:
    """A StatusSource that answers from a dict and remembers what it was asked."""

    def __init__(self, statuses: dict[int, str]) -> None:
        self.statuses = statuses
        self.asked: list[list[int]] = []

    def get_sms_status(self, ids: Iterable[int]) -> list[StatusRecord]:
        batch = list(ids)
        self.asked.append(batch)
        return [
            StatusRecord(i, self.statuses[i], 2, None, None) for i in batch if i in self.statuses
        ]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class FakeClock:
    """Epoch seconds that move only when told: shared by the emulator and the wait loop."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 28, 9, 0, 0).timestamp()
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def datetime(self) -> datetime:
        return datetime.fromtimestamp(self.now)


def asked_ids(call: CallRecord) -> list[int]:
    """The ids one GetSMSStatus request carried, in order (``ids[0]=..&ids[1]=..``)."""
    ids = call.params["ids"]
    values = [ids[k] for k in sorted(ids, key=int)] if isinstance(ids, dict) else ids
    return [int(v) for v in values]


def make_table(
    data: dict[str, list[str]], problems: dict[int, str] | None = None, first_line: int = 2
) -> InputTable:
    frame = pd.DataFrame({k: pd.Series(v, dtype="str") for k, v in data.items()})
    return InputTable(
        frame=frame,
        source_lines=np.arange(first_line, first_line + len(frame), dtype=np.int64),
        path=Path("list.csv"),
        format="csv",
        encoding="UTF-8",
        delimiter=",",
        row_problems=problems or {},
    )


def results_frame_to_write() -> pd.DataFrame:
    """Text that looks like formulas or escapes, nullable and float ids: what writers trip on."""
    return pd.DataFrame(
        {
            "phone": pd.Series(["87012345678", "+7 702"], dtype="str"),
            "text": pd.Series(["=1+2", "+7 call\r\nme <now> & _x0041_"], dtype="str"),
            "note": pd.Series(["-minus", "@at"], dtype="str"),
            "message_id": pd.array([1234567890123, pd.NA], dtype="Int64"),
            "campaign_id": [5.0, float("nan")],  # a float column of whole numbers
            "segments": np.array([1, 2], dtype=np.int64),
            "error": pd.Series(["", "bad\x01char"], dtype="str"),
        }
    )


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


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Poll until ``condition`` holds; fail naming ``what`` if it never does (not a timing test)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.02)


# ----------------------------------------------- the send command as a process

#: the columns of ``write_list``'s lists: a phone, a name, a text
HEADER = ["Телефон", "Имя", "Текст"]


def numbers(count: int, start: int = 0) -> list[str]:
    return [f"7701{n:07d}" for n in range(start, start + count)]


def write_list(path: Path, phones: list[str], extra_rows: list[list[str]] | None = None) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for phone in phones:
            writer.writerow([phone, f"Клиент {phone[-4:]}", f"Здравствуйте! Ваш код {phone[-5:]}."])
        for row in extra_rows or []:
            writer.writerow(row)
    return path


def stop(
    process: subprocess.Popen[AnyStr], how: int | None = signal.SIGINT, timeout: float = 30.0
) -> tuple[AnyStr | None, AnyStr | None]:
    """Signal a process under test, wait for it, and kill it if it does not stop in time.

    Every test that starts a process ends it through here, usually in a ``finally``: a
    test that fails, or a process that ignores the signal, then still leaves nothing
    running behind (a bare ``communicate(timeout=...)`` raises and leaves it alive).
    Returns what ``communicate`` read; a killed process has a negative return code,
    which a test asserting a clean exit then reports.  ``how=None`` sends nothing: for
    a process already signalled, or one expected to end by itself.
    """
    if how is not None and process.poll() is None:
        process.send_signal(how)
    try:
        return process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.communicate()


def read_results(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def wait_for_sends(emulator: MobizonEmulator, count: int = 1, limit: float = 30) -> None:
    """Until the process under test has really started sending (startup takes a while)."""
    deadline = time.monotonic() + limit
    while len(emulator.calls("message/sendsmsmessage")) < count and time.monotonic() < deadline:
        time.sleep(0.02)


def subprocess_env(emulator: MobizonEmulator) -> dict[str, str]:
    return {
        **os.environ,
        "MOBIZON_API_KEY": TEST_KEY,
        "MOBIZON_API_URL": emulator.url,
        "PYTHONUNBUFFERED": "1",
    }


def send_command(source: Path, results: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "mobizon_batch",
        "send",
        str(source),
        "-o",
        str(results),
        "-q",
        *extra,
    ]


class BackgroundServer:
    """A ``WsgiServer`` serving in a thread of its own, for the length of a ``with`` block."""

    def __init__(self, server: WsgiServer) -> None:
        self.server = server
        self._thread = threading.Thread(target=server.serve, daemon=True, name="wsgi-server")

    def __enter__(self) -> WsgiServer:
        self._thread.start()
        return self.server

    def __exit__(self, *exc_info: object) -> None:
        self.server.stop()
        self._thread.join(timeout=self.server.drain + 5)
