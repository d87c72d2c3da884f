"""The results file of a send: the input rows, then what happened to each.

Why its own module: the journal is the truth, the results file its
rendering, and the same rendering is needed in three places — the periodic
checkpoint during a long send, the end of a send (or of an interrupted one),
and a dry run that knows of an earlier send.  Rows are matched to the journal
by ``row_key``, so the file always follows the *current* list's order and
rows, whatever order they were sent in.  A plan alone is rendered here too:
a dry run's results and validate's report.  Column names and suffixes come
from ``resultfile``, the one place that knows the layout.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from mobizon_batch.errors import MobizonBatchError
from mobizon_batch.journal import Journal
from mobizon_batch.prepare import Plan
from mobizon_batch.resultfile import (
    MESSAGE_ID_COLUMN,
    RESULT_COLUMNS,
    STATUS_COLUMNS,
    locate_columns,
    parse_message_id,
    result_column_names,
)
from mobizon_batch.table import ReadLimits, read_table
from mobizon_batch.vocabulary import PLAN_VERDICTS, SendState

#: Journal states of rows that were (or may have been) sent: never dropped from results.
ATTEMPTED = (SendState.SENT, SendState.FAILED, SendState.UNKNOWN, SendState.SENDING)
EARLIER_NOTE = "not in this version of the list (an earlier run sent it)"
#: The ``error`` of a row whose request was on its way when the file was written.
IN_FLIGHT_NOTE = (
    "was being sent when this file was written (or the run stopped then); "
    "run the same command again to settle it"
)
#: The columns validate's report adds after the input's own.
REPORT_COLUMNS = ("line", "recipient", "verdict", "reason", "segments", "encoding", "final_text")


def known_statuses(path: Path, limits: ReadLimits | None = None) -> pd.DataFrame | None:
    """The delivery-status columns of an existing results file, indexed by message id.

    Why: ``send`` rewrites the results file from the list and the journal; a
    file that ``status`` already filled in would lose those columns when a
    send is resumed (or a job re-run) after it.  They are carried over by
    message id.  None when there is no such file or nothing to carry.
    """
    if not path.exists():
        return None
    try:
        frame = read_table(path, limits=limits or ReadLimits.for_results()).frame
    except MobizonBatchError:
        return None
    names = locate_columns(frame.columns)
    id_column = names.get(MESSAGE_ID_COLUMN, MESSAGE_ID_COLUMN)
    present = {c: names[c] for c in STATUS_COLUMNS if names.get(c) in frame.columns}
    if id_column not in frame.columns or not present:
        return None
    ids = frame[id_column].map(parse_message_id)
    keep = ids.notna()
    carried = frame.loc[keep, list(present.values())]
    carried.columns = list(present)
    carried.index = pd.Index(ids[keep].astype("int64"))
    return carried[~carried.index.duplicated(keep="last")]


def send_results(
    plan: Plan,
    journal: Journal,
    statuses: pd.DataFrame | None = None,
    notes: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Input columns, then recipient, send_status, message_id … sent_at, from the journal.

    ``send_status`` is the journal's state (``sent``, ``failed``, ``unknown``,
    ``pending``; ``sending`` is shown as ``unknown``) or the plan's verdict for
    rows never to be sent; ``error`` is the journal's error for attempted rows
    and the plan's reason for the others.  ``statuses`` (from
    ``known_statuses``) adds the status columns back, matched by message id.
    ``notes`` (row key → sentence) says
    why a row still ``pending`` was not sent (it waits for its send window).

    Rows an earlier run sent (or tried to) that the current list no longer
    has are kept after the list's own rows, with empty input columns: a
    shorter list must not make sent messages vanish from the file that
    ``status`` and ``report`` read.
    """
    rows = plan.rows
    names = result_column_names(plan.table.columns, (*RESULT_COLUMNS, *STATUS_COLUMNS))
    journal_rows = journal.frame()
    merged = rows[["row_key", "recipient", "text", "verdict", "reason", "segments"]].merge(
        journal_rows.drop(columns=["recipient", "text", "segments"]), on="row_key", how="left"
    )
    merged.index = rows.index
    merged["state"] = merged["state"].fillna(
        rows["verdict"].where(rows["verdict"] != SendState.SENDABLE, SendState.PENDING.value)
    )
    planned = merged["state"].isin(PLAN_VERDICTS)
    merged["error"] = merged["error"].fillna("").where(~planned, merged["reason"])
    if notes:
        noted = merged["row_key"].map(notes)
        waiting = noted.notna() & (merged["state"] == SendState.PENDING)
        merged.loc[waiting, "error"] = noted[waiting]
    frame = with_input_columns(plan, _result_block(merged, names, statuses))
    earlier = journal_rows[
        ~journal_rows["row_key"].isin(rows["row_key"]) & journal_rows["state"].isin(ATTEMPTED)
    ].reset_index(drop=True)
    if len(earlier):
        earlier["error"] = earlier["error"].where(earlier["error"] != "", EARLIER_NOTE)
        block = _result_block(earlier, names, statuses)
        blank: dict[str, pd.Series] = {
            name: pd.Series("", index=earlier.index, dtype=object) for name in plan.table.columns
        }
        frame = pd.concat([frame, pd.DataFrame({**blank, **block})], ignore_index=True)
    return frame


