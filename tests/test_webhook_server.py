"""The webhook receiver over loopback: the real waitress server on port 0, real HTTP."""

from __future__ import annotations

import json
import logging
import stat
import threading
from pathlib import Path

import pytest

from mobizon_batch.errors import ConfigError
from mobizon_batch.runs.webhook import Receiver, ReceiverOptions
from mobizon_batch.webhook_store import EventStore
from tests.helpers import WEBHOOK_SECRET, post, webhook_event


def stored(receiver: Receiver) -> tuple[int, int]:
    """(events, deliveries) in the receiver's store, read through a second connection."""
    with EventStore(receiver.options.store, create=False) as store:
        counts = store.counts()
    return counts.events, counts.deliveries


def test_a_signed_event_is_stored_before_the_answer(receiver: Receiver) -> None:
    status, body = post(receiver.url, webhook_event(26, message_id=169275418))

    assert status == 200
    assert json.loads(body) == {"ok": True, "duplicate": False}
    # Another connection sees it the moment the answer is in: it was committed first.
    with EventStore(receiver.options.store, create=False) as store:
        report = store.reports_for([169275418])[169275418]
    assert (report.status, report.seg_num, report.status_update_ts) == (
        "DELIVRD",
        3,
        "2026-01-15 11:42:08",
    )


def test_the_same_event_id_again_is_answered_2xx_and_stored_once(receiver: Receiver) -> None:
    assert post(receiver.url, webhook_event(26, attempt=1))[0] == 200
    status, body = post(receiver.url, webhook_event(26, attempt=2))
    third, _ = post(receiver.url, webhook_event(26, attempt=3))

    assert (status, third) == (200, 200)
    assert json.loads(body)["duplicate"] is True
    assert stored(receiver) == (1, 3)


@pytest.mark.parametrize(
    "tamper",
    ["wrong secret", "no sign", "attempt changed", "eventId changed", "sign not text"],
)
def test_a_bad_signature_is_403_and_nothing_is_stored(receiver: Receiver, tamper: str) -> None:
    event = webhook_event(27, secret="not-the-secret" if tamper == "wrong secret" else None)
    if tamper != "wrong secret":
        event["sign"] = webhook_event(27)["sign"]
    if tamper == "no sign":
        del event["sign"]
    elif tamper == "attempt changed":
        event["attempt"] = 2
    elif tamper == "eventId changed":
        event["eventId"] = 28
    elif tamper == "sign not text":
        event["sign"] = 12345

    status, body = post(receiver.url, event)

    assert status == 403
    assert "signature" in json.loads(body)["error"]
    assert stored(receiver) == (0, 0)


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[1, 2, 3]",
        b"\xff\xfe",
        b"",
        b"eventId=26&attempt=1",
    ],
)
def test_a_malformed_body_is_400(receiver: Receiver, body: bytes) -> None:
    status, answer = post(receiver.url, body)

    assert status == 400
    assert json.loads(answer)["error"]
    assert stored(receiver) == (0, 0)


@pytest.mark.parametrize("missing", ["eventId", "eventType", "eventCreateTs", "attempt", "data"])
def test_a_missing_field_is_400(receiver: Receiver, missing: str) -> None:
    event = webhook_event(29)
    del event[missing]

    status, answer = post(receiver.url, event)

    assert status == 400
    assert missing in json.loads(answer)["error"]
    assert stored(receiver) == (0, 0)


def test_a_report_without_message_id_is_400_even_when_signed(receiver: Receiver) -> None:
    event = webhook_event(30, data={"status": "DELIVRD", "to": "380737893456"})

    assert post(receiver.url, event)[0] == 400
    assert stored(receiver) == (0, 0)


def test_an_oversized_body_is_413_and_nothing_is_stored(receiver: Receiver) -> None:
    event = webhook_event(31)
    event["data"]["padding"] = "x" * (receiver.options.max_body + 1)

    status, _ = post(receiver.url, event)

    assert status == 413
    assert stored(receiver) == (0, 0)


