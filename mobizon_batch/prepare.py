"""Input table → plan: one verdict a row, decided before anything is sent.

Why a separate pass: every question that can be answered without the
network (is this a number, is there a text, is it too long, was it already
in the list, did this person opt out) is answered here, for every row, so
``validate`` and ``send --dry-run`` show exactly what ``send`` will do and
the send pass only ever sees rows it may send.

The plan is columnar (one pandas frame aligned with the input rows) rather
than a list of row objects: a million rows must fit in memory next to the
input, and most of the work is done on whole columns at once.

Verdicts, strongest first: ``invalid`` (the row cannot be sent: bad
number, no text, too long…), ``opted_out``, ``duplicate`` (the same number
and final text as an earlier sendable row), ``sendable``.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from mobizon_batch.errors import ConfigError, InputError
from mobizon_batch.journal import PlanEntry
from mobizon_batch.phones import (
    DEFAULT_REGION,
    check_region,
    load_optout,
    normalize_phones,
)
from mobizon_batch.table import InputTable, gc_paused
from mobizon_batch.texts import Template, count_segments, parse_template

SENDABLE = "sendable"
INVALID = "invalid"
DUPLICATE = "duplicate"
OPTED_OUT = "opted_out"
VERDICTS = (SENDABLE, INVALID, DUPLICATE, OPTED_OUT)

DEFAULT_MAX_SEGMENTS = 6
REASON_SEPARATOR = "; "
REASON_NO_TEXT = "the text is empty"
REASON_OPTED_OUT = "the number is in the opt-out list"

#: The result columns of a results file, in order (see the design).
RESULT_COLUMNS = (
    "recipient",
    "send_status",
    "message_id",
    "campaign_id",
    "segments",
    "error_code",
    "error",
    "sent_at",
)
#: The columns validate's report adds after the input's own.
REPORT_COLUMNS = ("line", "recipient", "verdict", "reason", "segments", "encoding", "final_text")
#: Suffix for a result column whose name an input column already has.
CLASH_SUFFIX = "_result"

Progress = Callable[[int], None]


@dataclass(frozen=True)
class PlanOptions:
    """What to read from the table and how strict to be.

    ``optout_path`` is loaded by ``build_plan``; ``optout`` is a set already
    loaded (normalized numbers).  Both may be given; they add up.
    """

    phone_column: str | None = None
    text_column: str | None = None
    template: str | None = None
    region: str = DEFAULT_REGION
    accept_possible: bool = False
    max_segments: int = DEFAULT_MAX_SEGMENTS
    allow_duplicates: bool = False
    optout_path: Path | None = None
    optout: frozenset[str] | None = None


@dataclass(frozen=True)
class PlanSummary:
    """The counts people read before sending.

    ``segments``, ``gsm7_rows`` and ``ucs2_rows`` count sendable rows only:
    they are what the send will cost.  ``invalid_by_reason`` counts each
    reason once per row that has it (a row can have two), most frequent first.
    """

    rows: int
    sendable: int
    invalid: int
    duplicate: int
    opted_out: int
    invalid_by_reason: dict[str, int]
    segments: int
    gsm7_rows: int
    ucs2_rows: int


@dataclass(frozen=True, eq=False)
class Plan:
    """The table, and for each of its rows what would be sent and the verdict.

    ``rows`` has the same index as ``table.frame`` and the columns
    ``recipient`` (digits, or ``""``), ``text`` (final, after the template),
    ``verdict``, ``reason`` (``""`` when sendable), ``segments`` (int),
    ``encoding`` (``GSM-7``, ``UCS-2`` or ``""``), ``row_key``,
    ``source_line`` (int) and ``occurrence`` (int).
    """

    table: InputTable
    rows: pd.DataFrame
    phone_column: str
    text_column: str | None
    template: Template | None
    options: PlanOptions
    summary: PlanSummary = field(repr=False)

    def sendable(self) -> pd.DataFrame:
        """The rows to send, in input order."""
        return self.rows[self.rows["verdict"] == SENDABLE]

    def entries(self) -> Iterator[PlanEntry]:
        """Every row as the send journal registers it (``Journal.register``)."""
        rows = self.rows
        for key, recipient, text, verdict, reason, segments in zip(
            rows["row_key"],
            rows["recipient"],
            rows["text"],
            rows["verdict"],
            rows["reason"],
            rows["segments"],
            strict=True,
        ):
            yield PlanEntry(key, recipient, text, verdict, reason, int(segments))


# ------------------------------------------------------------------ columns


def _name_key(name: str) -> str:
    """Compare column names loosely: case, ё/е, spaces, _ - . : № # don't matter."""
    text = name.casefold().replace("ё", "е")
    return re.sub(r"[\s_\-.:№#/()]+", " ", text).strip()


