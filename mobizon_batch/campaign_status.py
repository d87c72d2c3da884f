"""Declined campaigns in the status pass: their rows become failed, with the moderator's words.

Why a check of its own: a message of a campaign that a moderator declined
is never sent, and GetSMSStatus goes on calling it NEW — a wait for final
statuses would wait for nothing, and the results would say "sent".  Rows the
campaign send pass marked as under moderation (``UNDER_MODERATION`` in
``error``) whose status is still NEW have their campaign read once
(Campaign/GetInfo); if it was declined, the rows get the status ``DECLINED``
(final), ``send_status`` ``failed`` and the moderator's comment as ``error``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import pandas as pd

from mobizon_batch.campaign_client import CampaignApi
from mobizon_batch.campaign_journal import UNDER_MODERATION
from mobizon_batch.client import MobizonClient, to_int
from mobizon_batch.errors import MobizonBatchError
from mobizon_batch.resultfile import locate_columns
from mobizon_batch.retries import ReadPolicy, call_read
from mobizon_batch.vocabulary import DECLINED, SendState, SmsStatus


def mark_declined(
    frame: pd.DataFrame,
    client: MobizonClient | Callable[[], MobizonClient],
    policy: ReadPolicy | None = None,
) -> int:
    """Mark the rows of declined campaigns in ``frame`` (in place); how many rows changed.

    Rows of an approved campaign (their status moved past NEW) lose the
    "under moderation" note instead.  ``client`` may be a function that opens
    one: it is called only when a row still waits for a moderator (so
    ``status --events`` needs no key when nothing does).
    """
    names = locate_columns(frame.columns)
    columns = [names.get(n) for n in ("status", "campaign_id", "error")]
    if any(c is None or c not in frame.columns for c in columns):
        return 0
    status, campaign, error = (str(c) for c in columns)
    noted = frame[error].astype(str) == UNDER_MODERATION
    statuses = frame[status].astype(str)
    # Past NEW: the moderator approved and the message is on its way; the note is history.
    approved = noted & ~statuses.isin(["", SmsStatus.NEW, DECLINED])
    frame.loc[approved, error] = ""
    changed = int(approved.sum())
    waiting = noted & statuses.isin(["", SmsStatus.NEW])
    if not waiting.any():
        return changed
    api = CampaignApi(client if isinstance(client, MobizonClient) else client())
    for value in frame.loc[waiting, campaign].unique():
        campaign_id = to_int(value)
        if campaign_id is None:
            continue
        try:
            info = call_read(partial(api.get_info, campaign_id), policy=policy)
        except MobizonBatchError:
            continue  # asked again by the next pass
        if info.common_status != "DECLINED":
            continue
        rows = waiting & (frame[campaign].map(to_int) == campaign_id)
        frame.loc[rows, status] = DECLINED
        if "status_final" in names and names["status_final"] in frame.columns:
            frame.loc[rows, names["status_final"]] = "true"
        frame.loc[rows, error] = (
            f"declined by the Mobizon moderator: {info.comment or 'no reason given'}"
        )
        send_status = names.get("send_status")
        if send_status is not None and send_status in frame.columns:
            frame.loc[rows, send_status] = SendState.FAILED
        changed += int(rows.sum())
    return changed
