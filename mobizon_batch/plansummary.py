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

from mobizon_batch.rowchecks import LookalikeSaving, lookalike_saving, with_lookalikes
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
    """The counts of a plan's rows (see PlanSummary).

    Counted on plain arrays with ``Counter`` (no sub-frames, no pandas
    value counts): a million-row plan is summarized in a fraction of a
    second.  Only UCS-2 texts holding a typographic character are counted
    for the lookalike figure: no other text can change it.
    """
    verdicts = rows["verdict"].to_numpy(dtype=object)
    by_verdict = Counter(verdicts.tolist())
    invalid_reasons: Counter[str] = Counter()
    for reason in rows["reason"].to_numpy(dtype=object)[verdicts == SendState.INVALID]:
        invalid_reasons.update(reason.split(REASON_SEPARATOR))
    sendable = verdicts == SendState.SENDABLE
    encodings = rows["encoding"].to_numpy(dtype=object)[sendable]
    by_encoding = Counter(encodings.tolist())
    ucs2_texts = rows["text"].to_numpy(dtype=object)[sendable][encodings == "UCS-2"]
    candidates = Counter(with_lookalikes(ucs2_texts.tolist()))
    return PlanSummary(
        rows=len(rows),
        sendable=by_verdict[SendState.SENDABLE.value],
        invalid=by_verdict[SendState.INVALID.value],
        duplicate=by_verdict[SendState.DUPLICATE.value],
        opted_out=by_verdict[SendState.OPTED_OUT.value],
        invalid_by_reason=dict(invalid_reasons.most_common()),
        segments=int(rows["segments"].to_numpy()[sendable].sum()),
        gsm7_rows=by_encoding["GSM-7"],
        ucs2_rows=by_encoding["UCS-2"],
        lookalikes=lookalike_saving(list(candidates), list(candidates.values())),
    )
