"""MobizonClient over real loopback HTTP: wire format, envelopes, error families."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import traceback
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests.sessions

from mobizon_batch import errors
from mobizon_batch.client import (
    MobizonClient,
    build_query,
    encode_form,
    parse_envelope,
    to_int,
)
from mobizon_batch.emulator import MobizonEmulator
from tests.helpers import TEST_KEY, free_port
from tests.scripted_server import Canned, ScriptedServer, envelope

SEND_OK = envelope(0, {"campaignId": "123", "messageId": "456", "status": "2"})


def scripted_client(server: ScriptedServer, **kwargs: object) -> MobizonClient:
    return MobizonClient(TEST_KEY, server.url, timeout=(1.0, 2.0), **kwargs)  # type: ignore[arg-type]


def body_pairs(raw: bytes) -> list[tuple[str, str]]:
    return parse_qsl(raw.decode("ascii"), keep_blank_values=True, strict_parsing=True)


# --------------------------------------------------------------- wire format


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        # The expected strings are what PHP's http_build_query() produces.
        ({"ids": [1, 2]}, "ids%5B0%5D=1&ids%5B1%5D=2"),
        (
            {"params": {"validity": 1440, "name": "a b"}},
            "params%5Bvalidity%5D=1440&params%5Bname%5D=a+b",
        ),
        (
            {"criteria": {"campaignIds": [7, 8]}},
            "criteria%5BcampaignIds%5D%5B0%5D=7&criteria%5BcampaignIds%5D%5B1%5D=8",
        ),
        ({"a": None, "b": "x"}, "b=x"),
        ({"flag": True, "off": False}, "flag=1&off=0"),
        ({"text": "+ & ? / \\ ="}, "text=%2B+%26+%3F+%2F+%5C+%3D"),
        ({"text": "Привет"}, "text=%D0%9F%D1%80%D0%B8%D0%B2%D0%B5%D1%82"),
        ({"ts": datetime(2026, 1, 2, 3, 4, 5)}, "ts=2026-01-02+03%3A04%3A05"),
        ({"ids": []}, ""),
        ({"sort": {"campaignId": "DESC"}}, "sort%5BcampaignId%5D=DESC"),
        # PHP's urlencode spares only letters, digits and - _ . (Python's also spares ~).
        ({"text": "a~b -_.*'()!"}, "text=a%7Eb+-_.%2A%27%28%29%21"),
    ],
)
def test_form_encoding_matches_php_http_build_query(
    params: dict[str, object], expected: str
) -> None:
    assert build_query(params) == expected
    assert [(k, v) for k, v in parse_qsl(expected, keep_blank_values=True)] == encode_form(params)


def test_tilde_goes_out_as_7e_in_the_body(scripted: ScriptedServer) -> None:
    scripted.queue(SEND_OK)
    with scripted_client(scripted) as api:
        api.send_sms("77012345678", "~/home ~ 50%~")
    raw = scripted.requests[0].body.decode("ascii")
    assert raw == "recipient=77012345678&text=%7E%2Fhome+%7E+50%25%7E"


def test_send_request_follows_documented_wire_format(scripted: ScriptedServer) -> None:
    scripted.queue(SEND_OK)
    text = "Привет, мир! + & ? / \\ и пробелы"
    with scripted_client(scripted) as api:
        api.send_sms(
            "77012345678",
            text,
            sender="Alpha",
            name="Акция",
            deferred_to=datetime(2026, 12, 1, 10, 0, 0),
            validity=1440,
            mclass=0,
        )
    (request,) = scripted.requests
    assert request.method == "POST"
    url = urlsplit(request.path)
    assert url.path == "/service/message/sendsmsmessage"
    assert parse_qsl(url.query) == [("output", "json"), ("api", "v1"), ("apiKey", TEST_KEY)]
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert body_pairs(request.body) == [
        ("recipient", "77012345678"),
        ("text", text),
        ("from", "Alpha"),
        ("params[name]", "Акция"),
        ("params[deferredToTs]", "2026-12-01 10:00:00"),
        ("params[validity]", "1440"),
        ("params[mclass]", "0"),
    ]
    raw = request.body.decode("ascii")
    assert "params%5Bvalidity%5D=1440" in raw
    assert "+%2B+%26+%3F+%2F+%5C+" in raw  # spaces as +, the specials percent-encoded
    assert TEST_KEY not in raw  # the key travels in the query only


def test_optional_send_params_are_left_out(scripted: ScriptedServer) -> None:
    scripted.queue(SEND_OK)
    with scripted_client(scripted) as api:
        api.send_sms("77012345678", "hi")
    assert body_pairs(scripted.requests[0].body) == [("recipient", "77012345678"), ("text", "hi")]


def test_status_and_list_requests(scripted: ScriptedServer) -> None:
    scripted.queue(envelope(0, []), envelope(0, {"items": [], "totalItemCount": "0"}))
    with scripted_client(scripted) as api:
        api.get_sms_status([11, 22, 33])
        api.list_messages({"to": "7701", "text": "a b"}, page=2, page_size=50, sort={"id": "ASC"})
    status, listing = scripted.requests
    assert urlsplit(status.path).path == "/service/message/getsmsstatus"
    assert body_pairs(status.body) == [("ids[0]", "11"), ("ids[1]", "22"), ("ids[2]", "33")]
    assert urlsplit(listing.path).path == "/service/message/list"
    assert body_pairs(listing.body) == [
        ("criteria[to]", "7701"),
        ("criteria[text]", "a b"),
        ("pagination[currentPage]", "2"),
        ("pagination[pageSize]", "50"),
        ("sort[id]", "ASC"),
    ]


def test_status_refuses_more_than_100_ids_without_calling(scripted: ScriptedServer) -> None:
    with scripted_client(scripted) as api:
        with pytest.raises(ValueError, match="at most 100"):
            api.get_sms_status(range(101))
        assert api.get_sms_status([]) == []
    assert scripted.requests == []


# ------------------------------------------------------------------ envelopes


def test_numbers_sent_as_strings_are_coerced(scripted: ScriptedServer) -> None:
    scripted.queue(
        envelope("0", {"campaignId": "7300001", "messageId": "41000001", "status": "1"}),
        envelope(
            0,
            [
                {
                    "id": "41000001",
                    "status": "DELIVRD",
                    "segNum": "2",
                    "startSendTs": "2026-11-01 10:00:00",
                    "statusUpdateTs": "2026-11-01 10:00:05",
                },
                {
                    "id": 41000002,
                    "status": "NEW",
                    "segNum": None,
                    "startSendTs": "",
                    "statusUpdateTs": None,
                },
            ],
        ),
        envelope(0, {"balance": "1234.5600", "currency": "KZT"}),
        envelope(
            0,
            {
                "items": [
                    {
                        "id": "5",
                        "campaignId": "6",
                        "segNum": "1",
                        "segUserBuy": "0.0600",
                        "to": "77012345678",
                        "text": "123",
                    }
                ],
                "totalItemCount": "1",
            },
        ),
    )
    with scripted_client(scripted) as api:
        receipt = api.send_sms("77012345678", "x")
        first, second = api.get_sms_status([41000001, 41000002])
        balance = api.get_balance()
        items, total = api.list_messages()
    assert (receipt.message_id, receipt.campaign_id, receipt.moderation) == (
        41000001,
        7300001,
        True,
    )
    assert first.seg_num == 2 and first.status == "DELIVRD"
    assert first.start_send_ts == datetime(2026, 11, 1, 10, 0, 0)
    assert first.status_update_ts == datetime(2026, 11, 1, 10, 0, 5)
    assert (second.id, second.seg_num, second.start_send_ts, second.status_update_ts) == (
        41000002,
        None,
        None,
        None,
    )
    assert balance == (Decimal("1234.56"), "KZT")
    assert total == 1
    assert items[0]["id"] == 5 and items[0]["segUserBuy"] == Decimal("0.06")
    assert items[0]["to"] == "77012345678" and items[0]["text"] == "123"  # text fields stay text


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (1, errors.ValidationError),
        (2, errors.NotFound),
        (3, errors.ServiceError),
        (4, errors.WrongRequest),
        (5, errors.WrongRequest),
        (6, errors.WrongRequest),
        (8, errors.AuthError),
        (9, errors.AccessDenied),
        (10, errors.ConcurrentSave),
        (11, errors.MissingParameter),
        (12, errors.LimitExceeded),
        (14, errors.AccountBlocked),
        (15, errors.OperationError),
        (30, errors.RateLimited),
        (98, errors.PartialBulk),
        (99, errors.PartialBulk),
        (100, errors.BackgroundTask),
        (999, errors.ServiceError),
        (77, errors.ApiError),
        ("30", errors.RateLimited),
    ],
)
def test_every_code_family_has_its_exception(
    scripted: ScriptedServer, code: object, kind: type
) -> None:
    scripted.queue(envelope(code, {"recipient": "bad number"}, "provider words"))
    with scripted_client(scripted) as api, pytest.raises(errors.ApiError) as caught:
        api.send_sms("77012345678", "x")
    assert type(caught.value) is kind
    assert caught.value.code == int(str(code))
    assert caught.value.data == {"recipient": "bad number"}


def test_abort_flag_marks_the_codes_that_stop_a_run() -> None:
    aborting = {c for c in range(1000) if errors.api_error_for(c).aborts_run}
    assert aborting == {4, 5, 6, 8, 9, 13, 14}


def test_validation_error_carries_field_map(client: MobizonClient) -> None:
    with pytest.raises(errors.ValidationError) as caught:
        client.send_sms("12", "   ", validity=30)
    assert set(caught.value.fields) == {"recipient", "text", "validity"}
    assert "recipient:" in str(caught.value)


def test_envelope_decides_even_with_an_error_http_status(scripted: ScriptedServer) -> None:
    scripted.queue(
        envelope(30, None, "slow down", status=503),
        envelope(0, {"campaignId": 1, "messageId": 2, "status": 2}, status=500),
    )
    with scripted_client(scripted) as api:
        with pytest.raises(errors.RateLimited):
            api.send_sms("77012345678", "x")
        assert api.send_sms("77012345678", "x").message_id == 2


@pytest.mark.parametrize(
    ("body", "ok"),
    [
        (b'{"code": 0, "data": null, "message": ""}', True),
        (b'{"code": "0", "data": 1}', True),
        (b"<html>502 Bad Gateway</html>", False),
        (b'{"data": 1}', False),
        (b'{"code": "zero"}', False),
        (b"[1, 2]", False),
        (b'{"code": 0, "da', False),
        (b"", False),
    ],
)
def test_parse_envelope(body: bytes, ok: bool) -> None:
    assert (parse_envelope(body) is not None) is ok


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("11111111", 11111111),
        (" 7 ", 7),
        ("1.0", 1),
        (5, 5),
        (2.0, 2),
        ("1.5", None),
        ("", None),
        (None, None),
        ("abc", None),
    ],
)
def test_to_int(value: object, expected: int | None) -> None:
    assert to_int(value) == expected


def test_success_without_message_id_is_an_unknown_outcome(scripted: ScriptedServer) -> None:
    scripted.queue(envelope(0, {"campaignId": "1"}))
    with scripted_client(scripted) as api, pytest.raises(errors.AnswerLost):
        api.send_sms("77012345678", "x")


# ------------------------------------------------------------ transport split


@pytest.fixture
def full_backlog() -> Iterator[int]:
    """A loopback port whose accept queue is full, so a connect times out."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    time.sleep(0.1)
    yield port
    for filler in fillers:
        filler.close()
    listener.close()


