"""The emulator speaks the documented wire format and misbehaves on request."""

from __future__ import annotations

import contextlib
import json
import socket
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import pytest
import requests

from mobizon_batch import errors
from mobizon_batch.client import MobizonClient
from mobizon_batch.emulator import MobizonEmulator, parse_php_form
from tests.helpers import TEST_KEY


def raw_call(
    emulator: MobizonEmulator, path: str, data: dict[str, Any] | None = None, key: str = TEST_KEY
) -> dict[str, Any]:
    """A call made without our client, to see exactly what goes over the wire."""
    response = requests.post(
        f"{emulator.url}{path}",
        params={"output": "json", "api": "v1", "apiKey": key},
        data=data or {},
        timeout=5,
    )
    document: dict[str, Any] = response.json()
    return document


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 28, 12, 0, 0).timestamp()

    def __call__(self) -> float:
        return self.now


def test_paths_are_case_insensitive_and_numbers_are_strings(emulator: MobizonEmulator) -> None:
    answer = raw_call(
        emulator, "/service/MESSAGE/SendSmsMessage", {"recipient": "77012345678", "text": "hi"}
    )
    assert answer["code"] == 0
    assert isinstance(answer["data"]["messageId"], str)
    assert isinstance(answer["data"]["campaignId"], str)
    assert answer["data"]["status"] == "2"


def test_get_works_too(emulator: MobizonEmulator) -> None:
    response = requests.get(
        f"{emulator.url}/service/user/getownbalance",
        params={"output": "json", "api": "v1", "apiKey": TEST_KEY},
        timeout=5,
    )
    assert response.json()["data"]["currency"] == "KZT"


@pytest.mark.parametrize(
    ("path", "key", "code"),
    [
        ("/service/user/getownbalance", "wrong", 8),
        ("/service/user/getownbalance", "", 8),
        ("/service/nosuch/method", TEST_KEY, 4),
        ("/service/message/nosuch", TEST_KEY, 5),
        ("/other/path", TEST_KEY, 4),
    ],
)
def test_errors_for_key_module_and_method(
    emulator: MobizonEmulator, path: str, key: str, code: int
) -> None:
    assert raw_call(emulator, path, key=key)["code"] == code


def ahead(hours: float) -> str:
    return (datetime.now() + timedelta(hours=hours)).strftime("%Y-%m-%d %H:%M:%S")


@pytest.mark.parametrize(
    ("fields", "bad"),
    [
        ({"recipient": "770123"}, {"recipient"}),
        ({"recipient": "7701234567890123"}, {"recipient"}),
        ({"recipient": "7701abc5678"}, {"recipient"}),
        ({"text": ""}, {"text"}),
        ({"text": "   "}, {"text"}),
        ({"params[validity]": "59"}, {"validity"}),
        ({"params[validity]": "1441"}, {"validity"}),
        ({"params[mclass]": "2"}, {"mclass"}),
        ({"params[deferredToTs]": ahead(0.5)}, {"deferredToTs"}),
        ({"params[deferredToTs]": ahead(24 * 15)}, {"deferredToTs"}),
        ({"params[deferredToTs]": "tomorrow"}, {"deferredToTs"}),
        ({"recipient": "", "text": ""}, {"recipient", "text"}),
        ({"params[validity]": "60", "params[deferredToTs]": ahead(2)}, set()),
        ({"recipient": "+77012345678", "params[mclass]": "0"}, set()),
    ],
)
def test_send_validation(emulator: MobizonEmulator, fields: dict[str, str], bad: set[str]) -> None:
    data = {"recipient": "77012345678", "text": "hello", **fields}
    answer = raw_call(emulator, "/service/message/sendsmsmessage", data)
    if bad:
        assert answer["code"] == 1
        assert set(answer["data"]) == bad
        assert emulator.messages() == []
    else:
        assert answer["code"] == 0
        assert len(emulator.messages()) == 1


def test_status_answers(emulator: MobizonEmulator, client: MobizonClient) -> None:
    ids = [client.send_sms(f"7701234567{n}", "x").message_id for n in range(3)]
    path = "/service/message/getsmsstatus"
    assert raw_call(emulator, path)["code"] == 2
    too_many = {f"ids[{i}]": str(i) for i in range(101)}
    assert raw_call(emulator, path, too_many)["code"] == 12
    answer = raw_call(emulator, path, {"ids": f"{ids[0]},{ids[2]},999"})  # comma form
    assert [item["id"] for item in answer["data"]] == [str(ids[0]), str(ids[2])]
    assert all(isinstance(item["segNum"], str) for item in answer["data"])


