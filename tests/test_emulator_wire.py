"""The emulator's wire: JSON bodies as well as forms, and the account's time zone."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
import requests

from mobizon_batch.cli import main
from mobizon_batch.client import MobizonClient
from mobizon_batch.config import DEFAULT_API_URL, api_url_setting
from mobizon_batch.emulator import MobizonEmulator
from mobizon_batch.emulator.wire import request_params
from tests.helpers import TEST_KEY, stop

QUERY = {"output": "json", "api": "v1", "apiKey": TEST_KEY}


def json_call(emulator: MobizonEmulator, path: str, payload: Any) -> dict[str, Any]:
    """A call the way the public Node and Python clients make it: a JSON body."""
    response = requests.post(f"{emulator.url}{path}", params=QUERY, json=payload, timeout=5)
    document: dict[str, Any] = response.json()
    return document


def test_a_json_send_is_accepted_like_a_form(emulator: MobizonEmulator) -> None:
    answer = json_call(
        emulator,
        "/service/Message/SendSmsMessage",
        {"recipient": "77012345678", "text": "Hi ~ there", "from": None},
    )
    assert answer["code"] == 0, answer
    (message,) = emulator.messages()
    assert (message.to, message.text, message.sender) == ("77012345678", "Hi ~ there", "Mobizon")
    assert answer["data"]["messageId"] == str(message.id)


def test_json_numbers_and_nested_params_are_read(emulator: MobizonEmulator) -> None:
    answer = json_call(
        emulator,
        "/service/message/sendsmsmessage",
        {"recipient": 77012345678, "text": "x", "params": {"validity": 60, "mclass": 0}},
    )
    assert answer["code"] == 0, answer
    (message,) = emulator.messages()
    assert (message.to, message.validity, message.mclass) == ("77012345678", 60, 0)


def test_a_json_send_is_validated_like_a_form(emulator: MobizonEmulator) -> None:
    answer = json_call(
        emulator, "/service/message/sendsmsmessage", {"recipient": "123", "params": {"validity": 5}}
    )
    assert answer["code"] == 1 and set(answer["data"]) == {"recipient", "text", "validity"}
    assert emulator.messages() == []


def test_json_status_and_list_are_answered(
    emulator: MobizonEmulator, client: MobizonClient
) -> None:
    ids = [client.send_sms(f"7701234567{n}", f"t{n}").message_id for n in range(3)]
    status = json_call(emulator, "/service/message/getsmsstatus", {"ids": [ids[0], ids[2], 5]})
    assert status["code"] == 0
    assert [item["id"] for item in status["data"]] == [str(ids[0]), str(ids[2])]

    listed = json_call(
        emulator,
        "/service/message/list",
        {
            "criteria": {"to": "77012345671", "status": None},
            "pagination": {"pageSize": 25, "currentPage": 0},
            "sort": {"campaignId": "ASC"},
        },
    )
    assert listed["code"] == 0
    assert [item["id"] for item in listed["data"]["items"]] == [str(ids[1])]
    assert listed["data"]["totalItemCount"] == "1"


def test_a_status_array_is_refused_in_json_as_in_a_form(emulator: MobizonEmulator) -> None:
    path = "/service/message/list"
    answer = json_call(emulator, path, {"criteria": {"status": ["NEW", "DELIVRD"]}})
    assert answer["code"] == 1 and "criteria[status]" in answer["data"]
    form = requests.post(
        f"{emulator.url}{path}",
        params=QUERY,
        data={"criteria[status][0]": "NEW", "criteria[status][1]": "DELIVRD"},
        timeout=5,
    ).json()
    assert form["code"] == 1
    single = json_call(emulator, path, {"criteria": {"status": "NEW"}})
    assert single["code"] == 0


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (b'{"a": {"b": 1}}', "application/json; charset=utf-8", {"a": {"b": "1"}}),
        (b'{"t": true, "f": false, "n": null}', "application/json", {"t": "1", "f": "0"}),
        (b'{"ids": [1, null, "2"]}', "", {"ids": ["1", "2"]}),
        (b"[1, 2]", "application/json", {}),
        (b"{not json", "application/json", {}),
        (b"a%5Bb%5D=1", "application/x-www-form-urlencoded", {"a": {"b": "1"}}),
        (b"a=1", "", {"a": "1"}),
    ],
)
def test_request_params(body: bytes, content_type: str, expected: dict[str, Any]) -> None:
    assert request_params("apiKey=k", body, content_type) == {"apiKey": "k", **expected}


def test_the_key_in_a_json_body_does_not_replace_the_query(emulator: MobizonEmulator) -> None:
    response = requests.post(
        f"{emulator.url}/service/user/getownbalance",
        params={"output": "json", "apiKey": "wrong"},
        data=json.dumps({"output": "json"}),
        headers={"Content-Type": "application/json"},
        timeout=5,
    )
    assert response.json()["code"] == 8


# ------------------------------------------------------------- time zone


class FixedClock:
    def __init__(self, moment: datetime) -> None:
        self.now = moment.timestamp()

    def __call__(self) -> float:
        return self.now


def test_times_are_written_and_read_in_the_account_zone() -> None:
    zone = ZoneInfo("Asia/Tashkent")  # UTC+5, no daylight saving
    start = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)
    clock = FixedClock(start)
    with MobizonEmulator(api_key=TEST_KEY, timezone="Asia/Tashkent", clock=clock) as emu:
        api = MobizonClient(TEST_KEY, emu.url)
        local_now = start.astimezone(zone).replace(tzinfo=None)
        two_hours_on = local_now + timedelta(hours=2)
        receipt = api.send_sms("77012345678", "later", deferred_to=two_hours_on)
        # 12:00 UTC + 2 h is 14:00 UTC; in Tashkent terms it was 19:00, which is what we gave.
        assert emu.messages()[0].deferred_to == (start + timedelta(hours=2)).timestamp()
        # The same wall time read as UTC would be 5 h in the past for this account: refused.
        answer = json_call(
            emu,
            "/service/message/sendsmsmessage",
            {
                "recipient": "77012345678",
                "text": "utc",
                "params": {"deferredToTs": f"{start + timedelta(hours=2):%Y-%m-%d %H:%M:%S}"},
            },
        )
        assert answer["code"] == 1 and "deferredToTs" in answer["data"]
        clock.now += 3 * 3600
        (record,) = api.get_sms_status([receipt.message_id])
        assert record.start_send_ts is not None
        assert two_hours_on < record.start_send_ts < two_hours_on + timedelta(minutes=5)


# ------------------------------------------------- the emulator command


def test_the_emulator_command_serves_another_clients_json_in_the_account_zone() -> None:
    knobs = ["--api-key", "any", "--status-step", "0", "--timezone", "Asia/Tashkent"]
    process = subprocess.Popen(
        [sys.executable, "-m", "mobizon_batch", "emulator", "--port", "0", *knobs],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "TZ": "UTC"},
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip().rsplit(" ", 1)[-1]
        query = {"output": "json", "api": "v1", "apiKey": "whatever"}
        sent = requests.post(
            f"{url}/service/Message/SendSmsMessage",
            params=query,
            json={"recipient": "77012345678", "text": "from another client"},
            timeout=5,
        ).json()
        assert sent["code"] == 0
        time.sleep(0.05)
        status = requests.post(
            f"{url}/service/Message/GetSMSStatus",
            params=query,
            json={"ids": [sent["data"]["messageId"]]},
            timeout=5,
        ).json()
    finally:
        stop(process)
    written = datetime.strptime(status["data"][0]["statusUpdateTs"], "%Y-%m-%d %H:%M:%S")
    tashkent_now = datetime.now(ZoneInfo("Asia/Tashkent")).replace(tzinfo=None)
    assert abs(written - tashkent_now) < timedelta(minutes=1)


def test_the_emulator_command_refuses_a_zone_it_does_not_know(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["emulator", "--port", "0", "--timezone", "Mars/Olympus"]) == 2
    err = capsys.readouterr().err
    assert "--timezone 'Mars/Olympus' is not a time zone name" in err and "Traceback" not in err


def test_the_api_url_is_known_without_a_key() -> None:
    assert api_url_setting(environ={}) == DEFAULT_API_URL
    assert api_url_setting(environ={"MOBIZON_API_URL": "api.mobizon.uz"}) == (
        "https://api.mobizon.uz"
    )
    assert api_url_setting("http://127.0.0.1:9", environ={}) == "http://127.0.0.1:9"


@pytest.mark.parametrize("length", ["abc", "-5", "1e3"])
def test_a_content_length_that_is_no_number_is_a_400_not_a_traceback(
    emulator: MobizonEmulator, length: str, capsys: pytest.CaptureFixture[str]
) -> None:
    host, port = urlsplit(emulator.url).hostname, urlsplit(emulator.url).port
    connection = http.client.HTTPConnection(host or "127.0.0.1", port, timeout=5)
    try:
        connection.putrequest("POST", "/service/User/GetOwnBalance?apiKey=x&output=json")
        connection.putheader("Content-Length", length)
        connection.endheaders()
        answer = connection.getresponse()
        status = answer.status
        answer.read()
    finally:
        connection.close()

    assert status == 400
    assert "Traceback" not in capsys.readouterr().err
