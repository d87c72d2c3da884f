"""Use cases: what a command does, callable from Python and from job files.

Each takes typed options, returns a result object, and never prints or picks
an exit code: the command line renders the results, a script reads them.
Progress and interruption come in through an ``Observer``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names as they are, for type checkers and editors
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

# Where each name lives.  Imported on first use (PEP 562): a command that needs
# one use case (or only ``checks`` to build the parser) does not load the
# others and what they import (pandas, requests, openpyxl).
_WHERE = {
    "ApiOptions": "mobizon_batch.runs.common",
    "ListOptions": "mobizon_batch.runs.common",
    "Observer": "mobizon_batch.runs.common",
    "ReadOptions": "mobizon_batch.runs.common",
    "SendStart": "mobizon_batch.runs.common",
    "DemoObserver": "mobizon_batch.runs.demo",
    "DemoResult": "mobizon_batch.runs.demo",
    "run_demo": "mobizon_batch.runs.demo",
    "JobObserver": "mobizon_batch.runs.common",
    "JobResult": "mobizon_batch.runs.jobs",
    "StepResult": "mobizon_batch.runs.jobs",
    "job_paths": "mobizon_batch.runs.jobs",
    "run_job": "mobizon_batch.runs.jobs",
    "ExportOptions": "mobizon_batch.runs.report",
    "ExportResult": "mobizon_batch.runs.report",
    "ReportOptions": "mobizon_batch.runs.report",
    "ReportResult": "mobizon_batch.runs.report",
    "build_report": "mobizon_batch.runs.report",
    "export_list": "mobizon_batch.runs.report",
    "SendListOptions": "mobizon_batch.runs.send",
    "SendListResult": "mobizon_batch.runs.send",
    "dry_run_path": "mobizon_batch.runs.send",
    "send_list": "mobizon_batch.runs.send",
    "StatusOptions": "mobizon_batch.runs.status",
    "StatusResult": "mobizon_batch.runs.status",
    "refresh_statuses": "mobizon_batch.runs.status",
    "ValidateOptions": "mobizon_batch.runs.validate",
    "ValidateResult": "mobizon_batch.runs.validate",
    "validate_list": "mobizon_batch.runs.validate",
    "OptoutExport": "mobizon_batch.runs.webhook",
    "Receiver": "mobizon_batch.runs.webhook",
    "ReceiverOptions": "mobizon_batch.runs.webhook",
    "export_optout": "mobizon_batch.runs.webhook",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


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
