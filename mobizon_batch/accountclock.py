"""The account's clock: the time zone Mobizon reads and writes our times in.

Why a module of its own: Mobizon keeps every time (``params[deferredToTs]``,
``startSendTs``, the ``criteria[...Ts...]`` of Message/List) as a bare
``YYYY-MM-DD HH:MM:SS`` in the *account's* local time, which need not be this
machine's.  A UTC server sending for a UTC+5 account would check
``--deferred-to`` against the wrong "now": the API would then refuse every row
(or we would refuse a valid time).  So the zone is decided once, here, in this
order:

1. ``--timezone`` (the user knows best);
2. the lead over this machine's clock that an earlier send through the same
   API host measured (``registry.known_offset``, learned by ``lookup``): our
   own acknowledged messages, so a measurement, not a guess;
3. the API domain's country (``api.mobizon.kz`` → Asia/Almaty, ...);
4. this machine's zone (right for the local emulator, a guess otherwise).

The API's own timestamps then check the guess: the account's clock cannot be
behind a time the service has already written, so the newest timestamp minus
UTC now is the least offset the account can have (``offset_floor``).  A guess
below that floor is wrong and is replaced by the floor, rounded up to the
quarter hour.  The floor only ever corrects a guess upwards: an old timestamp
says nothing about how far ahead the clock is.

Nothing here may stop a send: learning from the API is best effort, and
``newest_timestamps`` gives up quietly on any failure.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Protocol
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mobizon_batch.errors import ConfigError, MobizonBatchError
from mobizon_batch.listing import ListSource
from mobizon_batch.wireformat import to_datetime

log = logging.getLogger(__name__)

#: API domain → the zone of the country whose accounts it serves.  Not in the
#: docs (they list the domains, not zones): our reading.  ``api.mobizon.gmbh``
#: is the international domain (the official PHP SDK's examples use it for
#: Brazilian numbers too) and ``api.mobizon.com`` is deprecated: neither
#: names a country, so neither guesses a zone.
DOMAIN_ZONES: Mapping[str, str] = {
    "mobizon.kz": "Asia/Almaty",
    "mobizon.uz": "Asia/Tashkent",
    "mobizon.ua": "Europe/Kyiv",
    "mobizon.com.br": "America/Sao_Paulo",
}
QUARTER_HOUR = timedelta(minutes=15)
#: The furthest any zone is ahead of UTC (Pacific/Kiritimati).
MAX_OFFSET = timedelta(hours=14)
#: How far a timestamp may run ahead of our clock before it says anything:
#: the two clocks need not agree to the second.
CLOCK_SLACK = timedelta(minutes=2)
_OFFSET = re.compile(r"(?:UTC|GMT)?\s*([+-])(\d{1,2})(?::?(\d{2}))?", re.IGNORECASE)


@dataclass(frozen=True)
class AccountClock:
    """A zone and why it was chosen (said to the user next to any time we check)."""

    zone: tzinfo
    source: str

    def now(self, utc_now: datetime | None = None) -> datetime:
        """The account's wall-clock time now, naive, as the API writes times."""
        moment = utc_now or datetime.now(UTC)
        return moment.astimezone(self.zone).replace(tzinfo=None)

    def offset(self, utc_now: datetime | None = None) -> timedelta:
        return self.now(utc_now) - (utc_now or datetime.now(UTC)).replace(tzinfo=None)

    def lead(
        self, utc_now: datetime | None = None, machine_zone: tzinfo | None = None
    ) -> timedelta:
        """How far the account's wall clock is ahead of this machine's (the registry's unit)."""
        moment = utc_now or datetime.now(UTC)
        mine = moment.astimezone(machine_zone) if machine_zone else moment.astimezone()
        return self.now(moment) - mine.replace(tzinfo=None)

    def describe(self, utc_now: datetime | None = None) -> str:
        """``Asia/Almaty (UTC+05:00, from the API domain .kz)``."""
        name = str(self.zone)
        offset = format_offset(self.offset(utc_now))
        if name.upper().startswith(("UTC", "GMT")):
            return f"{offset} ({self.source})"
        return f"{name} ({offset}, {self.source})"


class ClockSource(ListSource, Protocol):
    """A client that can also say which API it talks to: ``MobizonClient`` is one."""

    @property
    def api_url(self) -> str: ...


# ------------------------------------------------------------------ zones


def parse_zone(text: str) -> tzinfo:
    """``--timezone``: a zone name (``Asia/Almaty``), UTC, or an offset (``+05:00``, ``UTC-3``)."""
    value = text.strip()
    if value.upper() in ("UTC", "GMT", "Z"):
        return UTC
    match = _OFFSET.fullmatch(value)
    if match:
        sign, hours, minutes = match.groups()
        delta = timedelta(hours=int(hours), minutes=int(minutes or 0))
        too_far = timedelta(hours=12 if sign == "-" else 14)
        if delta > too_far or (minutes and int(minutes) >= 60):
            raise ConfigError(f"--timezone {text!r} is not a UTC offset (-12:00 to +14:00)")
        return timezone(-delta if sign == "-" else delta)
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: "Asia" is a folder
        raise ConfigError(
            f"--timezone {text!r} is not a time zone: give a name such as Asia/Almaty "
            f"or an offset such as +05:00"
        ) from None


