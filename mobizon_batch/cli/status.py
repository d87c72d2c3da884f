"""``status``, ``list`` and ``report``: the commands that read what was sent."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from mobizon_batch.cli.exits import EXIT_INCOMPLETE, EXIT_OK
from mobizon_batch.cli.options import (
    Commands,
    add_raw_csv,
    add_read_options,
    api_options_from_args,
    duration,
    positive_duration,
)
from mobizon_batch.config import REPORT_LANGUAGES
from mobizon_batch.vocabulary import NOT_FOUND, SORT_FIELDS

# The use cases and what they load (pandas, requests, openpyxl) are imported
# by the functions that run them: ``--help`` builds the parser from argparse alone.
if TYPE_CHECKING:
    from mobizon_batch.listing import ListExport
    from mobizon_batch.report import ReportSummary
    from mobizon_batch.runs.report import ReportResult
    from mobizon_batch.runs.status import StatusResult


def add_status(commands: Commands) -> None:
    parser = commands.add_parser(
        "status",
        help="fill in delivery statuses of a results file",
        description="Ask Mobizon (GetSMSStatus, 100 ids a call) about every row of RESULTS "
        "whose status is not final yet, and write the status columns back into the file "
        "(every other column is left as it was). Any CSV or XLSX with a message_id column "
        "will do. Exit 0 when the check succeeded (with --wait: when every row became "
        "final), 4 when --wait ran out with rows still not final. With --events, rows "
        "whose final status Mobizon pushed to the webhook receiver are filled from its "
        "store first, and only the rest are asked about.",
    )
    parser.add_argument("results", metavar="RESULTS", help="results file (.csv or .xlsx)")
    parser.add_argument(
        "-o", "--output", metavar="FILE", help="write here instead of back into RESULTS"
    )
    parser.add_argument("--sheet", metavar="NAME", help="the worksheet to read (XLSX)")
    parser.add_argument(
        "--wait",
        type=duration,
        metavar="DURATION",
        help="ask again until every row is final or this long has passed "
        "(90s, 15m, 2h, 1h30m, 1d); statuses can take up to a day",
    )
    parser.add_argument(
        "--interval",
        type=positive_duration,
        metavar="DURATION",
        help="first pause between checks with --wait (default: 1m); each pause is "
        "half again as long as the one before, up to 15m",
    )
    parser.add_argument(
        "--events",
        metavar="STORE.sqlite",
        help="the webhook receiver's event store: fill rows from the final statuses "
        "Mobizon pushed first (read again every round of --wait)",
    )
    add_json_flag(parser)
    add_raw_csv(parser)
    add_read_options(parser)
    parser.set_defaults(handler=run_status)


def run_status(args: argparse.Namespace) -> int:
    from mobizon_batch.cli.output import TerminalObserver, count_bar, json_output, print_json
    from mobizon_batch.runs.status import StatusOptions, refresh_statuses

    options = StatusOptions(
        args.results,
        output=args.output,
        sheet=args.sheet,
        wait=args.wait,
        interval=args.interval,
        events=args.events,
        rate=args.rate,
        api=api_options_from_args(args),
        raw_csv=args.raw_csv,
    )
    observer = TerminalObserver(args)
    waiting = args.wait is not None
    with json_output(args) as stream:
        with count_bar(args, "row" if waiting else "id", "final" if waiting else "checked") as bar:
            observer.status_bar, observer.waiting = bar, waiting
            result = refresh_statuses(options, observer)
        code = finish_status(result)
    if args.json:
        print_json(stream, status_facts(result, code))
    return code


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object with the counts on stdout (the summary goes to stderr)",
    )


def status_facts(outcome: StatusResult, code: int) -> dict[str, Any]:
    """The JSON object of ``status --json``: the counts the summary shows."""
    result = outcome.refresh
    facts: dict[str, Any] = {
        "exit_code": code,
        "output": str(outcome.output),
        "with_id": result.with_id,
        "final": result.final,
        "not_final": result.not_final,
        "asked": result.asked,
        "calls": result.calls,
        "by_status": dict(sorted(result.by_status.items(), key=lambda i: (-i[1], i[0]))),
        "not_found": result.not_found,
        "skipped": result.skipped,
        "from_events": outcome.from_events,
    }
    if outcome.wait is not None:
        facts.update(rounds=outcome.wait.rounds, waited_seconds=round(outcome.wait.waited, 1))
    return facts


def finish_status(result: StatusResult) -> int:
    """Print what a status pass found and pick its exit code (also a job's status step)."""
    print_refresh(result)
    if result.writes:
        print(f"Wrote {result.output}")
    return EXIT_OK if result.all_final else EXIT_INCOMPLETE


def print_refresh(outcome: StatusResult) -> None:
    from mobizon_batch.cli.output import format_duration

    result, waited = outcome.refresh, outcome.wait
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
    if waited is None:
        asked = f"Asked about {result.asked:,} id(s) in {result.calls:,} call(s)"
        if not result.to_ask:
            asked = "Every row with a message id is final already: nothing to ask"
            if result.from_events:
                asked = "Nothing left to ask"
    else:
        asked = (
            f"Checked {waited.rounds:,} time(s) over {format_duration(waited.waited)}, "
            f"{waited.calls:,} call(s) in all"
        )
    if outcome.from_events:
        print(f"From webhook events: {outcome.from_events} row(s) made final, no call spent.")
    print(
        f"{asked}. Rows with an id: {result.with_id:,}, final: {result.final:,}, "
        f"not final: {result.not_final:,}."
    )
    counts = sorted(result.by_status.items(), key=lambda item: (-item[1], item[0]))
    print("  " + ", ".join(f"{status} {count:,}" for status, count in counts))
    if result.not_found:
        print(
            f"warning: Mobizon does not know {result.not_found} of the ids (marked "
            f"{NOT_FOUND}): from another account, or mistyped?",
            file=sys.stderr,
        )
    if waited is not None and result.pending:
        print(
            f"{result.pending} row(s) still not final when --wait ran out; "
            f"run 'status' again later.",
            file=sys.stderr,
        )
    elif waited is not None and result.not_found:
        print(
            "Stopped waiting: the only rows left are ids Mobizon does not know.",
            file=sys.stderr,
        )


def add_list(commands: Commands) -> None:
    parser = commands.add_parser(
        "list",
        help="export sent messages (Message/List) to CSV or XLSX",
        description="Export every page of Mobizon's message list (100 a page) with the "
        "filters given. Times are the account's local time: 2026-11-28, "
        "'2026-11-28 14:30', or a duration back from now on the account's clock (2h, 1d).",
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
    parser.add_argument(
        "--timezone",
        metavar="ZONE",
        help="the account's time zone, for durations such as --since 2h (Asia/Almaty, "
        "+05:00); default: the API domain's country, else this machine's",
    )
    add_raw_csv(parser)
    add_read_options(parser)
    parser.set_defaults(handler=run_list)


def run_list(args: argparse.Namespace) -> int:
    from mobizon_batch.cli.output import TerminalObserver, count_bar
    from mobizon_batch.listing import parse_sort
    from mobizon_batch.runs.report import ExportOptions, export_list

    options = ExportOptions(
        args.output,
        since=args.since,
        until=args.until,
        statuses=args.status,
        to=args.to,
        from_name=args.from_name,
        text=args.text,
        campaign_ids=args.campaign_ids,
        timezone=args.timezone,
        sort=parse_sort(args.sort) if args.sort else None,
        rate=args.rate,
        api=api_options_from_args(args),
        raw_csv=args.raw_csv,
    )
    observer = TerminalObserver(args)
    with count_bar(args, "msg", "listing") as bar:
        observer.status_bar = bar
        result = export_list(options, observer)
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print_export(result.export, args.output)
    return EXIT_OK


def print_export(export: ListExport, output: str) -> None:
    print(f"Exported {len(export.items)} message(s) in {export.pages} page(s) to {output}.")
    if export.changed:
        print(
            f"warning: the list changed while it was being read: Mobizon counted "
            f"{export.total_first} at the start and {export.total_last} at the end, and "
            f"{len(export.items)} row(s) were written"
            + (f" ({export.duplicates} seen twice were written once)" if export.duplicates else "")
            + ". Run it again, or bound it with --until, for a consistent snapshot.",
            file=sys.stderr,
        )


def add_report(commands: Commands) -> None:
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
    parser.add_argument(
        "--lang",
        choices=REPORT_LANGUAGES,
        help="language of the report's sheets, labels and headers (default: ru when the "
        "locale is Russian or Kazakh, else en); the results file's columns keep their names",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="print no summary")
    add_json_flag(parser)
    parser.set_defaults(handler=run_report)


def run_report(args: argparse.Namespace) -> int:
    from mobizon_batch.cli.output import json_output, print_json
    from mobizon_batch.runs.report import ReportOptions, build_report

    options = ReportOptions(args.results, args.output, args.sheet, lang=args.lang)
    with json_output(args) as stream:
        result = build_report(options)
        code = finish_report(result, quiet=args.quiet)
    if args.json:
        print_json(stream, report_facts(result))
    return code


def finish_report(result: ReportResult, *, quiet: bool = False) -> int:
    """Print the report's summary (also a job's report step)."""
    if not quiet:
        for line in format_summary(result.summary):
            print(line)
        print(f"Wrote {result.output} (sheets: {', '.join(result.sheets)})")
    return EXIT_OK


def report_facts(result: ReportResult) -> dict[str, Any]:
    """The JSON object of ``report --json``: the key figures and the breakdowns."""
    summary = result.summary
    return {
        "output": str(result.output),
        "lang": result.lang,
        "rows": summary.rows,
        "sent": summary.sent,
        "delivered": summary.delivered,
        "delivery_rate": summary.delivery_rate,
        "final": summary.final,
        "in_progress": summary.in_progress,
        "problems": summary.problems,
        "segments_estimated": summary.segments_estimated,
        "segments_billed": summary.segments_billed,
        "by_send_status": dict(summary.by_send_status.most_common()),
        "by_status": dict(summary.by_status.most_common()),
    }


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
