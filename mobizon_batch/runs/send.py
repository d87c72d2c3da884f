"""send_list: the whole safe send of a list in one call.

Plan, balance pre-flight, the results-file lock, the missing-journal
refusal, the journal, the history guard, the send pass with its checkpoints,
and the results file, in the order that keeps the promise "never twice":
nothing is sent before the key works, the results file has one owner, the
journal holds every row and the account's recent history has been checked;
the results file is a rendering of the journal and a failure to write it
never stops a send half way.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pandas as pd

from mobizon_batch.accountclock import (
    account_clock,
    parse_zone,
    resolve_account_clock,
)
from mobizon_batch.campaign_pass import CampaignSummary
from mobizon_batch.campaign_plan import CampaignDraft, group_rows
from mobizon_batch.config import api_url_setting
from mobizon_batch.errors import ConfigError, InputError, MobizonBatchError, StorageError
from mobizon_batch.history import DEFAULT_WINDOW, LIST_WORKERS, GuardReport
from mobizon_batch.journal import Journal, default_journal_path
from mobizon_batch.paths import check_distinct, sqlite_companions
from mobizon_batch.prepare import Plan
from mobizon_batch.resultfile import result_column_names
from mobizon_batch.results import dry_run_results, known_statuses, send_results
from mobizon_batch.runs.campaign import (
    CAMPAIGN,
    MESSAGE,
    CampaignChoice,
    campaign_options,
    check_mode,
    refuse_unfinished_campaigns,
    run_campaign_pass,
)
from mobizon_batch.runs.common import (
    ApiOptions,
    ListOptions,
    Observer,
    SendStart,
    check_output,
    client_for,
    fetch_balance,
    learned_lead,
    nothing_sendable,
    output_delimiter,
    plan_list,
)
from mobizon_batch.runs.preflight import PreFlight
from mobizon_batch.runs.sendguards import checked_journal, guard_history, results_lock
from mobizon_batch.send import SendOptions, SendPass, SendSummary, check_deferred_to
from mobizon_batch.sendwindow import Opening, SendWindow, openings_for, parse_window
from mobizon_batch.table import ReadLimits, write_table
from mobizon_batch.vocabulary import SendState


@dataclass(frozen=True)
class SendListOptions(ListOptions):
    """What to send, where the results go, and how.

    ``deferred_to`` is the text ``'YYYY-MM-DD HH:MM:SS'`` on the account's
    clock; it replaces ``send.deferred_to`` once checked in the account's time
    zone: ``timezone`` if given (``Asia/Almaty``, ``+05:00``), else the API
    domain's country or this machine's zone, corrected by the API's own
    timestamps (``accountclock``).  A time no zone could accept is refused
    before the list is read.
    """

    output: str | os.PathLike[str] = "results.csv"
    send: SendOptions = field(default_factory=SendOptions)
    deferred_to: str | None = None
    timezone: str | None = None
    journal: str | os.PathLike[str] | None = None
    retry_failed: bool = False
    dry_run: bool = False
    api: ApiOptions = field(default_factory=ApiOptions)
    #: send even to recipients the account sent the same text within ``resend_window``
    allow_resend: bool = False
    resend_window: timedelta = DEFAULT_WINDOW
    #: ``HH:MM-HH:MM``: send each row only inside these hours of its recipient's time
    send_window: str | None = None
    #: write CSV cells exactly as they are, even those Excel would run (``--raw-csv``)
    raw_csv: bool = False
    #: "message" (one SendSmsMessage a row) or "campaign" (see ``runs.campaign``)
    mode: str = MESSAGE
    campaign: CampaignChoice = field(default_factory=CampaignChoice)


@dataclass
class SendListResult:
    """What a send did.

    ``summary`` is None when no pass ran: a dry run, or a list with nothing to
    send (``refusal()`` says so).  ``write_error`` is set when the results
    file could not be written at the end: every outcome is in the journal.
    """

    plan: Plan
    results: Path
    journal: Path
    summary: SendSummary | None = None
    #: campaign mode's summary (``summary`` stays None then)
    campaign: CampaignSummary | None = None
    start: SendStart | None = None
    write_error: MobizonBatchError | None = None
    dry_run: bool = False
    #: where a dry run wrote the planned results (beside ``results`` if that exists)
    planned: Path | None = None
    #: the account's clock ``deferred_to`` was checked on (``AccountClock.describe``)
    account_zone: str = ""
    #: what the history guard found (None with ``allow_resend``, or nothing to send)
    guard: GuardReport | None = None
    #: the figures shown before sending (None when nothing was left to send)
    preflight: PreFlight | None = None
    #: True when the caller answered "no" to ``Observer.confirm_send``: nothing was sent
    declined: bool = False
    #: rows kept ``pending`` for their send window, and the first opening among them
    waiting: int = 0
    reopens: Opening | None = None
    #: a campaign-mode dry run: the campaigns the list would make
    campaign_drafts: list[CampaignDraft] = field(default_factory=list)

    @property
    def balance(self) -> Decimal | None:
        return self.start.balance if self.start else None

    def refusal(self) -> InputError | None:
        """The error to end with when no row of the list can be sent."""
        if self.plan.summary.sendable or self.summary is not None or self.campaign is not None:
            return None
        return nothing_sendable(self.plan, self.results)

    def write_refusal(self) -> MobizonBatchError | None:
        """The error to end with when the results file could not be written at the end."""
        if self.write_error is None:
            return None
        if isinstance(self.write_error, StorageError):
            return StorageError(
                f"{self.write_error}. Every outcome is in the journal {self.journal}: free "
                f"space on that disk and run the same command again; it writes the results "
                f"file and sends nothing twice",
                self.write_error.path,
            )
        return ConfigError(
            f"{self.write_error}. Every outcome is in the journal {self.journal}: run the same "
            f"command again once the file can be written (nothing will be sent twice)"
        )


def send_list(options: SendListOptions, observer: Observer | None = None) -> SendListResult:
    """Send every sendable row of the list once, and write the results file.

    Run it again after a crash, an interruption or an edit of the list: the
    journal beside the results makes it send only what was not sent.
    """
    observer = observer or Observer()
    check_mode(options.mode, options.campaign, options.send_window)
    results = check_output(
        options.output,
        {
            "the input list": options.input,
            "the opt-out list": options.plan.optout_path,
            "the journal": options.journal,
        },
    )
    journal_path = Path(options.journal) if options.journal else default_journal_path(results)
    check_distinct(
        {
            "the results file": results,
            "the journal": journal_path,
            **sqlite_companions("the journal", journal_path),
            "the results file's lock": results_lock(results).path,
        },
        {"the input list": options.input, "the opt-out list": options.plan.optout_path},
    )
    if options.dry_run:
        return _dry_run(options, results, journal_path, observer)
    send = options.send
    _check_time_options(options)
    window = parse_window(options.send_window) if options.send_window else None
    plan = plan_list(options, observer)
    result = SendListResult(plan, results, journal_path)
    # The pool serves the history guard's pages too (LIST_WORKERS at once): a pool
    # smaller than that drops connections with a warning on every page.
    with client_for(options.api, pool_size=max(send.workers, LIST_WORKERS)) as client:
        balance, currency = fetch_balance(client)  # bad key or domain: stop before any row
        if options.deferred_to is not None:
            clock = account_clock(client, options.timezone, learned_lead(client.api_url))
            send = replace(send, deferred_to=check_deferred_to(options.deferred_to, clock=clock))
            result.account_zone = clock.describe()
        with (
            results_lock(results),
            checked_journal(results, journal_path, options.read.max_input_mb) as journal,
        ):
            journal.register(plan.entries(), retry_failed=options.retry_failed)
            keys = frozenset(plan.rows["row_key"])
            if not options.allow_resend:
                result.guard = guard_history(client, journal, keys, options)
            counts = journal.counts(keys)
            to_do = (
                counts[SendState.PENDING] + counts[SendState.SENDING] + counts[SendState.UNKNOWN]
            )
            delimiter = output_delimiter(plan.table)
            raw = options.raw_csv
            if not to_do and plan.summary.sendable == 0:
                frame = send_results(plan, journal)
                write_table(frame, results, delimiter=delimiter, raw_csv=raw)
                return result
            waiting = held_for_window(journal, keys, window) if window else {}
            notes = {key: opening.sentence() for key, opening in waiting.items()}
            result.waiting = len(waiting)
            result.reopens = min(waiting.values(), key=lambda o: o.at) if waiting else None
            segments = to_do_segments(journal, keys - waiting.keys())
            result.start = SendStart(
                balance,
                currency,
                client.host,
                to_do,
                counts[SendState.SENT],
                send.deferred_to,
                result.account_zone,
                segments,
            )
            observer.ready_to_send(result.start)
            result.preflight = PreFlight(
                rows=to_do - len(waiting),
                segments=segments,
                balance=balance,
                currency=currency,
                host=client.host,
                already_sent=counts[SendState.SENT],
                waiting=len(waiting),
            )
            # Kept when the file is rewritten.
            statuses = known_statuses(results, ReadLimits.for_results(options.read.max_input_mb))
            # Campaign mode asks later, at the price its staged campaigns cost.
            asks_now = options.mode != CAMPAIGN and result.preflight.rows
            if asks_now and not observer.confirm_send(result.preflight):
                result.declined = True
                frame = send_results(plan, journal, statuses, notes)
                write_table(frame, results, delimiter=delimiter, raw_csv=raw)
                return result
            failures: list[MobizonBatchError] = []

            def render() -> None:
                frame = send_results(plan, journal, statuses, notes)
                write_table(frame, results, delimiter=delimiter, raw_csv=raw)

            def checkpoint() -> None:
                try:
                    render()
                except MobizonBatchError as exc:
                    if not failures:  # said once, at once: the sending goes on
                        observer.write_failed(exc)
                    failures.append(exc)
                    raise

            if options.mode == CAMPAIGN:
                settings = campaign_options(send, options.campaign, options.input)
                try:
                    result.campaign = run_campaign_pass(
                        client, journal, plan, settings, keys, observer
                    )
                except StorageError as exc:
                    raise _stopped_by_disk(exc, journal, keys, render, results) from exc
            else:
                refuse_unfinished_campaigns(journal)
                seen = result.guard.seen_ids if result.guard else ()
                send_pass = SendPass(
                    client,
                    journal,
                    send,
                    keys=keys - waiting.keys(),
                    checkpoint=checkpoint,
                    known_before=seen,
                )
                send_pass.on_progress = observer.sent
                with observer.sending(send_pass.request_stop):
                    try:
                        result.summary = send_pass.run()
                    except StorageError as exc:
                        raise _stopped_by_disk(exc, journal, keys, render, results) from exc
            try:
                checkpoint()
            except MobizonBatchError as exc:
                result.write_error = exc
    return result


def _check_time_options(options: SendListOptions) -> None:
    """Bad --timezone, --send-window or --deferred-to (no zone could accept): stop at once."""
    if options.timezone is not None:
        parse_zone(options.timezone)
    if options.deferred_to is not None:
        check_deferred_to(options.deferred_to)
    if options.send_window:
        parse_window(options.send_window)


#: journal states of rows a send still has to settle
TO_DO = (SendState.PENDING, SendState.SENDING, SendState.UNKNOWN)


def to_do_segments(journal: Journal, keys: frozenset[str]) -> int:
    """The estimated segments of the rows among ``keys`` a send still has to settle."""
    rows = journal.frame()
    chosen = rows["state"].isin(TO_DO) & rows["row_key"].isin(keys)
    return int(rows.loc[chosen, "segments"].sum())


def held_for_window(
    journal: Journal, keys: frozenset[str], window: SendWindow
) -> dict[str, Opening]:
    """Rows not sent yet whose recipient's send window is closed now, with when it opens.

    ``pending`` rows, and ``unknown`` ones too: settling a lost answer may
    end in sending the row again, which must wait for the window as well
    (the row stays ``unknown`` until then; a lost row can be sent later).
    """
    rows = journal.frame()
    open_states = rows["state"].isin([SendState.PENDING, SendState.UNKNOWN])
    pending = rows[open_states & rows["row_key"].isin(keys)]
    openings = openings_for(pending["recipient"].tolist(), window, datetime.now(UTC))
    return {
        key: opening
        for key, opening in zip(pending["row_key"].tolist(), openings, strict=True)
        if opening is not None
    }


def _stopped_by_disk(
    exc: StorageError,
    journal: Journal,
    keys: frozenset[str],
    render: Callable[[], None],
    results: Path,
) -> StorageError:
    """The sentence for a send the disk stopped: what failed, what is safe, what to do.

    The journal is intact whatever failed: SQLite keeps every committed
    transaction, a row's intent was committed before its request left, and
    a row whose outcome could not be recorded is still ``sending`` there,
    which the next run looks up in the account instead of sending again.
    The results file is written now if the disk allows it, else by that run.
    """
    try:
        recorded = f"{journal.counts(keys)[SendState.SENT]:,} rows sent and recorded"
    except sqlite3.Error:  # a failing disk may refuse reads too; the journal still holds
        recorded = "every row sent is recorded"
    try:
        render()
        written = f"the results so far are in {results}"
    except (MobizonBatchError, sqlite3.Error):
        written = f"it also writes {results}"
    folder = Path(exc.path).parent if exc.path else results.parent
    return StorageError(
        f"sending stopped: {exc}. The journal is intact: {recorded}, and rows that were "
        f"in flight are looked up in the account, never sent twice. Free space on the "
        f"disk of {folder} and run the same command again: it sends the rest ({written})",
        exc.path,
    )


def _dry_run(
    options: SendListOptions, results: Path, journal_path: Path, observer: Observer
) -> SendListResult:
    _check_time_options(options)
    zone = ""
    if options.deferred_to is not None:
        # No key needed and no call made: the zone given, or the domain's, or this machine's.
        url = api_url_setting(options.api.api_url, options.api.job_url)
        clock = resolve_account_clock(url, options.timezone, learned=learned_lead(url))
        check_deferred_to(options.deferred_to, clock=clock)
        zone = clock.describe()
    plan = plan_list(options, observer)
    if journal_path.exists():
        with Journal(journal_path) as journal:
            frame = dry_run_results(plan, journal)
    else:
        frame = dry_run_results(plan, None)
    # A dry run never overwrites a results file: it may hold the only copy of
    # message ids and statuses, and a later send must still find them there.
    planned = results if not results.exists() else dry_run_path(results)
    write_table(frame, planned, delimiter=output_delimiter(plan.table), raw_csv=options.raw_csv)
    drafts = []
    if options.mode == CAMPAIGN:  # the grouping, and a list campaign mode refuses, shown now
        drafts = group_rows(plan, _planned_keys(frame, plan))
    return SendListResult(
        plan,
        results,
        journal_path,
        dry_run=True,
        planned=planned,
        account_zone=zone,
        campaign_drafts=drafts,
    )


def _planned_keys(frame: pd.DataFrame, plan: Plan) -> list[str]:
    """The rows a dry run shows as ``planned``: what a real send would still stage."""
    status = frame[result_column_names(plan.table.columns)["send_status"]]
    keys = plan.rows["row_key"].tolist()
    return [
        key
        for key, state in zip(keys, status.tolist()[: len(keys)], strict=True)
        if state == SendState.PLANNED
    ]


def dry_run_path(results_path: Path) -> Path:
    """``r.csv`` → ``r.dry-run.csv``: where a dry run writes when ``r.csv`` exists."""
    return results_path.with_name(f"{results_path.stem}.dry-run{results_path.suffix}")
