"""The command line: argparse commands, terminal output and exit codes.

Why all printing lives here: the library modules must be usable from scripts
and cron without a terminal, so they report through return values, exceptions
and callbacks; this module alone turns those into words, progress bars and
the exit codes that scripts rely on (see ``EXIT_*`` and the README).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

from tqdm import tqdm

from mobizon_batch import __version__
from mobizon_batch.client import MobizonClient, RedactingFilter, redact
from mobizon_batch.config import ENV_API_KEY, api_settings
from mobizon_batch.emulator import EmulatorConfig, MobizonEmulator
from mobizon_batch.errors import (
    ApiError,
    ConfigError,
    InputError,
    MobizonBatchError,
    RunAborted,
    TransportError,
    WrongDomain,
)
from mobizon_batch.journal import (
    PENDING,
    SENDING,
    SENT,
    UNKNOWN,
    Journal,
    PlanEntry,
    default_journal_path,
)
from mobizon_batch.prepare import (
    DEFAULT_MAX_SEGMENTS,
    INVALID,
    Plan,
    PlanOptions,
    build_plan,
    check_options,
    validation_report,
)
from mobizon_batch.results import dry_run_results, send_results
from mobizon_batch.retries import call_read
from mobizon_batch.send import (
    SendOptions,
    SendPass,
    SendProgress,
    SendSummary,
    check_deferred_to,
)
from mobizon_batch.table import InputTable, check_output_path, read_table, write_table

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_INPUT = 3
EXIT_INCOMPLETE = 4
EXIT_ABORTED = 5
EXIT_INTERRUPTED = 130

Handler = Callable[[argparse.Namespace], int]

log = logging.getLogger("mobizon_batch")


# ------------------------------------------------------------------ helpers


def exit_code_for(exc: BaseException) -> int:
    """The documented exit code for an error that ended a command."""
    if isinstance(exc, ConfigError):
        return EXIT_USAGE
    if isinstance(exc, InputError):
        return EXIT_INPUT
    if isinstance(exc, RunAborted | WrongDomain):
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


def _setup_logging(verbosity: int, stream: TextIO) -> None:
    """Log to stderr through a filter that removes the API key from every line."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter([os.environ.get(ENV_API_KEY, "")]))
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_mobizon_batch", False):
            root.removeHandler(old)
    handler._mobizon_batch = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    log.setLevel(logging.DEBUG if verbosity >= 1 else logging.WARNING)
    logging.getLogger("urllib3").setLevel(logging.DEBUG if verbosity >= 2 else logging.WARNING)


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
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} must not be negative")
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
        type=float,
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
    return call_read(client.get_balance, sleep=time.sleep, max_attempts=3, max_seconds=30)


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
        "--port", type=int, default=8080, help="port (default: 8080; 0 picks a free one)"
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
        type=_non_negative,
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
    emulator = MobizonEmulator(config, host=args.host, port=args.port)
    try:
        url = emulator.start()
    except OSError as exc:
        raise ConfigError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}") from exc
    print(f"Mobizon emulator listening on {url}", flush=True)
    print(f"  export MOBIZON_API_URL={url}", flush=True)
    print(f"  export MOBIZON_API_KEY={config.api_key or 'any-key'}", flush=True)
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
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def plan_options_from_args(args: argparse.Namespace) -> PlanOptions:
    """PlanOptions from the flags ``_add_plan_options`` added."""
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
    if output.resolve() == Path(args.input).resolve():
        raise ConfigError(f"-o {args.output} would overwrite the input list: choose another name")
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
    bad = plan.rows[plan.rows["verdict"] == INVALID].head(examples)
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


def _rate(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} must not be negative (0 means no limit)")
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
    deferred = check_deferred_to(args.deferred_to) if args.deferred_to else None
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
        stop_grace_seconds=args.timeout + 10,
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
            journal.register(plan_entries(plan), retry_failed=args.retry_failed)
            counts = journal.counts()
            to_do = counts[PENDING] + counts[SENDING] + counts[UNKNOWN]
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
                + (f" ({counts[SENT]:,} already sent)" if counts[SENT] else ""),
            )

            def checkpoint() -> None:
                frame = send_results(plan, journal)
                write_table(frame, results_path, delimiter=output_delimiter(plan.table))

            send_pass = SendPass(client, journal, options, checkpoint=checkpoint)
            with _send_progress(args) as show, _stop_on_signals(send_pass, args):
                send_pass.on_progress = show
                summary = send_pass.run()
            checkpoint()
    _print_send_summary(args, summary, results_path, journal_path)
    return _send_exit_code(summary)


def plan_entries(plan: Plan) -> Iterator[PlanEntry]:
    """The plan's rows as the journal registers them."""
    rows = plan.rows
    for key, recipient, text, verdict, reason, segments in zip(
        rows["row_key"],
        rows["recipient"],
        rows["text"],
        rows["verdict"],
        rows["reason"],
        rows["segments"],
        strict=True,
    ):
        yield PlanEntry(key, recipient, text, verdict, reason, int(segments))


def _dry_run(args: argparse.Namespace, results_path: Path, journal_path: Path) -> int:
    if args.deferred_to:
        check_deferred_to(args.deferred_to)
    plan = plan_from_args(args)
    print_plan_summary(plan)
    if journal_path.exists():
        with Journal(journal_path) as journal:
            frame = dry_run_results(plan, journal)
    else:
        frame = dry_run_results(plan, None)
    write_table(frame, results_path, delimiter=output_delimiter(plan.table))
    print(f"dry run: nothing was sent; planned results: {results_path}")
    if plan.summary.sendable == 0:
        raise _nothing_sendable(plan, results_path)
    return EXIT_OK


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
    ids = frame.get("message_id")
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
    """First Ctrl-C or SIGTERM: finish what is in flight and stop; a second: stop now."""

    def stop(signum: int, frame: object) -> None:
        if send_pass.halted:
            raise KeyboardInterrupt
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
        return EXIT_ABORTED
    if summary.interrupted:
        return EXIT_INTERRUPTED
    if summary.incomplete:
        return EXIT_INCOMPLETE
    return EXIT_OK


def _say(args: argparse.Namespace, line: str) -> None:
    """A line for people: stdout, or nothing with --quiet."""
    if not getattr(args, "quiet", False):
        print(line)


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
    for add in (_add_validate, _add_send, _add_balance, _add_emulator):
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
    _setup_logging(args.verbose, sys.stderr)
    handler: Handler = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
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


def _redacted(text: str) -> str:
    return redact(text, os.environ.get(ENV_API_KEY, "").strip())


def _print_traceback(verbosity: int) -> None:
    if verbosity:
        print(_redacted(traceback.format_exc()), file=sys.stderr, end="")