def _keys(*names: str) -> frozenset[str]:
    return frozenset(_name_key(n) for n in names)


# Exact names, strongest first; then words or fragments a longer name may contain.
PHONE_NAMES = (
    _keys(
        "phone", "phones", "phone number", "phonenumber", "phone no", "tel", "tel no",
        "telephone", "telephone number", "mobile", "mobile phone", "mobile number",
        "cell", "cell phone", "cellphone", "msisdn", "recipient", "recipients",
        "recipient phone", "whatsapp", "телефон", "телефоны", "тел", "номер телефона",
        "телефонный номер", "мобильный", "мобильный телефон", "моб телефон", "моб",
        "сотовый", "сотовый телефон", "получатель", "номер получателя",
        "телефон получателя", "телефон нөмірі", "телефон номері", "ұялы телефон", "ұялы",
        "алушы", "алушы телефоны",
    ),
    _keys("number", "номер", "нөмір", "to", "contact", "контакт", "байланыс"),
)  # fmt: skip
PHONE_FRAGMENTS = ("phone", "телефон", "mobile", "msisdn", "recipient", "получател", "ұялы")
PHONE_WORDS = frozenset({"tel", "тел", "mob", "моб", "cell"})

TEXT_NAMES = (
    _keys(
        "text", "message", "sms", "sms text", "message text", "text message", "msg", "body",
        "текст", "сообщение", "смс", "текст сообщения", "текст смс", "смс текст",
        "sms текст", "мәтін", "хабарлама", "хабар", "хабарлама мәтіні", "смс мәтіні",
        "sms мәтіні",
    ),
    _keys("content", "содержание", "содержимое", "мазмұны"),
)  # fmt: skip
TEXT_FRAGMENTS = ("text", "message", "sms", "смс", "текст", "сообщени", "мәтін", "хабарлама")
TEXT_WORDS = frozenset({"msg"})

ColumnKind = Literal["phone", "text"]


def detect_column(
    columns: Sequence[str], kind: ColumnKind, *, exclude: Iterable[str] = ()
) -> str | None:
    """The column that most likely holds phones (or texts), or None.

    Tiers: a well-known exact name (``Телефон``), then a weaker exact name
    (``Номер``), then a name containing a telling word (``Телефон клиента``).
    Several columns in the best tier is an InputError: picking one would be
    a guess, and the flag to settle it is cheap.
    """
    names, fragments, words = (
        (PHONE_NAMES, PHONE_FRAGMENTS, PHONE_WORDS)
        if kind == "phone"
        else (TEXT_NAMES, TEXT_FRAGMENTS, TEXT_WORDS)
    )
    skip = set(exclude)
    candidates = [c for c in columns if c not in skip]
    tiers: list[list[str]] = [
        *([c for c in candidates if _name_key(c) in tier] for tier in names),
        [
            c
            for c in candidates
            if any(f in _name_key(c) for f in fragments) or words & set(_name_key(c).split())
        ],
    ]
    for found in tiers:
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            flag = "--phone-column" if kind == "phone" else "--text-column"
            listed = ", ".join(repr(c) for c in found)
            raise InputError(
                f"several columns could hold the {kind}s ({listed}): pick one with {flag} NAME"
            )
    return None


