"""The observers that draw a job's steps (``run``) and the demo's on the terminal.

Apart from ``jobs`` and ``tools`` because they derive from the use cases'
observers: those commands import this module when they run, and building the
parser (``--help``) loads none of it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from mobizon_batch.cli.exits import EXIT_INCOMPLETE, EXIT_OK, SOFT_EXITS
from mobizon_batch.cli.jobs import command_line, job_log, step_exit_code
from mobizon_batch.cli.output import TerminalObserver, count_bar
from mobizon_batch.config import DEMO_LOST_ANSWERS
from mobizon_batch.jobs import Job
from mobizon_batch.runs.demo import DemoObserver
from mobizon_batch.runs.jobs import StepOptions, StepResult
from mobizon_batch.runs.status import StatusOptions
from mobizon_batch.vocabulary import TIMESTAMP_FORMAT


class JobTerminal(TerminalObserver):
    """Each step as the command of the same name shows it, with its exit code.

    A job prints the summaries even with ``--quiet`` (the job's own quiet
    only silences the screen, the log still gets everything).
    """

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(argparse.Namespace(quiet=False, verbose=args.verbose))
        self.codes: list[tuple[str, int]] = []
        self.run_args = args

    def step_started(self, step: str, options: StepOptions) -> None:
        shown = shlex.join(["mobizon-batch", *command_line(step, options)])
        print(f"\n== {step}: {shown}", flush=True)
        if isinstance(options, StatusOptions):
            waiting = options.wait is not None
            self.waiting, self.rounds = waiting, 0
            bar = count_bar(
                self.args, "row" if waiting else "id", "final" if waiting else "checked"
            )
            self.status_bar = bar

    def step_finished(self, step: StepResult) -> None:
        if self.status_bar is not None:
            self.status_bar.close()
            self.status_bar = None
        self.codes.append((step.step, step_exit_code(self.args, step)))

    def combined(self) -> int:
        """A hard failure's code if a step had one, else 4 if a step was incomplete, else 0."""
        for _, code in self.codes:
            if code not in SOFT_EXITS:
                return code
        return EXIT_INCOMPLETE if any(c == EXIT_INCOMPLETE for _, c in self.codes) else EXIT_OK

    @contextlib.contextmanager
    def job_running(self, job: Job, took_over: str) -> Iterator[None]:
        started = datetime.now()
        with job_log(job.log, self.run_args.quiet):
            print(f"=== job {job.name}, {started:{TIMESTAMP_FORMAT}}, process {os.getpid()}")
            if took_over:
                print(
                    f"warning: took over the lock of a run that died ({took_over})", file=sys.stderr
                )
            yield
            print(f"=== job {job.name} finished with exit code {self.combined()}")


class DemoTerminal(JobTerminal, DemoObserver):
    """The job's step lines, plus the demo's own introduction."""

    def demo_list(self, path: Path) -> None:
        print("mobizon-batch demo: the whole flow against the built-in API emulator (offline)")
        print(f"  the list: {path}")
        print("            (Cyrillic texts, a repeated row, invalid and opted-out rows)")

    def demo_api(self, url: str) -> None:
        lost = f"{DEMO_LOST_ANSWERS:.0%}"
        print(f"  the API:  emulator at {url}, losing {lost} of answers on purpose")
