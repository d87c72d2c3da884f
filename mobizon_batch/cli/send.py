"""``mobizon-batch send``: send a list (or, with --dry-run, write what would be sent)."""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mobizon_batch.cli.exits import EXIT_INCOMPLETE, EXIT_OK, EXIT_STOPPED, send_exit_code
from mobizon_batch.cli.options import (
    Commands,
    add_api_options,
    add_plan_options,
    add_raw_csv,
    api_options_from_args,
    duration,
    money,
    non_negative,
    plan_options_from_args,
    positive_int,
    rate,
    read_options_from_args,
    validity,
)
from mobizon_batch.config import DEFAULT_HISTORY_WINDOW
from mobizon_batch.vocabulary import SEND_MODES

# The use case and what it loads (pandas, requests, phonenumbers) are imported
# by the functions that run it: ``--help`` builds the parser from argparse alone.
if TYPE_CHECKING:
    from mobizon_batch.history import GuardReport
    from mobizon_batch.runs.send import SendListOptions, SendListResult
    from mobizon_batch.send import SendSummary


def add_send(commands: Commands) -> None:
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
    add_plan_options(parser)
    parser.add_argument(
        "-o", "--output", metavar="RESULTS", required=True, help="results file (.csv or .xlsx)"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="send nothing; write the planned results"
    )
    add_raw_csv(parser)
    message = parser.add_argument_group("message")
    message.add_argument("--from", dest="sender", metavar="NAME", help="registered sender name")
    message.add_argument("--name", metavar="TEXT", help="campaign name shown in the Mobizon panel")
    message.add_argument(
        "--validity", type=validity, metavar="MINUTES", help="delivery window, 60 to 1440"
    )
    message.add_argument(
        "--deferred-to",
        metavar="'YYYY-MM-DD HH:MM:SS'",
        help="deliver at this time (account time zone), 1 hour to 14 days ahead",
    )
    message.add_argument(
        "--timezone",
        metavar="ZONE",
        help="the account's time zone for --deferred-to (Asia/Almaty, +05:00); "
        "default: the API domain's country, else this machine's, checked against "
        "the times the API writes",
    )
    message.add_argument("--flash", action="store_true", help="flash SMS (shown, not stored)")
    message.add_argument(
        "--send-window",
        metavar="HH:MM-HH:MM",
        help="send each row only between these hours of its recipient's local time (by the "
        "number's time zone); rows outside stay pending: run again when it opens (exit 4)",
    )
    parser.add_argument(
        "--yes",
        action="store_true",
        help="do not ask 'Send? [y/N]' on a terminal (it is never asked off one)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object with the counts on stdout (the summary goes to stderr)",
    )
    mode = parser.add_argument_group("mode")
    mode.add_argument(
        "--mode",
        choices=SEND_MODES,
        default=SEND_MODES[0],
        help="message: one SendSmsMessage a row (default); campaign: stage the list in "
        "Mobizon campaigns, show the price, then send each campaign once",
    )
    mode.add_argument(
        "--max-cost",
        type=money,
        metavar="AMOUNT",
        help="campaign mode: send nothing (exit 6) if the price is above AMOUNT",
    )
    pace = parser.add_argument_group("pace and safety")
    pace.add_argument(
        "--rate",
        type=rate,
        default=None,
        metavar="PER_SECOND",
        help="messages per second at most (message mode default: 20, halved on code 30; "
        "0: no limit); campaign mode: the pace Mobizon sends at (default: Mobizon's own)",
    )
    pace.add_argument(
        "--workers", type=positive_int, default=8, help="requests in parallel (default: 8)"
    )
    pace.add_argument(
        "--max-attempts",
        type=positive_int,
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
        "--allow-resend",
        action="store_true",
        help="send even to recipients the account already sent the same text within "
        "--resend-window (by default those rows become already_sent and are not sent)",
    )
    pace.add_argument(
        "--resend-window",
        type=duration,
        default=DEFAULT_HISTORY_WINDOW.total_seconds(),
        metavar="DURATION",
        help="how far back the history guard looks, like 90m, 24h or 2d (default: 24h)",
    )
    pace.add_argument(
        "--settle",
        type=non_negative,
        default=5.0,
        metavar="SECONDS",
        help="wait before looking up a send whose answer was lost (default: 5)",
    )
    add_api_options(parser)
    parser.set_defaults(handler=run_send)


def send_options_from_args(args: argparse.Namespace) -> SendListOptions:
    """The use case's options from the flags."""
    from mobizon_batch.runs.campaign import CampaignChoice
    from mobizon_batch.runs.send import SendListOptions
    from mobizon_batch.send import SendOptions

    return SendListOptions(
        input=args.input,
        plan=plan_options_from_args(args),
        read=read_options_from_args(args),
        output=args.output,
        send=SendOptions(
            sender=args.sender,
            name=args.name,
            validity=args.validity,
            flash=args.flash,
            rate=args.rate if args.rate is not None else SendOptions.rate,
            workers=args.workers,
            max_attempts=args.max_attempts,
            settle_seconds=args.settle,
        ),
        deferred_to=args.deferred_to,
        timezone=args.timezone,
        journal=args.journal,
        retry_failed=args.retry_failed,
        dry_run=args.dry_run,
        api=api_options_from_args(args),
        allow_resend=args.allow_resend,
        resend_window=timedelta(seconds=args.resend_window),
        send_window=args.send_window,
        raw_csv=args.raw_csv,
        mode=args.mode,
        campaign=CampaignChoice(max_cost=args.max_cost, rate=args.rate),
    )


