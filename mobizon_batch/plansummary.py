"""The counts of a plan that people read before sending (``PlanSummary``).

``prepare`` decides a verdict and reasons for every row; this module only
counts what it decided: rows by verdict, invalid rows by reason, and the
cost of the sendable rows (segments, encodings, and what typographic
characters alone add).  ``validate``, ``send --dry-run`` and the pre-flight
figures all read these counts.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pandas as pd

from mobizon_batch.rowchecks import LookalikeSaving, lookalike_saving
from mobizon_batch.vocabulary import SendState

#: separates a row's reasons in its ``reason`` cell
REASON_SEPARATOR = "; "


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
    #: sendable rows that typographic characters alone make UCS-2 (see ``rowchecks``)
    lookalikes: LookalikeSaving = field(default_factory=lambda: LookalikeSaving(0, 0, ()))


def summarize_plan(rows: pd.DataFrame) -> PlanSummary:
    """The counts of a plan's rows (see PlanSummary)."""
    verdicts = rows["verdict"].value_counts()
    invalid_reasons: Counter[str] = Counter()
    for reason in rows.loc[rows["verdict"] == SendState.INVALID, "reason"]:
        invalid_reasons.update(reason.split(REASON_SEPARATOR))
    sendable = rows[rows["verdict"] == SendState.SENDABLE]
    encodings = sendable["encoding"].value_counts()
    ucs2_texts = sendable.loc[sendable["encoding"] == "UCS-2", "text"].value_counts()
    return PlanSummary(
        rows=len(rows),
        sendable=int(verdicts.get(SendState.SENDABLE, 0)),
        invalid=int(verdicts.get(SendState.INVALID, 0)),
        duplicate=int(verdicts.get(SendState.DUPLICATE, 0)),
        opted_out=int(verdicts.get(SendState.OPTED_OUT, 0)),
        invalid_by_reason=dict(invalid_reasons.most_common()),
        segments=int(sendable["segments"].sum()),
        gsm7_rows=int(encodings.get("GSM-7", 0)),
        ucs2_rows=int(encodings.get("UCS-2", 0)),
        lookalikes=lookalike_saving(
            [str(t) for t in ucs2_texts.index], [int(n) for n in ucs2_texts.tolist()]
        ),
    )
