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
import sys
import traceback
from collections.abc import Callable, Sequence
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
from mobizon_batch.prepare import (
    DEFAULT_MAX_SEGMENTS,
    INVALID,
    Plan,
    PlanOptions,
    build_plan,
    check_options,
    planned_results,
    validation_report,
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


def _client_from_env(args: argparse.Namespace) -> MobizonClient:
    settings = api_settings(url_flag=getattr(args, "api_url", None))
    return MobizonClient(settings.api_key, settings.api_url, timeout=args.timeout)


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
        balance, currency = client.get_balance()
        print(f"Balance: {format_money(balance)} {currency}".rstrip() + f"  ({client.host})")
    return EXIT_OK


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
        status_step=args.status_step,
        moderation=args.moderation,
        seed=args.seed,
    )
    if config.fault_503 + config.fault_drop_before + config.fault_drop_after > 1.0:
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


def _add_send(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "send",
        help="send the list (--dry-run: only write the planned results)",
        description="Send one SMS per sendable row and write a results file: the input "
        "columns, then recipient, send_status, message_id, campaign_id, segments, "
        "error_code, error, sent_at (a result column whose name the input already uses "
        "gets _result appended). With --dry-run nothing is sent and send_status "
        "is planned / invalid / duplicate / opted_out.",
    )
    _add_plan_options(parser)
    parser.add_argument(
        "-o", "--output", metavar="RESULTS", required=True, help="results file (.csv or .xlsx)"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="send nothing; write the planned results"
    )
    parser.set_defaults(handler=_cmd_send)


def _cmd_send(args: argparse.Namespace) -> int:
    if not args.dry_run:
        raise ConfigError("sending is not available yet: use --dry-run")
    results = output_path_for(args)
    plan = plan_from_args(args)
    print_plan_summary(plan)
    write_table(planned_results(plan), results, delimiter=output_delimiter(plan.table))
    print(f"dry run: nothing was sent; planned results: {results}")
    if plan.summary.sendable == 0:
        raise _nothing_sendable(plan, results)
    return EXIT_OK


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
