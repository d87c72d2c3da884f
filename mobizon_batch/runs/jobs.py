"""run_job: a job file's steps (send, status, report) as direct calls of the use cases.

Why no command line in between: a job's settings are typed values already,
and the precedence of settings (flag > environment > job file > default)
can only hold if the job's values stay the job's — turned into flags they
would beat the environment.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from mobizon_batch.config import parse_duration
from mobizon_batch.errors import ConfigError
from mobizon_batch.history import DEFAULT_WINDOW
from mobizon_batch.jobs import Job, job_lock
from mobizon_batch.journal import default_journal_path
from mobizon_batch.prepare import PlanOptions
from mobizon_batch.report import ReportSummary
from mobizon_batch.runs import checks
from mobizon_batch.runs.campaign import MESSAGE, CampaignChoice, check_mode

# JobObserver lives beside Observer: the terminal observers derive from it without
# loading every use case.
from mobizon_batch.runs.common import ApiOptions, Observer, ReadOptions
from mobizon_batch.runs.common import JobObserver as JobObserver
from mobizon_batch.runs.report import ReportOptions, ReportResult, build_report, results_figures
from mobizon_batch.runs.send import SendListOptions, SendListResult, send_list
from mobizon_batch.runs.status import StatusOptions, StatusResult, refresh_statuses
from mobizon_batch.send import SendOptions
from mobizon_batch.sendwindow import parse_window
from mobizon_batch.table import DEFAULT_MAX_INPUT_MB, check_output_path

StepOutcome = SendListResult | StatusResult | ReportResult
StepOptions = SendListOptions | StatusOptions | ReportOptions
#: a step: its name, its options (for the log) and the call that runs it
Step = tuple[str, StepOptions, Callable[[], StepOutcome]]


@dataclass(frozen=True)
class StepResult:
    """One step of a job: its result, or the error (or interruption) that ended it."""

    step: str
    result: StepOutcome | None = None
    error: BaseException | None = None

    @property
    def stops_job(self) -> bool:
        """True when the next steps must not run (rows merely failed or pending do not stop it)."""
        if self.error is not None:
            return True
        if isinstance(self.result, SendListResult):
            summary = self.result.summary
            return (
                self.result.refusal() is not None
                or self.result.write_error is not None
                or (summary is not None and (summary.aborted is not None or summary.interrupted))
            )
        return False


@dataclass
class JobResult:
    """The steps a job ran, and the figures of its results file afterwards."""

    job: Job
    steps: list[StepResult] = field(default_factory=list)
    #: the results file's figures when the job ended (None if there is no file)
    figures: ReportSummary | None = None


def run_steps(steps: Sequence[Step], observer: JobObserver) -> list[StepResult]:
    """Run steps one after another, stopping after one that must stop the rest."""
    done: list[StepResult] = []
    for name, options, run in steps:
        observer.step_started(name, options)
        try:
            step = StepResult(name, result=run())
        except (Exception, KeyboardInterrupt) as exc:
            step = StepResult(name, error=exc)
        observer.step_finished(step)
        done.append(step)
        if step.stops_job:
            break
    return done


def run_job(job: Job, observer: JobObserver | None = None) -> JobResult:
    """Send the job's list (if it has one), refresh the statuses, write the report."""
    observer = observer or JobObserver()
    steps = job_steps(job, observer)  # bad values stop the job before anything runs
    for path in (job.output, job.report, job.log):
        if path is not None:  # a job makes its own output folders, then checks them
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(
                    f"{job.path}: cannot make the folder {path.parent}: {exc.strerror}"
                ) from None
    check_output_path(job.output)
    if job.log.is_dir():
        raise ConfigError(f"{job.path}: the log {job.log} is a folder")
    result = JobResult(job)
    with job_lock(job.lock_path) as lock, observer.job_running(job, lock.took_over):
        result.steps = run_steps(steps, observer)
        report = next((s.result for s in result.steps if isinstance(s.result, ReportResult)), None)
        result.figures = report.summary if report else results_figures(job.output)
    return result


def job_steps(job: Job, observer: Observer) -> list[Step]:
    """The use cases a job calls, with the job's options (checked here, before any runs)."""
    api = ApiOptions(job_url=job.api_url)
    steps: list[Step] = []
    if job.input is not None:
        sending = send_options(job, api)
        steps.append(("send", sending, lambda: send_list(sending, observer)))
    if not job.status.get("skip", False):
        status = StatusOptions(
            job.output,
            wait=_duration(job, "wait"),
            interval=_duration(job, "interval", positive=True),
            events=job.status.get("events"),
            api=api,
            raw_csv=job.raw_csv,
        )
        steps.append(("status", status, lambda: refresh_statuses(status, observer)))
    if job.report is not None:
        report = ReportOptions(job.output, job.report)
        steps.append(("report", report, lambda: build_report(report)))
    return steps


