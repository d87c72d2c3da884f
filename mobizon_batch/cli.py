"""The command line: argparse commands, terminal output and exit codes.

Why all printing lives here: the library modules must be usable from scripts
and cron without a terminal, so they report through return values, exceptions
and callbacks; this module alone turns those into words, progress bars and
the exit codes that scripts rely on (see ``EXIT_*`` and the README).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import math
import os
import re
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, NoReturn, TextIO

import openpyxl
import pandas as pd
from tqdm import tqdm

from mobizon_batch._version import __version__
from mobizon_batch.client import MobizonClient, RedactingFilter, redact
from mobizon_batch.config import ENV_API_KEY, api_settings, parse_duration
from mobizon_batch.emulator import EmulatorConfig, MobizonEmulator, emulator_url_for_env
from mobizon_batch.errors import (
    ApiError,
    ConfigError,
    InputError,
    MobizonBatchError,
    RunAborted,
    TransportError,
)
from mobizon_batch.jobs import Job, job_lock, load_job
from mobizon_batch.journal import Journal, default_journal_path
from mobizon_batch.listing import (
    SORT_FIELDS,
    ListFilter,
    export_frame,
    export_messages,
    parse_moment,
    parse_sort,
)
from mobizon_batch.prepare import (
    DEFAULT_MAX_SEGMENTS,
    Plan,
    PlanOptions,
    build_plan,
    check_options,
)
from mobizon_batch.ratelimit import RateLimiter
from mobizon_batch.report import ReportSummary, summarize_results, write_report
from mobizon_batch.resultfile import MESSAGE_ID_COLUMN, locate_columns, with_integer_cells
from mobizon_batch.results import (
    dry_run_results,
    known_statuses,
    send_results,
    validation_report,
)
from mobizon_batch.retries import ReadPolicy, call_read
from mobizon_batch.samples import write_samples
from mobizon_batch.send import (
    SendOptions,
    SendPass,
    SendProgress,
    SendSummary,
    check_deferred_to,
)
from mobizon_batch.status import (
    RefreshResult,
    WaitResult,
    refresh_statuses,
    wait_until_final,
)
from mobizon_batch.table import (
    InputTable,
    atomic_file,
    check_output_path,
    read_table,
    write_table,
)
from mobizon_batch.vocabulary import (
    FINAL_STATUSES,
    NON_FINAL_STATUSES,
    NOT_FOUND,
    SendState,
)

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_INPUT = 3
EXIT_INCOMPLETE = 4
EXIT_ABORTED = 5
EXIT_INTERRUPTED = 130

DEFAULT_READ_RATE = 10.0
DEFAULT_WAIT_INTERVAL = 60.0

Handler = Callable[[argparse.Namespace], int]

log = logging.getLogger("mobizon_batch")


# ------------------------------------------------------------------ helpers


def exit_code_for(exc: BaseException) -> int:
    """The documented exit code for an error that ended a command."""
    if isinstance(exc, ConfigError):
        return EXIT_USAGE
    if isinstance(exc, InputError):
        return EXIT_INPUT
    if isinstance(exc, RunAborted):
        return EXIT_ABORTED
    if isinstance(exc, ApiError) and exc.aborts_run:
        return EXIT_ABORTED
    return EXIT_INTERNAL


def error_sentence(exc: BaseException) -> str:
    """What to print for an error: our message, plus what to do for transport trouble."""
    text = str(exc)
    if isinstance(exc, TransportError) and exc.host:
        text += " — check MOBIZON_API_URL and the network"
    return text


@contextmanager
def _logging_to(stream: TextIO, verbosity: int) -> Iterator[None]:
    """Log to ``stream`` through a filter that removes the API key from every line.

    Everything is put back on the way out, so that ``main()`` called from a
    script (or a job run) leaves the caller's logging as it found it.
    """
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter([os.environ.get(ENV_API_KEY, "").strip()]))
    root, urllib3_log = logging.getLogger(), logging.getLogger("urllib3")
    saved = (root.level, log.level, urllib3_log.level)
    root.addHandler(handler)
    root.setLevel(min(root.level or logging.WARNING, logging.WARNING))
    log.setLevel(logging.DEBUG if verbosity >= 1 else logging.WARNING)
    urllib3_log.setLevel(logging.DEBUG if verbosity >= 2 else logging.WARNING)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(saved[0])
        log.setLevel(saved[1])
        urllib3_log.setLevel(saved[2])


def _client_from_env(args: argparse.Namespace, *, pool_size: int = 4) -> MobizonClient:
    """A client for MOBIZON_API_KEY and --api-url / MOBIZON_API_URL, with --timeout."""
    settings = api_settings(url_flag=getattr(args, "api_url", None))
    timeout = (min(10.0, args.timeout), args.timeout)
    return MobizonClient(settings.api_key, settings.api_url, timeout=timeout, pool_size=pool_size)


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a fraction between 0 and 1")
    return value


def _non_negative(text: str) -> float:
    value = _finite(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} must not be negative")
    return value


def _positive(text: str) -> float:
    value = _finite(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be more than 0")
    return value


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or abs(value) > 1e9:
        raise argparse.ArgumentTypeError(f"{text} is not a usable number")
    return value


def _rate(text: str) -> float:
    value = _non_negative(text)
    if 0 < value < 0.01:
        raise argparse.ArgumentTypeError(f"{text}: use 0 for no limit, or at least 0.01 a second")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text} is not a port (0 to 65535)")
    return value


def _add_api_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--api-url",
        metavar="URL",
        help="API address (default: $MOBIZON_API_URL, else https://api.mobizon.kz); "
        "a bare domain means https",
    )
    parser.add_argument(
        "--timeout",
        type=_positive,
        default=30.0,
        metavar="SECONDS",
        help="how long to wait for each answer (default: 30)",
    )


# ----------------------------------------------------------------- balance


def _add_balance(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "balance",
        help="show the account balance (checks key and domain)",
        description="Ask User/GetOwnBalance: a cheap check that the key, the domain "
        "and the network all work. The key comes from MOBIZON_API_KEY.",
    )
    _add_api_options(parser)
    parser.set_defaults(handler=_cmd_balance)


def _cmd_balance(args: argparse.Namespace) -> int:
    with _client_from_env(args) as client:
        balance, currency = fetch_balance(client)
        print(f"Balance: {format_money(balance)} {currency}".rstrip() + f"  ({client.host})")
    return EXIT_OK


def fetch_balance(client: MobizonClient) -> tuple[Decimal, str]:
    """GetOwnBalance, retried like every read: a dropped connection is not an answer."""
    return call_read(client.get_balance, policy=ReadPolicy(attempts=3))


def format_money(amount: Decimal) -> str:
    """``1234.5600`` → ``1,234.56``: two decimals, thousands separated."""
    return f"{amount.quantize(Decimal('0.01')):,}"


# ---------------------------------------------------------------- emulator


def _add_emulator(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "emulator",
        help="run a local Mobizon API emulator (for trials, tests and benchmarks)",
        description="Serve the Mobizon API wire format on this machine, with optional "
        "latency, rate limit and faults. Point the tool at it with "
        "MOBIZON_API_URL=http://127.0.0.1:PORT. Stop with Ctrl-C.",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=_port, default=8080, help="port (default: 8080; 0 picks a free one)"
    )
    parser.add_argument(
        "--api-key",
        default="test-key",
        help="the key it accepts (default: test-key; 'any' accepts every key)",
    )
    parser.add_argument(
        "--latency-ms", type=_non_negative, default=0.0, help="delay before each answer"
    )
    parser.add_argument(
        "--rate",
        type=_rate,
        default=0.0,
        metavar="PER_SECOND",
        help="calls per second allowed per method before code 30 (default: no limit)",
    )
    parser.add_argument(
        "--fault-503",
        type=_fraction,
        default=0.0,
        metavar="P",
        help="share of calls answered HTTP 503",
    )
    parser.add_argument(
        "--fault-drop-before",
        type=_fraction,
        default=0.0,
        metavar="P",
        help="share of calls whose connection is dropped before anything is done",
    )
    parser.add_argument(
        "--fault-drop-after",
        type=_fraction,
        default=0.0,
        metavar="P",
        help="share of calls whose connection is dropped after the work is done",
    )
    parser.add_argument(
        "--fault-999-after",
        type=_fraction,
        default=0.0,
        metavar="P",
        help="share of calls that do the work, then answer code 999 (service error)",
    )
    parser.add_argument(
        "--status-step",
        type=_non_negative,
        default=2.0,
        metavar="SECONDS",
        help="how long each non-final status lasts, on average (default: 2)",
    )
    parser.add_argument(
        "--moderation", action="store_true", help="answer sends as awaiting moderation"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for faults and final statuses")
    parser.add_argument(
        "--preload",
        type=int,
        default=0,
        metavar="N",
        help="start with N messages already sent (for benchmarks; ids are printed)",
    )
    parser.set_defaults(handler=_cmd_emulator)


def _cmd_emulator(args: argparse.Namespace) -> int:
    config = EmulatorConfig(
        api_key=None if args.api_key == "any" else args.api_key,
        latency=args.latency_ms / 1000.0,
        rate_limit=args.rate,
        fault_503=args.fault_503,
        fault_drop_before=args.fault_drop_before,
        fault_drop_after=args.fault_drop_after,
        fault_999_after=args.fault_999_after,
        status_step=args.status_step,
        moderation=args.moderation,
        seed=args.seed,
    )
    faults = (config.fault_503, config.fault_drop_before, config.fault_drop_after)
    if sum(faults) + config.fault_999_after > 1.0:
        raise ConfigError("the fault shares add up to more than 1")
    if args.preload < 0:
        raise ConfigError("--preload must not be negative")
    emulator = MobizonEmulator(config, host=args.host, port=args.port)
    preloaded = emulator.preload(args.preload) if args.preload else None
    try:
        url = emulator.start()
    except OSError as exc:
        raise ConfigError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}") from exc
    print(f"Mobizon emulator listening on {url}", flush=True)
    print(f"  export MOBIZON_API_URL={url}", flush=True)
    print(f"  export MOBIZON_API_KEY={config.api_key or 'any-key'}", flush=True)
    if preloaded:
        print(
            f"  preloaded {len(preloaded)} messages: ids {preloaded[0]}-{preloaded[-1]}",
            flush=True,
        )
    print("Press Ctrl-C to stop.", file=sys.stderr, flush=True)
    emulator.serve_forever()
    return EXIT_OK


# ------------------------------------------------------------ plan options


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be at least 1")
    return value


def _add_plan_options(parser: argparse.ArgumentParser) -> None:
    """The flags that say how to read a list and judge its rows (validate, send).

    Also adds ``-q/--quiet`` (no progress bar), which every command that
    reads a list shares.  ``plan_options_from_args`` and ``read_input``
    turn the parsed flags into what ``prepare`` and ``table`` take.
    """
    parser.add_argument("input", metavar="INPUT", help="the list: a .csv, .txt or .xlsx file")
    reading = parser.add_argument_group("reading the list")
    reading.add_argument(
        "--encoding",
        metavar="NAME",
        help="text encoding of a CSV (default: detected among UTF-8, UTF-16 and Windows-1251)",
    )
    reading.add_argument(
        "--delimiter",
        metavar="CHAR",
        help="CSV delimiter: , ; | or tab (default: detected)",
    )
    reading.add_argument(
        "--sheet",
        metavar="NAME|N",
        help="worksheet of an XLSX file, by name or by number from 1 (default: the first)",
    )
    columns = parser.add_argument_group("columns and texts")
    columns.add_argument(
        "--phone-column",
        metavar="NAME",
        help="column with the numbers (default: detected from names such as phone, телефон)",
    )
    columns.add_argument(
        "--text-column",
        metavar="NAME",
        help="column with the texts (default: detected from names such as text, текст)",
    )
    columns.add_argument(
        "--template",
        metavar="TEXT",
        help="build each text from columns instead: 'Hello {name}, your code is {code}' "
        "({{ and }} for literal braces)",
    )
    checks = parser.add_argument_group("checks")
    checks.add_argument(
        "--region",
        default="KZ",
        metavar="CC",
        help="country of numbers written without a country code (default: KZ)",
    )
    checks.add_argument(
        "--accept-possible",
        action="store_true",
        help="accept numbers of a plausible length that the numbering data does not know yet",
    )
    checks.add_argument(
        "--max-segments",
        type=_positive_int,
        default=DEFAULT_MAX_SEGMENTS,
        metavar="N",
        help=f"texts longer than N segments are invalid (default: {DEFAULT_MAX_SEGMENTS})",
    )
    checks.add_argument(
        "--allow-duplicates",
        action="store_true",
        help="send the same text to the same number as often as the list says",
    )
    checks.add_argument(
        "--optout",
        metavar="FILE",
        type=Path,
        help="numbers that must get nothing (CSV or text, any number format)",
    )
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress bar and no summary lines (errors and warnings still print)",
    )


def plan_options_from_args(args: argparse.Namespace) -> PlanOptions:
    """PlanOptions from the flags ``_add_plan_options`` added."""
    for flag, value in (
        ("--phone-column", args.phone_column),
        ("--text-column", args.text_column),
        ("--template", args.template),
    ):
        if value is not None and not value.strip():
            raise ConfigError(f"{flag} is empty: give a column name (or leave the flag out)")
    return PlanOptions(
        phone_column=args.phone_column,
        text_column=args.text_column,
        template=args.template,
        region=args.region,
        accept_possible=args.accept_possible,
        max_segments=args.max_segments,
        allow_duplicates=args.allow_duplicates,
        optout_path=args.optout,
    )


def read_input(args: argparse.Namespace) -> InputTable:
    """The input list, read as the reading flags say."""
    return read_table(
        args.input, encoding=args.encoding, delimiter=args.delimiter, sheet=args.sheet
    )


def plan_from_args(args: argparse.Namespace) -> Plan:
    """Read the list and judge every row, with a progress bar on stderr."""
    options = plan_options_from_args(args)
    check_options(options)  # a bad template or region fails before the list is read
    table = read_input(args)
    with _progress_bar(args, len(table), "checking rows") as bar:

        def advance(rows: int) -> None:
            bar.update(rows)

        return build_plan(table, options, progress=advance)


def _progress_bar(args: argparse.Namespace, total: int, description: str) -> tqdm[Any]:
    """A bar on stderr; none with --quiet, or when stderr is not a terminal (cron, pipes)."""
    return tqdm(
        total=total,
        desc=description,
        unit=" rows",
        unit_scale=True,
        file=sys.stderr,
        disable=True if getattr(args, "quiet", False) else None,
        leave=False,
        mininterval=0.5,
    )


def output_path_for(args: argparse.Namespace) -> Path:
    """``-o``, checked before any work: writable format and folder, not the input itself."""
    output = check_output_path(args.output)
    others = {"the input list": args.input}
    if getattr(args, "optout", None):
        others["the opt-out list"] = args.optout
    if getattr(args, "journal", None):
        others["the journal"] = args.journal
    for what, path in others.items():
        if output.resolve() == Path(path).resolve():
            raise ConfigError(f"-o {args.output} would overwrite {what}: choose another name")
    if not os.access(output.parent if str(output.parent) else ".", os.W_OK):
        raise ConfigError(f"cannot write in {output.parent or '.'}: permission denied")
    return output


def output_delimiter(table: InputTable) -> str:
    """``;`` when the input used it (Russian-locale Excel opens such CSVs), else ``,``."""
    return ";" if table.delimiter == ";" else ","


def print_plan_summary(plan: Plan, out: TextIO | None = None, examples: int = 5) -> None:
    """The plan in a few lines: counts by verdict, reasons, cost, first problems."""
    stream = out or sys.stdout
    summary, table = plan.summary, plan.table
    print(f"{table.describe()}: {summary.rows:,} rows", file=stream)
    if plan.template is not None:
        print(f"  numbers from {plan.phone_column!r}, texts from the template", file=stream)
    else:
        print(f"  numbers from {plan.phone_column!r}, texts from {plan.text_column!r}", file=stream)
    print(f"  sendable   {summary.sendable:>12,}", file=stream)
    print(f"  invalid    {summary.invalid:>12,}", file=stream)
    for reason, count in summary.invalid_by_reason.items():
        print(f"    {count:>10,}  {reason}", file=stream)
    print(f"  duplicate  {summary.duplicate:>12,}", file=stream)
    print(f"  opted out  {summary.opted_out:>12,}", file=stream)
    print(
        f"  segments to send: {summary.segments:,} "
        f"(GSM-7 rows: {summary.gsm7_rows:,}, UCS-2 rows: {summary.ucs2_rows:,})",
        file=stream,
    )
    bad = plan.rows[plan.rows["verdict"] == SendState.INVALID].head(examples)
    if len(bad):
        print("First invalid rows:", file=stream)
        raw = table.frame[plan.phone_column].to_dict()
        for index, line, reason in zip(bad.index, bad["source_line"], bad["reason"], strict=True):
            print(f"  line {line} ({raw[index]!r}): {reason}", file=stream)


def _nothing_sendable(plan: Plan, where: Path | None) -> InputError:
    more = f" and in {where}" if where else ""
    return InputError(f"no row of {plan.table.path.name} can be sent: see the reasons above{more}")


# ----------------------------------------------------------------- validate


def _add_validate(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "validate",
        help="check a list without sending anything",
        description="Read the list, normalize the numbers, build the texts and judge every "
        "row (sendable, invalid, duplicate, opted out) without any network access. "
        "Exit code 0 when at least one row can be sent, 3 when none can.",
    )
    _add_plan_options(parser)
    parser.add_argument(
        "-o",
        "--output",
        metavar="REPORT",
        help="write every row: the input columns, then line, recipient, verdict, reason, "
        "segments, encoding and final_text (.csv or .xlsx)",
    )
    parser.set_defaults(handler=_cmd_validate)


def _cmd_validate(args: argparse.Namespace) -> int:
    report = output_path_for(args) if args.output else None
    plan = plan_from_args(args)
    if not args.quiet or plan.summary.sendable == 0:
        print_plan_summary(plan)
    if report is not None:
        write_table(
            validation_report(plan),
            report,
            sheet_name="validation",
            delimiter=output_delimiter(plan.table),
        )
        print(f"report: {report}")
    if plan.summary.sendable == 0:
        raise _nothing_sendable(plan, report)
    return EXIT_OK


# --------------------------------------------------------------------- send


def _validity(text: str) -> int:
    value = int(text)
    if not 60 <= value <= 1440:
        raise argparse.ArgumentTypeError(f"{text}: Mobizon accepts 60 to 1440 minutes")
    return value


def _add_send(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "send",
        help="send the list (--dry-run: only write the planned results)",
        description="Send one SMS per sendable row and write a results file: the input "
        "columns, then recipient, send_status, message_id, campaign_id, segments, "
        "error_code, error, sent_at (a result column whose name the input already uses "
        "gets _result appended). Every row is recorded in a journal beside the results "
        "file before it is sent, so running the same command again after a crash, Ctrl-C "
        "or an edit of the list sends only what was not sent. With --dry-run nothing is "
        "sent and send_status is planned / invalid / duplicate / opted_out.",
    )
    _add_plan_options(parser)
    parser.add_argument(
        "-o", "--output", metavar="RESULTS", required=True, help="results file (.csv or .xlsx)"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="send nothing; write the planned results"
    )
    message = parser.add_argument_group("message")
    message.add_argument("--from", dest="sender", metavar="NAME", help="registered sender name")
    message.add_argument("--name", metavar="TEXT", help="campaign name shown in the Mobizon panel")
    message.add_argument(
        "--validity", type=_validity, metavar="MINUTES", help="delivery window, 60 to 1440"
    )
    message.add_argument(
        "--deferred-to",
        metavar="'YYYY-MM-DD HH:MM:SS'",
        help="deliver at this time (account time zone), 1 hour to 14 days ahead",
    )
    message.add_argument("--flash", action="store_true", help="flash SMS (shown, not stored)")
    pace = parser.add_argument_group("pace and safety")
    pace.add_argument(
        "--rate",
        type=_rate,
        default=20.0,
        metavar="PER_SECOND",
        help="messages per second at most (default: 20; 0: no limit); halves on code 30",
    )
    pace.add_argument(
        "--workers", type=_positive_int, default=8, help="requests in parallel (default: 8)"
    )
    pace.add_argument(
        "--max-attempts",
        type=_positive_int,
        default=5,
        metavar="N",
        help="attempts per row before it is left for the next run (default: 5)",
    )
    pace.add_argument(
        "--journal",
        metavar="PATH",
        type=Path,
        help="the send journal (default: RESULTS.journal.sqlite beside the results)",
    )
    pace.add_argument(
        "--retry-failed",
        action="store_true",
        help="send again the rows the API rejected in an earlier run",
    )
    pace.add_argument(
        "--settle",
        type=_non_negative,
        default=5.0,
        metavar="SECONDS",
        help="wait before looking up a send whose answer was lost (default: 5)",
    )
    _add_api_options(parser)
    parser.set_defaults(handler=_cmd_send)


def send_options_from_args(args: argparse.Namespace) -> SendOptions:
    """SendOptions from the flags; a bad --deferred-to stops here, before any work."""
    deferred = check_deferred_to(args.deferred_to) if args.deferred_to is not None else None
    return SendOptions(
        sender=args.sender,
        name=args.name,
        validity=args.validity,
        deferred_to=deferred,
        flash=args.flash,
        rate=args.rate,
        workers=args.workers,
        max_attempts=args.max_attempts,
        settle_seconds=args.settle,
    )


def _cmd_send(args: argparse.Namespace) -> int:
    results_path = output_path_for(args)
    journal_path = args.journal or default_journal_path(results_path)
    if args.dry_run:
        return _dry_run(args, results_path, journal_path)
    options = send_options_from_args(args)
    plan = plan_from_args(args)
    if not args.quiet:
        print_plan_summary(plan)
    with _client_from_env(args, pool_size=args.workers) as client:
        balance, currency = fetch_balance(client)  # bad key or domain: stop before any row
        _refuse_orphan_results(results_path, journal_path)
        with Journal(journal_path) as journal:
            journal.register(plan.entries(), retry_failed=args.retry_failed)
            keys = frozenset(plan.rows["row_key"])
            counts = journal.counts(keys)
            to_do = (
                counts[SendState.PENDING] + counts[SendState.SENDING] + counts[SendState.UNKNOWN]
            )
            if not to_do and plan.summary.sendable == 0:
                write_table(
                    send_results(plan, journal),
                    results_path,
                    delimiter=output_delimiter(plan.table),
                )
                raise _nothing_sendable(plan, results_path)
            _say(
                args,
                f"Balance: {format_money(balance)} {currency} ({client.host}). "
                f"To send: {to_do:,} rows"
                + (f" ({counts[SendState.SENT]:,} already sent)" if counts[SendState.SENT] else ""),
            )

            statuses = known_statuses(results_path)  # kept when the file is rewritten

            write_failures: list[MobizonBatchError] = []

            def checkpoint() -> None:
                frame = send_results(plan, journal, statuses)
                try:
                    write_table(frame, results_path, delimiter=output_delimiter(plan.table))
                except MobizonBatchError as exc:
                    if not write_failures:  # say it once, at once: the sending goes on
                        print(f"\nwarning: {exc}; sending goes on", file=sys.stderr)
                    write_failures.append(exc)
                    raise

            send_pass = SendPass(client, journal, options, keys=keys, checkpoint=checkpoint)
            with _send_progress(args) as show, _stop_on_signals(send_pass, args):
                send_pass.on_progress = show
                summary = send_pass.run()
            final_write: MobizonBatchError | None = None
            try:
                checkpoint()
            except MobizonBatchError as exc:
                final_write = exc
    _print_send_summary(args, summary, results_path, journal_path)
    if final_write is not None:
        raise ConfigError(
            f"{final_write}. Every outcome is in the journal {journal_path}: run the same "
            f"command again once the file can be written (nothing will be sent twice)"
        )
    return _send_exit_code(summary)


def _dry_run(args: argparse.Namespace, results_path: Path, journal_path: Path) -> int:
    if args.deferred_to is not None:
        check_deferred_to(args.deferred_to)
    plan = plan_from_args(args)
    if not args.quiet:
        print_plan_summary(plan)
    if journal_path.exists():
        with Journal(journal_path) as journal:
            frame = dry_run_results(plan, journal)
    else:
        frame = dry_run_results(plan, None)
    # A dry run never overwrites a results file: it may hold the only copy of
    # message ids and statuses, and a later send must still find them there.
    planned_path = results_path if not results_path.exists() else dry_run_path(results_path)
    write_table(frame, planned_path, delimiter=output_delimiter(plan.table))
    print(f"dry run: nothing was sent; planned results: {planned_path}")
    if plan.summary.sendable == 0:
        raise _nothing_sendable(plan, results_path)
    return EXIT_OK


def dry_run_path(results_path: Path) -> Path:
    """``r.csv`` → ``r.dry-run.csv``: where a dry run writes when ``r.csv`` exists."""
    return results_path.with_name(f"{results_path.stem}.dry-run{results_path.suffix}")


def _refuse_orphan_results(results_path: Path, journal_path: Path) -> None:
    """Refuse to send when a results file with message ids exists but its journal does not.

    That file says rows were sent; without the journal nothing would stop
    them from being sent again.
    """
    if journal_path.exists() or not results_path.exists():
        return
    try:
        frame = read_table(results_path).frame
    except MobizonBatchError:
        return
    ids = frame.get(locate_columns(frame.columns).get(MESSAGE_ID_COLUMN, MESSAGE_ID_COLUMN))
    if ids is not None and (ids.astype(str).str.strip() != "").any():
        raise ConfigError(
            f"{results_path} already holds message ids, but its journal {journal_path} is "
            f"missing: sending now could send those rows twice. Restore the journal "
            f"(--journal PATH), or write the results to a new file"
        )


@contextmanager
def _send_progress(args: argparse.Namespace) -> Iterator[Callable[[SendProgress], None]]:
    bar = tqdm(
        total=0,
        desc="sending",
        unit=" msg",
        file=sys.stderr,
        disable=True if args.quiet else None,
        mininterval=0.5,
        dynamic_ncols=True,
    )

    def show(progress: SendProgress) -> None:
        if bar.total != progress.total:
            bar.total = progress.total
        bar.n = progress.done
        bar.set_postfix_str(
            f"sent {progress.sent:,} · failed {progress.failed:,} · unknown {progress.unknown:,}",
            refresh=False,
        )
        bar.refresh() if bar.n >= bar.total else bar.update(0)

    try:
        yield show
    finally:
        bar.close()


@contextmanager
def _stop_on_signals(send_pass: SendPass, args: argparse.Namespace) -> Iterator[None]:
    """First Ctrl-C or SIGTERM: finish what is in flight and stop; a second: quit now.

    Quitting now ends the process on the spot, as a crash would, so that no
    request can still be on its way once the journal is released; the journal
    is crash-safe, and the next run settles the rows that were in flight.
    """
    signals: list[int] = []

    def stop(signum: int, frame: object) -> None:
        signals.append(signum)
        if len(signals) > 1:
            print(
                "\nquitting at once: run the same command again to settle the rows in flight",
                file=sys.stderr,
                flush=True,
            )
            os._exit(EXIT_INTERRUPTED)
        print(
            "\nstopping: finishing the requests in flight (press Ctrl-C again to quit at once)",
            file=sys.stderr,
        )
        send_pass.request_stop()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _print_send_summary(
    args: argparse.Namespace, summary: SendSummary, results_path: Path, journal_path: Path
) -> None:
    counts = summary.counts
    order = ("sent", "failed", "unknown", "pending", "invalid", "duplicate", "opted_out")
    shown = " · ".join(
        f"{name.replace('_', ' ')} {counts[name]:,}" for name in order if counts[name]
    )
    lines = [
        f"Sent {summary.sent_now:,} messages ({summary.segments_sent:,} segments) in "
        f"{summary.elapsed:.1f} s, {summary.rate:.1f}/s.",
        f"  rows: {shown or 'none'}",
    ]
    if summary.adopted or summary.resent:
        lines.append(
            f"  lost answers: {summary.adopted:,} found already sent, {summary.resent:,} sent again"
        )
    if summary.retries or summary.slowdowns:
        lines.append(
            f"  retries: {summary.retries:,}; rate lowered {summary.slowdowns:,} times on code 30"
        )
    lines.append(f"  results: {results_path}   journal: {journal_path}")
    for line in lines:
        _say(args, line)
    if summary.aborted is not None:
        print(f"error: stopped by the API: {summary.aborted}", file=sys.stderr)
    elif summary.unreachable:
        print(f"warning: {summary.unreachable}", file=sys.stderr)
    elif summary.interrupted:
        print("interrupted: run the same command again to send the rest", file=sys.stderr)
    elif summary.incomplete:
        print(
            f"warning: {summary.incomplete:,} rows were not sent or their outcome is unknown; "
            f"see send_status and error in {results_path}",
            file=sys.stderr,
        )


def _send_exit_code(summary: SendSummary) -> int:
    if summary.aborted is not None:
        return exit_code_for(summary.aborted.cause or summary.aborted)
    if summary.interrupted:
        return EXIT_INTERRUPTED
    if summary.incomplete:
        return EXIT_INCOMPLETE
    return EXIT_OK


# ------------------------------------------------------ status, list, report


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_duration(text: str) -> float:
    seconds = _duration(text)
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be longer than zero")
    return seconds


def _add_read_options(parser: argparse.ArgumentParser) -> None:
    """Options of the commands that only read from the API."""
    _add_api_options(parser)
    parser.add_argument(
        "--rate",
        type=_rate,
        default=DEFAULT_READ_RATE,
        metavar="PER_SECOND",
        help=f"API calls per second at most (default: {DEFAULT_READ_RATE:g}; 0: no limit); "
        "halved for a while whenever the API says it is too fast",
    )
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress bar",
    )


def _count_bar(args: argparse.Namespace, unit: str, description: str) -> tqdm[NoReturn]:
    """A bar whose total is learned on the way; hidden as ``_progress_bar``'s is."""
    return tqdm(
        total=0,
        unit=unit,
        desc=description,
        file=sys.stderr,
        disable=True if args.quiet else None,
        leave=False,
    )


