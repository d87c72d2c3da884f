"""The emulator's Campaign module, over HTTP: what campaign mode relies on, checked.

Staged messages exist (ids, NEW, listed by campaign) but reach nobody and cost
nothing until Campaign/Send; the 500 limit, the per-recipient codes, the lock
while adding, the counters and Delete-only-before-sending behave as the docs say.
"""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import pytest

from mobizon_batch.campaign_client import CampaignApi, CampaignSpec
from mobizon_batch.client import MobizonClient
from mobizon_batch.emulator import MobizonEmulator
from mobizon_batch.errors import ConcurrentSave, LimitExceeded
from tests.helpers import TEST_KEY


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clocked() -> tuple[MobizonEmulator, Clock]:
    clock = Clock()
    with MobizonEmulator(api_key=TEST_KEY, status_step=1.0, clock=clock) as emu:
        yield emu, clock


def api_for(emu: MobizonEmulator) -> CampaignApi:
    return CampaignApi(MobizonClient(TEST_KEY, emu.url, timeout=(2.0, 10.0)))


def numbers(count: int, start: int = 0) -> list[str]:
    return [f"7701{n:07d}" for n in range(start, start + count)]


def test_staged_messages_are_visible_but_held_and_free_until_send(
    clocked: tuple[MobizonEmulator, Clock],
) -> None:
    emu, clock = clocked
    api = api_for(emu)
    campaign_id = api.create(CampaignSpec(name="t", text="Hello"))
    results = api.add_recipients(campaign_id, numbers(3))
    ids = [r.message_id for r in results]
    assert [r.code for r in results] == [0, 0, 0] and all(ids)
    clock.now += 3600  # long after: still nothing moves
    statuses = api.client.get_sms_status([i for i in ids if i is not None])
    assert {s.status for s in statuses} == {"NEW"}
    assert all(s.start_send_ts is None for s in statuses)
    listed, total = api.client.list_messages({"campaignIds": [campaign_id]})
    assert total == 3 and {m["id"] for m in listed} == set(ids)
    assert emu.balance == Decimal("100000.00")  # nothing charged yet
    assert api.send(campaign_id) is False
    clock.now += 60
    statuses = api.client.get_sms_status([i for i in ids if i is not None])
    assert all(s.status != "NEW" for s in statuses)
    assert emu.balance == Decimal("100000.00") - 3 * emu.config.price_per_segment


def test_more_than_500_recipients_add_nothing(clocked: tuple[MobizonEmulator, Clock]) -> None:
    emu, _ = clocked
    api = api_for(emu)
    campaign_id = api.create(CampaignSpec(name="t", text="Hello"))
    with pytest.raises(LimitExceeded):
        api.client.call(
            "campaign", "addRecipients", {"id": campaign_id, "recipients": numbers(501)}
        )
    assert emu.messages() == []
    assert len(api.add_recipients(campaign_id, numbers(500))) == 500


def test_per_recipient_codes_and_partial_envelopes(clocked: tuple[MobizonEmulator, Clock]) -> None:
    emu, _ = clocked
    emu.configure(stop_list=frozenset({"77010000001"}), unserved_prefixes=frozenset({"7705"}))
    api = api_for(emu)
    campaign_id = api.create(CampaignSpec(name="t", text="Hello"))
    given = ["77010000000", "77010000001", "123", "77050000000", "77010000000"]
    results = api.add_recipients(campaign_id, given)  # envelope 98: still one item each
    assert [r.code for r in results] == [0, 5, 3, 8, 4]
    assert results[0].message_id is not None and results[4].message_id is None
    again = api.add_recipients(campaign_id, ["77010000000"])  # envelope 99
    assert [r.code for r in again] == [4]
    template = api.create(CampaignSpec(name="t", text="Hi {name}, {code}", kind=3))
    rows = [
        {"recipient": "77010000002", "name": "Ann", "code": "7"},
        {"recipient": "77010000003", "name": "Bob"},
    ]
    filled = api.add_recipients(template, rows, placeholders_flag=3)
    assert [r.code for r in filled] == [0, 20]
    assert [m.text for m in emu.messages() if m.campaign_id == template] == ["Hi Ann, 7"]


def test_a_campaign_is_locked_while_recipients_are_added(
    clocked: tuple[MobizonEmulator, Clock],
) -> None:
    emu, _ = clocked
    emu.configure(add_seconds=0.5)
    api = api_for(emu)
    campaign_id = api.create(CampaignSpec(name="t", text="Hello"))
    first = threading.Thread(target=api.add_recipients, args=(campaign_id, numbers(10)))
    first.start()
    while emu.active() == 0:  # the first call is being handled (and holds the lock)
        time.sleep(0.01)
    time.sleep(0.05)
    with pytest.raises(ConcurrentSave):
        api.add_recipients(campaign_id, numbers(10, 100))
    first.join()
    assert len(emu.messages()) == 10


def test_counters_price_before_sending_and_may_lag(clocked: tuple[MobizonEmulator, Clock]) -> None:
    emu, clock = clocked
    emu.configure(price_per_segment=Decimal("12.5"), counters_lag=30)
    api = api_for(emu)
    campaign_id = api.create(CampaignSpec(name="t", text="Привет! " * 10))  # 2 UCS-2 segments
    api.add_recipients(campaign_id, numbers(4))
    lagging = api.get_info(campaign_id).counters
    assert lagging is not None and lagging.messages == 0
    clock.now += 31
    counters = api.get_info(campaign_id).counters
    assert counters is not None
    assert (counters.messages, counters.segments, counters.cost) == (4, 8, Decimal("100"))


def test_delete_only_before_sending_and_second_send_refused(
    clocked: tuple[MobizonEmulator, Clock],
) -> None:
    emu, _ = clocked
    api = api_for(emu)
    kept = api.create(CampaignSpec(name="kept", text="A"))
    dropped = api.create(CampaignSpec(name="dropped", text="B"))
    api.add_recipients(kept, numbers(2))
    api.add_recipients(dropped, numbers(2, 10))
    new, _ = api.list({"status": "NEW"})
    assert {c.id for c in new} == {kept, dropped}
    api.delete(dropped)
    assert {m.campaign_id for m in emu.messages()} == {kept}
    api.send(kept)
    with pytest.raises(ConcurrentSave):
        api.send(kept)
    with pytest.raises(ConcurrentSave):
        api.delete(kept)
    assert api.list({"status": "NEW"})[0] == []
    found, _ = api.list({"text": "A"})
    assert [c.name for c in found] == ["kept"]


def test_moderation_knob_declines_and_nothing_is_delivered(
    clocked: tuple[MobizonEmulator, Clock],
) -> None:
    emu, clock = clocked
    emu.configure(campaign_moderation="decline", moderation_seconds=10)
    api = api_for(emu)
    campaign_id = api.create(CampaignSpec(name="t", text="Hello"))
    api.add_recipients(campaign_id, numbers(2))
    assert api.send(campaign_id) is True
    assert api.get_info(campaign_id).common_status == "MODERATION"
    clock.now += 11
    info = api.get_info(campaign_id)
    assert info.common_status == "DECLINED" and info.comment
    assert {m.held for m in emu.messages()} == {True}
