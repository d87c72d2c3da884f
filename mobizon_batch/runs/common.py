"""What every use case shares: API and reading options, the observer, output guards.

Why an observer object rather than printing: a use case runs under the
command line, inside a job (whose output goes to a log as well) and inside
someone's script; each wants to hear about progress differently, and a
script may want nothing at all.  ``Observer``'s methods do nothing; the
command line overrides the ones it shows.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from mobizon_batch.campaign_pass import CampaignProgress, Quote
from mobizon_batch.client import MobizonClient, host_of
from mobizon_batch.columns import header_check
from mobizon_batch.config import DEFAULT_TIMEOUT as DEFAULT_TIMEOUT
from mobizon_batch.config import api_settings
from mobizon_batch.errors import ConfigError, InputError
from mobizon_batch.paths import same_file
from mobizon_batch.prepare import Plan, PlanOptions, build_plan, check_options
from mobizon_batch.registry import known_offset
from mobizon_batch.retries import ReadPolicy, call_read
from mobizon_batch.runs.preflight import PreFlight
from mobizon_batch.send import SendProgress
from mobizon_batch.status import RefreshResult
from mobizon_batch.table import (
    DEFAULT_MAX_INPUT_MB,
    InputTable,
    ReadLimits,
    check_output_path,
    read_table,
)
from mobizon_batch.texts import parse_template

if TYPE_CHECKING:
    from mobizon_batch.jobs import Job
    from mobizon_batch.runs.jobs import StepOptions, StepResult

#: How long to wait for each answer, in seconds, unless told otherwise.


@dataclass(frozen=True)
class ApiOptions:
    """Where the API is: ``api_url`` is the flag, ``job_url`` a job file's ``api_url``.

    The key always comes from ``MOBIZON_API_KEY``; the URL is the flag, else
    ``MOBIZON_API_URL``, else the job file's, else the default (see
    ``config.api_settings``).
    """

    api_url: str | None = None
    job_url: str | None = None
    timeout: float = DEFAULT_TIMEOUT


@dataclass(frozen=True)
class ReadOptions:
    """How to read a list: all None means detect everything."""

    encoding: str | None = None
    delimiter: str | None = None
    sheet: str | None = None
    #: the line (CSV) or row (XLSX) of the column names; None: found among the top lines
    header_row: int | None = None
    #: the size limit a list is read under (``--max-input-mb``; see ``table.ReadLimits``)
    max_input_mb: int = DEFAULT_MAX_INPUT_MB


@dataclass(frozen=True)
class ListOptions:
    """A list to read and how to judge its rows (validate, send)."""

    input: str | os.PathLike[str]
    plan: PlanOptions = field(default_factory=PlanOptions)
    read: ReadOptions = field(default_factory=ReadOptions)


class Observer:
    """What a use case tells its caller while it works; every method does nothing."""

    def checking(self, rows: int) -> None:
        """The list was read: ``rows`` rows are about to be judged."""

    def checked(self, rows: int) -> None:
        """``rows`` more rows were judged."""

    def planned(self, plan: Plan) -> None:
        """Every row has its verdict (before anything is sent or written)."""

    def ready_to_send(self, ready: SendStart) -> None:
        """The balance is known and the journal holds the list: sending starts."""

    def confirm_send(self, figures: PreFlight) -> bool:
        """Last word before anything is sent: False stops the run with nothing sent.

        Says yes by default: a script or a job decided when it called.
        """
        return True

    def write_failed(self, error: Exception) -> None:
        """The results file could not be written (said once; the sending goes on)."""

    def sending(self, request_stop: Callable[[], None]) -> contextlib.AbstractContextManager[None]:
        """Entered while the send pass runs; ``request_stop`` ends it gently."""
        return contextlib.nullcontext()

    def sent(self, progress: SendProgress) -> None:
        """A snapshot of the send pass."""

    def staged(self, progress: CampaignProgress) -> None:
        """Campaign mode: a chunk of recipients was staged."""

    def priced(self, quote: Quote) -> None:
        """Campaign mode: the staged campaigns are priced (before any limit is applied)."""

    def confirm_cost(self, quote: Quote) -> bool:
        """Campaign mode: send at this price?  Within the limits, a caller that asks
        nothing has agreed (a script, a job); the command line asks on a terminal."""
        return True

    def status_call(self, result: RefreshResult) -> None:
        """One GetSMSStatus call answered."""

    def status_round(self, result: RefreshResult) -> None:
        """One round of a wait for final statuses ended."""

    def saved_partly(self, path: Path) -> None:
        """A status pass failed part way; what it learned was saved to ``path``."""

    def listed(self, rows: int, total: int) -> None:
        """Pages of Message/List read so far."""


class JobObserver(Observer):
    """An observer that also hears about the steps of a job."""

    def job_running(self, job: Job, took_over: str) -> contextlib.AbstractContextManager[None]:
        """Entered once the job holds its lock; ``took_over`` names a dead holder."""
        return contextlib.nullcontext()

    def step_started(self, step: str, options: StepOptions) -> None:
        """A step is about to run with these options."""

    def step_finished(self, step: StepResult) -> None:
        """A step ended, well or not."""


@dataclass(frozen=True)
class SendStart:
    """Where a send stands when its pass begins."""

    balance: Decimal
    currency: str
    host: str
    to_do: int
    already_sent: int
    #: ``--deferred-to`` as checked, and the account's clock it was checked on
    deferred_to: datetime | None = None
    account_zone: str = ""
    #: estimated segments of the rows to do
    segments: int = 0


def learned_lead(api_url: str) -> timedelta | None:
    """The account clock's lead over ours, as an earlier send through this API host measured it.

    The one source of the account's clock that is a measurement rather than a
    guess: ``--deferred-to`` and ``list --since`` prefer it to the domain's zone.
    """
    seconds = known_offset(host_of(api_url))
    return timedelta(seconds=seconds) if seconds is not None else None


def client_for(api: ApiOptions, *, pool_size: int = 4) -> MobizonClient:
    """A client for MOBIZON_API_KEY and the URL the precedence rule picks."""
    settings = api_settings(url_flag=api.api_url, job_url=api.job_url)
    timeout = (min(10.0, api.timeout), api.timeout)
    return MobizonClient(settings.api_key, settings.api_url, timeout=timeout, pool_size=pool_size)


def fetch_balance(client: MobizonClient) -> tuple[Decimal, str]:
    """GetOwnBalance, retried like every read: a dropped connection is not an answer."""
    return call_read(client.get_balance, policy=ReadPolicy(attempts=3))


def check_plan_options(options: PlanOptions) -> None:
    """An empty column name or template is a usage error, not an absent option."""
    for flag, value in (
        ("--phone-column", options.phone_column),
        ("--text-column", options.text_column),
        ("--template", options.template),
    ):
        if value is not None and not value.strip():
            raise ConfigError(f"{flag} is empty: give a column name (or leave the flag out)")


def read_list(options: ListOptions) -> InputTable:
    """The input list, read as the reading options say.

    The header is the line that names the columns the plan needs (a CRM
    export puts a title and a blank line above it), unless ``header_row``
    says which it is.
    """
    read, plan = options.read, options.plan
    wanted = [name for name in (plan.phone_column, plan.text_column) if name]
    if plan.template is not None:
        wanted += parse_template(plan.template).fields
    return read_table(
        options.input,
        encoding=read.encoding,
        delimiter=read.delimiter,
        sheet=read.sheet,
        header_row=read.header_row,
        looks_like_header=header_check(wanted),
        limits=ReadLimits(read.max_input_mb),
    )


def plan_list(options: ListOptions, observer: Observer, *, row_keys: bool = True) -> Plan:
    """Read the list and judge every row, telling ``observer`` how far it got.

    ``row_keys=False`` (validate, which sends nothing) skips hashing a key
    for every row (see ``build_plan``).
    """
    check_plan_options(options.plan)
    check_options(options.plan)  # a bad template or region fails before the list is read
    table = read_list(options)
    observer.checking(len(table))
    plan = build_plan(table, options.plan, progress=observer.checked, row_keys=row_keys)
    observer.planned(plan)
    return plan


def check_output(
    output: str | os.PathLike[str], others: dict[str, str | os.PathLike[str] | None]
) -> Path:
    """``-o``, checked before any work: writable format and folder, none of ``others``.

    Compared as ``paths.same_file`` does: after links are followed, and by
    identity for files that exist (a hard link is the same file too).
    """
    path = check_output_path(output)
    for what, other in others.items():
        if other is not None and same_file(path, other):
            raise ConfigError(f"-o {output} would overwrite {what}: choose another name")
    if not os.access(path.parent if str(path.parent) else ".", os.W_OK):
        raise ConfigError(f"cannot write in {path.parent or '.'}: permission denied")
    return path


def output_delimiter(table: InputTable) -> str:
    """``;`` when the input used it (Russian-locale Excel opens such CSVs), else ``,``."""
    return ";" if table.delimiter == ";" else ","


def nothing_sendable(plan: Plan, where: Path | None) -> InputError:
    """The error for a list none of whose rows can be sent, complete in itself.

    It names how many rows were refused and why (the commonest reasons first),
    so a caller that printed nothing else still gets the whole story.
    """
    summary = plan.summary
    parts: list[str] = []
    if summary.invalid:
        reasons = list(summary.invalid_by_reason.items())
        kinds = "; ".join(f"{reason}: {count}" for reason, count in reasons[:3])
        if len(reasons) > 3:
            kinds += f"; {len(reasons) - 3} other reason(s)"
        parts.append(
            f"{summary.invalid} invalid ({kinds})" if kinds else f"{summary.invalid} invalid"
        )
    if summary.duplicate:
        parts.append(f"{summary.duplicate} duplicate(s)")
    if summary.opted_out:
        parts.append(f"{summary.opted_out} opted out")
    found = ", ".join(parts) if parts else "it has no rows"
    more = f"; each row's reason is in {where}" if where else ""
    return InputError(f"no row of {plan.table.path.name} can be sent: {found}{more}")


@dataclass(frozen=True)
class Balance:
    """The account's balance, and the API host that answered."""

    amount: Decimal
    currency: str
    host: str


def account_balance(api: ApiOptions) -> Balance:
    """Ask for the balance: a cheap check that the key, the domain and the network work."""
    with client_for(api) as client:
        amount, currency = fetch_balance(client)
        return Balance(amount, currency, client.host)
