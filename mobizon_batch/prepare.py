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
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from operator import itemgetter, methodcaller
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mobizon_batch.columns import ColumnKind, detect_column, find_column
from mobizon_batch.config import DEFAULT_MAX_SEGMENTS as DEFAULT_MAX_SEGMENTS
from mobizon_batch.errors import ConfigError, InputError
from mobizon_batch.journal import PlanEntry
from mobizon_batch.phones import (
    DEFAULT_REGION,
    check_region,
    normalize_phones,
    optout_numbers,
)
from mobizon_batch.plansummary import REASON_SEPARATOR, PlanSummary, summarize_plan
from mobizon_batch.rowchecks import (
    REASON_LOST_LETTERS,
    REASON_TOTALS,
    lost_letters,
    refuse_repeated,
    totals_rows,
    unsaved_cells,
)
from mobizon_batch.table import InputTable, gc_paused, read_lines
from mobizon_batch.texts import Template, count_segments_many, joined_blocks, parse_template
from mobizon_batch.vocabulary import SendState

REASON_NO_TEXT = "the text is empty"
REASON_OPTED_OUT = "the number is in the opt-out list"

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
        return self.rows[self.rows["verdict"] == SendState.SENDABLE]

    def entries(self) -> Iterator[PlanEntry]:
        """Every row as the send journal registers it (``Journal.register``)."""
        rows = self.rows
        if len(rows) and not rows["row_key"].iat[0]:
            raise ValueError("this plan was built without row keys (build_plan(row_keys=False))")
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
    table: InputTable,
    options: PlanOptions,
    *,
    progress: Progress | None = None,
    row_keys: bool = True,
) -> Plan:
    """Decide every row of ``table``; see the module docstring for the verdicts.

    ``progress`` (for a progress bar) is called with the number of rows
    finished since the last call; the calls add up to ``len(table)``.
    ``row_keys=False`` leaves ``row_key`` empty: a plan only looked at
    (validate) saves hashing every row and holding a million keys; such a
    plan cannot be registered in a journal.
    Usage errors (unknown column or placeholder, bad region) are raised
    before any row is looked at.
    """
    with gc_paused():
        return _build_plan(table, options, progress, row_keys)


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


def _build_plan(
    table: InputTable, options: PlanOptions, progress: Progress | None, row_keys: bool
) -> Plan:
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
    refuse_repeated(table, phone_column, "--phone-column")
    text_column: str | None = None
    if template is None:
        text_column = (
            find_column(columns, options.text_column, what="--text-column")
            if options.text_column
            else detect_column(columns, "text", exclude=[phone_column])
        )
        if text_column is None:
            raise _missing_column(table, "text")
        refuse_repeated(table, text_column, "--text-column")
    for name in fields.values():
        refuse_repeated(table, name, "the template placeholder")
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
    totals = totals_rows(frame, phone_reasons)
    for position, reason in enumerate(phone_reasons):
        if reason:
            problems.setdefault(position, []).append(reason)
    text_sources = [text_column] if text_column is not None else list(fields.values())
    unsaved = unsaved_cells(table, phone_column, text_sources)

    # Segments: once per distinct text.
    codes, unique_texts = _factorize(texts.tolist())  # once: segments and pairs both use it
    unique_segments, unique_encodings = count_segments_many(unique_texts)
    segments = unique_segments[codes] if count else np.zeros(0, dtype=np.int64)
    encodings = unique_encodings[codes] if count else np.zeros(0, dtype=object)
    for position in np.flatnonzero(segments > options.max_segments).tolist():
        problems.setdefault(position, []).append(
            f"the text needs {int(segments[position])} segments, more than "
            f"{options.max_segments} segments (--max-segments)"
        )
    lost = np.fromiter(map(lost_letters, unique_texts), dtype=bool, count=len(unique_texts))
    if count and lost.any():
        for position in np.flatnonzero(lost[codes]).tolist():
            problems.setdefault(position, []).append(REASON_LOST_LETTERS)
    for position in np.flatnonzero(segments == 0).tolist():
        found = problems.setdefault(position, [])
        if not any(p.startswith("the template placeholder") for p in found):
            found.append(REASON_NO_TEXT)
    for position, sentences in unsaved.items():
        found = problems.setdefault(position, [])
        found[:] = [*sentences, *(p for p in found if p not in _EMPTY_REASONS)]
    for position in totals:  # the only thing to say about such a row
        problems[position] = [REASON_TOTALS]
    ticker.at(0.75)

    rows = _verdicts(
        table, recipients, raw_phones, (texts, codes), problems, optout, options.allow_duplicates
    )
    rows["segments"] = segments
    rows["encoding"] = pd.Series(encodings, index=rows.index, dtype="str")
    if row_keys:
        rows["row_key"] = _row_keys(rows, raw_phones, ticker)
    else:
        rows["row_key"] = pd.Series("", index=rows.index, dtype="str")
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
        summary=summarize_plan(rows),
    )


_EMPTY_REASONS = frozenset({REASON_NO_TEXT, "no phone number"})


