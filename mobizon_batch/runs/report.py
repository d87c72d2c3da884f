"""build_report and export_list: the two use cases that turn rows into a file."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mobizon_batch.accountclock import resolve_account_clock
from mobizon_batch.config import api_url_setting
from mobizon_batch.errors import ConfigError, InputError
from mobizon_batch.listing import (
    ListExport,
    ListFilter,
    export_frame,
    export_messages,
    parse_moment,
)
from mobizon_batch.ratelimit import RateLimiter
from mobizon_batch.report import ReportSummary, summarize_results, write_report
from mobizon_batch.reportlang import check_language, default_language, word
from mobizon_batch.resultfile import MESSAGE_ID_COLUMN, locate_columns
from mobizon_batch.runs.common import ApiOptions, Observer, client_for, learned_lead
from mobizon_batch.runs.status import DEFAULT_READ_RATE
from mobizon_batch.table import ReadLimits, check_output_path, read_table, write_table
from mobizon_batch.vocabulary import FINAL_STATUSES, NON_FINAL_STATUSES


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
    """Which messages to export from Message/List, in what order, to which file.

    The filters are taken as a person gives them (``list``'s options, a Python
    caller's strings), so every caller gets the same reading of them:
    ``since``/``until`` are a time, a date or a duration back from now (``2h``)
    on the account's clock (``timezone``, else what our sends measured, else
    the API domain's zone); ``statuses`` may hold comma lists; ``campaign_ids``
    is a comma list.
    """

    output: str | os.PathLike[str]
    since: str | None = None
    until: str | None = None
    statuses: Sequence[str] = ()
    to: str | None = None
    from_name: str | None = None
    text: str | None = None
    campaign_ids: str | None = None
    timezone: str | None = None
    sort: Mapping[str, str] | None = None
    rate: float = DEFAULT_READ_RATE
    api: ApiOptions = field(default_factory=ApiOptions)
    #: write a CSV's cells exactly as they are, even those Excel would run as formulas
    raw_csv: bool = False


@dataclass(frozen=True)
class ExportResult:
    """What was exported, the filters as read, and warnings for the person who gave them."""

    export: ListExport
    filters: ListFilter
    warnings: tuple[str, ...] = ()


def list_filter(options: ExportOptions) -> tuple[ListFilter, tuple[str, ...]]:
    """The filters as the API reads them, and warnings about them; bad ones are refused.

    Durations count back from now on the account's clock, which the API
    compares with; no call is made for it.
    """
    url = api_url_setting(options.api.api_url, options.api.job_url)
    now = resolve_account_clock(url, options.timezone, learned=learned_lead(url)).now()
    statuses = [s.strip().upper() for given in options.statuses for s in given.split(",")]
    statuses = [s for s in statuses if s]
    known = FINAL_STATUSES | NON_FINAL_STATUSES
    warnings = tuple(
        f"{status} is not a status Mobizon documents ({', '.join(sorted(known))}); "
        f"asking for it anyway"
        for status in statuses
        if status not in known
    )
    if options.to is not None and not any(ch.isdigit() for ch in options.to):
        raise ConfigError(f"--to {options.to!r}: give some digits of the number")
    campaign_ids: list[int] = []
    for part in (options.campaign_ids or "").split(","):
        if not part.strip():
            continue
        if not part.strip().isdigit():
            raise ConfigError(f"--campaign-ids: {part.strip()!r} is not a campaign id")
        campaign_ids.append(int(part))
    since, until = options.since, options.until
    filters = ListFilter(
        since=parse_moment(since, now=now) if since else None,
        until=parse_moment(until, now=now, end_of_day=True) if until else None,
        statuses=tuple(statuses),
        to="".join(ch for ch in options.to if ch.isdigit()) if options.to else None,
        from_name=options.from_name,
        text=options.text,
        campaign_ids=tuple(campaign_ids),
    )
    return filters, warnings


def export_list(options: ExportOptions, observer: Observer | None = None) -> ExportResult:
    """Export every page of the message list that matches the filters to a file."""
    observer = observer or Observer()
    filters, warnings = list_filter(options)
    check_output_path(options.output)
    filters.calls()  # refuse bad filters before any call
    with client_for(options.api) as client:
        export = export_messages(
            client,
            filters,
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
    return ExportResult(export, filters, warnings)
