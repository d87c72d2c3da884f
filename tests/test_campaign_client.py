"""The Campaign calls on the wire: documented parameters out, typed answers back.

Against the scripted server, so the answers are the live service's shapes
(numbers as strings, 98/99 envelopes with items), not our emulator's.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from urllib.parse import parse_qsl

import pytest

from mobizon_batch.campaign_client import CampaignApi, CampaignSpec
from mobizon_batch.client import MobizonClient
from mobizon_batch.errors import AnswerLost, ConcurrentSave
from tests.helpers import TEST_KEY
from tests.scripted_server import ScriptedServer, envelope


def api(server: ScriptedServer) -> CampaignApi:
    return CampaignApi(MobizonClient(TEST_KEY, server.url, timeout=(1.0, 2.0)))


def form(raw: bytes) -> dict[str, str]:
    return dict(parse_qsl(raw.decode("ascii"), keep_blank_values=True))


def test_create_sends_data_fields_and_reads_a_string_id(scripted: ScriptedServer) -> None:
    scripted.queue(envelope(0, "7300123"))
    spec = CampaignSpec(
        name="May sale [abc123-1]",
        text="Hi {name}",
        kind=3,
        sender="Shop",
        rate_limit=600,
        rate_period=60,
        deferred_to=datetime(2026, 12, 1, 10, 0, 0),
        validity=120,
    )
    assert api(scripted).create(spec) == 7_300_123
    request = scripted.requests[0]
    assert request.path.startswith("/service/campaign/create?")
    assert form(request.body) == {
        "data[name]": "May sale [abc123-1]",
        "data[text]": "Hi {name}",
        "data[type]": "3",
        "data[from]": "Shop",
        "data[rateLimit]": "600",
        "data[ratePeriod]": "60",
        "data[deferredToTs]": "2026-12-01 10:00:00",
        "data[validity]": "120",
    }


def test_create_without_an_id_is_a_lost_answer(scripted: ScriptedServer) -> None:
    scripted.queue(envelope(0, None))
    with pytest.raises(AnswerLost):
        api(scripted).create(CampaignSpec(name="n", text="t"))


def test_add_recipients_template_rows_and_partial_answer(scripted: ScriptedServer) -> None:
    items = [
        {"recipient": "77010000001", "code": "0", "messageId": "41000009", "number": "77010000001"},
        {"recipient": "77010000002", "code": "5", "messageId": None, "number": "77010000002"},
    ]
    scripted.queue(envelope("98", items, "Not all added"))
    rows = [{"recipient": "77010000001", "name": "Ann"}, {"recipient": "77010000002", "name": "Bo"}]
    results = api(scripted).add_recipients(7, rows, placeholders_flag=3)
    assert [(r.code, r.message_id) for r in results] == [(0, 41_000_009), (5, None)]
    assert form(scripted.requests[0].body) == {
        "id": "7",
        "recipients[0][recipient]": "77010000001",
        "recipients[0][name]": "Ann",
        "recipients[1][recipient]": "77010000002",
        "recipients[1][name]": "Bo",
        "params[placeholdersFlag]": "3",
    }


def test_add_recipients_refuses_more_than_500_before_any_request(
    scripted: ScriptedServer,
) -> None:
    with pytest.raises(ValueError, match="500"):
        api(scripted).add_recipients(7, [f"7701{n:07d}" for n in range(501)])
    assert scripted.requests == []


def test_send_moderation_and_code_10(scripted: ScriptedServer) -> None:
    scripted.queue(envelope(0, "1"))
    scripted.queue(envelope(10, None, "status does not allow"))
    campaigns = api(scripted)
    assert campaigns.send(7) is True
    with pytest.raises(ConcurrentSave):
        campaigns.send(7)


def test_get_info_counters_are_coerced(scripted: ScriptedServer) -> None:
    data = {
        "id": "7",
        "name": "n",
        "text": "t",
        "commonStatus": "READY_FOR_SEND",
        "moderationStatus": None,
        "isDeleted": "0",
        "startSendTs": None,
        "counters": {
            "totalMsgNum": "1500",
            "totalSegNum": "3000",
            "totalCost": "15000.0000",
            "totalNewMsgNum": "1500",
            "recipientsRejected": "2",
            "updateTs": "2026-11-29 10:00:00",
        },
    }
    scripted.queue(envelope(0, data))
    info = api(scripted).get_info(7)
    assert info.counters is not None
    assert (info.counters.messages, info.counters.segments, info.counters.cost) == (
        1500,
        3000,
        Decimal("15000"),
    )
    assert info.common_status == "READY_FOR_SEND" and info.started is None
