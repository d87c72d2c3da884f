"""``mobizon-batch validate``: judge a list without sending anything."""

from __future__ import annotations

import argparse

from mobizon_batch.cli.exits import EXIT_OK
from mobizon_batch.cli.options import (
    Commands,
    add_plan_options,
    add_raw_csv,
    plan_options_from_args,
    read_options_from_args,
)


def add_validate(commands: Commands) -> None:
    parser = commands.add_parser(
        "validate",
        help="check a list without sending anything",
        description="Read the list, normalize the numbers, build the texts and judge every "
        "row (sendable, invalid, duplicate, opted out) without any network access. "
        "Exit code 0 when at least one row can be sent, 3 when none can.",
    )
    add_plan_options(parser)
    parser.add_argument(
        "-o",
        "--output",
        metavar="REPORT",
        help="write every row: the input columns, then line, recipient, verdict, reason, "
        "segments, encoding and final_text (.csv or .xlsx)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object with the counts on stdout (the summary goes to stderr)",
    )
    add_raw_csv(parser)
    parser.set_defaults(handler=run_validate)


def run_validate(args: argparse.Namespace) -> int:
    # Here, not at the top: ``--help`` must not load pandas and phonenumbers.
    from mobizon_batch.cli.output import (
        TerminalObserver,
        json_output,
        plan_facts,
        print_json,
        print_plan_summary,
    )
    from mobizon_batch.runs.validate import ValidateOptions, validate_list

    options = ValidateOptions(
        input=args.input,
        plan=plan_options_from_args(args),
        read=read_options_from_args(args),
        output=args.output or None,
        raw_csv=args.raw_csv,
    )
    with json_output(args) as stream:
        result = validate_list(options, TerminalObserver(args, show_plan=False))
        if not args.quiet or result.sendable == 0:
            print_plan_summary(result.plan)
        if result.report is not None:
            print(f"report: {result.report}")
    if args.json:
        print_json(
            stream,
            {**plan_facts(result.plan), "report": str(result.report) if result.report else None},
        )
    refusal = result.refusal()
    if refusal is not None:
        raise refusal
    return EXIT_OK
