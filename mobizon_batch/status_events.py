"""Statuses from webhook events: fill a results table from what Mobizon pushed.

Why first: a final status pushed by Mobizon is the same answer GetSMSStatus
would give, already paid for; asking again would spend a call per 100 rows
per round.  So the status pass fills every row it can from the event store
and asks the API only about the rest (``status.refresh_statuses(prefill=…)``).

What it trusts: only final statuses (the documentation says Mobizon pushes
nothing else; a non-final one would still be asked about), and only rows that
are not final already (a final status never changes).  A row filled from an
event gets the event's status, segment count and update time; its
``status_checked_at`` is when the receiver stored the event; ``start_send_ts``
is not in events and keeps what it had.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

import pandas as pd

from mobizon_batch.resultfile import (
    ensure_status_columns,
    locate_columns,
    parse_message_id,
)
from mobizon_batch.status import TRUE, Prefill
from mobizon_batch.vocabulary import is_final_status as is_final

#: The status columns an event fills (``start_send_ts`` is not in events).
_FILLED = ("status", "status_final", "seg_num", "status_update_ts", "status_checked_at")


class PushedReport(Protocol):
    """A pushed status: ``webhook_store.DeliveryReport`` is one."""

    @property
    def status(self) -> str: ...
    @property
    def seg_num(self) -> int | None: ...
    @property
    def status_update_ts(self) -> str | None: ...
    @property
    def received_at(self) -> str: ...


class ReportSource(Protocol):
    """Where pushed statuses are kept: ``webhook_store.EventStore`` is one."""

    def reports_for(self, message_ids: Iterable[int]) -> Mapping[int, PushedReport]: ...


def fill_from_events(frame: pd.DataFrame, source: ReportSource) -> int:
    """Fill the status columns of rows not final yet whose message has a final report.

    ``frame`` is changed in place (status columns added if missing); returns
    the number of rows filled.  A frame without a ``message_id`` column is left
    alone: the status pass says what is wrong with it.
    """
    id_column = locate_columns(frame.columns).get("message_id")
    if id_column is None or frame.empty:
        return 0
    names = ensure_status_columns(frame)
    statuses = frame[names["status"]].tolist()
    rows_of: dict[int, list[int]] = {}
    for position, cell in enumerate(frame[id_column].tolist()):
        message_id = parse_message_id(cell)
        if message_id is None or is_final(str(statuses[position] or "")):
            continue
        rows_of.setdefault(message_id, []).append(position)
    if not rows_of:
        return 0
    reports = source.reports_for(rows_of)
    updates: dict[str, dict[int, str]] = {name: {} for name in _FILLED}
    filled = 0
    for message_id, report in reports.items():
        if message_id not in rows_of or not is_final(report.status):
            continue
        for position in rows_of[message_id]:
            updates["status"][position] = report.status
            updates["status_final"][position] = TRUE
            if report.seg_num is not None:
                updates["seg_num"][position] = str(report.seg_num)
            updates["status_update_ts"][position] = report.status_update_ts or ""
            updates["status_checked_at"][position] = report.received_at
            filled += 1
    for canonical, changes in updates.items():
        if changes:
            column = frame[names[canonical]].tolist()
            for position, value in changes.items():
                column[position] = value
            frame[names[canonical]] = column
    return filled


def from_events(source: ReportSource) -> Prefill:
    """The prefill for ``refresh_statuses`` / ``wait_until_final``."""

    def prefill(frame: pd.DataFrame) -> int:
        return fill_from_events(frame, source)

    return prefill


__all__ = ["PushedReport", "ReportSource", "fill_from_events", "from_events"]