def _result_block(
    source: pd.DataFrame, names: dict[str, str], statuses: pd.DataFrame | None
) -> dict[str, pd.Series]:
    """The result (and carried-over status) columns for rows described by ``source``."""
    # ``sending`` is the journal's word for "intent committed, no answer yet";
    # in a results file (a checkpoint, or the last one before a kill -9) the
    # row is ``unknown``: it may or may not have gone out, and a rerun decides.
    state = source["state"].astype("str")
    error = source["error"].fillna("").astype("str")
    in_flight = state == SendState.SENDING
    if in_flight.any():
        state = state.where(~in_flight, SendState.UNKNOWN.value)
        error = error.where(~in_flight, IN_FLIGHT_NOTE)
    block: dict[str, pd.Series] = {
        names["recipient"]: source["recipient"].astype("str"),
        names["send_status"]: state,
        names["message_id"]: source["message_id"].astype("Int64"),
        names["campaign_id"]: source["campaign_id"].astype("Int64"),
        names["text_sent"]: source["text"].fillna("").astype("str"),
        names["segments"]: source["segments"].astype("Int64"),
        names["error_code"]: source["error_code"].astype("Int64"),
        names["error"]: error,
        names["sent_at"]: source["sent_at"].fillna("").astype("str"),
    }
    if statuses is not None:
        for column in statuses.columns:
            values = source["message_id"].map(statuses[column]).fillna("").astype("str")
            block[names[column]] = values
    return block


def dry_run_results(plan: Plan, journal: Journal | None) -> pd.DataFrame:
    """A dry run's results: ``planned`` rows, except those an earlier send settled.

    Without a journal every sendable row is ``planned``; with one, rows it
    already sent (or failed) show that instead, so a dry run of a resumed
    send shows what the real one would still do.
    """
    if journal is None:
        return planned_results(plan)
    results = send_results(plan, journal)
    names = result_column_names(plan.table.columns)
    column = names["send_status"]
    results[column] = results[column].where(
        results[column] != SendState.PENDING, SendState.PLANNED.value
    )
    return results


# ------------------------------------------------------------- a plan alone


def planned_results(plan: Plan) -> pd.DataFrame:
    """The results file of a dry run: input columns, then the result columns.

    ``send_status`` is ``planned`` for sendable rows and the verdict for the
    others; ``error`` carries the reason; ids, error codes and times are
    empty because nothing was sent.
    """
    rows = plan.rows
    names = result_column_names(plan.table.columns)
    status = rows["verdict"].where(rows["verdict"] != SendState.SENDABLE, SendState.PLANNED.value)
    empty_ints = pd.Series(pd.array([pd.NA] * len(rows), dtype="Int64"), index=rows.index)
    results = {
        names["recipient"]: rows["recipient"],
        names["send_status"]: status,
        names["message_id"]: empty_ints,
        names["campaign_id"]: empty_ints,
        names["text_sent"]: rows["text"],
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
    """The input's columns verbatim, then ``results`` (names already made unique).

    A workbook's numbers, dates and booleans keep their type (so Excel can
    sum an amount); the phone column stays the text it was read as.
    """
    frame = plan.table.typed_frame(text_columns=[plan.phone_column])
    data = {name: frame[name] for name in frame.columns}
    data.update(results)
    return pd.DataFrame(data, index=frame.index, copy=False)  # the columns are not changed