def _format_duration(seconds: float) -> str:
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours}h"] if hours else []
    parts += [f"{minutes}m"] if minutes else []
    return "".join(parts) + (f"{secs}s" if secs or not parts else "")


def _add_status(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "status",
        help="fill in delivery statuses of a results file",
        description="Ask Mobizon (GetSMSStatus, 100 ids a call) about every row of RESULTS "
        "whose status is not final yet, and write the status columns back into the file "
        "(every other column is left as it was). Any CSV or XLSX with a message_id column "
        "will do. Exit 0 when the check succeeded (with --wait: when every row became "
        "final), 4 when --wait ran out with rows still not final.",
    )
    parser.add_argument("results", metavar="RESULTS", help="results file (.csv or .xlsx)")
    parser.add_argument(
        "-o", "--output", metavar="FILE", help="write here instead of back into RESULTS"
    )
    parser.add_argument("--sheet", metavar="NAME", help="the worksheet to read (XLSX)")
    parser.add_argument(
        "--wait",
        type=_duration,
        metavar="DURATION",
        help="ask again until every row is final or this long has passed "
        "(90s, 15m, 2h, 1h30m, 1d); statuses can take up to a day",
    )
    parser.add_argument(
        "--interval",
        type=_positive_duration,
        metavar="DURATION",
        help="first pause between checks with --wait (default: 1m); each pause is "
        "half again as long as the one before, up to 15m",
    )
    _add_read_options(parser)
    parser.set_defaults(handler=_cmd_status)