def send_options(job: Job, api: ApiOptions) -> SendListOptions:
    """A job's ``[read]``, ``[columns]`` and ``[send]`` as the options of ``send_list``."""
    if job.input is None:
        raise ConfigError(f"{job.path}: a sending job needs 'input'")
    send, columns, read = job.send, job.columns, job.read
    defaults_plan, defaults_send = PlanOptions(), SendOptions()
    sheet = read.get("sheet")
    mode = send.get("mode", MESSAGE)
    choice = CampaignChoice(
        max_cost=_checked(job, "max_cost", checks.amount, None),
        rate=float(send["rate"]) if "rate" in send else None,
    )
    try:
        check_mode(mode, choice, send.get("send_window"))
    except ConfigError as exc:
        raise ConfigError(f"{job.path}: [send]: {exc}") from None
    return SendListOptions(
        input=job.input,
        output=job.output,
        plan=PlanOptions(
            phone_column=columns.get("phone"),
            text_column=columns.get("text"),
            template=columns.get("template"),
            region=send.get("region", defaults_plan.region),
            accept_possible=send.get("accept_possible", False),
            max_segments=_checked(job, "max_segments", checks.at_least_one, defaults_plan),
            allow_duplicates=send.get("allow_duplicates", False),
            optout_path=send.get("optout"),
        ),
        read=ReadOptions(
            encoding=read.get("encoding"),
            delimiter=read.get("delimiter"),
            sheet=str(sheet) if sheet is not None else None,
            header_row=_header_row(job),
            max_input_mb=read.get("max_input_mb", DEFAULT_MAX_INPUT_MB),
        ),
        send=SendOptions(
            sender=send.get("sender"),
            name=send.get("name"),
            validity=_checked(job, "validity", checks.validity, None),
            flash=send.get("flash", False),
            rate=float(_checked(job, "rate", checks.rate, defaults_send)),
            workers=_checked(job, "workers", checks.at_least_one, defaults_send),
            max_attempts=_checked(job, "max_attempts", checks.at_least_one, defaults_send),
            settle_seconds=float(
                _checked(job, "settle", checks.non_negative, None)
                if "settle" in send
                else defaults_send.settle_seconds
            ),
        ),
        send_window=_send_window(job),
        deferred_to=send.get("deferred_to"),
        timezone=send.get("timezone"),
        journal=job.journal,
        retry_failed=send.get("retry_failed", False),
        api=api,
        allow_resend=send.get("allow_resend", False),
        resend_window=timedelta(
            seconds=parse_duration(send["resend_window"])  # load_job checked the spelling
            if "resend_window" in send
            else DEFAULT_WINDOW.total_seconds()
        ),
        raw_csv=job.raw_csv,
        mode=mode,
        campaign=choice,
    )


def _checked(job: Job, key: str, check: Callable[[Any], Any], defaults: object) -> Any:
    if key not in job.send:
        return getattr(defaults, key) if defaults is not None else None
    try:
        return check(job.send[key])
    except ValueError as exc:
        raise ConfigError(f"{job.path}: 'send.{key}': {exc}") from None


def _send_window(job: Job) -> str | None:
    text = job.send.get("send_window")
    if text is None:
        return None
    try:
        parse_window(text)
    except ConfigError as exc:
        raise ConfigError(f"{job.path}: 'send.send_window': {exc}") from None
    return str(text)


def _header_row(job: Job) -> int | None:
    if "header_row" not in job.read:
        return None
    try:
        return int(checks.at_least_one(job.read["header_row"]))
    except ValueError as exc:
        raise ConfigError(f"{job.path}: 'read.header_row': {exc}") from None


def _duration(job: Job, key: str, *, positive: bool = False) -> float | None:
    if key not in job.status:
        return None
    seconds = parse_duration(job.status[key])  # load_job checked the spelling
    if positive and seconds <= 0:
        raise ConfigError(
            f"{job.path}: 'status.{key}': {job.status[key]!r} must be longer than zero"
        )
    return seconds


def job_paths(job: Job) -> dict[str, str | None]:
    """The files a job reads and writes, for its summary."""
    journal = job.journal or (default_journal_path(job.output) if job.sends else None)
    return {
        "input": str(job.input) if job.input else None,
        "output": str(job.output),
        "report": str(job.report) if job.report else None,
        "journal": str(journal) if journal else None,
        "log": str(job.log),
    }