def test_a_big_body_under_the_limit_is_accepted(receiver: Receiver) -> None:
    event = webhook_event(32)
    event["data"]["padding"] = "x" * (receiver.options.max_body - 1000)

    assert post(receiver.url, event)[0] == 200
    assert stored(receiver) == (1, 1)


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_other_methods_are_405(receiver: Receiver, method: str) -> None:
    status, body = post(receiver.url, b"", method=method)

    assert status == 405
    assert "POST" in json.loads(body)["error"]


def test_other_paths_are_404(receiver: Receiver) -> None:
    base = receiver.url.removesuffix("/mobizon/events")

    assert post(base + "/", webhook_event(33))[0] == 404
    assert post(base + "/mobizon/other", webhook_event(33))[0] == 404
    assert post(receiver.url + "/", webhook_event(33))[0] == 200  # a trailing slash is the same
    assert stored(receiver) == (1, 1)


def test_numbers_sent_as_text_are_the_same_event(receiver: Receiver) -> None:
    event = webhook_event(34, message_id=41000001)
    as_text = dict(event, eventId="34", attempt="2")
    as_text["data"] = {k: str(v) for k, v in event["data"].items()}
    as_text["sign"] = webhook_event(34, attempt=2)["sign"]

    assert post(receiver.url, event)[0] == 200
    assert post(receiver.url, as_text)[0] == 200
    assert stored(receiver) == (1, 2)


def test_concurrent_senders_store_each_event_once(receiver: Receiver) -> None:
    statuses: list[int] = []
    lock = threading.Lock()

    def sender(offset: int) -> None:
        for number in range(40):
            event_id = 1000 + number  # every sender sends the same 40 events
            answer = post(receiver.url, webhook_event(event_id, attempt=offset + 1))[0]
            with lock:
                statuses.append(answer)

    threads = [threading.Thread(target=sender, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert statuses == [200] * 240
    assert stored(receiver) == (40, 240)


def test_the_store_and_its_wal_are_owner_only(receiver: Receiver) -> None:
    assert post(receiver.url, webhook_event(35))[0] == 200

    path = receiver.options.store
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        assert name.exists()
        assert stat.S_IMODE(name.stat().st_mode) == 0o600, name


def test_the_secret_is_not_in_the_store_or_the_log(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mobizon_batch.webhook")
    good = webhook_event(36)
    assert post(receiver.url, good)[0] == 200
    assert post(receiver.url, webhook_event(37, secret="wrong"))[0] == 403

    path = receiver.options.store
    files = b"".join(Path(f"{path}{s}").read_bytes() for s in ("", "-wal"))
    assert b"36" in files  # the event is there …
    assert WEBHOOK_SECRET.encode() not in files  # … the secret is not,
    assert good["sign"].encode() not in files  # nor the signature made with it
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "event 36 sms-delivery-report attempt 1: stored" in logged
    assert "signature does not match" in logged
    assert WEBHOOK_SECRET not in logged and good["sign"] not in logged
    assert "380737893456" not in logged  # nor the recipient's number
    assert WEBHOOK_SECRET not in repr(receiver.options)


def test_no_secret_refuses_to_start(tmp_path: Path) -> None:
    store = tmp_path / "events.sqlite"

    with pytest.raises(ConfigError, match="MOBIZON_WEBHOOK_SECRET"):
        Receiver(ReceiverOptions(store=store))
    assert not store.exists()


def test_unsigned_events_only_when_asked_for(tmp_path: Path) -> None:
    options = ReceiverOptions(store=tmp_path / "events.sqlite", insecure_no_signature=True)

    with Receiver(options).running() as running:
        assert post(running.url, webhook_event(38, secret=None))[0] == 200
        assert stored(running) == (1, 1)


def test_a_busy_port_is_a_sentence(receiver: Receiver, tmp_path: Path) -> None:
    port = int(receiver.url.split(":")[2].split("/")[0])
    options = ReceiverOptions(store=tmp_path / "other.sqlite", port=port, secret=WEBHOOK_SECRET)

    with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port}"):
        Receiver(options)