class _StatusProgress:
    """Turns the status pass's callbacks into a progress bar and saves of the file.

    The file is written whenever something was learned since the last write:
    after each round of a ``--wait`` (so a long wait keeps it current), at
    the end, and on an error or Ctrl-C part way (what was learned is kept).
    """

    def __init__(self, bar: tqdm[NoReturn], waiting: bool, write: Callable[[], None]) -> None:
        self.bar = bar
        self.waiting = waiting
        self.write = write
        self.rounds = 0
        self.writes = 0
        self._unsaved = False

    def on_call(self, result: RefreshResult) -> None:
        self._unsaved = True
        if not self.waiting:
            self.bar.total = result.to_ask
            self.bar.n = result.asked
            self.bar.refresh()

    def on_round(self, result: RefreshResult) -> None:
        self.rounds += 1
        self.bar.total = result.with_id
        self.bar.n = result.final
        self.bar.set_postfix_str(f"round {self.rounds}, {result.calls} calls")
        self.save()

    def save(self, *, even_unchanged: bool = False) -> bool:
        if not (self._unsaved or even_unchanged):
            return False
        self.write()
        self.writes += 1
        self._unsaved = False
        return True


def _cmd_status(args: argparse.Namespace) -> int:
    if args.interval is not None and args.wait is None:
        raise ConfigError("--interval only applies with --wait")
    table = read_table(args.results, sheet=args.sheet)
    frame = table.frame
    if MESSAGE_ID_COLUMN not in locate_columns(frame.columns):
        found = ", ".join(str(c) for c in frame.columns) or "none"
        raise InputError(
            f"{args.results} has no {MESSAGE_ID_COLUMN} column, so there is nothing to ask "
            f"about (columns found: {found})"
        )
    _refuse_foreign_status_column(frame, args.results)
    output = args.output or args.results
    check_output_path(output)
    if table.format == "xlsx" and Path(output).resolve() == Path(args.results).resolve():
        _refuse_to_drop_sheets(table)
    limiter = RateLimiter(args.rate)
    waiting = args.wait is not None

    def write() -> None:
        write_table(
            with_integer_cells(frame),
            output,
            sheet_name=_sheet_name(table, args.sheet),
            delimiter=output_delimiter(table),
        )

    with (
        _client_from_env(args) as client,
        _count_bar(args, "row" if waiting else "id", "final" if waiting else "checked") as bar,
    ):
        progress = _StatusProgress(bar, waiting, write)
        outcome: WaitResult | None = None
        try:
            if waiting:
                outcome = wait_until_final(
                    frame,
                    client,
                    timeout=args.wait,
                    interval=args.interval or DEFAULT_WAIT_INTERVAL,
                    limiter=limiter,
                    progress=progress.on_call,
                    on_round=progress.on_round,
                )
                result = outcome.last
            else:
                result = refresh_statuses(frame, client, limiter=limiter, progress=progress.on_call)
        except BaseException:
            if progress.save():
                print(f"Saved the statuses received so far to {output}", file=sys.stderr)
            raise
        progress.save(even_unchanged=bool(args.output) and not progress.writes)
    _report_refresh(result, outcome)
    if progress.writes:
        print(f"Wrote {output}")
    if outcome is not None and not outcome.all_final:
        return EXIT_INCOMPLETE
    return EXIT_OK


