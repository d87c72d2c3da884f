"""mobizon-batch: send SMS in bulk through the Mobizon HTTP API, never twice.

The command line (``mobizon-batch --help``) covers most uses; these names are
the library underneath it, for scripts.  A send in one call, as the ``send``
command does it (plan, balance check, journal, send, results file)::

    result = send_list(SendListOptions(input="list.csv", output="results.csv"))

``validate_list``, ``refresh_statuses``, ``build_report`` and ``run_job`` are
the other commands' use cases; each takes options and returns a result.  The
steps of a send, one by one::

    table = read_table("list.csv")                       # every cell as text
    plan = build_plan(table, PlanOptions(region="KZ"))   # one verdict a row
    with MobizonClient(key, "api.mobizon.kz") as client, Journal("r.journal.sqlite") as journal:
        journal.register(plan.entries())                 # the journal is the truth
        summary = SendPass(client, journal, SendOptions(rate=20)).run()
        write_table(send_results(plan, journal), "results.csv")

``status.refresh_statuses`` fills the status columns of a DataFrame;
``write_report`` writes the report workbook; ``MobizonEmulator`` is a local
API server for trying all of it offline.  Errors all derive from
``MobizonBatchError`` (see ``mobizon_batch.errors``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mobizon_batch._version import __version__

if TYPE_CHECKING:  # the names as they are, for type checkers and editors
    from mobizon_batch.client import MobizonClient, SendReceipt, StatusRecord
    from mobizon_batch.emulator import EmulatorConfig, MobizonEmulator
    from mobizon_batch.errors import (
        AnswerLost,
        ApiError,
        ConfigError,
        InputError,
        MobizonBatchError,
        NotSent,
        RunAborted,
    )
    from mobizon_batch.journal import Journal
    from mobizon_batch.prepare import Plan, PlanOptions, build_plan
    from mobizon_batch.report import summarize_results, write_report
    from mobizon_batch.results import send_results

    # The use cases last: they import the modules above.
    from mobizon_batch.runs import (
        ApiOptions,
        ReadOptions,
        SendListOptions,
        SendListResult,
        StatusOptions,
        StatusResult,
        ValidateOptions,
        ValidateResult,
        build_report,
        refresh_statuses,
        run_job,
        send_list,
        validate_list,
    )
    from mobizon_batch.send import SendOptions, SendPass, SendSummary
    from mobizon_batch.status import wait_until_final
    from mobizon_batch.table import read_table, write_table


# Where each public name lives.  Imported on first use (PEP 562): the command
# line starts without loading pandas, openpyxl or the emulator for --help,
# and each command loads only what it uses.
_WHERE = {
    "MobizonClient": "mobizon_batch.client",
    "SendReceipt": "mobizon_batch.client",
    "StatusRecord": "mobizon_batch.client",
    "EmulatorConfig": "mobizon_batch.emulator",
    "MobizonEmulator": "mobizon_batch.emulator",
    "AnswerLost": "mobizon_batch.errors",
    "ApiError": "mobizon_batch.errors",
    "ConfigError": "mobizon_batch.errors",
    "InputError": "mobizon_batch.errors",
    "MobizonBatchError": "mobizon_batch.errors",
    "NotSent": "mobizon_batch.errors",
    "RunAborted": "mobizon_batch.errors",
    "Journal": "mobizon_batch.journal",
    "Plan": "mobizon_batch.prepare",
    "PlanOptions": "mobizon_batch.prepare",
    "build_plan": "mobizon_batch.prepare",
    "summarize_results": "mobizon_batch.report",
    "write_report": "mobizon_batch.report",
    "send_results": "mobizon_batch.results",
    "ApiOptions": "mobizon_batch.runs",
    "ReadOptions": "mobizon_batch.runs",
    "SendListOptions": "mobizon_batch.runs",
    "SendListResult": "mobizon_batch.runs",
    "StatusOptions": "mobizon_batch.runs",
    "StatusResult": "mobizon_batch.runs",
    "ValidateOptions": "mobizon_batch.runs",
    "ValidateResult": "mobizon_batch.runs",
    "build_report": "mobizon_batch.runs",
    "refresh_statuses": "mobizon_batch.runs",
    "run_job": "mobizon_batch.runs",
    "send_list": "mobizon_batch.runs",
    "validate_list": "mobizon_batch.runs",
    "SendOptions": "mobizon_batch.send",
    "SendPass": "mobizon_batch.send",
    "SendSummary": "mobizon_batch.send",
    "wait_until_final": "mobizon_batch.status",
    "read_table": "mobizon_batch.table",
    "write_table": "mobizon_batch.table",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "AnswerLost",
    "ApiError",
    "ApiOptions",
    "ConfigError",
    "EmulatorConfig",
    "InputError",
    "Journal",
    "MobizonBatchError",
    "MobizonClient",
    "MobizonEmulator",
    "NotSent",
    "Plan",
    "PlanOptions",
    "ReadOptions",
    "RunAborted",
    "SendListOptions",
    "SendListResult",
    "SendOptions",
    "SendPass",
    "SendReceipt",
    "SendSummary",
    "StatusOptions",
    "StatusRecord",
    "StatusResult",
    "ValidateOptions",
    "ValidateResult",
    "__version__",
    "build_plan",
    "build_report",
    "read_table",
    "refresh_statuses",
    "run_job",
    "send_list",
    "send_results",
    "summarize_results",
    "validate_list",
    "wait_until_final",
    "write_report",
    "write_table",
]
