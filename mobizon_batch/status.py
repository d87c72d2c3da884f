"""The status pass: ask Mobizon how sent messages are doing, and write it down.

Why it works on a DataFrame and not on the journal: the morning-after
question ("what was delivered?") is asked of a spreadsheet — ours from last
night, or anybody's that has a ``message_id`` column — so the pass needs
nothing but that column, and it leaves every other column as it found it.

The rules it keeps (see the API notes):
- only rows whose status is not final are asked about; a final status never
  changes, so asking again would only spend calls;
- GetSMSStatus takes at most 100 ids, so n distinct pending ids cost
  ⌈n/100⌉ calls, and no id appears twice in one call (rows that share an id
  share the answer);
- a status string we do not know is kept verbatim and treated as not final;
- an id that Mobizon leaves out of its answer is marked ``NOT_FOUND`` (not
  final: a later pass asks again) instead of stopping the pass;
- a ``prefill`` (``status_events.from_events``: statuses Mobizon pushed to the
  webhook receiver) fills rows first; the rows it made final are not asked about.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from typing import Any, Protocol

import pandas as pd

from mobizon_batch.client import MAX_STATUS_IDS, StatusRecord
from mobizon_batch.errors import InputError
from mobizon_batch.ratelimit import RateLimiter
from mobizon_batch.resultfile import (
    MESSAGE_ID_COLUMN,
    STATUS_COLUMNS,
    ensure_status_columns,
    is_blank,
    locate_columns,
    parse_message_id,
)
from mobizon_batch.retries import ReadPolicy, call_read
from mobizon_batch.vocabulary import NOT_FOUND, TIMESTAMP_FORMAT, is_final_status

TRUE, FALSE = "true", "false"
_MAX_EXAMPLES = 5

Progress = Callable[["RefreshResult"], None]
#: Fills status cells of a frame from elsewhere before a refresh; returns rows filled.
Prefill = Callable[[pd.DataFrame], int]


class StatusSource(Protocol):
    """What the pass needs of a client: ``MobizonClient`` is one."""

    def get_sms_status(self, ids: Iterable[int]) -> list[StatusRecord]: ...


# ---------------------------------------------------------------- cell rules


def _text(cell: Any) -> str:
    if isinstance(cell, str):
        return cell
    return "" if is_blank(cell) else str(cell)


def _timestamp(moment: datetime | None) -> str:
    return moment.strftime(TIMESTAMP_FORMAT) if moment is not None else ""


# ------------------------------------------------------------------- results


@dataclass
class RefreshResult:
    """What one refresh did, and where the rows stand after it.

    Row counts (``rows`` … ``not_found``) count rows of the table; ``to_ask``
    and ``asked`` count distinct ids; ``calls`` counts GetSMSStatus requests,
    retries included.
    """

    rows: int = 0
    with_id: int = 0
    without_id: int = 0
    #: cells in ``message_id`` that are not an id; examples name spreadsheet rows
    skipped: int = 0
    skipped_examples: list[str] = field(default_factory=list)
    already_final: int = 0
    #: of ``already_final``: rows the prefill (pushed statuses) made final this time
    from_events: int = 0
    to_ask: int = 0
    asked: int = 0
    calls: int = 0
    updated: int = 0
    not_found: int = 0
    final: int = 0
    by_status: Counter[str] = field(default_factory=Counter)

    @property
    def not_final(self) -> int:
        """Rows with an id whose status is not final (``NOT_FOUND`` included)."""
        return self.with_id - self.final

    @property
    def pending(self) -> int:
        """Rows still on their way: not final, and known to Mobizon."""
        return self.not_final - self.not_found

    @property
    def all_final(self) -> bool:
        return self.not_final == 0


@dataclass(frozen=True)
class WaitResult:
    """How ``wait_until_final`` ended."""

    rounds: int
    calls: int
    waited: float
    last: RefreshResult
    #: rows filled by the prefill over all rounds
    from_events: int = 0

    @property
    def all_final(self) -> bool:
        return self.last.all_final


# --------------------------------------------------------------------- passes


def refresh_statuses(
    frame: pd.DataFrame,
    client: StatusSource,
    *,
    limiter: RateLimiter | None = None,
    now: Callable[[], datetime] = datetime.now,
    progress: Progress | None = None,
    policy: ReadPolicy | None = None,
    prefill: Prefill | None = None,
) -> RefreshResult:
    """Ask GetSMSStatus about every row of ``frame`` that is not final; fill its columns.

    ``prefill`` runs first (see ``Prefill``); what it made final is counted
    in ``from_events`` and not asked about.

    ``frame`` is changed in place: the status columns are added if missing
    and filled, and ``message_id`` cells are rewritten as plain integers
    (``41000001.0`` → ``41000001``).  Every other column is left untouched.
    ``progress`` receives a snapshot after each call.  If a call fails for
    good, the rows answered so far are already in ``frame`` when the error
    propagates, so the caller can still save them.
    """
    id_column = locate_columns(frame.columns).get(MESSAGE_ID_COLUMN)
    if id_column is None:
        found = ", ".join(str(c) for c in frame.columns) or "none"
        raise InputError(
            f"the file has no {MESSAGE_ID_COLUMN} column, so there is nothing to ask "
            f"about (columns found: {found})"
        )
    from_events = prefill(frame) if prefill is not None else 0
    names = ensure_status_columns(frame)
    result = RefreshResult(rows=len(frame), from_events=from_events)
    id_cells = frame[id_column].tolist()
    id_texts = [_text(cell) for cell in id_cells]
    columns = {
        name: [_text(cell) for cell in frame[names[name]].tolist()] for name in STATUS_COLUMNS
    }
    row_ids: list[int | None] = [None] * len(id_cells)
    rows_of: dict[int, list[int]] = {}
    for position, cell in enumerate(id_cells):
        if is_blank(cell):
            result.without_id += 1
            continue
        message_id = parse_message_id(cell)
        if message_id is None:
            result.skipped += 1
            if len(result.skipped_examples) < _MAX_EXAMPLES:
                result.skipped_examples.append(f"row {position + 2}: {str(cell)[:40]!r}")
            continue
        result.with_id += 1
        row_ids[position] = message_id
        id_texts[position] = str(message_id)
        if is_final_status(columns["status"][position]):
            result.already_final += 1
        else:
            rows_of.setdefault(message_id, []).append(position)
    pending_ids = list(rows_of)
    result.to_ask = len(pending_ids)

    def ask(batch: list[int]) -> list[StatusRecord]:
        result.calls += 1
        return client.get_sms_status(batch)

    try:
        for start in range(0, len(pending_ids), MAX_STATUS_IDS):
            batch = pending_ids[start : start + MAX_STATUS_IDS]
            records = call_read(partial(ask, batch), limiter=limiter, policy=policy)
            checked_at = _timestamp(now())
            answered = {record.id: record for record in records}
            for message_id in batch:
                record = answered.get(message_id)
                for position in rows_of[message_id]:
                    _fill(columns, position, record, checked_at)
                    if record is not None:
                        result.updated += 1
            result.asked += len(batch)
            if progress is not None:
                progress(replace(result))
    finally:
        frame[id_column] = id_texts
        for name in STATUS_COLUMNS:
            frame[names[name]] = columns[name]
    statuses = [columns["status"][p] for p, i in enumerate(row_ids) if i is not None]
    result.final = sum(1 for status in statuses if is_final_status(status))
    result.not_found = sum(
        1
        for position in (p for ps in rows_of.values() for p in ps)
        if columns["status"][position] == NOT_FOUND
    )
    result.by_status = Counter(status or "(none)" for status in statuses)
    return result


def _fill(
    columns: dict[str, list[str]], position: int, record: StatusRecord | None, checked_at: str
) -> None:
    """Write one answer (or its absence) into row ``position``."""
    columns["status_checked_at"][position] = checked_at
    if record is None:
        # Mobizon silently leaves out ids it does not know (a foreign account,
        # a typo): say so, keep what an earlier pass learned, ask again later.
        columns["status"][position] = NOT_FOUND
        columns["status_final"][position] = FALSE
        return
    columns["status"][position] = record.status
    columns["status_final"][position] = TRUE if is_final_status(record.status) else FALSE
    columns["seg_num"][position] = "" if record.seg_num is None else str(record.seg_num)
    columns["start_send_ts"][position] = _timestamp(record.start_send_ts)
    columns["status_update_ts"][position] = _timestamp(record.status_update_ts)


def wait_until_final(
    frame: pd.DataFrame,
    client: StatusSource,
    *,
    timeout: float,
    interval: float = 60.0,
    max_interval: float = 900.0,
    backoff: float = 1.5,
    limiter: RateLimiter | None = None,
    policy: ReadPolicy | None = None,
    now: Callable[[], datetime] = datetime.now,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    on_round: Progress | None = None,
    progress: Progress | None = None,
    prefill: Prefill | None = None,
) -> WaitResult:
    """Refresh, pause, refresh again … until no row is pending or ``timeout`` runs out.

    Pauses start at ``interval`` seconds and grow by ``backoff`` up to
    ``max_interval`` (or ``interval``, if that is longer): most messages
    settle in minutes, the slow ones can take up to a day, and a long wait
    should not hammer the API.  The last pause is cut short so that one more
    refresh happens right at the deadline.

    The loop also stops when the only rows left are ``NOT_FOUND``: Mobizon
    does not know those ids, and waiting will not change that.  Each round
    asks only about rows that are still not final, after ``prefill`` (run
    every round: pushed statuses keep arriving while we wait).
    """
    started = clock()
    delay = interval
    rounds = calls = from_events = 0
    while True:
        result = refresh_statuses(
            frame,
            client,
            limiter=limiter,
            now=now,
            progress=progress,
            policy=policy,
            prefill=prefill,
        )
        rounds += 1
        calls += result.calls
        from_events += result.from_events
        if on_round is not None:
            on_round(result)
        remaining = timeout - (clock() - started)
        if result.pending == 0 or remaining <= 0:
            return WaitResult(rounds, calls, clock() - started, result, from_events)
        sleep(min(delay, remaining))
        delay = min(delay * backoff, max(max_interval, interval))


__all__ = [
    "Prefill",
    "RefreshResult",
    "StatusSource",
    "WaitResult",
    "refresh_statuses",
    "wait_until_final",
]