def _say(args: argparse.Namespace, line: str) -> None:
    """A line for people: stdout, or nothing with --quiet."""
    if not getattr(args, "quiet", False):
        print(line)


_STATUS_LIKE = re.compile(r"[A-Z_]+")


def _refuse_foreign_status_column(frame: pd.DataFrame, path: str) -> None:
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


def _refuse_to_drop_sheets(table: InputTable) -> None:
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


def _sheet_name(table: InputTable, sheet: str | None) -> str:
    return sheet or getattr(table, "sheet", None) or "Results"


def _report_refresh(result: RefreshResult, outcome: WaitResult | None) -> None:
    if result.skipped:
        examples = "; ".join(result.skipped_examples)
        print(
            f"warning: {result.skipped} message_id cell(s) are not message ids and were "
            f"skipped ({examples})",
            file=sys.stderr,
        )
    if not result.with_id:
        print("No row has a message id: nothing to check.")
        return
    if outcome is None:
        asked = f"Asked about {result.asked} id(s) in {result.calls} call(s)"
        if not result.to_ask:
            asked = "Every row with a message id is final already: nothing to ask"
    else:
        asked = (
            f"Checked {outcome.rounds} time(s) over {_format_duration(outcome.waited)}, "
            f"{outcome.calls} call(s) in all"
        )
    print(
        f"{asked}. Rows with an id: {result.with_id}, final: {result.final}, "
        f"not final: {result.not_final}."
    )
    counts = sorted(result.by_status.items(), key=lambda item: (-item[1], item[0]))
    print("  " + ", ".join(f"{status} {count}" for status, count in counts))
    if result.not_found:
        print(
            f"warning: Mobizon does not know {result.not_found} of the ids (marked "
            f"{NOT_FOUND}): from another account, or mistyped?",
            file=sys.stderr,
        )
    if outcome is not None and result.pending:
        print(
            f"{result.pending} row(s) still not final when --wait ran out; "
            f"run 'status' again later.",
            file=sys.stderr,
        )
    elif outcome is not None and result.not_found:
        print(
            "Stopped waiting: the only rows left are ids Mobizon does not know.",
            file=sys.stderr,
        )


