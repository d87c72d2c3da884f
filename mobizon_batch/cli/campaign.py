"""Campaign mode on the terminal: the cost line, the ``Send? [y/N]`` prompt, the summary.

The prompt appears only for ``send`` on a terminal (stdin and stdout) without
``--yes``: a cron job, a pipe or a job file never waits for an answer, and
relies on ``--max-cost`` instead.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from mobizon_batch.campaign_client import TEMPLATE
from mobizon_batch.campaign_pass import CampaignSummary
from mobizon_batch.campaign_plan import CampaignDraft
from mobizon_batch.cli.exits import (
    EXIT_INCOMPLETE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_STOPPED,
    exit_code_for,
)
from mobizon_batch.cli.output import say
from mobizon_batch.vocabulary import SendState

#: campaigns listed one by one in a dry run
MAX_SHOWN = 10


def campaign_plan_lines(drafts: Sequence[CampaignDraft]) -> list[str]:
    """A campaign-mode dry run: the campaigns the list would make, largest first."""
    if not drafts:
        return []
    lines = [f"campaign mode would make {len(drafts):,} campaign{'s' if len(drafts) != 1 else ''}:"]
    for draft in sorted(drafts, key=lambda d: -len(d.members))[:MAX_SHOWN]:
        kind = "template" if draft.kind == TEMPLATE else "bulk"
        text = draft.text if len(draft.text) <= 60 else draft.text[:57] + "..."
        lines.append(f"  {kind:8} {len(draft.members):>9,} rows  {text!r}")
    if len(drafts) > MAX_SHOWN:
        lines.append(f"  ... and {len(drafts) - MAX_SHOWN:,} more")
    return lines


def print_campaign_summary(
    args: argparse.Namespace, summary: CampaignSummary, results: Path, journal: Path
) -> None:
    counts = summary.counts
    order = (
        SendState.SENT,
        SendState.FAILED,
        SendState.SENDING,
        SendState.PENDING,
        SendState.UNKNOWN,
        SendState.INVALID,
        SendState.DUPLICATE,
        SendState.OPTED_OUT,
    )
    shown = " · ".join(
        f"{str(name).replace('_', ' ')} {counts[name]:,}" for name in order if counts[name]
    )
    sent = len(summary.sent_campaigns)
    lines = [
        f"Sent {summary.sent_now:,} messages in {sent:,} campaign{'s' if sent != 1 else ''} "
        f"({summary.staged_now:,} staged in {summary.staging_seconds:.1f} s, "
        f"{summary.requests:,} requests, {summary.elapsed:.1f} s in all).",
        f"  rows: {shown or 'none'}",
    ]
    if summary.sent_campaigns:
        lines.append("  campaigns: " + ", ".join(str(c) for c in summary.sent_campaigns))
    if summary.moderation:
        lines.append(
            "  under moderation: "
            + ", ".join(str(c) for c in summary.moderation)
            + " (Mobizon sends once a moderator approves; `status` shows the outcome)"
        )
    for campaign_id, comment in summary.declined:
        lines.append(f"  declined by the moderator: campaign {campaign_id}: {comment}")
    lines.append(f"  results: {results}   journal: {journal}")
    for line in lines:
        say(args, line)
    for problem in summary.problems:
        print(f"warning: {problem}", file=sys.stderr)
    if summary.aborted is not None:
        print(f"error: stopped by the API: {summary.aborted}", file=sys.stderr)
    elif summary.unreachable:
        print(f"warning: {summary.unreachable}", file=sys.stderr)
    elif summary.interrupted:
        print(
            "interrupted: nothing more was sent; run the same command again to finish",
            file=sys.stderr,
        )
    elif summary.stopped:
        print(
            f"not sent: {summary.stopped}; the staged campaigns were deleted",
            file=sys.stderr,
        )
    elif summary.incomplete:
        print(
            f"warning: {summary.incomplete:,} rows were not sent; see send_status and error "
            f"in {results}",
            file=sys.stderr,
        )


def campaign_exit_code(summary: CampaignSummary) -> int:
    if summary.aborted is not None:
        return exit_code_for(summary.aborted.cause or summary.aborted)
    if summary.interrupted:
        return EXIT_INTERRUPTED
    if summary.stopped:
        return EXIT_STOPPED
    if summary.incomplete or summary.unreachable:
        return EXIT_INCOMPLETE
    return EXIT_OK
