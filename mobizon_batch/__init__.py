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

from mobizon_batch._version import __version__
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