def _add_list(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "list",
        help="export sent messages (Message/List) to CSV or XLSX",
        description="Export every page of Mobizon's message list (100 a page) with the "
        "filters given. Times are the account's local time: 2026-11-28, "
        "'2026-11-28 14:30', or a duration back from now (2h, 1d).",
    )
    parser.add_argument("-o", "--output", required=True, metavar="FILE", help=".csv or .xlsx")
    parser.add_argument("--since", metavar="WHEN", help="campaigns created at or after this")
    parser.add_argument(
        "--until", metavar="WHEN", help="campaigns created at or before this (a date: its end)"
    )
    parser.add_argument(
        "--status",
        action="append",
        default=[],
        metavar="STATUS",
        help="only this status (DELIVRD, UNDELIV, ...); repeat or separate with commas",
    )
    parser.add_argument("--to", metavar="DIGITS", help="recipients containing these digits")
    parser.add_argument("--from-name", metavar="NAME", help="only this sender name")
    parser.add_argument("--text", metavar="TEXT", help="only this exact text")
    parser.add_argument(
        "--campaign-ids", metavar="ID,ID", help="only these campaigns (at most 100)"
    )
    parser.add_argument(
        "--sort",
        metavar="FIELD[:desc]",
        help=f"order of the rows: {', '.join(SORT_FIELDS.values())}",
    )
    _add_read_options(parser)
    parser.set_defaults(handler=_cmd_list)


