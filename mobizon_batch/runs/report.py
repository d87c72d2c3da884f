"""build_report and export_list: the two use cases that turn rows into a file."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mobizon_batch.errors import ConfigError, InputError
from mobizon_batch.listing import ListExport, ListFilter, export_frame, export_messages
from mobizon_batch.ratelimit import RateLimiter
from mobizon_batch.report import ReportSummary, summarize_results, write_report
from mobizon_batch.reportlang import check_language, default_language, word
from mobizon_batch.resultfile import MESSAGE_ID_COLUMN, locate_columns
from mobizon_batch.runs.common import ApiOptions, Observer, client_for
from mobizon_batch.runs.status import DEFAULT_READ_RATE
from mobizon_batch.table import ReadLimits, check_output_path, read_table, write_table


@dataclass(frozen=True)
class ReportOptions:
    """The results file to summarize and the workbook to write."""

    results: str | os.PathLike[str]
    output: str | os.PathLike[str]
    sheet: str | None = None
    #: ``en`` or ``ru``; None: Russian when the locale is Russian or Kazakh
    lang: str | None = None


@dataclass(frozen=True)
class ReportResult:
    summary: ReportSummary
    output: Path
    lang: str = "en"

    @property
    def sheets(self) -> list[str]:
        """The workbook's sheet names, in its language."""
        return [word(name, self.lang) for name in ("Summary", "Messages", "Problems")]


def build_report(options: ReportOptions) -> ReportResult:
    """Summarize a results file into a workbook (Summary, Messages, Problems).  No network."""
    check_output_path(options.output)
    try:
        lang = check_language(options.lang) if options.lang else default_language()
    except ValueError as exc:
        raise ConfigError(f"--lang: {exc}") from None
    if Path(options.output).resolve() == Path(options.results).resolve():
        raise ConfigError(
            f"-o {options.output} would overwrite the results file: choose another name"
        )
    table = read_table(options.results, sheet=options.sheet, limits=ReadLimits.for_results())
    frame = table.frame
    ours = locate_columns(frame.columns)
    if not {"send_status", MESSAGE_ID_COLUMN} & {k for k, v in ours.items() if v in frame.columns}:
        raise InputError(
            f"{options.results} is not a results file: it has neither a send_status nor a "
            f"message_id column (columns found: {', '.join(map(str, frame.columns))})"
        )
    summary = summarize_results(frame)
    write_report(
        table.typed_frame(),
        options.output,
        summary=summary,
        source=Path(options.results).name,
        lang=lang,
    )
    return ReportResult(summary, Path(options.output), lang)


def results_figures(path: Path) -> ReportSummary | None:
    """The figures of a results file, or None when there is no such file."""
    if not path.exists():
        return None
    return summarize_results(read_table(path, limits=ReadLimits.for_results()).frame)


@dataclass(frozen=True)
class ExportOptions:
    """Which messages to export from Message/List, in what order, to which file."""

    output: str | os.PathLike[str]
    filters: ListFilter = field(default_factory=ListFilter)
    sort: Mapping[str, str] | None = None
    rate: float = DEFAULT_READ_RATE
    api: ApiOptions = field(default_factory=ApiOptions)
    #: write a CSV's cells exactly as they are, even those Excel would run as formulas
    raw_csv: bool = False


def export_list(options: ExportOptions, observer: Observer | None = None) -> ListExport:
    """Export every page of the message list that matches the filters to a file."""
    observer = observer or Observer()
    check_output_path(options.output)
    options.filters.calls()  # refuse bad filters before any call
    with client_for(options.api) as client:
        export = export_messages(
            client,
            options.filters,
            sort=options.sort,
            limiter=RateLimiter(options.rate),
            progress=observer.listed,
        )
    write_table(
        export_frame(export.items),
        options.output,
        sheet_name="Messages",
        raw_csv=options.raw_csv,
    )
    return export