def run_send(args: argparse.Namespace) -> int:
    from mobizon_batch.cli.output import TerminalObserver, json_output, print_json
    from mobizon_batch.runs.send import send_list

    with json_output(args) as stream:
        result = send_list(send_options_from_args(args), TerminalObserver(args))
        code = finish_send(args, result)
    if args.json:
        print_json(stream, send_facts(result, code))
    return code


def finish_send(args: argparse.Namespace, result: SendListResult) -> int:
    """Print how a send ended and pick its exit code (also a job's send step)."""
    from mobizon_batch.cli.campaign import (
        campaign_exit_code,
        campaign_plan_lines,
        print_campaign_summary,
    )
    from mobizon_batch.cli.output import say

    if result.dry_run:
        print(f"dry run: nothing was sent; planned results: {result.planned}")
        for line in campaign_plan_lines(result.campaign_drafts):
            say(args, line)
        if result.account_zone:
            say(args, f"--deferred-to was checked on the account's clock: {result.account_zone}.")
    refusal = result.refusal()
    if refusal is not None:
        raise refusal
    if result.guard is not None:
        say(args, describe_guard(result.guard))
    if result.declined:
        print(
            f"not sent (the answer was no): the rows wait as pending in {result.results}; "
            f"run the same command again to send them",
            file=sys.stderr,
        )
        return EXIT_STOPPED
    if result.campaign is not None:
        print_campaign_summary(args, result.campaign, result.results, result.journal)
        write_refusal = result.write_refusal()
        if write_refusal is not None:
            raise write_refusal
        return campaign_exit_code(result.campaign)
    if result.summary is not None:
        print_send_summary(args, result.summary, result.results, result.journal)
    write_refusal = result.write_refusal()
    if write_refusal is not None:
        raise write_refusal
    if result.waiting and result.reopens is not None:
        opens = result.reopens
        print(
            f"{result.waiting:,} rows wait for their send window: "
            f"run the same command again after {opens.local:%Y-%m-%d %H:%M} {opens.zone} "
            f"({opens.at.astimezone():%Y-%m-%d %H:%M} on this machine's clock)",
            file=sys.stderr,
        )
    code = send_exit_code(result.summary) if result.summary is not None else EXIT_OK
    return EXIT_INCOMPLETE if code == EXIT_OK and result.waiting else code


def send_facts(result: SendListResult, code: int) -> dict[str, Any]:
    """The JSON object of ``send --json``: the plan's counts, the rows' states, the files."""
    from mobizon_batch.cli.output import plan_facts

    facts: dict[str, Any] = {
        "exit_code": code,
        "dry_run": result.dry_run,
        "results": str(result.planned if result.dry_run else result.results),
        "journal": str(result.journal),
        "plan": plan_facts(result.plan),
        "declined": result.declined,
        "waiting": result.waiting,
    }
    if result.preflight is not None:
        facts["balance"] = str(result.preflight.balance)
        facts["currency"] = result.preflight.currency
        facts["to_send"] = {"rows": result.preflight.rows, "segments": result.preflight.segments}
    summary = result.summary
    if summary is not None:
        facts["rows"] = {str(k): int(v) for k, v in summary.counts.items() if v}
        facts.update(
            sent_now=summary.sent_now,
            segments_sent=summary.segments_sent,
            elapsed_seconds=round(summary.elapsed, 3),
        )
    else:
        facts["rows"] = {}
    return facts


def print_send_summary(
    args: argparse.Namespace, summary: SendSummary, results_path: Path, journal_path: Path
) -> None:
    from mobizon_batch.cli.output import say

    counts = summary.counts
    order = (
        "sent",
        "already_sent",
        "failed",
        "unknown",
        "pending",
        "invalid",
        "duplicate",
        "opted_out",
    )
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
    if counts["unknown"]:
        lines.append(
            f"  {counts['unknown']:,} unknown: their answers were lost and the message list "
            f"could not yet tell whether they were created, so they were not sent again. "
            f"Run the same command later to look again (nothing is sent twice), "
            f"or check them in the Mobizon panel"
        )
    if summary.list_calls:
        lines.append(f"  lost-answer lookups: {summary.list_calls:,} Message/List calls")
    if summary.retries or summary.slowdowns:
        lines.append(
            f"  retries: {summary.retries:,}; rate lowered {summary.slowdowns:,} times on code 30"
        )
    lines.append(f"  results: {results_path}   journal: {journal_path}")
    for line in lines:
        say(args, line)
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


def describe_guard(report: GuardReport) -> str:
    """One line: what the history guard found, how it asked and what it cost."""
    since = f"{report.since:%Y-%m-%d %H:%M:%S}" if report.since else "?"
    widened = " (widened by a day: the account's clock is not known yet)" if report.widened else ""
    cost = f"{report.calls:,} Message/List call{'s' if report.calls != 1 else ''}, {report.query}"
    if not report.already:
        return f"History guard: no row was sent since {since} account time{widened} ({cost})."
    return (
        f"History guard: {len(report.already):,} rows already sent since {since} account "
        f"time{widened}: not sent again, see error per row; --allow-resend sends them ({cost})."
    )
