"""Lost answers: was the message created? Decided from the message list, assuming nothing.

A send whose answer was lost may or may not have created a message, and
Message/List is the only way to tell.  The docs promise little about that
list, so nothing here leans on what they leave open:

* **Ids need not grow with time.**  "Newer than the attempt" is decided by the
  campaign's creation time (``criteria[campaignCreateTsFrom]``), never by id.
* **The account's clock is not ours.**  Listed and queried times are in the
  account's zone, which no answer names.  The offset is learned from our own
  acknowledged sends: for one of them we know when we asked (our clock) and can
  find, with a few ``campaignCreateTsFrom`` queries on its campaign, the second
  the account says it was created (``LearnedOffset``).  What is kept is a *lower
  bound* of the offset, so "created after our intent" never excludes our own
  message; what it may let in is at most a second or two before the intent.
* **The list may lag.**  A message can show only some time after it was made.
  How long is learned from our own acknowledged sends (``ListingLag``): we
  note when each first shows.  "Not created" is concluded only once a lost
  request is older than that delay, with a margin; until then we look again,
  with growing pauses, and give up after a bound — the row stays ``unknown``.
* **Texts may be stored normalized.**  Texts are compared with runs of
  whitespace collapsed and the ends trimmed, and the text is not a query
  criterion (an exact-match criterion would miss a normalized copy).
* **Whose message is it?**  A message another row of this journal owns is never
  adopted (the journal refuses it), nor one a results file of another journal
  on this machine owns (``registry``), nor one the history guard saw before
  anything was sent (``known_before``).

Every decision returns a ``Finding`` the send pass acts on; this module sends
nothing and writes no journal.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from mobizon_batch.client import MobizonClient, to_datetime
from mobizon_batch.listing import ListFilter, export_messages
from mobizon_batch.retries import ReadPolicy, call_read

log = logging.getLogger(__name__)

#: A documented sort field (ids and times are not): the order does not matter here.
_SORT = {"campaignId": "DESC"}
#: Acknowledged sends watched to learn how long the list lags (one List call checks all).
WATCHED_ACKS = 5
#: "Not created" is concluded only after this many times the learned delay (plus a second).
LAG_FACTOR = 1.5
LAG_MARGIN = 1.0
#: The account clock is never more than this far from ours (time zones span -12..+14 h).
MAX_OFFSET = timedelta(hours=27)
#: Queries one offset search may make (an exponential then a binary search over ±27 h).
MAX_OFFSET_QUERIES = 40


def same_text(listed: str, ours: str) -> bool:
    """Whether a listed text is ours, as a service that normalizes whitespace may store it."""
    return " ".join(listed.split()) == " ".join(ours.split())


@dataclass(frozen=True)
class Ack:
    """One send the API answered: our clock before and after, and what it created."""

    message_id: int
    campaign_id: int
    started: datetime  # our clock, naive local time, before the request left
    answered: datetime  # our clock when the answer came


@dataclass(frozen=True)
class Finding:
    """What one lookup found for a row.

    ``candidates`` (``(message_id, campaign_id)``) are unowned listed messages
    to this recipient with this text created after the intent: the row's, if
    the journal agrees no other row owns them.  ``settled`` says the list is
    old enough to show the row's message if there were one: when no candidate
    can be adopted, the request surely created nothing.  ``reason`` says why
    not settled.
    """

    candidates: tuple[tuple[int, int | None], ...] = ()
    settled: bool = False
    reason: str = ""
    calls: int = 0


# --------------------------------------------------------------- the lag


@dataclass
class _Watched:
    ack: Ack
    seen_at: datetime | None = None
    start_send: datetime | None = None


class ListingLag:
    """How long until a message we sent shows in Message/List, from our own sends.

    Only sends acknowledged after ``want()`` (and the last few before it) are
    watched, so a run without lost answers spends no List call on this.  The
    bound is ``seen − started`` of each watched send: never less than the true
    delay, and as precise as the looks are frequent.  While a watched send has
    not shown yet, the delay is at least its age, and no bound is known.
    """

    def __init__(self, saved: float | None = None) -> None:
        self.saved = saved  # a bound an earlier run of this journal learned
        self.wanted = False
        self.recent: deque[Ack] = deque(maxlen=3)
        self.watched: list[_Watched] = []
        self.lock = threading.Lock()

    def want(self) -> None:
        """Start watching: a lookup will need the delay."""
        with self.lock:
            if not self.wanted:
                self.wanted = True
                self.watched.extend(_Watched(ack) for ack in self.recent)

    def note(self, ack: Ack) -> None:
        with self.lock:
            self.recent.append(ack)
            if self.wanted and len(self.watched) < WATCHED_ACKS:
                self.watched.append(_Watched(ack))

    def unseen(self) -> list[_Watched]:
        with self.lock:
            return [w for w in self.watched if w.seen_at is None]

    def seen(self) -> list[_Watched]:
        with self.lock:
            return [w for w in self.watched if w.seen_at is not None]

    def learned(self) -> float | None:
        """The bound this run learned (every watched send has shown), else None."""
        with self.lock:
            watched = list(self.watched)
        if not watched or any(w.seen_at is None for w in watched):
            return None
        return max((w.seen_at - w.ack.started).total_seconds() for w in watched if w.seen_at)

    def bound(self, now: datetime) -> float | None:
        """Seconds after which a message surely shows, or None while not known.

        Learned in this run when every watched send has shown; otherwise an
        earlier run's bound, unless a watched send has already waited longer.
        """
        with self.lock:
            watched = list(self.watched)
        seen = [(w.seen_at - w.ack.started).total_seconds() for w in watched if w.seen_at]
        waiting = [(now - w.ack.started).total_seconds() for w in watched if w.seen_at is None]
        if seen and not waiting:
            return max(seen)
        if self.saved is not None and all(age <= self.saved for age in waiting):
            return max([self.saved, *seen])
        return None


def lag_wait(bound: float) -> float:
    """How long after a lost request its message must have shown, if it was created."""
    return LAG_FACTOR * bound + LAG_MARGIN


# ------------------------------------------------------------- the clock


class LearnedOffset:
    """A lower bound of how far the account's clock is ahead of ours.

    Learned from one watched send that has shown in the list: the predicate
    "its campaign is listed with ``campaignCreateTsFrom = X``" is true exactly
    for X up to its creation second, so an exponential search from a guess (its
    ``startSendTs``, which is never earlier than the creation) and a binary
    search find that second in a few queries.  The message was created no later
    than our ``answered``, so ``offset ≥ created − answered``.
    """

    def __init__(self) -> None:
        self.offset: timedelta | None = None
        self.queries = 0

    def learn(self, watched: _Watched, listed: Callable[[int, datetime], bool]) -> bool:
        """Find the creation second of ``watched`` with ``listed(campaign, X)``."""
        ack = watched.ack
        guess = (watched.start_send or ack.answered).replace(microsecond=0)
        low_limit, high_limit = guess - 2 * MAX_OFFSET, guess + 2 * MAX_OFFSET

        def created_from(moment: datetime) -> bool:
            self.queries += 1
            return listed(ack.campaign_id, moment)

        budget = self.queries + MAX_OFFSET_QUERIES
        step = timedelta(seconds=1)
        # Exponential search: low is listed (created ≥ low), high is not.
        if created_from(guess):
            low, high = guess, guess + step
            while created_from(high):
                low, step = high, step * 2
                high = low + step
                if high > high_limit or self.queries >= budget:
                    return False
        else:
            high, low = guess, guess - step
            while not created_from(low):
                high, step = low, step * 2
                low = high - step
                if low < low_limit or self.queries >= budget:
                    return False
        while high - low > timedelta(seconds=1):
            if self.queries >= budget:
                return False
            middle = low + (high - low) / 2
            middle = middle.replace(microsecond=0)
            if created_from(middle):
                low = middle
            else:
                high = middle
        self.offset = low - ack.answered
        log.info("the account's clock is at least %s ahead of ours", self.offset)
        return True

    def floor(self, intent: datetime) -> datetime:
        """The earliest account time a message made by a request after ``intent`` can carry."""
        assert self.offset is not None
        return (intent + self.offset).replace(microsecond=0)


# ------------------------------------------------------------- the lookup


@dataclass
class Reconciler:
    """Looks lost answers up; shared by the workers, learns as it goes.

    ``known_before``: ids of messages listed before anything was sent (the
    history guard's); ``owned_elsewhere(ids)`` gives those another journal on
    this machine owns.  ``now`` is our clock (naive local time).
    """

    client: MobizonClient
    policy: ReadPolicy
    known_before: Collection[int] = ()
    #: sends an earlier run of this journal saw accepted (for the clock, when this run has none)
    earlier_acks: Sequence[Ack] = ()
    owned_elsewhere: Callable[[Collection[int]], set[int]] = field(default=lambda ids: set())
    saved_lag: float | None = None
    now: Callable[[], datetime] = datetime.now
    lag: ListingLag = field(init=False)
    clock: LearnedOffset = field(default_factory=LearnedOffset)
    calls: int = 0
    _learning: threading.Lock = field(default_factory=threading.Lock)
    _calls_lock: threading.Lock = field(default_factory=threading.Lock)
    _last_look: float = 0.0

    def __post_init__(self) -> None:
        self.lag = ListingLag(self.saved_lag)

    def note_ack(self, ack: Ack) -> None:
        """Every acknowledged send of the pass (cheap: no call unless a lookup needs it)."""
        self.lag.note(ack)

    def want(self) -> None:
        """A lost answer exists: start watching our sends."""
        self.lag.want()

    # ----------------------------------------------------------- learning

    def _list(self, criteria: dict[str, Any], page_size: int = 100) -> list[dict[str, Any]]:
        with self._calls_lock:
            self.calls += 1
        fetch = partial(self.client.list_messages, criteria, 0, page_size, _SORT)
        items, _ = call_read(fetch, policy=self.policy)
        return items

    def _look_at_watched(self) -> None:
        """One List call: which watched sends show now (and their start times)."""
        if time.monotonic() - self._last_look < 0.2:
            return  # another worker just looked
        unseen = self.lag.unseen()
        if not unseen:
            return
        self._last_look = time.monotonic()
        items = self._list({"campaignIds": [w.ack.campaign_id for w in unseen]})
        moment = self.now()
        shown = {item.get("id"): item for item in items}
        with self.lag.lock:
            for watched in unseen:
                item = shown.get(watched.ack.message_id)
                if item is not None:
                    watched.seen_at = moment
                    watched.start_send = to_datetime(item.get("startSendTs"))

    def _created_from(self, campaign_id: int, moment: datetime) -> bool:
        items = self._list(
            {"campaignIds": [campaign_id], "campaignCreateTsFrom": moment}, page_size=25
        )
        return bool(items)

    def _earlier_shown(self) -> list[_Watched]:
        """The earlier run's sends, as listed now (one List call, once)."""
        acks, self.earlier_acks = list(self.earlier_acks), ()
        if not acks:
            return []
        items = self._list({"campaignIds": [ack.campaign_id for ack in acks]})
        shown = {item.get("id"): item for item in items}
        moment = self.now()
        return [
            _Watched(ack, moment, to_datetime(shown[ack.message_id].get("startSendTs")))
            for ack in acks
            if ack.message_id in shown
        ]

    def learn(self) -> None:
        """Bring what is known of the list's delay and the account's clock up to date."""
        with self._learning:
            self._look_at_watched()
            if self.clock.offset is None:
                # This run's sends first (their times are exact), else the journal's.
                seen = self.lag.seen() or self._earlier_shown()
                if seen:
                    # The send with the shortest round trip bounds the offset best.
                    best = min(seen, key=lambda w: w.ack.answered - w.ack.started)
                    before = self.clock.queries
                    self.clock.learn(best, self._created_from)
                    log.debug("offset search: %d queries", self.clock.queries - before)

    # ------------------------------------------------------------ deciding

    def lookup(self, recipient: str, text: str, intent: datetime, ended: datetime) -> Finding:
        """Look for the message a request made after ``intent`` (ended by ``ended``) created.

        Raises MobizonBatchError when the list cannot be read.
        """
        self.want()
        before = self.calls
        self.learn()
        if self.clock.offset is None:
            # Without the account's clock, "created after the intent" cannot be told.
            return Finding(reason=_NO_CLOCK, calls=self.calls - before)
        since = self.clock.floor(intent)
        listed = export_messages(
            self.client, ListFilter(since=since, to=recipient), sort=_SORT, policy=self.policy
        )
        with self._calls_lock:
            self.calls += listed.calls
        candidates = self._candidates(listed.items, recipient, text)
        bound = self.lag.bound(self.now())
        waited = (self.now() - ended).total_seconds()
        settled = bound is not None and waited >= lag_wait(bound)
        reason = ""
        if not settled:
            reason = _NO_LAG if bound is None else _TOO_SOON
        return Finding(tuple(candidates), settled, reason, self.calls - before)

    def _candidates(
        self, items: Sequence[dict[str, Any]], recipient: str, text: str
    ) -> list[tuple[int, int | None]]:
        """Listed messages that can be this row's: exact recipient, same text, nobody else's."""
        found: list[tuple[int, int | None]] = []
        for item in items:
            message_id, campaign_id = item.get("id"), item.get("campaignId")
            if not isinstance(message_id, int):
                continue
            if str(item.get("to", "")) != recipient:  # ``to`` is a substring criterion
                continue
            if not same_text(str(item.get("text", "")), text):
                continue
            if message_id in self.known_before:  # it was there before we sent anything
                continue
            found.append((message_id, campaign_id if isinstance(campaign_id, int) else None))
        elsewhere = self.owned_elsewhere([m for m, _ in found]) if found else set()
        return [pair for pair in found if pair[0] not in elsewhere]


_NO_CLOCK = "the account's clock is not known yet (no acknowledged send has shown in the list)"
_NO_LAG = "how long the message list lags is not known yet"
_TOO_SOON = "the message list may not show it yet"


def describe_unsure(reason: str) -> str:
    """The sentence a row left ``unknown`` carries."""
    return (
        f"outcome unknown: the answer was lost and the message list could not settle it "
        f"({reason}); not sent again. Run the same command later to look again, "
        f"or check the Mobizon panel"
    )


__all__ = [
    "Ack",
    "Finding",
    "LearnedOffset",
    "ListingLag",
    "Reconciler",
    "describe_unsure",
    "lag_wait",
    "same_text",
]