def test_nothing_listening_is_not_sent() -> None:
    port = free_port()
    with MobizonClient(TEST_KEY, f"http://127.0.0.1:{port}") as api:
        with pytest.raises(errors.NotSent) as caught:
            api.send_sms("77012345678", "x")
    assert caught.value.host == f"127.0.0.1:{port}"
    assert "Connection refused" in str(caught.value)


def test_connect_timeout_is_not_sent(full_backlog: int) -> None:
    with MobizonClient(TEST_KEY, f"http://127.0.0.1:{full_backlog}", timeout=(0.3, 1.0)) as api:
        with pytest.raises(errors.NotSent):
            api.send_sms("77012345678", "x")


def test_emulated_503_is_not_sent(emulator: MobizonEmulator, client: MobizonClient) -> None:
    emulator.configure(fault_503=1.0)
    with pytest.raises(errors.NotSent) as caught:
        client.send_sms("77012345678", "x")
    assert caught.value.http_status == 503
    assert emulator.messages() == []


@pytest.mark.parametrize("status", [429, 503])
def test_busy_without_envelope_is_not_sent(scripted: ScriptedServer, status: int) -> None:
    scripted.queue(Canned(status=status, body=b"busy", content_type="text/plain"))
    with scripted_client(scripted) as api, pytest.raises(errors.NotSent):
        api.send_sms("77012345678", "x")


