"""Export Message/List across all of its pages, as rows for a spreadsheet.

Why a module of its own (the design's layout has none): paging a list that
may change under us, turning flags into ``criteria[...]`` and checking that
what we wrote is what the API counted is one job, separate from the status
pass (which never lists) and from the client (which fetches one page).

Paging is by ``pagination[currentPage]``, 100 a page.  If messages are
created or change status while we page, items can shift between pages: an
item seen twice is written once (``duplicates``), and when the rows written
differ from ``totalItemCount`` the export says the set changed
(``ListExport.changed``) rather than pretending it is complete.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any, Protocol

import pandas as pd

from mobizon_batch.client import MAX_STATUS_IDS
from mobizon_batch.config import parse_duration
from mobizon_batch.errors import ConfigError
from mobizon_batch.ratelimit import RateLimiter
from mobizon_batch.retries import ReadPolicy, call_read
from mobizon_batch.vocabulary import SORT_FIELDS as SORT_FIELDS
from mobizon_batch.vocabulary import TIMESTAMP_FORMAT, SmsStatus

LIST_PAGE_SIZE = 100
#: Message/List allows at most this many campaign ids in ``criteria[campaignIds]``.
MAX_CAMPAIGN_IDS = MAX_STATUS_IDS
#: API item field → export column.  Facts that a results file also holds get
#: the results file's name, so an export can go straight into ``status`` and
#: ``report``; the rest keep the API's names.  Unlisted fields follow, as named.
EXPORT_COLUMNS = (
    ("id", "message_id"),
    ("campaignId", "campaign_id"),
    ("from", "from"),
    ("to", "recipient"),
    ("text", "text"),
    ("status", "status"),
    ("segNum", "seg_num"),
    ("segUserBuy", "segUserBuy"),
    ("countryA2", "countryA2"),
    ("operatorName", "operatorName"),
    ("startSendTs", "start_send_ts"),
    ("statusUpdateTs", "status_update_ts"),
    ("groups", "groups"),
    ("uuid", "uuid"),
)

PageProgress = Callable[[int, int], None]


class ListSource(Protocol):
    """What reads of Message/List need of a client (the export, the history guard, the
    account clock's newest timestamps): ``MobizonClient`` is one."""

    def list_messages(
        self,
        criteria: Mapping[str, Any] | None = None,
        page: int = 0,
        page_size: int = 100,
        sort: Mapping[str, str] | None = None,
        *,
        with_number_info: bool = False,
    ) -> tuple[list[dict[str, Any]], int]: ...


# ------------------------------------------------------------------ filters


@dataclass(frozen=True)
class ListFilter:
    """The filters of ``mobizon-batch list``, as the API's ``criteria``.

    ``since``/``until`` bound the campaign's creation time (the account's
    local time, as the API keeps it); ``to`` is a substring of the number;
    ``text`` must match exactly (the API's rule).
    """

    since: datetime | None = None
    until: datetime | None = None
    statuses: tuple[str, ...] = ()
    to: str | None = None
    from_name: str | None = None
    text: str | None = None
    campaign_ids: tuple[int, ...] = ()

    def criteria(self, status: str | None = None) -> dict[str, Any]:
        """The ``criteria`` of one Message/List call, for ``status`` if given.

        With one status in ``statuses`` that one is asked for; with several,
        ``status`` says which (see ``calls``): the docs type
        ``criteria[status]`` as a single value, so a list is never sent.
        """
        if len(self.campaign_ids) > MAX_CAMPAIGN_IDS:
            raise ConfigError(
                f"Message/List takes at most {MAX_CAMPAIGN_IDS} campaign ids, "
                f"got {len(self.campaign_ids)}: split the export"
            )
        if self.since and self.until and self.since > self.until:
            raise ConfigError(
                f"--since ({self.since.strftime(TIMESTAMP_FORMAT)}) is after "
                f"--until ({self.until.strftime(TIMESTAMP_FORMAT)})"
            )
        if status is None and len(self.statuses) == 1:
            status = self.statuses[0]
        elif status is None and self.statuses:
            raise ValueError("several statuses take one call each: use ListFilter.calls()")
        criteria: dict[str, Any] = {
            "campaignCreateTsFrom": self.since,
            "campaignCreateTsTo": self.until,
            "status": status,
            "to": self.to or None,
            "from": self.from_name or None,
            "text": self.text or None,
            "campaignIds": list(self.campaign_ids) or None,
        }
        return {key: value for key, value in criteria.items() if value is not None}

    def calls(self) -> list[dict[str, Any]]:
        """The criteria of each Message/List export: one per status asked for.

        Why not one call with ``criteria[status][0]=…&[1]=…``: the docs give
        ``criteria[status]`` one value, and a service that ignored the array
        would list every status as if it had filtered.  Also refuses bad
        filters (``ConfigError``) before any call is made.

        The calls go in the order a message lives (NEW, ENQUEUD, ACCEPTD,
        PDLIVRD, then the rest): a message that moves on between two calls is
        then mostly seen twice (kept once, and the export says the set
        changed) rather than missed by both.
        """
        if not self.statuses:
            return [self.criteria()]
        unique = list(dict.fromkeys(self.statuses))
        ordered = sorted(unique, key=lambda s: _LIFECYCLE.index(s) if s in _LIFECYCLE else 99)
        return [self.criteria(status) for status in ordered]


#: Message statuses in the order a message passes through them.
_LIFECYCLE = (SmsStatus.NEW, SmsStatus.ENQUEUD, SmsStatus.ACCEPTD, SmsStatus.PDLIVRD)


def parse_sort(text: str) -> dict[str, str]:
    """``status`` → ``{"status": "ASC"}``; ``startSendTs:desc`` → ``{"startSendTs": "DESC"}``."""
    name, _, direction = text.strip().partition(":")
    field_name = SORT_FIELDS.get(name.strip().lower().replace("_", ""))
    if field_name is None:
        choices = ", ".join(SORT_FIELDS.values())
        raise ConfigError(f"cannot sort by {name.strip()!r}: choose one of {choices}")
    order = direction.strip().upper() or "ASC"
    if order not in ("ASC", "DESC"):
        raise ConfigError(f"sort direction {direction!r} must be asc or desc")
    return {field_name: order}


_MOMENT_FORMATS = (TIMESTAMP_FORMAT, "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M")
_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_moment(text: str, *, now: datetime, end_of_day: bool = False) -> datetime:
    """A point in time for ``--since``/``--until``.

    ``2026-11-28 14:30[:00]`` as written; ``2026-11-28`` is the start of that
    day, or its last second with ``end_of_day`` (so ``--until 2026-11-28``
    includes the 28th); a duration (``2h``, ``1d``) means that long before
    ``now``.
    """
    value = text.strip()
    if _DATE_ONLY.fullmatch(value):
        try:
            day = datetime.strptime(value, "%Y-%m-%d")
        except ValueError:
            raise ConfigError(f"{text!r} is not a date") from None
        return day + timedelta(days=1, seconds=-1) if end_of_day else day
    for form in _MOMENT_FORMATS:
        try:
            return datetime.strptime(value, form)
        except ValueError:
            continue
    try:
        return (now - timedelta(seconds=parse_duration(value))).replace(microsecond=0)
    except ConfigError:
        raise ConfigError(
            f"{text!r} is neither a time (2026-11-28, 2026-11-28 14:30) "
            f"nor a duration back from now (2h, 1d)"
        ) from None


# ------------------------------------------------------------------- export


@dataclass
class ListExport:
    """Every item the pages gave, once each, and how the paging went."""

    items: list[dict[str, Any]] = field(default_factory=list)
    total_first: int = 0
    total_last: int = 0
    pages: int = 0
    calls: int = 0
    duplicates: int = 0

    @property
    def changed(self) -> bool:
        """True when the set moved under us: the rows are not one consistent snapshot."""
        return len(self.items) != self.total_first or self.total_last != self.total_first


def export_messages(
    client: ListSource,
    filters: ListFilter | None = None,
    *,
    sort: Mapping[str, str] | None = None,
    limiter: RateLimiter | None = None,
    policy: ReadPolicy | None = None,
    progress: PageProgress | None = None,
    page_size: int = LIST_PAGE_SIZE,
) -> ListExport:
    """Fetch every page of Message/List for ``filters``.

    Pages are read until one comes back short or the pages cover the latest
    ``totalItemCount``.  Several statuses are listed one after the other (one
    status a call, see ``ListFilter.calls``) and merged: an item seen under
    two statuses (it moved on between the calls) is kept once, the totals are
    summed, and with a ``sort`` the merged rows are put back in that order.
    ``progress(rows_so_far, total)`` is called after each page.  Country and
    operator are asked for (``withNumberInfo``) because the report groups by them.
    """
    calls = (filters or ListFilter()).calls()
    export = ListExport()
    seen: set[Any] = set()
    counted_first = counted_last = 0  # the totals of the statuses already listed

    for criteria in calls:

        def fetch(page: int, criteria: dict[str, Any] = criteria) -> tuple[list[Any], int]:
            export.calls += 1
            return client.list_messages(criteria, page, page_size, sort, with_number_info=True)

        page = 0
        while True:
            items, total = call_read(partial(fetch, page), limiter=limiter, policy=policy)
            if page == 0:
                export.total_first = counted_first + total
            export.total_last = counted_last + total
            export.pages += 1
            for item in items:
                key = item.get("id")
                if key is not None and key in seen:
                    export.duplicates += 1
                    continue
                if key is not None:
                    seen.add(key)
                export.items.append(item)
            page += 1
            if progress is not None:
                progress(len(export.items), export.total_last)
            if len(items) < page_size or page * page_size >= total:
                break
        counted_first, counted_last = export.total_first, export.total_last
    if len(calls) > 1 and sort:
        field_name, direction = next(iter(sort.items()))
        export.items.sort(
            key=lambda item: _merge_key(item.get(field_name)), reverse=direction == "DESC"
        )
    return export


def _merge_key(value: Any) -> tuple[int, Any]:
    """Sort key for merged rows: numbers by value, the rest as text, missing values first."""
    if value is None or value == "":
        return (0, "")
    if isinstance(value, int | Decimal):
        return (1, value)
    return (2, str(value))


def export_frame(items: list[dict[str, Any]]) -> pd.DataFrame:
    """The items as a table of text columns (see ``EXPORT_COLUMNS`` for the names)."""
    known = {api for api, _ in EXPORT_COLUMNS}
    extra: list[str] = []
    for item in items:
        extra.extend(k for k in item if k not in known and k not in extra)
    columns = [*EXPORT_COLUMNS, *((name, name) for name in extra)]
    data = {column: [_cell(item.get(api)) for item in items] for api, column in columns}
    return pd.DataFrame(data, columns=[column for _, column in columns])


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime(TIMESTAMP_FORMAT)
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, list | tuple):
        return ", ".join(_cell(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


__all__ = [
    "EXPORT_COLUMNS",
    "LIST_PAGE_SIZE",
    "SORT_FIELDS",
    "ListExport",
    "ListFilter",
    "ListSource",
    "export_frame",
    "export_messages",
    "parse_moment",
    "parse_sort",
]