def find_column(columns: Sequence[str], wanted: str, *, what: str) -> str:
    """The column a flag or placeholder names: exactly, else ignoring case and spacing."""
    if wanted in columns:
        return wanted
    loose = [c for c in columns if _name_key(c) == _name_key(wanted)]
    if len(loose) == 1:
        return loose[0]
    listed = ", ".join(repr(c) for c in columns)
    if loose:
        raise ConfigError(f"{what} {wanted!r} matches several columns: {listed}")
    raise ConfigError(f"{what} {wanted!r} is not a column of the list; its columns are: {listed}")


def _missing_column(table: InputTable, kind: ColumnKind) -> InputError:
    listed = ", ".join(repr(c) for c in table.columns)
    if kind == "phone":
        how = "--phone-column NAME (or name the column phone / телефон)"
    else:
        how = (
            "--text-column NAME or --template 'text with {column}' (or name a column text / текст)"
        )
    hint = ""
    header_numbers, _ = normalize_phones(table.columns)
    if kind == "phone" and any(header_numbers):
        hint = (
            " The first line looks like data, not a header: add a header line such as "
            "phone,text at the top."
        )
    return InputError(
        f"no {kind} column found in {table.path.name}. Columns found: {listed}. "
        f"Pick it with {how}.{hint}"
    )


# ---------------------------------------------------------------- the plan


class _Ticker:
    """Turn the progress of the plan's stages into row counts adding up to the total."""

    def __init__(self, progress: Progress | None, rows: int) -> None:
        self.progress, self.rows, self.reported = progress, rows, 0

    def at(self, fraction: float) -> None:
        if self.progress is None:
            return
        target = min(self.rows, int(self.rows * fraction))
        if target > self.reported:
            self.progress(target - self.reported)
            self.reported = target


_CHUNK = 50_000


def build_plan(
    table: InputTable, options: PlanOptions, *, progress: Progress | None = None
) -> Plan:
    """Decide every row of ``table``; see the module docstring for the verdicts.

    ``progress`` (for a progress bar) is called with the number of rows
    finished since the last call; the calls add up to ``len(table)``.
    Usage errors (unknown column or placeholder, bad region) are raised
    before any row is looked at.
    """
    with gc_paused():
        return _build_plan(table, options, progress)


def check_options(options: PlanOptions) -> Template | None:
    """Raise ConfigError for options that are wrong whatever the list holds.

    Called by ``build_plan``, and by the command line before the list is
    even read, so a typo in a template costs nothing.  Returns the parsed
    template, if any.
    """
    check_region(options.region)
    if options.max_segments < 1:
        raise ConfigError("--max-segments must be at least 1")
    if options.template is not None and options.text_column is not None:
        raise ConfigError("give either --text-column or --template, not both")
    return parse_template(options.template) if options.template is not None else None


