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
from typing import TextIO

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
        status_step=args.status_step,
        moderation=args.moderation,
        seed=args.seed,
    )
    if config.fault_503 + config.fault_drop_before + config.fault_drop_after > 1.0:
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
    for add in (_add_balance, _add_emulator):
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
