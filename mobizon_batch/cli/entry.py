"""The entry point: the parser, logging, signals, and errors turned into exit codes.

Why all printing lives in ``cli/``: the library must be usable from scripts
and cron without a terminal, so the use cases report through result objects,
exceptions and an observer; the command line alone turns those into words,
progress bars and the exit codes that scripts rely on (see ``exits``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TextIO

from mobizon_batch._version import __version__
from mobizon_batch.cli.exits import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_USAGE, report_error
from mobizon_batch.cli.jobs import add_run
from mobizon_batch.cli.send import add_send
from mobizon_batch.cli.status import add_list, add_report, add_status
from mobizon_batch.cli.tools import add_balance, add_demo, add_emulator
from mobizon_batch.cli.validate import add_validate
from mobizon_batch.cli.webhook import add_webhook
from mobizon_batch.config import ENV_API_KEY

Handler = Callable[[argparse.Namespace], int]

log = logging.getLogger("mobizon_batch")


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
        add_validate,
        add_send,
        add_balance,
        add_emulator,
        add_status,
        add_list,
        add_report,
        add_run,
        add_demo,
        add_webhook,
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
        with logging_to(sys.stderr, args.verbose), sigterm_as_interrupt():
            return handler(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (``| head``): no more output, and no complaint at exit.
        with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_INTERNAL
    except Exception as exc:
        return report_error(exc, args.verbose)


@contextlib.contextmanager
def logging_to(stream: TextIO, verbosity: int) -> Iterator[None]:
    """Log to ``stream`` through a filter that removes the API key from every line.

    Everything is put back on the way out, so that ``main()`` called from a
    script leaves the caller's logging as it found it.
    """
    from mobizon_batch.client import RedactingFilter  # loads requests: not for --help

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


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
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
