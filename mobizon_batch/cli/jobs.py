"""``mobizon-batch run JOB.toml``: a job's steps, its log and its JSON summary."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import sys
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from mobizon_batch.cli.exits import (
    EXIT_INTERNAL,
    EXIT_OK,
    exit_code_for,
    report_error,
)
from mobizon_batch.cli.options import Commands
from mobizon_batch.cli.send import finish_send
from mobizon_batch.cli.status import finish_report, finish_status
from mobizon_batch.config import DEFAULT_MAX_INPUT_MB, ENV_API_KEY
from mobizon_batch.errors import ConfigError, MobizonBatchError
from mobizon_batch.jobs import check_summary_path, load_job
from mobizon_batch.private_files import open_private_append
from mobizon_batch.vocabulary import SEND_MODES

# The use cases and what they load (pandas, requests, openpyxl) are imported
# by the functions that need them: ``--help`` builds the parser from argparse alone.
if TYPE_CHECKING:
    from mobizon_batch.runs.jobs import JobResult, StepOptions, StepResult


def add_run(commands: Commands) -> None:
    parser = commands.add_parser(
        "run",
        help="run a job file: validate, send, status, report (for cron and timers)",
        description="Run the steps a TOML job file describes: send its input (the list is "
        "checked first), refresh the statuses, write the report. Running it again after a "
        "crash the same day resumes the same send. A second copy of the same job refuses "
        "to start while one runs. Everything printed also goes to a log file beside the "
        "output. See jobs/ for examples.",
    )
    parser.add_argument("job", metavar="JOB.toml", help="the job file")
    parser.add_argument(
        "--summary", metavar="FILE", type=Path, help="write a JSON summary of the run here"
    )
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="print nothing but a line on failure (the log file still gets everything)",
    )
    parser.set_defaults(handler=run_job_command)


def step_exit_code(args: argparse.Namespace, step: StepResult) -> int:
    """Render a step's result (or error) as its command would, and give its exit code."""
    from mobizon_batch.runs.report import ReportResult
    from mobizon_batch.runs.send import SendListResult
    from mobizon_batch.runs.status import StatusResult

    try:
        if step.error is not None:
            raise step.error
        if isinstance(step.result, SendListResult):
            return finish_send(args, step.result)
        if isinstance(step.result, StatusResult):
            return finish_status(step.result)
        if isinstance(step.result, ReportResult):
            return finish_report(step.result)
        return EXIT_INTERNAL
    except (Exception, KeyboardInterrupt) as exc:
        return report_error(exc, args.verbose)


def command_line(step: str, options: StepOptions) -> list[str]:
    """The command that does what a step does, for the log (the job's own URL left out)."""
    from mobizon_batch.runs.send import SendListOptions
    from mobizon_batch.runs.status import StatusOptions
    from mobizon_batch.send import SendOptions

    if isinstance(options, SendListOptions):
        argv = ["send", str(options.input), "-o", str(options.output)]
        read, plan, send = options.read, options.plan, options.send
        flags: list[tuple[str, object]] = [
            ("--encoding", read.encoding),
            ("--delimiter", read.delimiter),
            ("--sheet", read.sheet),
            ("--header-row", read.header_row),
            ("--phone-column", plan.phone_column),
            ("--text-column", plan.text_column),
            ("--template", plan.template),
            ("--optout", plan.optout_path),
            ("--from", send.sender),
            ("--name", send.name),
            ("--validity", send.validity),
            ("--deferred-to", options.deferred_to),
            ("--timezone", options.timezone),
            ("--send-window", options.send_window),
            ("--journal", options.journal),
            ("--mode", options.mode if options.mode != SEND_MODES[0] else None),
            ("--max-cost", options.campaign.max_cost),
        ]
        if read.max_input_mb != DEFAULT_MAX_INPUT_MB:
            flags.append(("--max-input-mb", read.max_input_mb))
        argv += [part for flag, value in flags if value is not None for part in (flag, str(value))]
        if send.settle_seconds != SendOptions().settle_seconds:
            argv += ["--settle", f"{send.settle_seconds:g}"]
        return argv + (["--raw-csv"] if options.raw_csv else [])
    if isinstance(options, StatusOptions):
        argv = ["status", str(options.results)]
        if options.wait is not None:
            argv += ["--wait", f"{options.wait:g}s"]
        if options.interval is not None:
            argv += ["--interval", f"{options.interval:g}s"]
        if options.events is not None:
            argv += ["--events", str(options.events)]
        return argv + (["--raw-csv"] if options.raw_csv else [])
    return [step, str(options.results), "-o", str(options.output)]


