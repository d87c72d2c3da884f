"""Send windows: each recipient gets messages only between, say, 09:00 and 21:00 their time.

Why per recipient: a list for Kazakhstan, Russia and Uzbekistan spans ten
hours; a message sent at 09:00 in Almaty is 06:00 in Moscow.  The time zone
of a number comes from phonenumbers' data (by its prefix).  A mobile
number often maps to every zone of its country; then the row is sent only
when the window is open in all of them, and when a country spans more
hours than the window leaves (Russia), its capital's time decides — a rule
that is easy to state and never wakes Moscow.

``next_opening`` is the hook for campaign mode: one campaign is delivered
at one moment, so it is deferred to when the window is open for every one
of its recipients (or split, when there is no such moment).
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import zoneinfo
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import phonenumbers
from phonenumbers import timezone as number_zones

from mobizon_batch.errors import ConfigError

_WINDOW = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
_DAYS_AHEAD = 8
#: the zone that decides for a country whose zones never share the window
CAPITALS = {
    "RU": "Europe/Moscow",
    "KZ": "Asia/Almaty",
    "UZ": "Asia/Tashkent",
    "KG": "Asia/Bishkek",
    "TJ": "Asia/Dushanbe",
    "UA": "Europe/Kyiv",
    "US": "America/New_York",
    "CA": "America/Toronto",
    "BR": "America/Sao_Paulo",
    "AU": "Australia/Sydney",
    "MN": "Asia/Ulaanbaatar",
    "ID": "Asia/Jakarta",
    "MX": "America/Mexico_City",
}


@dataclass(frozen=True)
class SendWindow:
    """Local hours in which a message may reach its recipient: ``[start, end)``.

    ``end`` before ``start`` (``22:00-06:00``) means the window crosses midnight.
    """

    start: dt.time
    end: dt.time

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


@dataclass(frozen=True)
class Opening:
    """When a row's window opens next: the moment (UTC) and how to say it."""

    at: dt.datetime
    zone: str

    @property
    def local(self) -> dt.datetime:
        return self.at.astimezone(zoneinfo.ZoneInfo(self.zone))

    def sentence(self) -> str:
        return f"waits for its send window (opens {self.local:%H:%M} {self.zone})"


def parse_window(text: str) -> SendWindow:
    """``HH:MM-HH:MM`` → SendWindow, or ConfigError naming what is wrong."""
    match = _WINDOW.match(text)
    if not match:
        raise ConfigError(f"--send-window {text!r}: give local hours as HH:MM-HH:MM (09:00-21:00)")
    hours = [int(match.group(i)) for i in (1, 2, 3, 4)]
    if hours[0] > 23 or hours[2] > 24 or hours[1] > 59 or hours[3] > 59:
        raise ConfigError(f"--send-window {text!r}: hours run from 00:00 to 24:00")
    start = dt.time(hours[0], hours[1])
    end = dt.time(0, 0) if hours[2] == 24 else dt.time(hours[2], hours[3])
    if start == end:
        raise ConfigError(f"--send-window {text!r}: the window opens and closes at the same time")
    return SendWindow(start, end)


@functools.lru_cache(maxsize=1)
def _zone_countries() -> dict[str, str]:
    """Time zone → country code, from the system's zone.tab (empty when it has none)."""
    countries: dict[str, str] = {}
    for folder in zoneinfo.TZPATH:
        table = Path(folder) / "zone.tab"
        try:
            lines = table.read_text(encoding="utf-8").splitlines()
        except OSError:
            continue
        for line in lines:
            if line and not line.startswith("#"):
                parts = line.split("\t")
                if len(parts) >= 3:
                    countries[parts[2]] = parts[0]
        break
    return countries


def zones_for(recipient: str) -> tuple[str, ...]:
    """The time zones a number (international digits) may be in; ``()`` when unknown.

    Remembered by the number's first digits: phonenumbers maps zones by
    prefix (country and area or operator code), and parsing every number
    of a million-row list would take longer than sending it.
    """
    key = recipient.lstrip("+")[:_PREFIX_DIGITS]
    found = _ZONES_BY_PREFIX.get(key)
    if found is None:
        found = _ZONES_BY_PREFIX[key] = _zones_of(recipient)
    return found


_PREFIX_DIGITS = 8
_ZONES_BY_PREFIX: dict[str, tuple[str, ...]] = {}


