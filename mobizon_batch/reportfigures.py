"""The figures of a results file: counts by send status and status, delivery rate, problems.

Why apart from the workbook: the same figures go to the terminal, to a
job's JSON summary and to the report's Summary sheet, and must agree to the
row; ``summarize_results`` computes them once from the table, and
``problem_rows`` picks the rows that need someone's attention.  The report
(``report``) only lays them out.
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

import pandas as pd
import phonenumbers
from phonenumbers import carrier

from mobizon_batch.resultfile import (
    INTEGER_COLUMNS,
    MESSAGE_ID_COLUMN,
    is_blank,
    locate_columns,
    parse_message_id,
)
from mobizon_batch.vocabulary import (
    NOT_FOUND,
    SendState,
    SmsStatus,
    is_final_status,
)

NOT_CHECKED = "(not checked)"
UNKNOWN = "(unknown)"
PERCENT_FORMAT = "0.0%"
#: send_status values that need someone's attention, with the default reason.
SEND_PROBLEMS: dict[str, tuple[str, str]] = {
    SendState.INVALID: ("invalid", "the number could not be used"),
    SendState.FAILED: ("failed", "the API refused the message"),
    SendState.UNKNOWN: ("unknown", "the send's answer was lost and it could not be reconciled"),
}
#: final (or missing) statuses that mean "not delivered", with a reason for people.
STATUS_PROBLEMS: dict[str, tuple[str, str]] = {
    SmsStatus.UNDELIV: (
        "undelivered",
        "the operator could not deliver it (phone off or out of reach, number not in service)",
    ),
    SmsStatus.REJECTD: (
        "rejected",
        "rejected by the operator or Mobizon (sender name, content, or a blocked number)",
    ),
    SmsStatus.EXPIRED: ("expired", "not delivered before its validity period ran out"),
    SmsStatus.DELETED: ("deleted", "the message was deleted before delivery"),
    NOT_FOUND: ("not found", "Mobizon does not know this message id (another account?)"),
}
#: columns written as numbers on the Messages sheet (a results file's integer
#: columns, and a list export's billed segments); every other cell stays text.
NUMBER_COLUMNS = frozenset({*INTEGER_COLUMNS, "segUserBuy"})


@dataclass(frozen=True)
class Share:
    """One line of a breakdown: how many rows, and their share of the whole (0-1)."""

    label: str
    count: int
    share: float


@dataclass(frozen=True)
class Section:
    """A titled breakdown; ``of`` says what the shares are shares of."""

    title: str
    of: str
    lines: tuple[Share, ...]


@dataclass(frozen=True)
class ReportSummary:
    """Every figure of the report, computed once.

    ``sent`` counts rows the API accepted (``send_status`` = ``sent``, or,
    in a file without that column, rows with a message id); the status
    breakdown and the delivery rate are among those rows.
    """

    rows: int
    sent: int
    delivered: int
    final: int
    problems: int
    segments_estimated: int | None
    segments_billed: int | None
    sections: tuple[Section, ...]
    #: rows by ``send_status`` (blank as ``(blank)``); empty without that column
    by_send_status: Counter[str] = field(default_factory=Counter)
    #: sent rows by delivery status (not asked yet as ``NOT_CHECKED``)
    by_status: Counter[str] = field(default_factory=Counter)

    @property
    def delivery_rate(self) -> float | None:
        return self.delivered / self.sent if self.sent else None

    @property
    def in_progress(self) -> int:
        return self.sent - self.final

    def key_figures(self) -> list[tuple[str, int | float | None, bool]]:
        """``(label, value, is_percent)`` in the order they are shown."""
        return [
            ("Rows in the file", self.rows, False),
            ("Sent", self.sent, False),
            ("Delivered (DELIVRD)", self.delivered, False),
            ("Delivery rate among sent", self.delivery_rate, True),
            ("Final status known", self.final, False),
            ("Still in progress", self.in_progress, False),
            ("Problems (see the Problems sheet)", self.problems, False),
            ("Segments billed (seg_num)", self.segments_billed, False),
            ("Segments estimated (sent and planned rows)", self.segments_estimated, False),
        ]

    def section(self, title: str) -> Section | None:
        return next((s for s in self.sections if s.title == title), None)


# ---------------------------------------------------------------- summary


def summarize_results(frame: pd.DataFrame) -> ReportSummary:
    """The figures of ``frame`` (a results file, a list export, any table with statuses)."""
    rows = len(frame)
    sent_mask = _sent_mask(frame)
    sent = int(sent_mask.sum())
    statuses = _column(frame, "status")
    sent_statuses = [
        s.strip() or NOT_CHECKED for s, on in zip(statuses, sent_mask, strict=True) if on
    ]
    by_status = Counter(sent_statuses)
    delivered = sum(n for s, n in by_status.items() if s.upper() == SmsStatus.DELIVRD)
    final = sum(n for s, n in by_status.items() if is_final_status(s))

    sections = []
    send_statuses: Counter[str] = Counter()
    if _name(frame, "send_status") is not None:
        send_statuses = Counter(s.strip() or "(blank)" for s in _column(frame, "send_status"))
        sections.append(Section("By send status", "rows", _shares(send_statuses, rows)))
    if by_status:
        sections.append(Section("By status", "sent", _shares(by_status, sent)))
    countries, operators = _number_info(frame, sent_mask)
    if any(label != UNKNOWN for label in countries):
        sections.append(Section("By country", "sent", _shares(countries, sent)))
    if any(label != UNKNOWN for label in operators):
        sections.append(Section("By operator", "sent", _shares(operators, sent)))

    return ReportSummary(
        rows=rows,
        sent=sent,
        delivered=delivered,
        final=final,
        problems=len(problem_rows(frame)),
        segments_estimated=_total(frame, "segments", _sent_mask(frame, also_planned=True)),
        segments_billed=_total(frame, "seg_num", sent_mask),
        sections=tuple(sections),
        by_send_status=send_statuses,
        by_status=by_status,
    )


def problem_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows that need attention, with ``row``, ``problem`` and ``reason`` in front.

    ``row`` is the row's number in a spreadsheet (the header is row 1).
    """
    send_statuses = _column(frame, "send_status")
    statuses = _column(frame, "status")
    errors = _column(frame, "error")
    codes = _column(frame, "error_code")
    positions: list[int] = []
    problems: list[str] = []
    reasons: list[str] = []
    for position in range(len(frame)):
        send_status = send_statuses[position].strip().lower()
        status = statuses[position].strip().upper()
        if send_status in SEND_PROBLEMS:
            problem, reason = SEND_PROBLEMS[send_status]
            given = errors[position].strip()
            code = codes[position].strip()
            if given:
                reason = f"{given} (code {code})" if code else given
        elif status in STATUS_PROBLEMS:
            problem, reason = STATUS_PROBLEMS[status]
        else:
            continue
        positions.append(position)
        problems.append(problem)
        reasons.append(reason)
    chosen = frame.iloc[positions].reset_index(drop=True)
    front = pd.DataFrame(
        {
            "row": [p + 2 for p in positions],
            "problem": problems,
            "reason": reasons,
        }
    )
    return pd.concat(
        [front, chosen.drop(columns=["row", "problem", "reason"], errors="ignore")], axis=1
    )