def test_statuses_advance_and_finals_are_deterministic() -> None:
    clock = FakeClock()
    finals = []
    for _ in range(2):
        with MobizonEmulator(api_key=TEST_KEY, clock=clock, status_step=10, seed=7) as emu:
            with MobizonClient(TEST_KEY, emu.url) as api:
                ids = [api.send_sms(f"77012{n:06d}", "hello").message_id for n in range(200)]
                first = api.get_sms_status(ids[:1])[0]
                assert first.status == "NEW"
                assert first.start_send_ts is None and first.status_update_ts is None
                seen = set()
                for _step in range(8):
                    clock.now += 6
                    seen.add(api.get_sms_status(ids[:1])[0].status)
                assert {"ENQUEUD", "ACCEPTD"} <= seen
                clock.now += 100
                records = []
                for start in range(0, 200, 100):
                    records += api.get_sms_status(ids[start : start + 100])
                assert all(r.start_send_ts is not None for r in records)
                finals.append([r.status for r in records])
                clock.now -= 148
    assert finals[0] == finals[1]
    counts = Counter(finals[0])
    assert set(counts) <= {"DELIVRD", "UNDELIV", "EXPIRED", "REJECTD"}
    assert counts["DELIVRD"] > 150 and len(counts) >= 3


def test_multi_segment_messages_pass_through_pdlivrd() -> None:
    clock = FakeClock()
    with MobizonEmulator(api_key=TEST_KEY, clock=clock, status_step=10) as emu:
        with MobizonClient(TEST_KEY, emu.url) as api:
            message_id = api.send_sms("77012345678", "Ж" * 200).message_id
            seen = []
            for _ in range(40):
                clock.now += 2
                seen.append(api.get_sms_status([message_id])[0].status)
    assert "PDLIVRD" in seen
    assert seen.index("PDLIVRD") > seen.index("ACCEPTD")
    assert emu.messages()[0].seg_num == 3


def test_list_pages_filters_and_sorts(emulator: MobizonEmulator, client: MobizonClient) -> None:
    for n in range(250):
        client.send_sms(f"7701{n:07d}", "promo" if n % 2 else "other", sender="Shop")
    items, total = client.list_messages({"text": "promo"}, page=0, page_size=100)
    assert total == 125 and len(items) == 100
    tail, _ = client.list_messages({"text": "promo"}, page=1, page_size=100)
    assert len(tail) == 25
    assert {i["id"] for i in items}.isdisjoint({i["id"] for i in tail})
    _by_to, total_to = client.list_messages({"to": "7701000012"}, page_size=25)
    assert total_to == 10  # 77010000120..129
    ascending, _ = client.list_messages({"from": "Shop"}, page_size=25, sort={"to": "ASC"})
    assert [i["to"] for i in ascending] == sorted(i["to"] for i in ascending)
    assert ascending[0]["to"] == "77010000000"
    none, zero = client.list_messages({"from": "Other"})
    assert (none, zero) == ([], 0)
    created = datetime.fromtimestamp(emulator.messages()[0].created)
    later = (created + timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S")
    assert client.list_messages({"campaignCreateTsFrom": later})[1] == 0
    assert client.list_messages({"campaignCreateTsTo": later}, page_size=25)[1] == 250
    with pytest.raises(errors.LimitExceeded):
        client.call("message", "list", {"pagination": {"pageSize": 30}})


def test_rate_limit_answers_code_30(emulator: MobizonEmulator, client: MobizonClient) -> None:
    emulator.configure(rate_limit=5)
    outcomes = Counter()
    for _ in range(20):
        try:
            client.get_balance()
            outcomes["ok"] += 1
        except errors.RateLimited:
            outcomes["limited"] += 1
    assert 5 <= outcomes["ok"] <= 8
    assert outcomes["limited"] >= 12


def test_faults_only_hit_the_chosen_methods(
    emulator: MobizonEmulator, client: MobizonClient
) -> None:
    emulator.configure(fault_503=1.0, fault_methods=frozenset({"message/sendsmsmessage"}))
    assert client.get_balance()[1] == "KZT"
    with pytest.raises(errors.NotSent):
        client.send_sms("77012345678", "x")
    assert [c.fault for c in emulator.calls()] == ["", "503"]


def test_fault_rates_are_roughly_honoured(emulator: MobizonEmulator, client: MobizonClient) -> None:
    emulator.configure(fault_503=0.2, fault_drop_before=0.2, fault_drop_after=0.2)
    for n in range(300):
        with contextlib.suppress(errors.TransportError):
            client.send_sms(f"7701{n:07d}", "x")
    faults = Counter(c.fault for c in emulator.calls())
    assert all(30 <= faults[f] <= 90 for f in ("503", "drop_before", "drop_after"))
    # Created: the clean calls and the drop-after ones, nothing else.
    assert len(emulator.messages()) == faults[""] + faults["drop_after"]


def test_balance_is_charged_per_segment(emulator: MobizonEmulator, client: MobizonClient) -> None:
    before, _ = client.get_balance()
    client.send_sms("77012345678", "a" * 161)  # two segments
    after, _ = client.get_balance()
    assert before - after == 2 * emulator.config.price_per_segment


def test_messages_are_copies(emulator: MobizonEmulator, client: MobizonClient) -> None:
    client.send_sms("77012345678", "x")
    emulator.messages()[0].to = "changed"
    assert emulator.messages()[0].to == "77012345678"


def test_stop_closes_the_port() -> None:
    emulator = MobizonEmulator()
    url = emulator.start()
    port = int(url.rsplit(":", 1)[1])
    emulator.stop()
    emulator.stop()  # idempotent
    with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
        probe.connect(("127.0.0.1", port))


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        ([("a", "1")], {"a": "1"}),
        ([("p[x]", "1"), ("p[y]", "2")], {"p": {"x": "1", "y": "2"}}),
        ([("ids[0]", "5"), ("ids[1]", "6")], {"ids": {"0": "5", "1": "6"}}),
        ([("ids[]", "5"), ("ids[]", "6")], {"ids": ["5", "6"]}),
        ([("c[a][b]", "z")], {"c": {"a": {"b": "z"}}}),
    ],
)
def test_parse_php_form(pairs: list[tuple[str, str]], expected: dict[str, Any]) -> None:
    assert parse_php_form(pairs) == expected


