"""Exit codes, and the one place that maps errors and results to them.

Scripts and cron rely on these numbers (see the README); the use cases
never pick them, they return results and raise errors that mean something.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import TYPE_CHECKING

from mobizon_batch.config import ENV_API_KEY
from mobizon_batch.errors import (
    ApiError,
    ConfigError,
    InputError,
    MobizonBatchError,
    RunAborted,
    StorageError,
    TransportError,
)

if TYPE_CHECKING:
    from mobizon_batch.send import SendSummary

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_INPUT = 3
EXIT_INCOMPLETE = 4
EXIT_ABORTED = 5
#: stopped before sending by a limit the user set or confirmed (--max-cost, the balance, "no")
EXIT_STOPPED = 6
#: A full or failing disk stopped the command; nothing is lost: free space, run it again.
EXIT_STORAGE = 7
EXIT_INTERRUPTED = 130

#: Exit codes after which a job goes on with its next step (the rest stop it).
SOFT_EXITS = (EXIT_OK, EXIT_INCOMPLETE)


def exit_code_for(exc: BaseException) -> int:
    """The documented exit code for an error that ended a command."""
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(exc, ConfigError):
        return EXIT_USAGE
    if isinstance(exc, InputError):
        return EXIT_INPUT
    if isinstance(exc, StorageError):
        return EXIT_STORAGE
    if isinstance(exc, RunAborted):
        return EXIT_ABORTED
    if isinstance(exc, ApiError) and exc.aborts_run:
        return EXIT_ABORTED
    return EXIT_INTERNAL


def send_exit_code(summary: SendSummary) -> int:
    """How a send pass ended, as an exit code."""
    if summary.aborted is not None:
        return exit_code_for(summary.aborted.cause or summary.aborted)
    if summary.interrupted:
        return EXIT_INTERRUPTED
    if summary.incomplete:
        return EXIT_INCOMPLETE
    return EXIT_OK


def error_sentence(exc: BaseException) -> str:
    """What to print for an error: our message, plus what to do for transport trouble."""
    text = str(exc)
    if isinstance(exc, TransportError) and exc.host:
        text += " — check MOBIZON_API_URL and the network"
    if isinstance(exc, StorageError) and "run the same command again" not in text:
        text += "; free space on that disk and run the same command again"
    return text


def redacted(text: str) -> str:
    from mobizon_batch.client import redact  # requests: only when there is an error to print

    return redact(text, os.environ.get(ENV_API_KEY, "").strip())


def report_error(exc: BaseException, verbosity: int) -> int:
    """Print an error that ended a command (one sentence; the traceback with -v); its code."""
    if isinstance(exc, KeyboardInterrupt):
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    if verbosity:
        lines = traceback.format_exception(exc)
        print(redacted("".join(lines)), file=sys.stderr, end="")
    if isinstance(exc, MobizonBatchError):
        print(f"error: {redacted(error_sentence(exc))}", file=sys.stderr)
        return exit_code_for(exc)
    print(
        f"internal error: {type(exc).__name__}: {redacted(str(exc))} "
        f"(run with -v for the traceback)",
        file=sys.stderr,
    )
    return EXIT_INTERNAL