def test_dropped_after_creation_is_answer_lost(
    emulator: MobizonEmulator, client: MobizonClient
) -> None:
    emulator.configure(fault_drop_after=1.0)
    with pytest.raises(errors.AnswerLost):
        client.send_sms("77012345678", "x")
    assert len(emulator.messages()) == 1  # the server did act: hence "lost", not "not sent"


def test_dropped_before_processing_is_still_answer_lost(
    emulator: MobizonEmulator, client: MobizonClient
) -> None:
    # The client cannot tell this from the case above: a closed connection is always ambiguous.
    emulator.configure(fault_drop_before=1.0)
    with pytest.raises(errors.AnswerLost):
        client.send_sms("77012345678", "x")
    assert emulator.messages() == []


def test_read_timeout_is_answer_lost(emulator: MobizonEmulator) -> None:
    emulator.configure(latency=0.6)
    with MobizonClient(TEST_KEY, emulator.url, timeout=(1.0, 0.2)) as api:
        with pytest.raises(errors.AnswerLost, match="read timeout"):
            api.send_sms("77012345678", "x")
    deadline = time.monotonic() + 3
    while not emulator.messages() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(emulator.messages()) == 1  # created after we stopped waiting


@pytest.mark.parametrize(
    "answer",
    [
        Canned(status=500, body=b"<html>Internal Server Error</html>", content_type="text/html"),
        Canned(status=502, body=b"<html>Bad Gateway</html>", content_type="text/html"),
        Canned(status=504, body=b"<html>Gateway Timeout</html>", content_type="text/html"),
        Canned(status=200, body=b"not json at all"),
        Canned(status=200, body=b'{"code": 0, "data": {"messageId": "1"', truncate=True),
        Canned(drop=True),
    ],
    ids=["500", "502", "504", "200-garbage", "cut-off-body", "reset"],
)
def test_ambiguous_answers_are_answer_lost(scripted: ScriptedServer, answer: Canned) -> None:
    scripted.queue(answer)
    with scripted_client(scripted) as api, pytest.raises(errors.AnswerLost):
        api.send_sms("77012345678", "x")