def zone_for_url(api_url: str) -> tuple[str, str] | None:
    """``(zone name, domain suffix)`` for a Mobizon API domain of one country, else None."""
    host = urlsplit(api_url if "://" in api_url else f"https://{api_url}").hostname or ""
    for domain, zone in DOMAIN_ZONES.items():
        if host == domain or host.endswith("." + domain):
            return zone, domain.removeprefix("mobizon")
    return None


def format_offset(offset: timedelta) -> str:
    """``UTC+05:00``, ``UTC-03:00``."""
    minutes = round(offset.total_seconds() / 60)
    sign = "-" if minutes < 0 else "+"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


# ------------------------------------------------------- learning offsets


def offset_floor(timestamps: Iterable[datetime | None], utc_now: datetime) -> timedelta | None:
    """The least offset the account's clock can have, given times the API wrote.

    The service cannot have written a time its clock has not reached yet, so
    ``newest - UTC now`` (less a little slack) is a lower bound.  None when
    there are no timestamps.
    """
    utc = utc_now.replace(tzinfo=None)
    # No clock runs more than 14 hours ahead of UTC: a later time is not a
    # clock reading (a schedule, a bad value) and says nothing.
    known = [t for t in timestamps if t is not None and t - utc <= MAX_OFFSET]
    if not known:
        return None
    return max(known) - utc - CLOCK_SLACK


def clock_from_lead(
    lead: timedelta, *, utc_now: datetime | None = None, machine_zone: tzinfo | None = None
) -> AccountClock:
    """The account's clock from its lead over this machine's, as our own sends measured it.

    The measured lead falls short by up to one round trip (it is a lower bound,
    see ``lookup.LearnedOffset``); every zone in use is a whole number of
    quarter hours from UTC, so rounding to the nearest quarter hour gives the
    offset itself.
    """
    moment = utc_now or datetime.now(UTC)
    mine = moment.astimezone(machine_zone) if machine_zone else moment.astimezone()
    raw = lead + (mine.utcoffset() or timedelta(0))
    offset = QUARTER_HOUR * round(raw / QUARTER_HOUR)
    return AccountClock(timezone(offset), "learned from earlier sends through this API host")


def newest_timestamps(source: ListSource) -> list[datetime]:
    """When the account's most recently updated messages changed: one Message/List call.

    Only ``statusUpdateTs``, the time the service wrote a change: a
    ``startSendTs`` may be a scheduled time still ahead.  Best effort: any
    failure (no messages, no access, the network) gives no timestamps, and the
    zone is decided without them.
    """
    try:
        items, _total = source.list_messages(page=0, page_size=25, sort={"statusUpdateTs": "DESC"})
    except MobizonBatchError as exc:
        log.debug("could not read the account's recent messages for its clock: %s", exc)
        return []
    found: list[datetime] = []
    for item in items:
        moment = to_datetime(item.get("statusUpdateTs"))
        if moment is not None:
            found.append(moment)
    return found


# ----------------------------------------------------------------- decide


def resolve_account_clock(
    api_url: str,
    override: str | None = None,
    timestamps: Iterable[datetime | None] = (),
    *,
    learned: timedelta | None = None,
    utc_now: datetime | None = None,
    machine_zone: tzinfo | None = None,
) -> AccountClock:
    """The account's clock: ``override``, else the ``learned`` lead, else a guess.

    The guess is the domain's zone, else this machine's; the API's
    ``timestamps`` correct one that they prove too far west (see the module's
    docstring).  An override is taken as given; a lead our own sends measured
    (``registry.known_offset``) beats any guess.
    """
    now = utc_now or datetime.now(UTC)
    if override is not None and override.strip():
        return AccountClock(parse_zone(override), "from --timezone")
    if learned is not None:
        return clock_from_lead(learned, utc_now=now, machine_zone=machine_zone)
    by_domain = zone_for_url(api_url)
    if by_domain is not None:
        guess = AccountClock(ZoneInfo(by_domain[0]), f"from the API domain {by_domain[1]}")
    else:
        local = machine_zone or datetime.now().astimezone().tzinfo or UTC
        guess = AccountClock(local, "this machine's zone")
    floor = offset_floor(timestamps, now)
    if floor is None or guess.offset(now) >= floor:
        return guess
    learned = QUARTER_HOUR * -(-floor // QUARTER_HOUR)  # rounded up to the quarter hour
    return AccountClock(
        timezone(learned),
        f"learned from the API's newest timestamps; {guess.source} would be "
        f"{format_offset(guess.offset(now))}, behind them",
    )


def account_clock(
    client: ClockSource, override: str | None = None, learned: timedelta | None = None
) -> AccountClock:
    """The account's clock for ``client``: one Message/List call, none when it is known.

    Costs at most one read, which may fail without consequence (see
    ``newest_timestamps``): call it only when a time is to be checked.
    """
    known = learned is not None or bool(override and override.strip())
    timestamps = [] if known else newest_timestamps(client)
    return resolve_account_clock(client.api_url, override, timestamps, learned=learned)


__all__ = [
    "DOMAIN_ZONES",
    "AccountClock",
    "ClockSource",
    "account_clock",
    "clock_from_lead",
    "format_offset",
    "newest_timestamps",
    "offset_floor",
    "parse_zone",
    "resolve_account_clock",
    "zone_for_url",
]