def _build_plan(table: InputTable, options: PlanOptions, progress: Progress | None) -> Plan:
    template = check_options(options)
    region = check_region(options.region)
    columns = table.columns
    fields: dict[str, str] = {}
    if template is not None:
        for name in template.fields:
            fields[name] = find_column(columns, name, what="the template placeholder")
    phone_column = (
        find_column(columns, options.phone_column, what="--phone-column")
        if options.phone_column
        else detect_column(columns, "phone")
    )
    if phone_column is None:
        raise _missing_column(table, "phone")
    text_column: str | None = None
    if template is None:
        text_column = (
            find_column(columns, options.text_column, what="--text-column")
            if options.text_column
            else detect_column(columns, "text", exclude=[phone_column])
        )
        if text_column is None:
            raise _missing_column(table, "text")
    optout = set(options.optout or ())
    if options.optout_path is not None:
        optout |= load_optout(options.optout_path, region)

    ticker = _Ticker(progress, len(table))
    frame = table.frame
    count = len(frame)
    problems: dict[int, list[str]] = {}  # row position → reasons, only for bad rows

    # Texts: whole columns at once.
    if template is not None:
        texts, holes = _render(frame, template, fields)
        for name, mask in holes.items():
            sentence = f"the template placeholder {{{name}}} is empty in this row"
            for position in np.flatnonzero(mask).tolist():
                problems.setdefault(position, []).append(sentence)
    else:
        assert text_column is not None
        texts = _clean_text(frame[text_column])
    for position, sentence in table.row_problems.items():
        problems.setdefault(position, []).insert(0, sentence)

    # Numbers: one distinct value at a time, in chunks for the progress bar.
    raw_phones = frame[phone_column].tolist()
    recipients: list[str] = []
    phone_reasons: list[str] = []
    for start in range(0, count, _CHUNK):
        numbers, reasons = normalize_phones(
            raw_phones[start : start + _CHUNK], region, accept_possible=options.accept_possible
        )
        recipients.extend(numbers)
        phone_reasons.extend(reasons)
        ticker.at(0.6 * min(count, start + _CHUNK) / count)
    for position, reason in enumerate(phone_reasons):
        if reason:
            problems.setdefault(position, []).append(reason)

    # Segments: once per distinct text.
    codes, uniques = pd.factorize(texts)
    infos = [count_segments(t) for t in uniques]
    unique_segments = np.array([i.segments for i in infos], dtype=np.int64)
    unique_encodings = np.array([i.encoding if i.units else "" for i in infos], dtype=object)
    segments = unique_segments[codes] if count else np.zeros(0, dtype=np.int64)
    encodings = unique_encodings[codes] if count else np.zeros(0, dtype=object)
    too_long = f"the text needs more than {options.max_segments} segments (--max-segments)"
    for position in np.flatnonzero(segments > options.max_segments).tolist():
        problems.setdefault(position, []).append(too_long)
    for position in np.flatnonzero(segments == 0).tolist():
        found = problems.setdefault(position, [])
        if not any(p.startswith("the template placeholder") for p in found):
            found.append(REASON_NO_TEXT)
    ticker.at(0.75)

    rows = _verdicts(
        table, recipients, raw_phones, texts, problems, optout, options.allow_duplicates
    )
    rows["segments"] = segments
    rows["encoding"] = pd.Series(encodings, index=rows.index, dtype="str")
    rows["row_key"] = _row_keys(rows, raw_phones, ticker)
    rows = rows[
        [
            "recipient",
            "text",
            "verdict",
            "reason",
            "segments",
            "encoding",
            "row_key",
            "source_line",
            "occurrence",
        ]
    ]
    ticker.at(1.0)
    return Plan(
        table=table,
        rows=rows,
        phone_column=phone_column,
        text_column=text_column,
        template=template,
        options=options,
        summary=summarize(rows),
    )


def _clean_text(values: pd.Series) -> pd.Series:
    """Final text from a cell: Windows line ends become ``\\n``, outer spaces go.

    Both only cost segments: an ``\\r`` is a character of its own, and a
    trailing space or newline from a spreadsheet cell is never intended.
    """
    return values.str.replace("\r\n", "\n", regex=False).str.strip()


def _render(
    frame: pd.DataFrame, template: Template, fields: Mapping[str, str]
) -> tuple[pd.Series, dict[str, np.ndarray[Any, np.dtype[np.bool_]]]]:
    """Fill the template for every row; report the rows where a value is empty."""
    result = pd.Series(template.literals[0], index=frame.index, dtype="str")
    holes: dict[str, np.ndarray[Any, np.dtype[np.bool_]]] = {}
    for name, literal in zip(template.fields, template.literals[1:], strict=True):
        values = _clean_text(frame[fields[name]])
        holes[name] = (values == "").to_numpy(dtype=bool)
        result = result + values + literal
    return _clean_text(result), holes