def _name(frame: pd.DataFrame, canonical: str) -> str | None:
    """The column that holds ``canonical`` here (a results file may suffix ours), or None."""
    name = locate_columns(frame.columns).get(canonical, canonical)
    return name if name in frame.columns else None


def _column(frame: pd.DataFrame, canonical: str) -> list[str]:
    name = _name(frame, canonical)
    if name is None:
        return [""] * len(frame)
    return ["" if is_blank(v) else str(v) for v in frame[name].tolist()]


def _sent_mask(frame: pd.DataFrame, *, also_planned: bool = False) -> pd.Series[bool]:
    """Rows the API accepted (with ``also_planned``, or would have: a dry run's rows)."""
    wanted = {SendState.SENT, SendState.PLANNED} if also_planned else {SendState.SENT}
    if _name(frame, "send_status") is not None:
        values = [s.strip().lower() in wanted for s in _column(frame, "send_status")]
    else:
        values = [parse_message_id(v) is not None for v in _column(frame, MESSAGE_ID_COLUMN)]
    return pd.Series(values, index=frame.index, dtype=bool)


def _shares(counts: Counter[str], whole: int) -> tuple[Share, ...]:
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return tuple(Share(label, count, count / whole if whole else 0.0) for label, count in ordered)


def _total(frame: pd.DataFrame, name: str, mask: pd.Series[bool] | None = None) -> int | None:
    if _name(frame, name) is None:
        return None
    values = _column(frame, name)
    wanted = mask.tolist() if mask is not None else [True] * len(values)
    numbers = [number_value(v) for v, on in zip(values, wanted, strict=True) if on and v.strip()]
    whole = [int(n) for n in numbers if n is not None]
    return sum(whole) if whole else None


def _number_info(
    frame: pd.DataFrame, sent_mask: pd.Series[bool]
) -> tuple[Counter[str], Counter[str]]:
    """Country and operator of each sent row: from a list export's columns, else the number."""
    countries: Counter[str] = Counter()
    operators: Counter[str] = Counter()
    given_country = _column(frame, "countryA2")
    given_operator = _column(frame, "operatorName")
    recipients = _column(frame, "recipient")
    for position, on in enumerate(sent_mask):
        if not on:
            continue
        country, operator = given_country[position].strip(), given_operator[position].strip()
        if not (country and operator):
            looked_up = _lookup(recipients[position].strip())
            country = country or looked_up[0]
            operator = operator or looked_up[1]
        countries[country or UNKNOWN] += 1
        operators[operator or UNKNOWN] += 1
    return countries, operators


@functools.lru_cache(maxsize=65536)
def _lookup(number: str) -> tuple[str, str]:
    """Region code and original carrier of an international number (digits), else blanks.

    The carrier is the one the number range was allocated to: a ported number
    shows its first operator, so the report labels it "operator (by number)".
    """
    digits = "".join(ch for ch in number if ch.isdigit())
    if not digits:
        return "", ""
    try:
        parsed = phonenumbers.parse("+" + digits)
    except phonenumbers.NumberParseException:
        return "", ""
    region = phonenumbers.region_code_for_number(parsed) or ""
    operator = carrier.name_for_number(parsed, "en") or ""
    return ("" if region == "ZZ" else region), operator


def number_value(text: str) -> int | float | None:
    """An int (or a finite float) from a numeric cell, else None."""
    try:
        number = Decimal(text.strip())
    except InvalidOperation:
        return None
    if not number.is_finite():
        return None
    if number == number.to_integral_value():
        return int(number)
    return float(number)