def run_job_command(args: argparse.Namespace) -> int:
    from mobizon_batch.cli.terminal import JobTerminal
    from mobizon_batch.runs.jobs import job_paths, run_job

    started = datetime.now()
    facts: dict[str, Any] = {
        "job_file": str(args.job),
        "started_at": started.isoformat(" ", "seconds"),
    }
    code = EXIT_INTERNAL
    summary: Path | None = args.summary
    try:
        job = load_job(args.job, started.date())
        if summary is not None:
            try:
                check_summary_path(job, summary)
            except ConfigError:
                summary = None  # it names a file the job uses: write nothing there
                raise
        facts.update(job=job.name, paths=job_paths(job))
        observer = JobTerminal(args)
        result = run_job(job, observer)
        code = observer.combined()
        facts["steps"] = [{"step": name, "exit_code": c} for name, c in observer.codes]
        facts.update(figures(result))
        if code != EXIT_OK and args.quiet:
            print(f"job {job.name} ended with exit code {code}: see {job.log}", file=sys.stderr)
        return code
    except MobizonBatchError as exc:
        code = exit_code_for(exc)
        facts["error"] = str(exc)
        raise
    finally:
        if summary is not None:
            facts.update(finished_at=datetime.now().isoformat(" ", "seconds"), exit_code=code)
            write_json(summary, facts)


def figures(result: JobResult) -> dict[str, Any]:
    """Counts by send_status and by delivery status, and segments, for the JSON summary."""
    summary = result.figures
    if summary is None:
        return {}
    by_send = _ordered(summary.by_send_status)
    for name in ("sent", "failed", "invalid", "duplicate", "opted_out", "unknown"):
        by_send.setdefault(name, 0)
    return {
        "send_status": by_send,
        "delivery_status": _ordered(summary.by_status),
        "segments": {
            "estimated": summary.segments_estimated,
            "billed": summary.segments_billed,
        },
    }


def _ordered(counts: Mapping[str, int]) -> dict[str, int]:
    """Most rows first, then by name: the order the report shows them in."""
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def write_json(path: Path, facts: Mapping[str, Any]) -> None:
    """Write the summary, but never over a file that is not one (a mistyped --summary)."""
    from mobizon_batch.table import atomic_file

    text = json.dumps(facts, ensure_ascii=False, indent=2) + "\n"
    if not _is_json_or_absent(path):
        print(
            f"warning: did not write the summary: {path} exists and is not a JSON summary",
            file=sys.stderr,
        )
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(path) as temporary:
            Path(temporary).write_text(text, encoding="utf-8")
    except (OSError, MobizonBatchError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else exc
        print(f"warning: could not write the summary {path}: {reason}", file=sys.stderr)


def _is_json_or_absent(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            head = handle.read(64).lstrip()
    except FileNotFoundError:
        return True
    except OSError:
        return True  # the write itself will say what is wrong
    return not head or head.startswith(b"{")


class _Tee(io.TextIOBase):
    """Writes to the screen (unless quiet) and, line by line, to the job's log.

    Progress bars redraw themselves with carriage returns; those writes go to
    the screen only, so the log holds whole lines.
    """

    def __init__(self, screen: TextIO, log: TextIO, quiet: bool) -> None:
        from mobizon_batch.client import redact

        self.screen, self.log, self.quiet = screen, log, quiet
        self.redact = redact

    def write(self, text: str) -> int:
        if not self.quiet:
            self.screen.write(text)
        if "\r" not in text:
            self.log.write(self.redact(text, os.environ.get(ENV_API_KEY, "").strip()))
        return len(text)

    def flush(self) -> None:
        if not self.quiet:
            self.screen.flush()
        self.log.flush()

    def isatty(self) -> bool:
        return not self.quiet and self.screen.isatty()


@contextlib.contextmanager
def job_log(path: Path, quiet: bool) -> Iterator[Path]:
    """Send everything printed (and logged) during the job to ``path`` as well."""
    from mobizon_batch.client import RedactingFilter

    try:
        log_file = open_private_append(path)  # owner-only when new; closed below
    except OSError as exc:
        raise ConfigError(f"cannot write the job's log {path}: {exc.strerror}") from None
    with log_file:
        handler = logging.StreamHandler(log_file)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.addFilter(RedactingFilter([os.environ.get(ENV_API_KEY, "").strip()]))
        logging.getLogger().addHandler(handler)
        out, err = _Tee(sys.stdout, log_file, quiet), _Tee(sys.stderr, log_file, quiet)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                yield path
        finally:
            logging.getLogger().removeHandler(handler)