def _zones_of(recipient: str) -> tuple[str, ...]:
    try:
        parsed = phonenumbers.parse("+" + recipient.lstrip("+"))
    except phonenumbers.NumberParseException:
        return ()
    zones = [z for z in number_zones.time_zones_for_number(parsed) if z != "Etc/Unknown"]
    country = phonenumbers.region_code_for_number(parsed) or ""
    known = _zone_countries()
    if known and country:
        zones = [z for z in zones if known.get(z, country) == country] or zones
    return tuple(zone for zone in zones if _loadable(zone))


def _loadable(zone: str) -> bool:
    try:
        zoneinfo.ZoneInfo(zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _intervals(
    zone: str, window: SendWindow, now: dt.datetime
) -> list[tuple[dt.datetime, dt.datetime]]:
    """The window's openings in ``zone`` from yesterday to a week ahead, in UTC."""
    tz = zoneinfo.ZoneInfo(zone)
    today = now.astimezone(tz).date()
    spans = []
    for offset in range(-1, _DAYS_AHEAD):
        day = today + dt.timedelta(days=offset)
        opens = dt.datetime.combine(day, window.start, tzinfo=tz)
        closes_day = day if window.end > window.start else day + dt.timedelta(days=1)
        closes = dt.datetime.combine(closes_day, window.end, tzinfo=tz)
        spans.append((opens.astimezone(dt.UTC), closes.astimezone(dt.UTC)))
    return spans


def _inside(moment: dt.datetime, spans: Iterable[tuple[dt.datetime, dt.datetime]]) -> bool:
    return any(opens <= moment < closes for opens, closes in spans)


def _common_opening(
    zones: Sequence[str], window: SendWindow, now: dt.datetime
) -> dt.datetime | None:
    """``now`` if the window is open in every zone, else the next moment it is; None: never."""
    spans = {zone: _intervals(zone, window, now) for zone in zones}
    if all(_inside(now, s) for s in spans.values()):
        return now
    starts = sorted(opens for s in spans.values() for opens, _ in s if opens > now)
    return next((t for t in starts if all(_inside(t, s) for s in spans.values())), None)


@functools.lru_cache(maxsize=4096)
def _deciding_zones(
    zones: tuple[str, ...], window: SendWindow, hour: dt.datetime
) -> tuple[str, ...]:
    """The zones whose window decides: all of them, or the capital's when they never agree."""
    if len(zones) <= 1 or _common_opening(zones, window, hour) is not None:
        return zones
    country = _zone_countries().get(zones[0], "")
    capital = CAPITALS.get(country)
    return (capital,) if capital and _loadable(capital) else zones[:1]


def opening_for(recipient: str, window: SendWindow, now: dt.datetime) -> Opening | None:
    """None when ``recipient`` may get a message at ``now`` (aware), else when it may.

    A number whose zone is unknown is never held back: the window is a
    courtesy, and a row held for ever would never be sent.
    """
    zones = zones_for(recipient)
    if not zones:
        return None
    return _opening(zones, window, now, now.replace(minute=0, second=0, microsecond=0))


def _opening(
    zones: tuple[str, ...], window: SendWindow, now: dt.datetime, hour: dt.datetime
) -> Opening | None:
    deciding = _deciding_zones(zones, window, hour)
    at = _common_opening(deciding, window, now)
    if at is None or at == now:
        return None
    opener = next(
        (z for z in deciding if at.astimezone(zoneinfo.ZoneInfo(z)).time() == window.start),
        deciding[0],
    )
    return Opening(at, opener)


def openings_for(
    recipients: Sequence[str], window: SendWindow, now: dt.datetime
) -> list[Opening | None]:
    """``opening_for`` of many recipients at one moment, worked out once per set of zones."""
    hour = now.replace(minute=0, second=0, microsecond=0)
    by_zones: dict[tuple[str, ...], Opening | None] = {}
    answers: list[Opening | None] = []
    for recipient in recipients:
        zones = zones_for(recipient)
        if zones not in by_zones:
            by_zones[zones] = _opening(zones, window, now, hour) if zones else None
        answers.append(by_zones[zones])
    return answers


def next_opening(
    recipients: Iterable[str], window: SendWindow, now: dt.datetime
) -> dt.datetime | None:
    """The first moment from ``now`` at which the window is open for every recipient.

    For campaign mode, whose one Send reaches every recipient of a campaign
    at once: defer the campaign to this moment (``now`` itself when the
    window is open for all of them already).  None when there is no such
    moment within a week: group the recipients by zone into campaigns.
    """
    zones: set[str] = set()
    hour = now.replace(minute=0, second=0, microsecond=0)
    for recipient in recipients:
        found = zones_for(recipient)
        if found:
            zones.update(_deciding_zones(found, window, hour))
    if not zones:
        return now
    return _common_opening(sorted(zones), window, now)