def _verdicts(
    table: InputTable,
    recipients: list[str],
    raw_phones: list[str],
    texts: pd.Series,
    problems: Mapping[int, list[str]],
    optout: set[str],
    allow_duplicates: bool,
) -> pd.DataFrame:
    index = table.frame.index
    count = len(index)
    recipient = pd.Series(recipients, index=index, dtype="str")
    invalid = np.zeros(count, dtype=bool)
    reasons = np.full(count, "", dtype=object)
    for position, found in problems.items():
        invalid[position] = True
        reasons[position] = REASON_SEPARATOR.join(found)

    # Occurrence of each (recipient, text) pair in the file, for the row key;
    # a number that could not be read is keyed by its raw cell.
    key_recipient = [r or raw for r, raw in zip(recipients, raw_phones, strict=True)]
    pair = _pair_ids(key_recipient, texts)
    occurrence = pd.Series(pair).groupby(pair).cumcount().to_numpy() + 1

    verdict = np.full(count, SENDABLE, dtype=object)
    verdict[invalid] = INVALID
    opted = (~invalid) & recipient.isin(optout).to_numpy(dtype=bool) if optout else None
    if opted is not None:
        verdict[opted] = OPTED_OUT
        reasons[opted] = REASON_OPTED_OUT
    lines = np.asarray(table.source_lines, dtype=np.int64)
    if not allow_duplicates:
        # A repeat of a row that will itself be sent (or was opted out) is a
        # duplicate; a repeat of an invalid row is judged on its own.
        valid = ~invalid
        valid_pairs = pd.Series(pair[valid])
        first_line = pd.Series(lines[valid]).groupby(valid_pairs.to_numpy()).transform("first")
        later = valid_pairs.groupby(valid_pairs.to_numpy()).cumcount().to_numpy() > 0
        positions = np.flatnonzero(valid)[later]
        dup_positions = positions[verdict[positions] == SENDABLE]
        firsts = first_line.to_numpy()[later][verdict[positions] == SENDABLE]
        verdict[dup_positions] = DUPLICATE
        for position, line in zip(dup_positions, firsts, strict=True):
            reasons[position] = f"the same number and text as line {int(line)}"
    return pd.DataFrame(
        {
            "recipient": recipient,
            "text": texts.astype("str"),
            "verdict": pd.Series(verdict, index=index, dtype="str"),
            "reason": pd.Series(reasons, index=index, dtype="str"),
            "source_line": pd.Series(lines, index=index),
            "occurrence": pd.Series(occurrence.astype(np.int64), index=index),
        },
        index=index,
    )


def _pair_ids(recipients: list[str], texts: pd.Series) -> np.ndarray[Any, np.dtype[np.int64]]:
    """One integer per distinct (recipient, text) pair, without building the pairs."""
    if not recipients:
        return np.zeros(0, dtype=np.int64)
    r_codes, _ = pd.factorize(pd.Series(recipients, dtype="str"))
    t_codes, _ = pd.factorize(texts)
    combined = r_codes.astype(np.int64) * (int(t_codes.max()) + 1) + t_codes
    ids, _ = pd.factorize(combined)
    return ids.astype(np.int64)


def row_key(recipient: str, text: str, occurrence: int) -> str:
    """The stable identity of a row: hash of (recipient, final text, occurrence).

    The parts are length-prefixed so no two different triples can produce
    the same hashed string.  32 hex digits (128 bits) are plenty to never
    collide within a list.
    """
    payload = f"{len(recipient)}:{recipient}|{len(text)}:{text}|{occurrence}"
    return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _row_keys(rows: pd.DataFrame, raw_phones: list[str], ticker: _Ticker) -> pd.Series:
    count = len(rows)
    keys: list[str] = []
    recipients = rows["recipient"].tolist()
    texts = rows["text"].tolist()
    occurrences = rows["occurrence"].tolist()
    for start in range(0, count, _CHUNK):
        stop = min(count, start + _CHUNK)
        keys.extend(
            row_key(recipients[i] or raw_phones[i], texts[i], occurrences[i])
            for i in range(start, stop)
        )
        ticker.at(0.75 + 0.25 * stop / count)
    return pd.Series(keys, index=rows.index, dtype="str")


