"""The history guard: never send a recipient a text the account already sent them lately.

Why: the journal protects one results file; nothing else stops the same list
from going out again — a mistyped ``-o``, a job whose ``{date}`` changed after
midnight, a list sent from the web panel.  Before sending, the guard asks the
account (Message/List) what it has sent within the resend window, and a row
whose recipient already got the same text becomes ``already_sent``, carrying
that message's id (so ``status`` and ``report`` work on it).

What counts as sent: messages of campaigns that were *sent*
(``criteria[campaignSentTsFrom]``).  Recipients staged in a campaign not yet
sent reach nobody, so they do not count — neither another list's nor this
journal's own after a crash.  Messages this journal already owns belong to its
rows and are not history.  Texts compare with whitespace normalized (a service
may store them so).  Each history message answers for one row only: a list that
asks for the same text twice (``--allow-duplicates``) and found one copy sent
still sends the other.

The query is the cheapest of two: one listing per distinct text
(``criteria[text]``, in the text's own and its normalized form) when the list has
few texts, or the whole window when that is fewer pages.  The first page of the
window tells its size, and that page is not wasted when the window wins.  Calls
are bounded (``max_calls``); a guard that would need more stops and says so
rather than guessing.  Once the first page has told the window's size, the
other pages are asked ``LIST_WORKERS`` at a time: a big account's window is
many pages, and asked one after another each waits out the network.  Pages
asked at once are read in no set order, so a window that moved meanwhile is
read again one page after another (see ``_Budget.window_pages``).
"""

from __future__ import annotations

import math
import queue
import threading
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from mobizon_batch.config import DEFAULT_HISTORY_WINDOW
from mobizon_batch.errors import ConfigError
from mobizon_batch.listing import LIST_PAGE_SIZE, ListSource
from mobizon_batch.retries import ReadPolicy, call_read

DEFAULT_WINDOW = DEFAULT_HISTORY_WINDOW
#: Without a learned account clock the window is widened by the largest gap two zones can have.
UNKNOWN_CLOCK_WIDENING = timedelta(hours=26)
DEFAULT_MAX_CALLS = 5000
_Page = tuple[list[dict[str, Any]], int]
#: pages of the window asked at once, once its size is known (each read retried as every read)
LIST_WORKERS = 4


def normalized(text: str) -> str:
    return " ".join(text.split())


@dataclass(frozen=True)
class Planned:
    """A row about to be sent, as the guard sees it."""

    row_key: str
    recipient: str
    text: str


@dataclass(frozen=True)
class Earlier:
    """A message the account already sent that answers for one planned row."""

    message_id: int
    campaign_id: int | None
    started: str  # the listed ``startSendTs`` (account time), may be empty


@dataclass
class GuardReport:
    """What the guard did: rows it settled, messages it saw, and its cost."""

    already: dict[str, Earlier] = field(default_factory=dict)
    seen_ids: set[int] = field(default_factory=set)
    calls: int = 0
    query: str = ""  # "by text" or "by time window"
    since: datetime | None = None  # the window's start, account time
    widened: bool = False  # the account clock was unknown: looked further back

    def reason(self, earlier: Earlier, window: timedelta) -> str:
        when = f" at {earlier.started}" if earlier.started else ""
        return (
            f"not sent: the account already sent this text to this number within "
            f"{_duration(window)} (message {earlier.message_id}{when}); "
            f"--allow-resend sends it again"
        )


def guard(
    client: ListSource,
    rows: Sequence[Planned],
    *,
    window: timedelta = DEFAULT_WINDOW,
    offset: float | None = None,
    own_ids: Collection[int] = (),
    policy: ReadPolicy | None = None,
    max_calls: int = DEFAULT_MAX_CALLS,
    now: Callable[[], datetime] = datetime.now,
) -> GuardReport:
    """Find, for each planned row, a message the account sent it within ``window``.

    ``offset``: the account clock's lead over ours in seconds, when known
    (otherwise the window is widened, erring towards not sending).
    ``own_ids``: messages this journal owns (its own rows, not history).
    """
    report = GuardReport()
    if not rows:
        return report
    lead = timedelta(seconds=offset) if offset is not None else timedelta(0)
    report.widened = offset is None
    since = now() + lead - window - (UNKNOWN_CLOCK_WIDENING if offset is None else timedelta(0))
    report.since = since.replace(microsecond=0)
    wanted: dict[tuple[str, str], list[str]] = defaultdict(list)
    for row in rows:
        wanted[(row.recipient, normalized(row.text))].append(row.row_key)
    base = {"campaignSentTsFrom": report.since}
    budget = _Budget(client, policy, max_calls, report)
    first, total = budget.page(base, 0)
    window_pages = max(1, math.ceil(total / LIST_PAGE_SIZE))
    texts = _text_variants(row.text for row in rows)
    if len(texts) < window_pages - 1:
        report.query = "by text"
        items: list[dict[str, Any]] = []
        for text in texts:
            items.extend(budget.all_pages({**base, "text": text}))
    else:
        report.query = "by time window"
        items = budget.window_pages(base, first, total)
    owned = set(own_ids)
    for item in _unique(items):
        message_id = item.get("id")
        if not isinstance(message_id, int) or message_id in owned:
            continue
        pair = (str(item.get("to", "")), normalized(str(item.get("text", ""))))
        keys = wanted.get(pair)
        if keys is None:
            continue
        report.seen_ids.add(message_id)
        free = [key for key in keys if key not in report.already]
        if free:
            campaign = item.get("campaignId")
            report.already[free[0]] = Earlier(
                message_id,
                campaign if isinstance(campaign, int) else None,
                str(item.get("startSendTs") or ""),
            )
    return report


