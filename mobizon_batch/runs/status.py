"""refresh_statuses: fill in the delivery statuses of a results file, and save it.

The domain function of the same name works on a DataFrame; this one owns
the file: it refuses files it would damage (a foreign ``status`` column, a
workbook whose other sheets a write-back would drop), and saves whatever was
learned — after each round of a wait, at the end, and when an error or an
interruption ends the pass part way.

With ``events`` (the webhook receiver's store), rows whose final status
Mobizon pushed are filled from it first, every round, and only the rest are
asked about.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import openpyxl
import pandas as pd

from mobizon_batch.campaign_status import mark_declined
from mobizon_batch.client import MobizonClient, StatusRecord
from mobizon_batch.config import DEFAULT_READ_RATE as DEFAULT_READ_RATE
from mobizon_batch.errors import ConfigError, InputError
from mobizon_batch.ratelimit import RateLimiter
from mobizon_batch.resultfile import MESSAGE_ID_COLUMN, locate_columns, with_integer_cells
from mobizon_batch.runs.common import ApiOptions, Observer, client_for, output_delimiter
from mobizon_batch.status import (
    Prefill,
    RefreshResult,
    StatusSource,
    WaitResult,
    wait_until_final,
)
from mobizon_batch.status import refresh_statuses as refresh_frame
from mobizon_batch.status_events import fill_from_events
from mobizon_batch.table import InputTable, ReadLimits, check_output_path, read_table, write_table
from mobizon_batch.webhook_store import EventStore

DEFAULT_WAIT_INTERVAL = 60.0


@dataclass(frozen=True)
class StatusOptions:
    """Which file to refresh, where to write it (None: back into it), how long to wait.

    ``wait`` and ``interval`` are seconds; without ``wait`` the ids are asked
    about once.  ``events`` is the webhook receiver's store (see above).
    ``raw_csv`` writes a CSV's cells exactly as they are, even those Excel
    would run as formulas.
    """

    results: str | os.PathLike[str]
    output: str | os.PathLike[str] | None = None
    sheet: str | None = None
    wait: float | None = None
    interval: float | None = None
    events: str | os.PathLike[str] | None = None
    rate: float = DEFAULT_READ_RATE
    api: ApiOptions = field(default_factory=ApiOptions)
    raw_csv: bool = False


@dataclass(frozen=True)
class StatusResult:
    """Where the rows stand, how the wait ended (None without one), and what was written."""

    refresh: RefreshResult
    wait: WaitResult | None
    output: Path
    writes: int

    @property
    def all_final(self) -> bool:
        return self.wait is None or self.wait.all_final

    @property
    def from_events(self) -> int:
        """Rows filled from the webhook store (over all rounds of a wait)."""
        return self.wait.from_events if self.wait is not None else self.refresh.from_events


def refresh_statuses(options: StatusOptions, observer: Observer | None = None) -> StatusResult:
    """Ask Mobizon about every row not final yet and write the status columns back."""
    observer = observer or Observer()
    if options.interval is not None and options.wait is None:
        raise ConfigError("--interval only applies with --wait")
    source = str(options.results)
    table = read_table(options.results, sheet=options.sheet, limits=ReadLimits.for_results())
    frame = table.frame
    if MESSAGE_ID_COLUMN not in locate_columns(frame.columns):
        found = ", ".join(str(c) for c in frame.columns) or "none"
        raise InputError(
            f"{source} has no {MESSAGE_ID_COLUMN} column, so there is nothing to ask "
            f"about (columns found: {found})"
        )
    refuse_foreign_status_column(frame, source)
    output = Path(options.output if options.output is not None else options.results)
    check_output_path(output)
    if table.format == "xlsx" and output.resolve() == Path(options.results).resolve():
        refuse_to_drop_sheets(table)
    limiter = RateLimiter(options.rate)
    writes = 0
    unsaved = False

    def save(*, even_unchanged: bool = False) -> bool:
        nonlocal writes, unsaved
        if not (unsaved or even_unchanged):
            return False
        write_table(
            typed_for_writing(table, frame),
            output,
            sheet_name=options.sheet or getattr(table, "sheet", None) or "Results",
            delimiter=output_delimiter(table),
            raw_csv=options.raw_csv,
        )
        writes += 1
        unsaved = False
        return True

    def on_call(result: RefreshResult) -> None:
        nonlocal unsaved
        unsaved = True
        observer.status_call(result)

    def on_round(result: RefreshResult) -> None:
        nonlocal unsaved
        # Rows of a campaign a moderator declined will never change: mark them final.
        unsaved = bool(mark_declined(frame, campaigns)) or unsaved
        observer.status_round(result)
        save()

    outcome: WaitResult | None = None
    with contextlib.ExitStack() as stack:
        prefill: Prefill | None = None
        if options.events is not None:
            store = stack.enter_context(EventStore(options.events, create=False))

            def prefill(frame: pd.DataFrame) -> int:
                nonlocal unsaved
                filled = fill_from_events(frame, store)
                unsaved = unsaved or filled > 0
                return filled

        # Without the store every row is asked about, so a missing key is reported at
        # once; with it, the pushed reports may settle every row, and a machine that
        # has only the store then needs no key at all.
        client: StatusSource
        campaigns: MobizonClient | Callable[[], MobizonClient]
        if options.events is not None:
            on_demand = ClientOnDemand(options.api, stack)
            client, campaigns = on_demand, on_demand.opened
        else:
            opened = stack.enter_context(client_for(options.api))
            client, campaigns = opened, opened
        try:
            if options.wait is not None:
                outcome = wait_until_final(
                    frame,
                    client,
                    timeout=options.wait,
                    interval=options.interval or DEFAULT_WAIT_INTERVAL,
                    limiter=limiter,
                    progress=on_call,
                    on_round=on_round,
                    prefill=prefill,
                )
                result = outcome.last
            else:
                result = refresh_frame(
                    frame, client, limiter=limiter, progress=on_call, prefill=prefill
                )
                unsaved = bool(mark_declined(frame, campaigns)) or unsaved
        except BaseException:
            if save():
                observer.saved_partly(output)
            raise
        save(even_unchanged=options.output is not None and not writes)
    return StatusResult(result, outcome, output, writes)


def typed_for_writing(table: InputTable, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` to write back: our integer and boolean cells typed, the rest as read.

    A workbook's own numbers, dates and booleans (an amount, an order date)
    go back as Excel typed them, not as the text they were read as.
    """
    out = with_integer_cells(frame)
    if table.typed is None:
        return out
    ours = set(locate_columns(frame.columns).values())
    typed = table.typed_frame()
    for name in typed.columns:
        if name not in ours and name in out.columns:
            out[name] = typed[name]
    return out