def _list_filter(args: argparse.Namespace) -> ListFilter:
    now = datetime.now()
    statuses = [s.strip().upper() for given in args.status for s in given.split(",") if s.strip()]
    known = FINAL_STATUSES | NON_FINAL_STATUSES
    for status in statuses:
        if status not in known:
            print(
                f"warning: {status} is not a status Mobizon documents "
                f"({', '.join(sorted(known))}); asking for it anyway",
                file=sys.stderr,
            )
    if args.to is not None and not any(ch.isdigit() for ch in args.to):
        raise ConfigError(f"--to {args.to!r}: give some digits of the number")
    campaign_ids: list[int] = []
    for part in (args.campaign_ids or "").split(","):
        if not part.strip():
            continue
        if not part.strip().isdigit():
            raise ConfigError(f"--campaign-ids: {part.strip()!r} is not a campaign id")
        campaign_ids.append(int(part))
    return ListFilter(
        since=parse_moment(args.since, now=now) if args.since else None,
        until=parse_moment(args.until, now=now, end_of_day=True) if args.until else None,
        statuses=tuple(statuses),
        to="".join(ch for ch in args.to if ch.isdigit()) if args.to else None,
        from_name=args.from_name,
        text=args.text,
        campaign_ids=tuple(campaign_ids),
    )


def _cmd_list(args: argparse.Namespace) -> int:
    check_output_path(args.output)
    filters = _list_filter(args)
    filters.criteria()  # refuse bad filters before any call
    sort = parse_sort(args.sort) if args.sort else None
    with (
        _client_from_env(args) as client,
        _count_bar(args, "msg", "listing") as bar,
    ):

        def progress(rows: int, total: int) -> None:
            bar.total = total
            bar.n = rows
            bar.refresh()

        export = export_messages(
            client, filters, sort=sort, limiter=RateLimiter(args.rate), progress=progress
        )
    write_table(export_frame(export.items), args.output, sheet_name="Messages")
    print(f"Exported {len(export.items)} message(s) in {export.pages} page(s) to {args.output}.")
    if export.changed:
        print(
            f"warning: the list changed while it was being read: Mobizon counted "
            f"{export.total_first} at the start and {export.total_last} at the end, and "
            f"{len(export.items)} row(s) were written"
            + (f" ({export.duplicates} seen twice were written once)" if export.duplicates else "")
            + ". Run it again, or bound it with --until, for a consistent snapshot.",
            file=sys.stderr,
        )
    return EXIT_OK


def _add_report(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "report",
        help="build an XLSX delivery report from a results file",
        description="Summarize RESULTS (rows by send status and by status, delivery rate, "
        "segments, countries and operators) into a workbook with a Summary sheet and "
        "chart, a Messages sheet and a Problems sheet; print the summary too. "
        "No network.",
    )
    parser.add_argument("results", metavar="RESULTS", help="results file (.csv or .xlsx)")
    parser.add_argument("-o", "--output", required=True, metavar="REPORT.xlsx")
    parser.add_argument("--sheet", metavar="NAME", help="the worksheet to read (XLSX)")
    parser.set_defaults(handler=_cmd_report)


def _cmd_report(args: argparse.Namespace) -> int:
    check_output_path(args.output)
    if Path(args.output).resolve() == Path(args.results).resolve():
        raise ConfigError(f"-o {args.output} would overwrite the results file: choose another name")
    frame = read_table(args.results, sheet=args.sheet).frame
    ours = locate_columns(frame.columns)
    if not {"send_status", MESSAGE_ID_COLUMN} & {k for k, v in ours.items() if v in frame.columns}:
        raise InputError(
            f"{args.results} is not a results file: it has neither a send_status nor a "
            f"message_id column (columns found: {', '.join(map(str, frame.columns))})"
        )
    summary = summarize_results(frame)
    write_report(frame, args.output, summary=summary, source=Path(args.results).name)
    for line in format_summary(summary):
        print(line)
    print(f"Wrote {args.output} (sheets: Summary, Messages, Problems)")
    return EXIT_OK