def _text_variants(texts: Iterable[str]) -> list[str]:
    """Each distinct text, and its whitespace-normalized form when that differs."""
    variants: dict[str, None] = {}
    for text in texts:
        variants[text] = None
        variants[normalized(text)] = None
    return list(variants)


def _unique(items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: set[Any] = set()
    unique = []
    for item in items:
        key = item.get("id")
        if key in seen:
            continue
        seen.add(key)
        unique.append(item)
    return unique


class _Budget:
    """Pages of Message/List, counted, within ``max_calls``."""

    def __init__(
        self, client: ListSource, policy: ReadPolicy | None, max_calls: int, report: GuardReport
    ) -> None:
        self.client, self.policy, self.max_calls, self.report = client, policy, max_calls, report
        self._counting = threading.Lock()  # pages may be asked from several threads

    def page(self, criteria: dict[str, Any], number: int) -> tuple[list[dict[str, Any]], int]:
        with self._counting:
            if self.report.calls >= self.max_calls:
                raise ConfigError(
                    f"the history guard stopped after {self.report.calls} Message/List calls "
                    f"without covering the resend window: shorten --resend-window, or pass "
                    f"--allow-resend if this list may go to people who already got it"
                )
            self.report.calls += 1

        def fetch() -> tuple[list[dict[str, Any]], int]:
            return self.client.list_messages(
                criteria, number, LIST_PAGE_SIZE, {"campaignId": "ASC"}
            )

        return call_read(fetch, policy=self.policy)

    def window_pages(
        self, criteria: dict[str, Any], first: list[dict[str, Any]], total: int
    ) -> list[dict[str, Any]]:
        """The window's messages: ``first`` (page 0, which said ``total``), then the other
        pages, asked ``LIST_WORKERS`` at a time.

        Why a second reading when the window moved: read one after another, a
        message that a newly sent campaign pushes down the listing moves onto a
        page not read yet, so it is met once or twice, never missed.  Pages
        asked at once are read in no set order: one pushed off a page read late
        onto a page read early is on neither, and a missed message is sent
        twice.  The pages read at once are kept only when they prove they saw
        one window: every one reported the same total, or as many messages were
        read as the largest total any page reported.  Otherwise the window is
        read again one page after another, and both readings count.
        """
        rest, totals = self._pages_at_once(criteria, total)
        items = first + rest
        read = {item.get("id") for item in items} - {None}
        # Page 0 was read before every other page: a message moved past it moved
        # onto a page read later, so its total need not agree with theirs.
        steady = len(set(totals)) <= 1 and min(totals, default=total) >= total
        if not steady and len(read) < max([total, *totals]):
            items += self.all_pages(criteria)
        return items

    def _pages_at_once(
        self, criteria: dict[str, Any], total: int
    ) -> tuple[list[dict[str, Any]], list[int]]:
        """Pages 1.. asked ``LIST_WORKERS`` at a time: their messages in page order, and
        the total each reported.

        As one after another would: pages are asked while the largest total
        any page reported is not covered (a window that grows while it is
        listed is followed) and none came back short.  A page's failure is
        raised here, once the pages in flight have ended.

        Each page is read by a daemon thread of its own rather than a pool's:
        Ctrl-C (or SIGTERM) stops the guard at once, as it stopped the reads
        one after another, instead of waiting out the reads in flight and
        their retries; those only read, and end with the process.
        """
        pages: dict[int, list[dict[str, Any]]] = {}
        totals: list[int] = []
        answers: queue.Queue[tuple[int, _Page | None, BaseException | None]] = queue.Queue()
        failure: BaseException | None = None
        running, number, short = 0, 1, False

        def read(asked: int) -> None:
            try:
                answers.put((asked, self.page(criteria, asked), None))
            except BaseException as exc:  # raised again below, in the guard's thread
                answers.put((asked, None, exc))

        while True:
            while (
                failure is None
                and not short
                and running < LIST_WORKERS
                and number * LIST_PAGE_SIZE < total
            ):
                name = f"history-page-{number}"
                threading.Thread(target=read, args=(number,), name=name, daemon=True).start()
                running, number = running + 1, number + 1
            if not running:
                break
            asked, answer, error = answers.get()
            running -= 1
            if answer is None:
                failure = failure or error
                continue
            page, reported = answer
            pages[asked] = page
            totals.append(reported)
            total = max(total, reported)
            short = short or len(page) < LIST_PAGE_SIZE
        if failure is not None:
            raise failure
        return [item for asked in sorted(pages) for item in pages[asked]], totals

    def all_pages(self, criteria: dict[str, Any]) -> list[dict[str, Any]]:
        """Every page, one after another (a query by text: a page or two)."""
        items: list[dict[str, Any]] = []
        number = 0
        total: int | None = None
        while total is None or number * LIST_PAGE_SIZE < total:
            page, total = self.page(criteria, number)
            items.extend(page)
            number += 1
            if len(page) < LIST_PAGE_SIZE:
                break
        return items


def _duration(window: timedelta) -> str:
    seconds = int(window.total_seconds())
    if seconds % 86400 == 0:
        return f"{seconds // 86400}d" if seconds != 86400 else "24h"
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds}s"


__all__ = [
    "DEFAULT_WINDOW",
    "LIST_WORKERS",
    "Earlier",
    "GuardReport",
    "Planned",
    "guard",
    "normalized",
]