class ClientOnDemand:
    """A StatusSource that opens the API client at its first question, not before.

    So ``status --events`` reads the API key only when some row is still left
    for GetSMSStatus after the pushed reports; the client closes with ``stack``.
    """

    def __init__(self, api: ApiOptions, stack: contextlib.ExitStack) -> None:
        self._api = api
        self._stack = stack
        self._client: MobizonClient | None = None

    def opened(self) -> MobizonClient:
        """The client, opened now if this is the first time it is needed."""
        if self._client is None:
            self._client = self._stack.enter_context(client_for(self._api))
        return self._client

    def get_sms_status(self, ids: Iterable[int]) -> list[StatusRecord]:
        return self.opened().get_sms_status(ids)


_STATUS_LIKE = re.compile(r"[A-Z_]+")


def refuse_foreign_status_column(frame: pd.DataFrame, path: str) -> None:
    """In a table that is not our results file, a ``status`` column with other words is not ours.

    Our results files keep a user's own ``status`` apart (ours is
    ``status_result`` there); in someone's spreadsheet the names are taken as
    they are, so a column of notes called "status" would be overwritten.
    """
    located = locate_columns(frame.columns)
    if "send_status" in located or located["status"] not in frame.columns:
        return
    values = {str(v).strip() for v in frame[located["status"]].tolist()} - {""}
    foreign = sorted(v for v in values if not _STATUS_LIKE.fullmatch(v))
    if foreign:
        raise InputError(
            f"{path}: its column {located['status']!r} holds values that are not Mobizon "
            f"statuses (such as {foreign[0]!r}), and status would overwrite them: rename that "
            f"column and run again"
        )


def refuse_to_drop_sheets(table: InputTable) -> None:
    """Writing a workbook back keeps one sheet: refuse when that would lose others."""
    workbook = openpyxl.load_workbook(table.path, read_only=True)
    try:
        names = workbook.sheetnames
    finally:
        workbook.close()
    if len(names) > 1:
        raise ConfigError(
            f"{table.path.name} has {len(names)} sheets ({', '.join(names)}); writing the "
            f"statuses back into it would keep only {table.sheet!r}: give -o OTHER.xlsx"
        )