def format_summary(summary: ReportSummary) -> list[str]:
    """The report's summary as aligned lines for the terminal."""

    def number(value: int | float | None, percent: bool) -> str:
        if value is None:
            return "-"
        return f"{value:.1%}" if percent else f"{value:,}"

    labels = [label for label, _, _ in summary.key_figures()]
    labels += [line.label for section in summary.sections for line in section.lines]
    width = max([len(label) for label in labels] + [24]) + 2
    lines = ["Summary"]
    for label, value, percent in summary.key_figures():
        lines.append(f"  {label:<{width}}{number(value, percent):>10}")
    for section in summary.sections:
        lines.append("")
        lines.append(f"{section.title:<{width + 2}}{'rows':>10}  share of {section.of}")
        for line in section.lines:
            lines.append(f"  {line.label:<{width}}{line.count:>10,}  {line.share:>7.1%}")
    return lines


# ------------------------------------------------------------- jobs and demo


@dataclass
class StepResult:
    step: str
    exit_code: int


#: Exit codes after which a job goes on with its next step (the rest stop it).
SOFT_EXITS = (EXIT_OK, EXIT_INCOMPLETE)


def run_steps(steps: Sequence[tuple[str, list[str]]], verbosity: int) -> list[StepResult]:
    """Run commands one after another as ``main`` would, stopping at a hard failure."""
    done: list[StepResult] = []
    for name, argv in steps:
        print(f"\n== {name}: mobizon-batch {' '.join(argv)}", flush=True)
        code = main(["-v"] * verbosity + argv)
        done.append(StepResult(name, code))
        if code not in SOFT_EXITS:
            break
    return done


def combined_exit(results: Sequence[StepResult]) -> int:
    """A hard failure's code if a step had one, else 4 if any step was incomplete, else 0."""
    for result in results:
        if result.exit_code not in SOFT_EXITS:
            return result.exit_code
    return EXIT_INCOMPLETE if any(r.exit_code == EXIT_INCOMPLETE for r in results) else EXIT_OK


def _add_run(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "run",
        help="run a job file: validate, send, status, report (for cron and timers)",
        description="Run the steps a TOML job file describes: send its input (the list is "
        "checked first), refresh the statuses, write the report. Running it again after a "
        "crash the same day resumes the same send. A second copy of the same job refuses "
        "to start while one runs. Everything printed also goes to a log file beside the "
        "output. See jobs/ for examples.",
    )
    parser.add_argument("job", metavar="JOB.toml", help="the job file")
    parser.add_argument(
        "--summary", metavar="FILE", type=Path, help="write a JSON summary of the run here"
    )
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="print nothing but a line on failure (the log file still gets everything)",
    )
    parser.set_defaults(handler=_cmd_run)


def _cmd_run(args: argparse.Namespace) -> int:
    started = datetime.now()
    facts: dict[str, Any] = {
        "job_file": str(args.job),
        "started_at": started.isoformat(" ", "seconds"),
    }
    code = EXIT_INTERNAL
    try:
        job = load_job(args.job, started.date())
        facts.update(job=job.name, paths=_job_paths(job))
        for path in (job.output, job.report, job.log):
            if path is not None:  # a job makes its own output folders, then checks them
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise ConfigError(
                        f"{job.path}: cannot make the folder {path.parent}: {exc.strerror}"
                    ) from None
        check_output_path(job.output)
        if job.log.is_dir():
            raise ConfigError(f"{job.path}: the log {job.log} is a folder")
        with job_lock(job.lock_path) as lock, _job_log(job.log, args.quiet) as log_file:
            print(f"=== job {job.name}, {started:%Y-%m-%d %H:%M:%S}, process {os.getpid()}")
            if lock.took_over:
                print(
                    f"warning: took over the lock of a run that died ({lock.took_over})",
                    file=sys.stderr,
                )
            results = run_steps(_job_steps(job), args.verbose)
            code = combined_exit(results)
            facts["steps"] = [{"step": r.step, "exit_code": r.exit_code} for r in results]
            facts.update(_results_counts(job.output))
            print(f"=== job {job.name} finished with exit code {code}")
        if code != EXIT_OK and args.quiet:
            print(f"job {job.name} ended with exit code {code}: see {log_file}", file=sys.stderr)
        return code
    except MobizonBatchError as exc:
        code = exit_code_for(exc)
        facts["error"] = str(exc)
        raise
    finally:
        if args.summary is not None:
            facts.update(finished_at=datetime.now().isoformat(" ", "seconds"), exit_code=code)
            _write_json(args.summary, facts)


def _job_steps(job: Job) -> list[tuple[str, list[str]]]:
    """The commands a job runs, as command lines (so each step behaves as it would by hand)."""
    steps: list[tuple[str, list[str]]] = []
    output = str(job.output)
    if job.input is not None:
        argv = ["send", str(job.input), "-o", output]
        for key, value in job.read.items():  # encoding, delimiter, sheet: same flag names
            argv += [f"--{key}", str(value)]
        for key, value in job.columns.items():
            argv += [_COLUMN_FLAGS[key], value]
        for key, value in job.send.items():
            argv += _send_flag(key, value)
        if job.journal is not None:
            argv += ["--journal", str(job.journal)]
        if job.api_url:
            argv += ["--api-url", job.api_url]
        steps.append(("send", argv))
    if not job.status.get("skip", False):
        argv = ["status", output]
        if "wait" in job.status:
            argv += ["--wait", job.status["wait"]]
        if "interval" in job.status:
            argv += ["--interval", job.status["interval"]]
        if job.api_url:
            argv += ["--api-url", job.api_url]
        steps.append(("status", argv))
    if job.report is not None:
        steps.append(("report", ["report", output, "-o", str(job.report)]))
    return steps


_COLUMN_FLAGS = {"phone": "--phone-column", "text": "--text-column", "template": "--template"}


def _send_flag(key: str, value: Any) -> list[str]:
    """``[send]`` keys of a job file → the send command's flags (same names, dashes)."""
    flag = "--from" if key == "sender" else "--" + key.replace("_", "-")
    if isinstance(value, bool):
        return [flag] if value else []
    return [flag, str(value)]


def _job_paths(job: Job) -> dict[str, str | None]:
    journal = job.journal or (default_journal_path(job.output) if job.sends else None)
    return {
        "input": str(job.input) if job.input else None,
        "output": str(job.output),
        "report": str(job.report) if job.report else None,
        "journal": str(journal) if journal else None,
        "log": str(job.log),
    }


def _results_counts(path: Path) -> dict[str, Any]:
    """Counts by send_status and by delivery status, and segments, from a results file."""
    if not path.exists():
        return {}
    summary = summarize_results(read_table(path).frame)

    def counts(title: str) -> dict[str, int]:
        section = summary.section(title)
        return {line.label: line.count for line in section.lines} if section else {}

    by_send = counts("By send status")
    for name in ("sent", "failed", "invalid", "duplicate", "opted_out", "unknown"):
        by_send.setdefault(name, 0)
    return {
        "send_status": by_send,
        "delivery_status": counts("By status"),
        "segments": {
            "estimated": summary.segments_estimated,
            "billed": summary.segments_billed,
        },
    }