def summarize(rows: pd.DataFrame) -> PlanSummary:
    """The counts of a plan's rows (see PlanSummary)."""
    verdicts = rows["verdict"].value_counts()
    invalid_reasons: Counter[str] = Counter()
    for reason in rows.loc[rows["verdict"] == INVALID, "reason"]:
        invalid_reasons.update(reason.split(REASON_SEPARATOR))
    sendable = rows[rows["verdict"] == SENDABLE]
    encodings = sendable["encoding"].value_counts()
    return PlanSummary(
        rows=len(rows),
        sendable=int(verdicts.get(SENDABLE, 0)),
        invalid=int(verdicts.get(INVALID, 0)),
        duplicate=int(verdicts.get(DUPLICATE, 0)),
        opted_out=int(verdicts.get(OPTED_OUT, 0)),
        invalid_by_reason=dict(invalid_reasons.most_common()),
        segments=int(sendable["segments"].sum()),
        gsm7_rows=int(encodings.get("GSM-7", 0)),
        ucs2_rows=int(encodings.get("UCS-2", 0)),
    )


# ------------------------------------------------------------- rendering


def result_column_names(
    input_columns: Iterable[str], wanted: Sequence[str] = RESULT_COLUMNS
) -> dict[str, str]:
    """Output name for each result column: its own, unless the input has it.

    Input columns are kept verbatim, so a result column whose name is taken
    (``recipient`` is a common phone column name) gets ``_result`` appended
    (then ``_result2``, ``_result3``… should that be taken too).
    """
    taken = set(input_columns)
    names: dict[str, str] = {}
    for name in wanted:
        names[name] = free_name(name, taken)
        taken.add(names[name])
    return names


def free_name(name: str, taken: set[str]) -> str:
    """``name``, or the way out of a clash: ``name_result``, ``name_result2``…"""
    candidate, copy = name, 1
    while candidate in taken:
        candidate = f"{name}{CLASH_SUFFIX}" + (str(copy) if copy > 1 else "")
        copy += 1
    return candidate


def planned_results(plan: Plan) -> pd.DataFrame:
    """The results file of a dry run: input columns, then the result columns.

    ``send_status`` is ``planned`` for sendable rows and the verdict for the
    others; ``error`` carries the reason; ids, error codes and times are
    empty because nothing was sent.
    """
    rows = plan.rows
    names = result_column_names(plan.table.columns)
    status = rows["verdict"].where(rows["verdict"] != SENDABLE, "planned")
    empty_ints = pd.Series(pd.array([pd.NA] * len(rows), dtype="Int64"), index=rows.index)
    results = {
        names["recipient"]: rows["recipient"],
        names["send_status"]: status,
        names["message_id"]: empty_ints,
        names["campaign_id"]: empty_ints,
        names["segments"]: rows["segments"].astype("Int64"),
        names["error_code"]: empty_ints,
        names["error"]: rows["reason"],
        names["sent_at"]: pd.Series("", index=rows.index, dtype="str"),
    }
    return with_input_columns(plan, results)


def validation_report(plan: Plan) -> pd.DataFrame:
    """Validate's report: input columns, then line, recipient, verdict, reason…"""
    rows = plan.rows
    names = result_column_names(plan.table.columns, REPORT_COLUMNS)
    results = {
        names["line"]: rows["source_line"],
        names["recipient"]: rows["recipient"],
        names["verdict"]: rows["verdict"],
        names["reason"]: rows["reason"],
        names["segments"]: rows["segments"],
        names["encoding"]: rows["encoding"],
        names["final_text"]: rows["text"],
    }
    return with_input_columns(plan, results)


def with_input_columns(plan: Plan, results: Mapping[str, pd.Series]) -> pd.DataFrame:
    """The input's columns verbatim, then ``results`` (names already made unique)."""
    frame = plan.table.frame
    data = {name: frame[name] for name in frame.columns}
    data.update(results)
    return pd.DataFrame(data, index=frame.index)