def test_redirect_is_a_configuration_error_and_not_followed(scripted: ScriptedServer) -> None:
    scripted.queue(Canned(status=301, headers={"Location": "https://api.mobizon.uz/service/x"}))
    with (
        scripted_client(scripted) as api,
        pytest.raises(errors.ConfigError, match=r"api\.mobizon\.uz"),
    ):
        api.get_balance()
    assert len(scripted.requests) == 1


# --------------------------------------------------------------- domain switch


def test_wrong_domain_switches_once_and_stays(emulator: MobizonEmulator) -> None:
    right_host = urlsplit(emulator.url).netloc
    with MobizonEmulator(api_key=TEST_KEY, wrong_domain=right_host) as wrong:
        with MobizonClient(TEST_KEY, wrong.url) as api:
            receipt = api.send_sms("77012345678", "x")
            assert api.api_url == emulator.url
            api.get_balance()
        assert len(wrong.calls()) == 1
    assert [m.id for m in emulator.messages()] == [receipt.message_id]
    assert [c.method for c in emulator.calls()] == ["message/sendsmsmessage", "user/getownbalance"]


def test_wrong_domain_twice_gives_up(scripted: ScriptedServer) -> None:
    here = urlsplit(scripted.url).netloc
    scripted.queue(envelope(13, here, "wrong domain"), envelope(13, here, "wrong domain"))
    with scripted_client(scripted) as api, pytest.raises(errors.WrongDomain) as caught:
        api.get_balance()
    assert caught.value.domain == here
    assert len(scripted.requests) == 2