def _write_json(path: Path, facts: Mapping[str, Any]) -> None:
    text = json.dumps(facts, ensure_ascii=False, indent=2) + "\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(path) as temporary:
            Path(temporary).write_text(text, encoding="utf-8")
    except (OSError, ConfigError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else exc
        print(f"warning: could not write the summary {path}: {reason}", file=sys.stderr)


class _Tee(io.TextIOBase):
    """Writes to the screen (unless quiet) and, line by line, to the job's log.

    Progress bars redraw themselves with carriage returns; those writes go to
    the screen only, so the log holds whole lines.
    """

    def __init__(self, screen: TextIO, log: TextIO, quiet: bool) -> None:
        self.screen, self.log, self.quiet = screen, log, quiet

    def write(self, text: str) -> int:
        if not self.quiet:
            self.screen.write(text)
        if "\r" not in text:
            self.log.write(redact(text, os.environ.get(ENV_API_KEY, "").strip()))
        return len(text)

    def flush(self) -> None:
        if not self.quiet:
            self.screen.flush()
        self.log.flush()

    def isatty(self) -> bool:
        return not self.quiet and self.screen.isatty()


@contextmanager
def _job_log(path: Path, quiet: bool) -> Iterator[Path]:
    """Send everything printed (and logged) during the job to ``path`` as well."""
    try:
        log_file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise ConfigError(f"cannot write the job's log {path}: {exc.strerror}") from None
    with log_file:
        handler = logging.StreamHandler(log_file)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.addFilter(RedactingFilter([os.environ.get(ENV_API_KEY, "").strip()]))
        logging.getLogger().addHandler(handler)
        out, err = _Tee(sys.stdout, log_file, quiet), _Tee(sys.stderr, log_file, quiet)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                yield path
        finally:
            logging.getLogger().removeHandler(handler)


def _add_demo(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "demo",
        help="try the whole flow offline against the built-in emulator",
        description="Start the API emulator on this machine, write the sample list, send it "
        "(some answers are lost on purpose, to show how they are recovered), wait for the "
        "delivery statuses and write the results and the report. No key and no network "
        "are needed; nothing leaves this machine.",
    )
    parser.add_argument(
        "--out",
        metavar="DIR",
        type=Path,
        default=Path("mobizon-demo"),
        help="folder for the files (default: ./mobizon-demo)",
    )
    parser.set_defaults(handler=_cmd_demo)


DEMO_KEY = "demo-key-0000000000000000000000000000000"


def _cmd_demo(args: argparse.Namespace) -> int:
    folder: Path = args.out
    _prepare_demo_folder(folder)
    samples = write_samples(folder)
    results, report = folder / "results.xlsx", folder / "report.xlsx"
    config = EmulatorConfig(
        api_key=DEMO_KEY, latency=0.02, status_step=0.4, fault_drop_after=0.15, seed=7
    )
    print("mobizon-batch demo: the whole flow against the built-in API emulator (offline)")
    print(f"  the list: {samples['csv']}")
    print("            (Cyrillic texts, a repeated row, invalid and opted-out rows)")
    with (
        MobizonEmulator(config) as emulator,
        _environment(emulator_url_for_env(emulator)),
    ):
        print(f"  the API:  emulator at {emulator.url}, losing 15% of answers on purpose")
        steps = run_steps(
            [
                (
                    "send",
                    [
                        "send",
                        str(samples["csv"]),
                        "-o",
                        str(results),
                        "--optout",
                        str(samples["optout"]),
                        "--settle",
                        "0.5",
                    ],
                ),
                ("status", ["status", str(results), "--wait", "2m", "--interval", "1s"]),
                ("report", ["report", str(results), "-o", str(report)]),
            ],
            args.verbose,
        )
        accepted = len(emulator.messages())
    code = combined_exit(steps)
    print()
    if code == EXIT_OK:
        print(f"Demo done: the emulator accepted {accepted} messages, each row exactly once.")
        print(f"  results: {results}  (each input row with its send status, id and status)")
        print(f"  report:  {report}  (summary with a chart, every message, the problems)")
        print(f"  journal: {default_journal_path(results)}  (what makes a re-run safe)")
        print("Next: set MOBIZON_API_KEY and try 'mobizon-batch balance' against your account.")
    else:
        print(f"The demo stopped at step '{steps[-1].step}' (exit code {code}).", file=sys.stderr)
    return code


DEMO_MARK = ".mobizon-demo"


def _prepare_demo_folder(folder: Path) -> None:
    """Make (or reuse) the demo's folder; never touch a folder the demo did not make.

    The demo writes and deletes files by fixed names (recipients.csv,
    results.xlsx and its journal…): in someone's work folder that would
    destroy their own files.  A mark file says the folder is the demo's.
    """
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"--out {folder} is a file, not a folder")
    if folder.is_dir() and any(folder.iterdir()) and not (folder / DEMO_MARK).exists():
        raise ConfigError(
            f"--out {folder} already holds files the demo did not make: give a new or empty folder"
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / DEMO_MARK).write_text("made by mobizon-batch demo\n", encoding="utf-8")
        for leftover in ("results.xlsx", "results.xlsx.journal.sqlite", "report.xlsx"):
            with contextlib.suppress(FileNotFoundError):
                (folder / leftover).unlink()  # each demo starts afresh
    except OSError as exc:
        raise ConfigError(f"cannot use {folder} for the demo: {exc.strerror or exc}") from exc


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the duration, then restore them."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# -------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mobizon-batch",
        description="Send SMS in bulk through the Mobizon API from CSV or Excel lists: "
        "rate-limited, resumable, and never the same row twice.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="more detail in logs; show the traceback of an internal error (-vv: HTTP too)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in (
        _add_validate,
        _add_send,
        _add_balance,
        _add_emulator,
        _add_status,
        _add_list,
        _add_report,
        _add_run,
        _add_demo,
    ):
        add(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit code (never raises, but for SystemExit of --help)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    handler: Handler = args.handler
    try:
        with _logging_to(sys.stderr, args.verbose), _sigterm_as_interrupt():
            return handler(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (``| head``): no more output, and no complaint at exit.
        with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_INTERNAL
    except MobizonBatchError as exc:
        _print_traceback(args.verbose)
        print(f"error: {_redacted(error_sentence(exc))}", file=sys.stderr)
        return exit_code_for(exc)
    except Exception as exc:
        _print_traceback(args.verbose)
        print(
            f"internal error: {type(exc).__name__}: {_redacted(str(exc))} "
            f"(run with -v for the traceback)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (``kill``, ``systemctl stop``) ends a command like Ctrl-C: cleanly, exit 130.

    The send pass installs its own, gentler handler while it runs.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _redacted(text: str) -> str:
    return redact(text, os.environ.get(ENV_API_KEY, "").strip())


def _print_traceback(verbosity: int) -> None:
    if verbosity:
        print(_redacted(traceback.format_exc()), file=sys.stderr, end="")
