"""``balance``, ``emulator`` and ``demo``: checking the account and trying the tool."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mobizon_batch.cli.exits import EXIT_OK
from mobizon_batch.cli.options import (
    Commands,
    add_api_options,
    api_options_from_args,
    fraction,
    money,
    non_negative,
    non_negative_int,
    port,
    rate,
)
from mobizon_batch.config import ENV_WEBHOOK_SECRET as SECRET_VARIABLE
from mobizon_batch.errors import ConfigError

# Each command imports its use case in the function that runs it: ``--help``
# builds the parser from argparse alone.


def add_balance(commands: Commands) -> None:
    parser = commands.add_parser(
        "balance",
        help="show the account balance (checks key and domain)",
        description="Ask User/GetOwnBalance: a cheap check that the key, the domain "
        "and the network all work. The key comes from MOBIZON_API_KEY.",
    )
    add_api_options(parser)
    parser.set_defaults(handler=run_balance)


def run_balance(args: argparse.Namespace) -> int:
    from mobizon_batch.cli.output import format_money
    from mobizon_batch.runs.common import account_balance

    balance = account_balance(api_options_from_args(args))
    print(
        f"Balance: {format_money(balance.amount)} {balance.currency}".rstrip()
        + f"  ({balance.host})"
    )
    return EXIT_OK


def add_emulator(commands: Commands) -> None:
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
        "--port", type=port, default=8080, help="port (default: 8080; 0 picks a free one)"
    )
    parser.add_argument(
        "--api-key",
        default="test-key",
        help="the key it accepts (default: test-key; 'any' accepts every key)",
    )
    parser.add_argument(
        "--latency-ms", type=non_negative, default=0.0, help="delay before each answer"
    )
    parser.add_argument(
        "--rate",
        type=rate,
        default=0.0,
        metavar="PER_SECOND",
        help="calls per second allowed per method before code 30 (default: no limit)",
    )
    for flag, what in (
        ("--fault-503", "share of calls answered HTTP 503"),
        (
            "--fault-drop-before",
            "share of calls whose connection is dropped before anything is done",
        ),
        ("--fault-drop-after", "share of calls whose connection is dropped after the work is done"),
        (
            "--fault-999-after",
            "share of calls that do the work, then answer code 999 (service error)",
        ),
    ):
        parser.add_argument(flag, type=fraction, default=0.0, metavar="P", help=what)
    parser.add_argument(
        "--status-step",
        type=non_negative,
        default=2.0,
        metavar="SECONDS",
        help="how long each non-final status lasts, on average (default: 2)",
    )
    parser.add_argument(
        "--moderation", action="store_true", help="answer sends as awaiting moderation"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for faults and final statuses")
    allowed = parser.add_argument_group("behaviours the API docs allow")
    allowed.add_argument(
        "--list-lag",
        type=non_negative,
        default=0.0,
        metavar="SECONDS",
        help="a new message shows in Message/List only this long after it was made",
    )
    allowed.add_argument(
        "--random-ids", action="store_true", help="message ids that do not grow with time"
    )
    allowed.add_argument(
        "--normalize-whitespace",
        action="store_true",
        help="store texts with runs of whitespace collapsed and the ends trimmed",
    )
    allowed.add_argument(
        "--clock-offset",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="the account's clock is this far ahead of this machine's (another time zone)",
    )
    parser.add_argument(
        "--timezone",
        metavar="ZONE",
        help="the account's time zone (such as Asia/Almaty): the times it writes and the "
        "deferredToTs it checks (default: this machine's)",
    )
    parser.add_argument(
        "--balance",
        type=money,
        metavar="AMOUNT",
        help="the account's balance at start (default: 100000)",
    )
    parser.add_argument(
        "--stop-list",
        metavar="NUMBERS",
        default="",
        help="comma-separated numbers Campaign/AddRecipients refuses with code 5 (stop list)",
    )
    parser.add_argument(
        "--campaign-moderation",
        choices=("approve", "decline"),
        help="Campaign/Send goes to a moderator, who approves or declines after a second",
    )
    parser.add_argument(
        "--preload",
        type=int,
        default=0,
        metavar="N",
        help="start with N messages already sent (for benchmarks; ids are printed)",
    )
    parser.add_argument(
        "--webhook-url",
        metavar="URL",
        help="push each message's final status there, as Mobizon's webhooks do (signed "
        f"with {SECRET_VARIABLE} when it is set); try it with the webhook command",
    )
    parser.add_argument(
        "--webhook-redeliveries",
        type=non_negative_int,
        default=0,
        metavar="N",
        help="deliver each event N more times with the same eventId, as when an answer "
        "came too late (default: 0)",
    )
    parser.set_defaults(handler=run_emulator)


def run_emulator(args: argparse.Namespace) -> int:
    from mobizon_batch.emulator import EmulatorConfig, MobizonEmulator  # only this command

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
        timezone=_zone_name(args.timezone),
        webhook_url=args.webhook_url,
        webhook_secret=os.environ.get(SECRET_VARIABLE, "").strip() or None,
        webhook_redeliveries=args.webhook_redeliveries,
        list_lag=args.list_lag,
        random_ids=args.random_ids,
        normalize_whitespace=args.normalize_whitespace,
        clock_offset=args.clock_offset,
        **({"balance": args.balance} if args.balance is not None else {}),
        stop_list=frozenset(n.strip() for n in args.stop_list.split(",") if n.strip()),
        campaign_moderation=args.campaign_moderation or "",
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
    if config.webhook_url:
        signed = "signed" if config.webhook_secret else f"unsigned: {SECRET_VARIABLE} is not set"
        print(f"  delivery reports pushed to {config.webhook_url} ({signed})", flush=True)
    print("Press Ctrl-C to stop.", file=sys.stderr, flush=True)
    emulator.serve_forever()
    return EXIT_OK


def add_demo(commands: Commands) -> None:
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
    parser.set_defaults(handler=run_demo_command)


def run_demo_command(args: argparse.Namespace) -> int:
    from mobizon_batch.cli.terminal import DemoTerminal
    from mobizon_batch.runs.demo import run_demo

    observer = DemoTerminal(args)
    demo = run_demo(args.out, observer)
    code = observer.combined()
    print()
    if code == EXIT_OK:
        print(f"Demo done: the emulator accepted {demo.accepted} messages, each row exactly once.")
        print(f"  results: {demo.results}  (each input row with its send status, id and status)")
        print(f"  report:  {demo.report}  (summary with a chart, every message, the problems)")
        print(f"  journal: {demo.journal}  (what makes a re-run safe)")
        print(
            f"  campaign mode: {demo.campaign_results}  (the same list again: "
            f"{demo.accepted_in_campaigns} messages staged in one campaign, priced, sent once)"
        )
        print("Next: set MOBIZON_API_KEY and try 'mobizon-batch balance' against your account.")
    else:
        last = observer.codes[-1][0]
        print(f"The demo stopped at step '{last}' (exit code {code}).", file=sys.stderr)
    return code


def _zone_name(text: str | None) -> str | None:
    """A zone name the emulator can use (a name, not an offset), else one sentence."""
    if text is None:
        return None
    try:
        ZoneInfo(text.strip())
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ConfigError(
            f"--timezone {text!r} is not a time zone name (such as Asia/Almaty)"
        ) from None
    return text.strip()
