"""validate_list: judge every row of a list without any network access."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mobizon_batch.errors import InputError
from mobizon_batch.prepare import Plan
from mobizon_batch.results import validation_report
from mobizon_batch.runs.common import (
    ListOptions,
    Observer,
    check_output,
    nothing_sendable,
    output_delimiter,
    plan_list,
)
from mobizon_batch.table import write_table


@dataclass(frozen=True)
class ValidateOptions(ListOptions):
    """The list, and where to write the row-by-row report (None: nowhere).

    ``raw_csv`` writes a CSV report's cells exactly as read, even those
    Excel would run as formulas (see ``table.writing.neutralise``).
    """

    output: str | os.PathLike[str] | None = None
    raw_csv: bool = False


@dataclass(frozen=True)
class ValidateResult:
    """The plan (one verdict a row) and the report written, if any."""

    plan: Plan
    report: Path | None

    @property
    def sendable(self) -> int:
        return self.plan.summary.sendable

    def refusal(self) -> InputError | None:
        """The error to end with when no row can be sent (the plan is still worth showing)."""
        return nothing_sendable(self.plan, self.report) if self.sendable == 0 else None


def validate_list(options: ValidateOptions, observer: Observer | None = None) -> ValidateResult:
    """Read and judge the list; write the report when asked.  Nothing is sent."""
    observer = observer or Observer()
    report = None
    if options.output is not None:
        report = check_output(
            options.output,
            {"the input list": options.input, "the opt-out list": options.plan.optout_path},
        )
    plan = plan_list(options, observer, row_keys=False)  # nothing is sent: no keys needed
    if report is not None:
        write_table(
            validation_report(plan),
            report,
            sheet_name="validation",
            delimiter=output_delimiter(plan.table),
            raw_csv=options.raw_csv,
        )
    return ValidateResult(plan, report)