def test_wrong_domain_never_downgrades_to_http() -> None:
    with MobizonClient(TEST_KEY, "https://api.mobizon.kz") as api:
        with pytest.raises(errors.ConfigError, match="unencrypted"):
            api._switch_domain("https://api.mobizon.kz", "http://api.mobizon.uz")
        api._switch_domain("https://api.mobizon.kz", "api.mobizon.uz")
        assert api.api_url == "https://api.mobizon.uz"


# ------------------------------------------------------------------ the key


def _all_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + repr(exc) + str(exc)


def test_key_is_absent_from_every_error(
    emulator: MobizonEmulator, scripted: ScriptedServer, full_backlog: int
) -> None:
    failures: list[BaseException] = []

    def attempt(api: MobizonClient) -> None:
        try:
            api.send_sms("77012345678", "x")
        except errors.MobizonBatchError as exc:
            failures.append(exc)

    with MobizonClient(TEST_KEY, f"http://127.0.0.1:{free_port()}") as api:
        attempt(api)
    with MobizonClient(TEST_KEY, f"http://127.0.0.1:{full_backlog}", timeout=(0.2, 1)) as api:
        attempt(api)
    for fault in ("fault_503", "fault_drop_before", "fault_drop_after"):
        faults = {"fault_503": 0.0, "fault_drop_before": 0.0, "fault_drop_after": 0.0}
        emulator.configure(**{**faults, fault: 1.0})
        with MobizonClient(TEST_KEY, emulator.url) as api:
            attempt(api)
    emulator.configure(fault_drop_after=0.0, latency=0.5)
    with MobizonClient(TEST_KEY, emulator.url, timeout=(1, 0.1)) as api:
        attempt(api)
    scripted.queue(
        envelope(1, {"k": TEST_KEY}, f"echoed {TEST_KEY}"),
        Canned(status=502, body=f"<html>{TEST_KEY}</html>".encode()),
        Canned(status=302, headers={"Location": f"http://x.example/?apiKey={TEST_KEY}"}),
    )
    with scripted_client(scripted) as api:
        for _ in range(3):
            try:
                api.get_balance()
            except errors.MobizonBatchError as exc:
                failures.append(exc)
        assert TEST_KEY not in repr(api)
    assert len(failures) == 9
    for exc in failures:
        text = _all_text(exc)
        assert TEST_KEY not in text, text


# -------------------------------------------------------------------- threads


def test_one_client_serves_many_threads(emulator: MobizonEmulator, client: MobizonClient) -> None:
    results: list[int] = []
    lock = threading.Lock()

    def work(worker: int) -> None:
        for n in range(25):
            receipt = client.send_sms(f"7701{worker:03d}{n:04d}", f"hello {worker} {n}")
            with lock:
                results.append(receipt.message_id)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == len(set(results)) == 200
    assert sorted(m.id for m in emulator.messages()) == sorted(results)


def test_the_environments_proxy_settings_hold_and_are_read_once_per_client(
    emulator: MobizonEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """requests would read them on every call; the client reads them when it is made."""
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")  # nobody listens
    with MobizonClient(TEST_KEY, emulator.url, timeout=(1.0, 2.0)) as through_proxy:
        with pytest.raises(errors.NotSent):
            through_proxy.get_balance()
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    reads: list[str] = []
    original = requests.sessions.get_environ_proxies

    def counted(url: str, no_proxy: str | None = None) -> dict[str, str]:
        reads.append(url)
        return original(url, no_proxy=no_proxy)

    monkeypatch.setattr(requests.sessions, "get_environ_proxies", counted)
    with MobizonClient(TEST_KEY, emulator.url, timeout=(1.0, 2.0)) as direct:
        for _ in range(3):
            assert direct.get_balance()[1]
    assert len(reads) == 1
