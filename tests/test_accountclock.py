"""The account's clock: zone from --timezone, the API domain, this machine; checked by API times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from mobizon_batch.accountclock import (
    AccountClock,
    clock_from_lead,
    newest_timestamps,
    offset_floor,
    parse_zone,
    resolve_account_clock,
    zone_for_url,
)
from mobizon_batch.client import MobizonClient
from mobizon_batch.emulator import MobizonEmulator
from mobizon_batch.errors import ConfigError, NotSent
from mobizon_batch.send import check_deferred_to
from tests.helpers import TEST_KEY

NOW = datetime(2026, 11, 29, 6, 0, 0, tzinfo=UTC)
UTC_MACHINE = UTC


@pytest.mark.parametrize(
    ("url", "zone"),
    [
        ("https://api.mobizon.kz", "Asia/Almaty"),
        ("api.mobizon.uz", "Asia/Tashkent"),
        ("https://api.mobizon.ua/", "Europe/Kyiv"),
        ("https://api.mobizon.com.br", "America/Sao_Paulo"),
        ("https://API.MOBIZON.KZ:443", "Asia/Almaty"),
        ("https://api.mobizon.gmbh", None),  # international: no country
        ("https://api.mobizon.com", None),  # deprecated, no country
        ("https://mobizon.kz.example.com", None),
        ("http://127.0.0.1:8080", None),
    ],
)
def test_zone_for_url(url: str, zone: str | None) -> None:
    found = zone_for_url(url)
    assert (found[0] if found else None) == zone


@pytest.mark.parametrize(
    ("text", "offset"),
    [
        ("Asia/Almaty", timedelta(hours=5)),
        ("America/Sao_Paulo", timedelta(hours=-3)),
        ("UTC", timedelta(0)),
        ("+05:00", timedelta(hours=5)),
        ("UTC-3", timedelta(hours=-3)),
        ("+0545", timedelta(hours=5, minutes=45)),
    ],
)
def test_parse_zone(text: str, offset: timedelta) -> None:
    assert NOW.astimezone(parse_zone(text)).utcoffset() == offset


@pytest.mark.parametrize(
    "bad", ["Mars/Olympus", "+15:00", "-13:00", "+05:75", "", "../etc/passwd", "Asia"]
)
def test_bad_zones_are_one_sentence(bad: str) -> None:
    with pytest.raises(ConfigError, match="--timezone"):
        parse_zone(bad)


def test_the_override_wins_over_domain_and_timestamps() -> None:
    clock = resolve_account_clock(
        "https://api.mobizon.kz",
        "Europe/Kyiv",
        [datetime(2026, 11, 29, 11, 0)],
        utc_now=NOW,
    )
    assert clock.now(NOW) == datetime(2026, 11, 29, 8, 0)
    assert clock.describe(NOW) == "Europe/Kyiv (UTC+02:00, from --timezone)"


def test_the_domain_decides_when_timestamps_agree() -> None:
    recent = [datetime(2026, 11, 29, 10, 58), None, datetime(2026, 11, 28, 9, 0)]
    clock = resolve_account_clock(
        "https://api.mobizon.kz", None, recent, utc_now=NOW, machine_zone=UTC_MACHINE
    )
    assert clock.now(NOW) == datetime(2026, 11, 29, 11, 0)
    assert clock.describe(NOW) == "Asia/Almaty (UTC+05:00, from the API domain .kz)"


def test_timestamps_ahead_of_the_guess_correct_it() -> None:
    # The machine says UTC, but the service already wrote 10:55 for a UTC+5 account.
    clock = resolve_account_clock(
        "http://127.0.0.1:1",
        None,
        [datetime(2026, 11, 29, 10, 55)],
        utc_now=NOW,
        machine_zone=UTC_MACHINE,
    )
    assert clock.offset(NOW) == timedelta(hours=5)
    assert "learned from the API's newest timestamps" in clock.source
    # Old timestamps say nothing against the guess.
    stale = resolve_account_clock(
        "http://127.0.0.1:1",
        None,
        [datetime(2026, 11, 20, 3, 0)],
        utc_now=NOW,
        machine_zone=UTC_MACHINE,
    )
    assert stale.offset(NOW) == timedelta(0) and stale.source == "this machine's zone"


def test_a_scheduled_time_does_not_move_the_clock() -> None:
    ahead = [datetime(2026, 12, 9, 9, 0), datetime(2026, 11, 29, 20, 30)]  # 10 days; +14.5 h
    clock = resolve_account_clock(
        "https://api.mobizon.kz", None, ahead, utc_now=NOW, machine_zone=UTC_MACHINE
    )
    assert clock.describe(NOW) == "Asia/Almaty (UTC+05:00, from the API domain .kz)"


def test_offset_floor_and_fresh_offsets() -> None:
    assert offset_floor([], NOW) is None
    # A time further ahead than any zone is no clock reading (a schedule, say).
    assert offset_floor([datetime(2026, 12, 5, 10, 0)], NOW) is None
    floor = offset_floor([datetime(2026, 11, 29, 10, 59, 30)], NOW)
    assert floor is not None and timedelta(hours=4, minutes=57) <= floor < timedelta(hours=5)
    # A lead our sends measured (a lower bound, short by a round trip) gives the offset itself.
    for local, offset in [
        (datetime(2026, 11, 29, 11, 0, 40), timedelta(hours=5)),
        (datetime(2026, 11, 29, 2, 59, 10), timedelta(hours=-3)),
        (datetime(2026, 11, 29, 11, 45, 5), timedelta(hours=5, minutes=45)),
    ]:
        lead = local - NOW.replace(tzinfo=None)
        clock = clock_from_lead(lead, utc_now=NOW, machine_zone=UTC_MACHINE)
        assert clock.offset(NOW) == offset


def test_a_learned_lead_is_over_this_machines_clock_and_beats_any_guess() -> None:
    tashkent = ZoneInfo("Asia/Tashkent")  # this machine: UTC+5; the account: UTC-3
    lead = timedelta(hours=-8, seconds=-3)
    clock = resolve_account_clock(
        "https://api.mobizon.kz",
        None,
        [datetime(2026, 11, 29, 10, 59)],  # would otherwise say UTC+5 at least
        learned=lead,
        utc_now=NOW,
        machine_zone=tashkent,
    )
    assert clock.offset(NOW) == timedelta(hours=-3)
    assert clock.describe(NOW) == "UTC-03:00 (learned from earlier sends through this API host)"
    assert clock.lead(NOW, tashkent) == timedelta(hours=-8)
    override = resolve_account_clock("x", "+01:00", learned=lead, utc_now=NOW)
    assert override.offset(NOW) == timedelta(hours=1)


def test_newest_timestamps_come_from_one_list_call() -> None:
    with MobizonEmulator(api_key=TEST_KEY, timezone="Asia/Tashkent", status_step=0.0) as emu:
        with MobizonClient(TEST_KEY, emu.url) as api:
            assert newest_timestamps(api) == []
            api.send_sms("77012345678", "x")
            found = newest_timestamps(api)
        (call, _second) = emu.calls("message/list")
    assert call.params["sort"] == {"statusUpdateTs": "DESC"}
    assert call.params["pagination"] == {"currentPage": "0", "pageSize": "25"}
    tashkent_now = datetime.now(ZoneInfo("Asia/Tashkent")).replace(tzinfo=None)
    assert found and all(abs(t - tashkent_now) < timedelta(minutes=1) for t in found)


def test_newest_timestamps_never_stop_anything() -> None:
    class Broken:
        def list_messages(self, *args: Any, **kwargs: Any) -> Any:
            raise NotSent("could not connect", host="x")

    assert newest_timestamps(Broken()) == []


def test_deferred_to_is_checked_on_the_account_clock() -> None:
    tashkent = AccountClock(ZoneInfo("Asia/Tashkent"), "from --timezone")
    there = tashkent.now()
    ok = (there + timedelta(hours=2)).strftime("%Y-%m-%d %H:%M:%S")
    assert check_deferred_to(ok, clock=tashkent) == datetime.strptime(ok, "%Y-%m-%d %H:%M:%S")
    past = (there - timedelta(hours=2)).strftime("%Y-%m-%d %H:%M:%S")
    with pytest.raises(ConfigError) as caught:
        check_deferred_to(past, clock=tashkent)
    assert "in the account's time zone, Asia/Tashkent (UTC+05:00, from --timezone)" in str(
        caught.value
    )


def test_without_a_zone_only_times_no_zone_could_accept_are_refused() -> None:
    utc = datetime.now(UTC).replace(tzinfo=None)

    def text(moment: datetime) -> str:
        return moment.strftime("%Y-%m-%d %H:%M:%S")

    for fine in (utc - timedelta(hours=10), utc + timedelta(days=14, hours=13)):
        assert check_deferred_to(text(fine)) == fine.replace(microsecond=0)
    for impossible in (utc - timedelta(hours=11, minutes=30), utc + timedelta(days=14, hours=15)):
        with pytest.raises(ConfigError, match="between 1 hour and 14 days"):
            check_deferred_to(text(impossible))
