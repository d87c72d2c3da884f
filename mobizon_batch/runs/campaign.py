"""Campaign mode inside ``send_list``: its options, and the pass run with the observer.

Why a module of its own: ``send_list`` does what both modes share (plan,
balance pre-flight, journal, results file); what differs — the options that
only campaign mode has, the price it shows and the confirmation it asks
for, and the rule that a journal with campaigns in flight is finished in
campaign mode — lives here.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from dataclasses import dataclass
from decimal import Decimal

from mobizon_batch.campaign_journal import CampaignJournal
from mobizon_batch.campaign_pass import CampaignOptions, CampaignPass, CampaignSummary
from mobizon_batch.campaign_plan import default_name
from mobizon_batch.client import MobizonClient
from mobizon_batch.errors import ConfigError
from mobizon_batch.journal import Journal
from mobizon_batch.prepare import Plan
from mobizon_batch.runs.common import Observer
from mobizon_batch.send import SendOptions
from mobizon_batch.vocabulary import SEND_MODES

MESSAGE, CAMPAIGN = SEND_MODES
MODES = SEND_MODES


@dataclass(frozen=True)
class CampaignChoice:
    """What only campaign mode uses.

    ``max_cost``: stop before sending (exit 6) when the price is above it.
    ``rate``: the pace asked for explicitly (``--rate``, a job's ``rate``), as
    messages a second; None leaves the pace to Mobizon.
    """

    max_cost: Decimal | None = None
    rate: float | None = None


def check_mode(mode: str, choice: CampaignChoice, send_window: str | None = None) -> None:
    """Refuse a mode we don't know, campaign-only options in message mode, and the
    options campaign mode has no equivalent for."""
    if mode not in MODES:
        raise ConfigError(f"--mode {mode!r}: choose 'message' or 'campaign'")
    if mode == CAMPAIGN and send_window is not None:
        raise ConfigError(
            "--send-window has no campaign equivalent (a campaign goes out as a whole, not "
            "row by row in each recipient's hours): use --deferred-to, or --mode message"
        )
    if mode == MESSAGE and choice.max_cost is not None:
        raise ConfigError(
            "--max-cost needs --mode campaign: message mode cannot price a list before sending it"
        )
    if choice.max_cost is not None and choice.max_cost <= 0:
        raise ConfigError(f"--max-cost {choice.max_cost}: give an amount above 0")


def campaign_options(
    send: SendOptions, choice: CampaignChoice, source: str | os.PathLike[str]
) -> CampaignOptions:
    """The campaign pass's options from the shared send options and campaign mode's own."""
    return CampaignOptions(
        name=send.name or default_name(str(source)),
        sender=send.sender,
        validity=send.validity,
        deferred_to=send.deferred_to,
        rate=choice.rate,
        flash=send.flash,
        max_cost=choice.max_cost,
        max_attempts=send.max_attempts,
        settle_seconds=send.settle_seconds,
    )


def refuse_unfinished_campaigns(journal: Journal) -> None:
    """Message mode must not touch rows a campaign of this journal is carrying."""
    if CampaignJournal(journal).unfinished():
        raise ConfigError(
            f"{journal.path} has campaigns that were staged but not settled: finish them "
            f"with the same command and --mode campaign"
        )


def run_campaign_pass(
    client: MobizonClient,
    journal: Journal,
    plan: Plan,
    options: CampaignOptions,
    keys: Collection[str],
    observer: Observer,
) -> CampaignSummary:
    """Stage, verify, price, confirm (through ``observer``) and send once."""

    campaign_pass = CampaignPass(
        client,
        journal,
        plan,
        options,
        keys=keys,
        confirm=observer.confirm_cost,
        on_quote=observer.priced,
        on_progress=observer.staged,
    )
    with observer.sending(campaign_pass.request_stop):
        return campaign_pass.run()