def test_answers_are_json_envelopes_in_utf8(emulator: MobizonEmulator) -> None:
    response = requests.post(
        f"{emulator.url}/service/message/sendsmsmessage",
        params={"output": "json", "api": "v1", "apiKey": TEST_KEY},
        data={"recipient": "77012345678", "text": "Привет"},
        timeout=5,
    )
    document = json.loads(response.content.decode("utf-8"))
    assert set(document) == {"code", "data", "message"}
    assert emulator.messages()[0].text == "Привет"


# -------------------------------------------- behaviours the docs leave open


def test_list_lag_hides_new_messages_from_the_list_only(
    emulator: MobizonEmulator, client: MobizonClient
) -> None:
    emulator.configure(list_lag=30.0)
    receipt = client.send_sms("77011234567", "hello")
    assert client.list_messages()[0] == []  # not listed yet
    assert [s.id for s in client.get_sms_status([receipt.message_id])] == [receipt.message_id]
    emulator.shift_messages(31)
    assert [m["id"] for m in client.list_messages()[0]] == [receipt.message_id]


def test_random_ids_do_not_grow(emulator: MobizonEmulator, client: MobizonClient) -> None:
    emulator.configure(random_ids=True)
    ids = [client.send_sms(f"770112345{n:02d}", "hello").message_id for n in range(30)]
    campaigns = [m.campaign_id for m in emulator.messages()]
    assert len(set(ids)) == 30 and len(set(campaigns)) == 30
    assert ids != sorted(ids)


def test_normalized_texts_are_listed_and_matched_as_stored(
    emulator: MobizonEmulator, client: MobizonClient
) -> None:
    emulator.configure(normalize_whitespace=True)
    client.send_sms("77011234567", "  two  spaces\there ")
    items, _ = client.list_messages()
    assert items[0]["text"] == "two spaces here"
    assert client.list_messages({"text": "  two  spaces\there "})[0] == []
    assert len(client.list_messages({"text": "two spaces here"})[0]) == 1


def test_clock_offset_moves_every_account_time(
    emulator: MobizonEmulator, client: MobizonClient
) -> None:
    emulator.configure(clock_offset=3 * 3600, status_step=0.0)
    client.send_sms("77011234567", "hello")
    ours = datetime.now()
    (item,), _ = client.list_messages()
    shown = datetime.strptime(item["startSendTs"], "%Y-%m-%d %H:%M:%S")
    assert abs(shown - (ours + timedelta(hours=3))) < timedelta(seconds=5)
    later = ours + timedelta(hours=2)  # after it by our clock, before it by the account's
    assert len(client.list_messages({"campaignCreateTsFrom": later})[0]) == 1
    assert client.list_messages({"campaignCreateTsFrom": ours + timedelta(hours=4)})[0] == []


def test_staged_messages_have_no_campaign_sent_time(emulator: MobizonEmulator) -> None:
    with MobizonClient(TEST_KEY, emulator.url) as api:
        staged = emulator.preload(3, sent=False)
        sent = emulator.preload(2, prefix="7705", age=3600)
        since = datetime.now() - timedelta(hours=2)
        listed = api.list_messages({"campaignSentTsFrom": since})[0]
        assert sorted(m["id"] for m in listed) == sorted(sent)
        assert len(api.list_messages({"campaignCreateTsFrom": since})[0]) == 5
        assert set(staged).isdisjoint(m["id"] for m in listed)
