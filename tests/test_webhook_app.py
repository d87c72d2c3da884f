"""The receiver's WSGI application called directly: the cases a server hides."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from mobizon_batch.webhook_app import Secret, WebhookApp
from mobizon_batch.webhook_store import Event
from tests.helpers import WEBHOOK_SECRET, webhook_event


class Recorded:
    """A store that keeps events in a list (or fails, to see the 503)."""

    def __init__(self, fail: bool = False) -> None:
        self.events: list[Event] = []
        self.fail = fail

    def record(self, event: Event) -> bool:
        if self.fail:
            raise OSError("disk full")
        new = all(e.event_id != event.event_id for e in self.events)
        self.events.append(event)
        return new


def call(
    app: WebhookApp,
    body: bytes,
    *,
    method: str = "POST",
    path: str = "/",
    length: str | None = "auto",
    terminated: bool = False,
) -> tuple[str, dict[str, str], dict[str, Any]]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "SCRIPT_NAME": "",
        "wsgi.input": io.BytesIO(body),
        "REMOTE_ADDR": "127.0.0.1",
    }
    if length == "auto":
        environ["CONTENT_LENGTH"] = str(len(body))
    elif length is not None:
        environ["CONTENT_LENGTH"] = length
    if terminated:
        environ["wsgi.input_terminated"] = True
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        answer["status"], answer["headers"] = status, dict(headers)

    chunks = app(environ, start_response)
    return answer["status"], answer["headers"], json.loads(b"".join(chunks))


def make_app(store: Recorded | None = None, **kwargs: Any) -> WebhookApp:
    return WebhookApp(store or Recorded(), secret=Secret(WEBHOOK_SECRET), **kwargs)


def body_of(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode()


def test_an_event_becomes_one_stored_event_with_the_report_fields() -> None:
    store = Recorded()
    status, _, answer = call(make_app(store), body_of(webhook_event(26, status="undeliv")))

    assert status.startswith("200") and answer == {"ok": True, "duplicate": False}
    [event] = store.events
    assert (event.event_id, event.attempt, event.message_id, event.status, event.seg_num) == (
        "26",
        1,
        169275418,
        "UNDELIV",
        3,
    )
    assert event.recipient == "380737893456"
    assert "sign" not in event.data


def test_the_size_is_judged_from_content_length_before_reading() -> None:
    class Unreadable(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            raise AssertionError("read although Content-Length was over the limit")

    app = make_app(max_body=100)
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/",
        "CONTENT_LENGTH": "101",
        "wsgi.input": Unreadable(),
    }
    statuses: list[str] = []
    app(environ, lambda status, headers: statuses.append(status))

    assert statuses == ["413 Content Too Large"]


def test_a_body_without_length_is_limited_while_reading() -> None:
    store = Recorded()
    app = make_app(store, max_body=600)
    big = webhook_event(26)
    big["data"]["padding"] = "x" * 700

    status, _, _ = call(app, body_of(big), length=None, terminated=True)
    small_status, _, _ = call(app, body_of(webhook_event(27)), length=None, terminated=True)

    assert status.startswith("413")
    assert small_status.startswith("200")
    assert [e.event_id for e in store.events] == ["27"]


def test_no_length_on_an_unterminated_stream_is_411() -> None:
    assert call(make_app(), b"{}", length=None)[0].startswith("411")


@pytest.mark.parametrize("length", ["abc", "-5"])
def test_a_bad_content_length_is_400(length: str) -> None:
    assert call(make_app(), b"{}", length=length)[0].startswith("400")


def test_a_body_shorter_than_its_length_is_400() -> None:
    assert call(make_app(), b'{"a": 1}', length="50")[0].startswith("400")


def test_a_store_that_cannot_write_answers_503_so_mobizon_tries_again() -> None:
    status, _, answer = call(make_app(Recorded(fail=True)), body_of(webhook_event(26)))

    assert status.startswith("503")
    assert "could not be stored" in answer["error"]


def test_405_says_what_is_allowed() -> None:
    status, headers, _ = call(make_app(), b"", method="GET")

    assert status.startswith("405") and headers["Allow"] == "POST"


def test_the_signature_compare_ignores_hex_case_only() -> None:
    store = Recorded()
    upper = webhook_event(26)
    upper["sign"] = upper["sign"].upper()
    other = webhook_event(27)
    other["sign"] = other["sign"][:-1] + ("0" if other["sign"][-1] != "0" else "1")

    assert call(make_app(store), body_of(upper))[0].startswith("200")
    assert call(make_app(store), body_of(other))[0].startswith("403")
    assert [e.event_id for e in store.events] == ["26"]


@pytest.mark.parametrize(
    "change",
    [{"eventId": 26.5}, {"eventId": True}, {"attempt": "first"}, {"eventCreateTs": 5}],
)
def test_fields_of_the_wrong_kind_are_400(change: dict[str, Any]) -> None:
    event = webhook_event(26)
    event.update(change)

    assert call(make_app(), body_of(event))[0].startswith("400")


def test_other_event_types_are_stored_too() -> None:
    store = Recorded()
    event = webhook_event(
        45,
        event_type="form-contact-unsubscribe",
        data={"formId": 846, "items": [{"fieldType": "MOBILE", "value": "380737893456"}]},
    )

    assert call(make_app(store), body_of(event))[0].startswith("200")
    assert store.events[0].event_type == "form-contact-unsubscribe"
    assert store.events[0].message_id is None


def test_the_secret_never_shows_in_a_repr() -> None:
    secret = Secret(WEBHOOK_SECRET)

    assert WEBHOOK_SECRET not in repr(secret) and WEBHOOK_SECRET not in str(secret)
    assert WEBHOOK_SECRET not in repr(make_app().__dict__)


def test_an_event_id_with_a_line_break_cannot_forge_a_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The refusal line names the event before its signature is known to be good,
    # so whatever anyone posts as eventId must not start a line of its own.
    forged = webhook_event(26, secret="guess")
    forged["eventId"] = "26\nINFO mobizon_batch.webhook: event 99 sms-delivery-report: stored"
    store = Recorded()

    with caplog.at_level("INFO", logger="mobizon_batch.webhook"):
        status, _, _ = call(make_app(store), body_of(forged))

    assert status.startswith("400") and store.events == []
    assert caplog.records and all("\n" not in r.getMessage() for r in caplog.records)
