"""``mobizon-batch webhook``: receive Mobizon's pushed events, or export the opt-outs they hold.

Two forms of one command, sharing ``--store``:

    webhook --listen HOST:PORT --store STORE.sqlite [--path /PATH]
    webhook --store STORE.sqlite --export-optout FILE

The receiver logs one line per event to stderr (the journal, under systemd)
and stops cleanly on SIGTERM or Ctrl-C with exit 0: stopping is how a server
ends, not an interruption to be resumed.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from mobizon_batch.cli.exits import EXIT_OK
from mobizon_batch.cli.options import Commands, positive_int
from mobizon_batch.config import DEFAULT_REGION
from mobizon_batch.config import ENV_WEBHOOK_SECRET as SECRET_VARIABLE
from mobizon_batch.errors import ConfigError
from mobizon_batch.webhook_app import DEFAULT_MAX_BODY

# The receiver and the export are imported by the functions that run them:
# ``--help`` builds the parser from argparse alone.
if TYPE_CHECKING:
    from mobizon_batch.runs.webhook import Receiver

# A filter on a logger does not see its children's records, so each logger that
# writes while serving is named: waitress logs the task queue under its own child.
_LOGGERS = ("mobizon_batch.webhook", "waitress", "waitress.queue")


def add_webhook(commands: Commands) -> None:
    parser = commands.add_parser(
        "webhook",
        help="receive delivery reports Mobizon pushes (webhooks), or export their opt-outs",
        description="With --listen: serve the URL set up in the Mobizon panel (API → "
        "Webhooks, data format json). Each event's signature is checked with the secret "
        f"in {SECRET_VARIABLE}, and the event is written to STORE before it is "
        "acknowledged; 'status --events STORE' then fills statuses from it. With "
        "--export-optout: add the numbers of people who unsubscribed through Mobizon's "
        "forms to an opt-out list that 'send --optout' reads (numbers are only ever added).",
    )
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument(
        "--listen",
        type=_address,
        metavar="HOST:PORT",
        help="address to serve on, e.g. 127.0.0.1:8085 behind a reverse proxy (port 0: any)",
    )
    mode.add_argument(
        "--export-optout",
        metavar="FILE",
        help="add the store's unsubscribed numbers to this opt-out list (.txt or .csv)",
    )
    parser.add_argument(
        "--store", required=True, metavar="STORE.sqlite", help="the event store (created)"
    )
    parser.add_argument(
        "--path", default="/", metavar="/PATH", help="URL path events are POSTed to (default /)"
    )
    parser.add_argument(
        "--insecure-no-signature",
        action="store_true",
        help=f"accept unsigned events when {SECRET_VARIABLE} is not set (a webhook "
        "without a secret key); anyone who finds the URL can then write statuses",
    )
    parser.add_argument(
        "--threads", type=positive_int, default=8, metavar="N", help="worker threads (default 8)"
    )
    parser.add_argument(
        "--max-body",
        type=positive_int,
        default=DEFAULT_MAX_BODY,
        metavar="BYTES",
        help=f"largest event accepted (default {DEFAULT_MAX_BODY}); Mobizon's are under 1 KB",
    )
    parser.add_argument(
        "--region",
        default=DEFAULT_REGION,
        metavar="CC",
        help=f"country for numbers written without a country code (default {DEFAULT_REGION})",
    )
    parser.set_defaults(handler=cmd_webhook)


def cmd_webhook(args: argparse.Namespace) -> int:
    if args.export_optout is not None:
        return _export(args)
    from mobizon_batch.runs.webhook import Receiver, ReceiverOptions

    host, port = args.listen
    options = ReceiverOptions(
        store=Path(args.store),
        host=host,
        port=port,
        path=args.path,
        secret=os.environ.get(SECRET_VARIABLE, "").strip() or None,
        insecure_no_signature=args.insecure_no_signature,
        threads=args.threads,
        max_body=args.max_body,
    )
    with _event_log(options.secret):
        receiver = Receiver(options)
        with _stop_on_signals(receiver) as stopped_by:
            print(
                f"Receiving Mobizon webhook events at {receiver.url} (store {args.store}"
                f"{', UNSIGNED events accepted' if options.secret is None else ''}); "
                "stop with Ctrl-C or SIGTERM",
                file=sys.stderr,
                flush=True,
            )
            counts = receiver.serve()
    print(
        f"Stopped{f' ({stopped_by[0]})' if stopped_by else ''}. The store holds "
        f"{counts.events} event(s): {counts.reports} delivery report(s), "
        f"{counts.unsubscribes} unsubscribe(s); {counts.deliveries} delivery(ies) received.",
        file=sys.stderr,
    )
    return EXIT_OK


def _export(args: argparse.Namespace) -> int:
    if args.insecure_no_signature:
        raise ConfigError("--insecure-no-signature only applies with --listen")
    from mobizon_batch.runs.webhook import export_optout

    done = export_optout(args.store, args.export_optout, args.region)
    print(
        f"Added {done.added} number(s) to {done.path} "
        f"({done.in_store} unsubscribed number(s) in {args.store})."
    )
    return EXIT_OK


@contextlib.contextmanager
def _event_log(secret: str | None) -> Iterator[None]:
    """Event lines (INFO) on, and the secret taken out of every line, while serving."""
    from mobizon_batch.client import RedactingFilter

    redacting = RedactingFilter([secret or ""])
    saved = []
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.level))
        logger.addFilter(redacting)
        if name == "mobizon_batch.webhook":
            logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        for logger, level in saved:
            logger.removeFilter(redacting)
            logger.setLevel(level)


@contextlib.contextmanager
def _stop_on_signals(receiver: Receiver) -> Iterator[list[str]]:
    """SIGTERM and SIGINT stop the receiver cleanly (from the main thread only)."""
    stopped_by: list[str] = []
    if threading.current_thread() is not threading.main_thread():
        yield stopped_by
        return

    def stop(signum: int, frame: object) -> None:
        stopped_by.append(signal.Signals(signum).name)
        receiver.stop()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stopped_by
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _address(text: str) -> tuple[str, int]:
    host, colon, port = text.strip().rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not colon or not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not HOST:PORT (for example 127.0.0.1:8085, or 0.0.0.0:8085 for "
            f"every interface)"
        )
    return host, int(port)


__all__ = ["add_webhook", "cmd_webhook"]
