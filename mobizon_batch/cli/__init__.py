"""The command line: ``mobizon-batch COMMAND`` (the console script is ``cli:main``).

``entry`` assembles the parser and maps errors to exit codes; ``options``
holds the flags several commands share; one module per command family
(``validate``, ``send``, ``status`` with ``list`` and ``report``, ``jobs``,
``tools`` for balance, emulator and demo, ``webhook`` for the receiver of
pushed delivery reports); ``output`` draws progress bars
and summaries, ``terminal`` the steps of a job and of the demo.  The command
modules import their use case (and pandas, requests, ...) in the function that
runs it, so ``--help`` costs argparse alone.  Each command parses, calls one use case from
``mobizon_batch.runs``, renders its result and picks the exit code.
"""

from __future__ import annotations

from mobizon_batch.cli.entry import build_parser, main
from mobizon_batch.cli.exits import (
    EXIT_ABORTED,
    EXIT_INCOMPLETE,
    EXIT_INPUT,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
)

__all__ = [
    "EXIT_ABORTED",
    "EXIT_INCOMPLETE",
    "EXIT_INPUT",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "build_parser",
    "main",
]
