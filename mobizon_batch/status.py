"""The status pass: ask Mobizon how sent messages are doing, and write it down.

Why it works on a DataFrame and not on the journal: the morning-after
question ("what was delivered?") is asked of a spreadsheet — ours from last
night, or anybody's that has a ``message_id`` column — so the pass needs
nothing but that column, and it leaves every other column as it found it.

The rules it keeps (see the API notes):
- only rows whose status is not final are asked about; a final status never
  changes, so asking again would only spend calls;
- GetSMSStatus takes at most 100 ids, so n distinct pending ids cost
  ⌈n/100⌉ calls, and no id appears twice in one call (rows that share an id
  share the answer);
- a status string we do not know is kept verbatim and treated as not final;
- an id that Mobizon leaves out of its answer is marked ``NOT_FOUND`` (not
  final: a later pass asks again) instead of stopping the pass.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any, Protocol

import pandas as pd

from mobizon_batch.client import MAX_STATUS_IDS, TIMESTAMP_FORMAT, StatusRecord
from mobizon_batch.errors import InputError
from mobizon_batch.prepare import CLASH_SUFFIX, RESULT_COLUMNS, free_name
from mobizon_batch.ratelimit import RateLimiter
from mobizon_batch.retries import ReadPolicy, call_read

MESSAGE_ID_COLUMN = "message_id"
STATUS_COLUMNS = (
    "status",
    "status_final",
    "seg_num",
    "start_send_ts",
    "status_update_ts",
    "status_checked_at",
)
#: Columns of a results file that hold whole numbers (see ``with_integer_cells``).
INTEGER_COLUMNS = ("message_id", "campaign_id", "segments", "error_code", "seg_num")
FINAL_STATUSES = frozenset({"DELIVRD", "UNDELIV", "REJECTD", "EXPIRED", "DELETED"})
NON_FINAL_STATUSES = frozenset({"NEW", "ENQUEUD", "ACCEPTD", "PDLIVRD"})
#: Written to ``status`` for an id that GetSMSStatus left out of its answer.
NOT_FOUND = "NOT_FOUND"
TRUE, FALSE = "true", "false"
# Ids above this are not Mobizon ids (and would overflow the API's integers).
_MAX_ID = 2**63 - 1
_MAX_EXAMPLES = 5

Progress = Callable[["RefreshResult"], None]


class StatusSource(Protocol):
    """What the pass needs of a client: ``MobizonClient`` is one."""

    def get_sms_status(self, ids: Iterable[int]) -> list[StatusRecord]: ...


# ---------------------------------------------------------------- cell rules


def is_final(status: str) -> bool:
    """Whether ``status`` can never change again. Unknown strings are not final."""
    return status.strip().upper() in FINAL_STATUSES


def is_blank(cell: Any) -> bool:
    """An empty cell: None, NaN, or only whitespace."""
    if cell is None:
        return True
    if isinstance(cell, str):
        return not cell.strip()
    try:
        return bool(pd.isna(cell))
    except (TypeError, ValueError):
        return False


def parse_message_id(cell: Any) -> int | None:
    """A message id from a cell as spreadsheets deliver it, else None.

    Accepted: ``41000001``, ``41000001.0`` and ``4.1000001E7`` (a number that
    went through Excel or a float column), ``41000001,0`` (a decimal comma),
    ``41 000 001`` (grouped digits, also with no-break spaces) and a leading
    apostrophe (Excel's "this is text" mark).  Anything that is not a
    positive whole number is not an id.
    """
    if isinstance(cell, str) and cell.isascii() and cell.isdigit():
        value = int(cell)  # the common case, fast: a 100,000-row file is all this
        return value if 0 < value <= _MAX_ID else None
    if isinstance(cell, bool) or is_blank(cell):
        return None
    if isinstance(cell, int):
        number = Decimal(cell)
    elif isinstance(cell, float):
        if not math.isfinite(cell):
            return None
        number = Decimal(repr(cell))
    else:
        text = str(cell).strip().lstrip("'")
        for space in (" ", "\u00a0", "\u202f", "\u2009"):
            text = text.replace(space, "")
        head, comma, tail = text.partition(",")
        if comma and tail and set(tail) == {"0"}:
            text = head
        try:
            number = Decimal(text)
        except InvalidOperation:
            return None
    if not number.is_finite() or number != number.to_integral_value():
        return None
    value = int(number)
    return value if 0 < value <= _MAX_ID else None


def locate_columns(columns: Iterable[Any]) -> dict[str, str]:
    """Our columns in a table: design name → the name the column has (or will get) there.

    Why not just look names up: the send pass keeps the input's columns
    verbatim and gives a result column whose name the input already uses a
    suffix (``recipient_result``; ``recipient`` is a common name for a phone
    column).  So in a results file — a table with a ``send_status`` column —
    ours are the result block (the last ``send_status``, the ``recipient``
    before it and the result columns after it) and the status columns after
    that block; a ``status`` column among the input's own is the user's and
    is never written to: the pass appends ``status_result`` instead.  In any
    other table (a list export, someone's spreadsheet) names are taken as
    they are.

    Every name of ``RESULT_COLUMNS`` found is in the answer; the status
    columns always are (absent ones with the name to append them under).
    """
    names = [str(c) for c in columns]
    found: dict[str, str] = {}
    sends = [i for i, name in enumerate(names) if _is_variant(name, "send_status")]
    first_ours = 0
    if sends:
        first_ours = sends[-1]
        if first_ours and _is_variant(names[first_ours - 1], "recipient"):
            first_ours -= 1
        position = first_ours
        for canonical in RESULT_COLUMNS:
            match = next(
                (i for i in range(position, len(names)) if _is_variant(names[i], canonical)), None
            )
            if match is not None:
                found[canonical] = names[match]
                position = match + 1
    else:
        for canonical in RESULT_COLUMNS:
            if canonical in names:
                found[canonical] = canonical
    taken = set(names)
    for canonical in STATUS_COLUMNS:
        if sends:
            present = next((n for n in names[first_ours:] if _is_variant(n, canonical)), None)
        else:
            present = canonical if canonical in names else None
        if present is None:
            present = free_name(canonical, taken)
            taken.add(present)
        found[canonical] = present
    return found


def _is_variant(name: str, canonical: str) -> bool:
    """``name`` is ``canonical`` or ``canonical`` with the send pass's clash suffix."""
    if name == canonical:
        return True
    rest = name.removeprefix(canonical + CLASH_SUFFIX)
    return rest != name and (rest == "" or rest.isdigit())


def ensure_status_columns(frame: pd.DataFrame) -> dict[str, str]:
    """Append the status columns that ``frame`` lacks, in the design's order.

    Columns already present stay where they are (they are updated in place).
    Returns ``locate_columns`` of the result.
    """
    names = locate_columns(frame.columns)
    for canonical in STATUS_COLUMNS:
        if names[canonical] not in frame.columns:
            frame[names[canonical]] = ""
    return names


def with_integer_cells(frame: pd.DataFrame, columns: Iterable[str] | None = None) -> pd.DataFrame:
    """A shallow copy of ``frame`` whose whole-number cells in ``columns`` are ints.

    ``columns`` defaults to our ``INTEGER_COLUMNS``, wherever ``locate_columns``
    finds them.

    Why: the pass works on text (as ``read_table`` gives it), but ids, counts
    and codes are numbers in the results file the send pass wrote; written
    back as text they would turn into text cells in a workbook.  Only cells
    that are exactly an integer's digits change (``007`` stays text), so
    anything else in those columns is written back as it was.
    """
    if columns is None:
        located = locate_columns(frame.columns)
        columns = [located[name] for name in INTEGER_COLUMNS if name in located]
    out = frame.copy(deep=False)
    for name in columns:
        if name in out.columns:
            out[name] = pd.Series(
                [_as_integer(cell) for cell in out[name].tolist()], index=out.index, dtype=object
            )
    return out


def _as_integer(cell: Any) -> Any:
    if isinstance(cell, str) and cell.isascii() and cell.isdigit() and str(int(cell)) == cell:
        return int(cell)
    return cell


def _text(cell: Any) -> str:
    if isinstance(cell, str):
        return cell
    return "" if is_blank(cell) else str(cell)


def _timestamp(moment: datetime | None) -> str:
    return moment.strftime(TIMESTAMP_FORMAT) if moment is not None else ""


# ------------------------------------------------------------------- results


@dataclass
class RefreshResult:
    """What one refresh did, and where the rows stand after it.

    Row counts (``rows`` … ``not_found``) count rows of the table; ``to_ask``
    and ``asked`` count distinct ids; ``calls`` counts GetSMSStatus requests,
    retries included.
    """

    rows: int = 0
    with_id: int = 0
    without_id: int = 0
    #: cells in ``message_id`` that are not an id; examples name spreadsheet rows
    skipped: int = 0
    skipped_examples: list[str] = field(default_factory=list)
    already_final: int = 0
    to_ask: int = 0
    asked: int = 0
    calls: int = 0
    updated: int = 0
    not_found: int = 0
    final: int = 0
    by_status: Counter[str] = field(default_factory=Counter)

    @property
    def not_final(self) -> int:
        """Rows with an id whose status is not final (``NOT_FOUND`` included)."""
        return self.with_id - self.final

    @property
    def pending(self) -> int:
        """Rows still on their way: not final, and known to Mobizon."""
        return self.not_final - self.not_found

    @property
    def all_final(self) -> bool:
        return self.not_final == 0


@dataclass(frozen=True)
class WaitResult:
    """How ``wait_until_final`` ended."""

    rounds: int
    calls: int
    waited: float
    last: RefreshResult

    @property
    def all_final(self) -> bool:
        return self.last.all_final


# --------------------------------------------------------------------- passes


def refresh_statuses(
    frame: pd.DataFrame,
    client: StatusSource,
    *,
    limiter: RateLimiter | None = None,
    now: Callable[[], datetime] = datetime.now,
    progress: Progress | None = None,
    policy: ReadPolicy | None = None,
) -> RefreshResult:
    """Ask GetSMSStatus about every row of ``frame`` that is not final; fill its columns.

    ``frame`` is changed in place: the status columns are added if missing
    and filled, and ``message_id`` cells are rewritten as plain integers
    (``41000001.0`` → ``41000001``).  Every other column is left untouched.
    ``progress`` receives a snapshot after each call.  If a call fails for
    good, the rows answered so far are already in ``frame`` when the error
    propagates, so the caller can still save them.
    """
    id_column = locate_columns(frame.columns).get(MESSAGE_ID_COLUMN)
    if id_column is None:
        found = ", ".join(str(c) for c in frame.columns) or "none"
        raise InputError(
            f"the file has no {MESSAGE_ID_COLUMN} column, so there is nothing to ask "
            f"about (columns found: {found})"
        )
    names = ensure_status_columns(frame)
    result = RefreshResult(rows=len(frame))
    id_cells = frame[id_column].tolist()
    id_texts = [_text(cell) for cell in id_cells]
    columns = {
        name: [_text(cell) for cell in frame[names[name]].tolist()] for name in STATUS_COLUMNS
    }
    row_ids: list[int | None] = [None] * len(id_cells)
    rows_of: dict[int, list[int]] = {}
    for position, cell in enumerate(id_cells):
        if is_blank(cell):
            result.without_id += 1
            continue
        message_id = parse_message_id(cell)
        if message_id is None:
            result.skipped += 1
            if len(result.skipped_examples) < _MAX_EXAMPLES:
                result.skipped_examples.append(f"row {position + 2}: {str(cell)[:40]!r}")
            continue
        result.with_id += 1
        row_ids[position] = message_id
        id_texts[position] = str(message_id)
        if is_final(columns["status"][position]):
            result.already_final += 1
        else:
            rows_of.setdefault(message_id, []).append(position)
    pending_ids = list(rows_of)
    result.to_ask = len(pending_ids)

    def ask(batch: list[int]) -> list[StatusRecord]:
        result.calls += 1
        return client.get_sms_status(batch)

    try:
        for start in range(0, len(pending_ids), MAX_STATUS_IDS):
            batch = pending_ids[start : start + MAX_STATUS_IDS]
            records = call_read(partial(ask, batch), limiter=limiter, policy=policy)
            checked_at = _timestamp(now())
            answered = {record.id: record for record in records}
            for message_id in batch:
                record = answered.get(message_id)
                for position in rows_of[message_id]:
                    _fill(columns, position, record, checked_at)
                    if record is not None:
                        result.updated += 1
            result.asked += len(batch)
            if progress is not None:
                progress(replace(result))
    finally:
        frame[id_column] = id_texts
        for name in STATUS_COLUMNS:
            frame[names[name]] = columns[name]
    statuses = [columns["status"][p] for p, i in enumerate(row_ids) if i is not None]
    result.final = sum(1 for status in statuses if is_final(status))
    result.not_found = sum(
        1
        for position in (p for ps in rows_of.values() for p in ps)
        if columns["status"][position] == NOT_FOUND
    )
    result.by_status = Counter(status or "(none)" for status in statuses)
    return result


def _fill(
    columns: dict[str, list[str]], position: int, record: StatusRecord | None, checked_at: str
) -> None:
    """Write one answer (or its absence) into row ``position``."""
    columns["status_checked_at"][position] = checked_at
    if record is None:
        # Mobizon silently leaves out ids it does not know (a foreign account,
        # a typo): say so, keep what an earlier pass learned, ask again later.
        columns["status"][position] = NOT_FOUND
        columns["status_final"][position] = FALSE
        return
    columns["status"][position] = record.status
    columns["status_final"][position] = TRUE if is_final(record.status) else FALSE
    columns["seg_num"][position] = "" if record.seg_num is None else str(record.seg_num)
    columns["start_send_ts"][position] = _timestamp(record.start_send_ts)
    columns["status_update_ts"][position] = _timestamp(record.status_update_ts)


def wait_until_final(
    frame: pd.DataFrame,
    client: StatusSource,
    *,
    timeout: float,
    interval: float = 60.0,
    max_interval: float = 900.0,
    backoff: float = 1.5,
    limiter: RateLimiter | None = None,
    policy: ReadPolicy | None = None,
    now: Callable[[], datetime] = datetime.now,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    on_round: Progress | None = None,
    progress: Progress | None = None,
) -> WaitResult:
    """Refresh, pause, refresh again … until no row is pending or ``timeout`` runs out.

    Pauses start at ``interval`` seconds and grow by ``backoff`` up to
    ``max_interval`` (or ``interval``, if that is longer): most messages
    settle in minutes, the slow ones can take up to a day, and a long wait
    should not hammer the API.  The last pause is cut short so that one more
    refresh happens right at the deadline.

    The loop also stops when the only rows left are ``NOT_FOUND``: Mobizon
    does not know those ids, and waiting will not change that.  Each round
    asks only about rows that are still not final.
    """
    started = clock()
    delay = interval
    rounds = calls = 0
    while True:
        result = refresh_statuses(
            frame, client, limiter=limiter, now=now, progress=progress, policy=policy
        )
        rounds += 1
        calls += result.calls
        if on_round is not None:
            on_round(result)
        remaining = timeout - (clock() - started)
        if result.pending == 0 or remaining <= 0:
            return WaitResult(rounds, calls, clock() - started, result)
        sleep(min(delay, remaining))
        delay = min(delay * backoff, max(max_interval, interval))


__all__ = [
    "FINAL_STATUSES",
    "INTEGER_COLUMNS",
    "MESSAGE_ID_COLUMN",
    "NON_FINAL_STATUSES",
    "NOT_FOUND",
    "STATUS_COLUMNS",
    "RefreshResult",
    "StatusSource",
    "WaitResult",
    "ensure_status_columns",
    "is_blank",
    "is_final",
    "locate_columns",
    "parse_message_id",
    "refresh_statuses",
    "wait_until_final",
    "with_integer_cells",
]