def _clean_text(values: pd.Series) -> pd.Series:
    """Final text from a cell: Windows line ends become ``\\n``, outer spaces go.

    Both only cost segments: an ``\\r`` is a character of its own, and a
    trailing space or newline from a spreadsheet cell is never intended.
    """
    cells = (values.fillna("") if values.hasnans else values).tolist()
    if any("\r" in block for block in joined_blocks(cells)):  # mostly none: no rewriting
        cells = list(map(methodcaller("replace", "\r\n", "\n"), cells))
    cleaned = list(map(str.strip, cells))
    return pd.Series(cleaned, index=values.index, dtype="str")


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
    factorized_texts: tuple[pd.Series, np.ndarray[Any, Any]],
    problems: Mapping[int, list[str]],
    optout: set[str],
    allow_duplicates: bool,
) -> pd.DataFrame:
    index = table.frame.index
    count = len(index)
    texts, text_codes = factorized_texts
    recipient = pd.Series(recipients, index=index, dtype="str")
    invalid = np.zeros(count, dtype=bool)
    reasons = np.full(count, "", dtype=object)
    for position, found in problems.items():
        invalid[position] = True
        reasons[position] = REASON_SEPARATOR.join(found)

    # Occurrence of each (recipient, text) pair in the file, for the row key;
    # a number that could not be read is keyed by its raw cell.
    key_recipient = [r or raw for r, raw in zip(recipients, raw_phones, strict=True)]
    pair = _pair_ids(key_recipient, text_codes)
    occurrence = pd.Series(pair).groupby(pair).cumcount().to_numpy() + 1

    verdict = np.empty(count, dtype=object)
    verdict[:] = SendState.SENDABLE.value  # one shared string (np.full copies it per row)
    verdict[invalid] = SendState.INVALID.value
    opted = (~invalid) & recipient.isin(optout).to_numpy(dtype=bool) if optout else None
    if opted is not None:
        verdict[opted] = SendState.OPTED_OUT.value
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
        dup_positions = positions[verdict[positions] == SendState.SENDABLE]
        firsts = first_line.to_numpy()[later][verdict[positions] == SendState.SENDABLE]
        verdict[dup_positions] = SendState.DUPLICATE.value
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
        copy=False,
    )


def _pair_ids(
    recipients: list[str], t_codes: np.ndarray[Any, Any]
) -> np.ndarray[Any, np.dtype[np.int64]]:
    """One integer per distinct (recipient, text) pair, without building the pairs.

    ``t_codes`` are the texts' codes from ``_factorize``.
    """
    if not recipients:
        return np.zeros(0, dtype=np.int64)
    # Short strings: pandas' own factorize is the quicker here (unlike long texts).
    r_codes, _ = pd.factorize(np.asarray(recipients, dtype=object))
    combined: np.ndarray[Any, np.dtype[np.int64]] = r_codes.astype(np.int64) * (
        int(t_codes.max()) + 1
    ) + t_codes.astype(np.int64)
    ids, _ = pd.factorize(combined)
    return ids.astype(np.int64)


def _factorize(values: list[str]) -> tuple[np.ndarray[Any, np.dtype[np.int64]], list[str]]:
    """Codes (positions in the distinct values, in order of first appearance) and the values.

    What ``pd.factorize`` gives, with a dict: pandas hashes strings through
    UTF-8 and keeps about 30 bytes a string afterwards, which on a million
    different texts costs more time (long strings) and memory.
    """
    first: dict[str, int] = {}
    seen_at = map(first.setdefault, values, range(len(values)))
    firsts = np.fromiter(seen_at, dtype=np.int64, count=len(values))
    codes, _ = pd.factorize(firsts)  # integers: ordered as first seen, no strings hashed again
    return codes.astype(np.int64), list(first)


def row_key(recipient: str, text: str, occurrence: int) -> str:
    """The stable identity of a row: hash of (recipient, final text, occurrence).

    The parts are length-prefixed so no two different triples can produce
    the same hashed string.  32 hex digits (128 bits) are plenty to never
    collide within a list.
    """
    payload = f"{len(recipient)}:{recipient}|{len(text)}:{text}|{occurrence}"
    return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _row_keys(rows: pd.DataFrame, raw_phones: list[str], ticker: _Ticker) -> pd.Series:
    """``row_key`` for every row, with no Python step per row.

    The same payload and hash as ``row_key``, built by ``map`` over the
    columns (C functions only): a million rows cost a second less.
    """
    count = len(rows)
    keys: list[str] = []
    recipients = [r or raw for r, raw in zip(rows["recipient"].tolist(), raw_phones, strict=True)]
    texts = rows["text"].tolist()
    occurrences = rows["occurrence"].tolist()
    payload = "{}:{}|{}:{}|{}".format
    encode = methodcaller("encode", "utf-8", "surrogatepass")
    first_32 = itemgetter(slice(0, 32))
    for start in range(0, count, _CHUNK):
        stop = min(count, start + _CHUNK)
        part_r, part_t = recipients[start:stop], texts[start:stop]
        payloads = map(
            payload, map(len, part_r), part_r, map(len, part_t), part_t, occurrences[start:stop]
        )
        digests = map(methodcaller("hexdigest"), map(hashlib.sha256, map(encode, payloads)))
        keys.extend(map(first_32, digests))
        ticker.at(0.75 + 0.25 * stop / count)
    return pd.Series(keys, index=rows.index, dtype="str")


def load_optout(
    path: str | os.PathLike[str], region: str = DEFAULT_REGION, *, encoding: str | None = None
) -> frozenset[str]:
    """The normalized numbers of an opt-out file (CSV, plain text or XLSX).

    The file is read at the table edge (``read_lines``) and its lines are
    parsed by ``phones.optout_numbers``, which refuses a file with lines but
    no number in it.
    """
    source = Path(path)
    lines = read_lines(source, encoding, what="opt-out file")
    return optout_numbers(lines, region, source_name=source.name)
