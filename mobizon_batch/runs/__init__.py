"""Use cases: what a command does, callable from Python and from job files.

Each takes typed options, returns a result object, and never prints or picks
an exit code: the command line renders the results, a script reads them.
Progress and interruption come in through an ``Observer``.
"""

from __future__ import annotations

from mobizon_batch.runs.common import ApiOptions, ListOptions, Observer, ReadOptions, SendStart
from mobizon_batch.runs.demo import DemoObserver, DemoResult, run_demo
from mobizon_batch.runs.jobs import JobObserver, JobResult, StepResult, job_paths, run_job
from mobizon_batch.runs.report import (
    ExportOptions,
    ExportResult,
    ReportOptions,
    ReportResult,
    build_report,
    export_list,
)
from mobizon_batch.runs.send import SendListOptions, SendListResult, dry_run_path, send_list
from mobizon_batch.runs.status import StatusOptions, StatusResult, refresh_statuses
from mobizon_batch.runs.validate import ValidateOptions, ValidateResult, validate_list
from mobizon_batch.runs.webhook import OptoutExport, Receiver, ReceiverOptions, export_optout

__all__ = [
    "ApiOptions",
    "DemoObserver",
    "DemoResult",
    "ExportOptions",
    "ExportResult",
    "JobObserver",
    "JobResult",
    "ListOptions",
    "Observer",
    "OptoutExport",
    "ReadOptions",
    "Receiver",
    "ReceiverOptions",
    "ReportOptions",
    "ReportResult",
    "SendListOptions",
    "SendListResult",
    "SendStart",
    "StatusOptions",
    "StatusResult",
    "StepResult",
    "ValidateOptions",
    "ValidateResult",
    "build_report",
    "dry_run_path",
    "export_list",
    "export_optout",
    "job_paths",
    "refresh_statuses",
    "run_demo",
    "run_job",
    "send_list",
    "validate_list",
]
