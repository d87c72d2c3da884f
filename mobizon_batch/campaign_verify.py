"""Before anything is sent: each staged campaign is ours and holds exactly the journal's rows.

Why a step of its own: staging settles every lost answer by adding again,
which is harmless only because nothing is delivered yet — so before the one
call that delivers, the pass checks what the provider really holds:

* the ids of numbers that answered code 4 (already staged by a lost call) are
  read from the campaign's message list;
* the campaign's name carries this journal's tag (only our campaigns are sent);
* GetInfo's counters count exactly the rows the journal staged — read again
  while they lag, and when they still disagree the message list decides;
* a template campaign's texts, as Mobizon filled them in, are the plan's.

A campaign that fails a check is deleted unsent (or, if it cannot be deleted,
left for the next run) and its rows staged again; one that passes is priced
from the counters.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from decimal import Decimal

from mobizon_batch.campaign_client import TEMPLATE
from mobizon_batch.campaign_journal import (
    STAGED,
    STAGING,
    CampaignJournal,
    CampaignRecord,
    MemberRecord,
)
from mobizon_batch.campaign_results import CampaignOptions, CampaignSummary
from mobizon_batch.campaign_steps import CampaignSteps, ours
from mobizon_batch.prepare import Plan


@dataclass
class Ready:
    """A campaign checked and priced, ready to be sent."""

    record: CampaignRecord
    messages: int
    segments: int
    cost: Decimal


class Verifier:
    """The checks of one pass (see the module docstring)."""

    def __init__(
        self,
        steps: CampaignSteps,
        records: CampaignJournal,
        plan: Plan,
        keys: Collection[str],
        options: CampaignOptions,
        summary: CampaignSummary,
        *,
        delete: Callable[[int], bool],
        sleep: Callable[[float], None],
        check_halt: Callable[[], None],
    ) -> None:
        self.steps = steps
        self.records = records
        self.plan = plan
        self.keys = keys
        self.options = options
        self.summary = summary
        self.delete = delete
        self.sleep = sleep
        #: raises when a stop was asked for (between campaigns, never mid-check)
        self.check_halt = check_halt

    def resolve_ids(self, record: CampaignRecord, campaign_id: int) -> None:
        """Ids of members that answered code 4, from the campaign's message list.

        The whole list costs one request per 100 staged messages; a few
        numbers are cheaper asked one by one (``to`` is a substring match, so
        the answer is filtered to the exact number).
        """
        for round_number in range(self.options.verify_rounds):
            staged = self.records.members(record.local_id, [STAGED])
            missing = {m.member.recipient: m.row_key for m in staged if m.message_id is None}
            if not missing:
                return
            if round_number:
                self.sleep(self.options.settle_seconds)
            if len(missing) <= len(staged) // 100:
                found = [
                    (key, message_id)
                    for number, key in missing.items()
                    if (message_id := self.steps.find_staged(campaign_id, number)) is not None
                ]
            else:
                listed = self.steps.list_staged(campaign_id).by_number
                found = [(key, listed[n][0]) for n, key in missing.items() if n in listed]
            self.records.set_message_ids(record.local_id, found)

    def verify_all(self) -> list[Ready]:
        ready = []
        for record in self.records.campaigns([STAGING]):
            self.check_halt()
            checked = self._verify(record)
            if checked is not None:
                ready.append(checked)
        return ready

    def _verify(self, record: CampaignRecord) -> Ready | None:
        assert record.campaign_id is not None
        campaign_id = record.campaign_id
        members = self.records.members(record.local_id)
        if not members:  # every row was rejected: an empty campaign of ours
            if self.delete(campaign_id):
                self.records.deleted(record.local_id, "no row of this campaign could be staged")
            return None
        if any(m.state != STAGED or m.message_id is None for m in members):
            self.summary.problems.append(
                f"campaign {campaign_id} is not fully staged yet (some answers could not be "
                f"settled); it was not sent: run the same command again"
            )
            return None
        foreign_rows = [m.row_key for m in members if m.row_key not in self.keys]
        if foreign_rows:  # the list changed, and the campaign could not be deleted
            self.summary.problems.append(
                f"campaign {campaign_id} carries {len(foreign_rows):,} rows the list no longer "
                f"has, and could not be deleted: not sent (run again to delete it)"
            )
            return None
        info = self.steps.info(campaign_id)
        if not ours(info.name, record):
            self.summary.problems.append(
                f"campaign {campaign_id} is named {info.name!r}, not {record.name!r} as this "
                f"journal made it: not sent, not deleted (check the Mobizon panel)"
            )
            return None
        for round_number in range(self.options.verify_rounds):
            counters = info.counters
            if counters is not None and counters.messages == len(members):
                if not self._texts_as_planned(record, campaign_id, members):
                    return None
                return Ready(record, counters.messages, counters.segments, counters.cost)
            if round_number + 1 < self.options.verify_rounds:
                self.sleep(self.options.settle_seconds)  # counters may lag (updateTs)
                info = self.steps.info(campaign_id)
        listed = self.steps.list_staged(campaign_id).by_number
        expected = {m.member.recipient: m.message_id for m in members}
        if {n: v[0] for n, v in listed.items()} == expected and self._texts_as_planned(
            record, campaign_id, members
        ):
            # The counters lag; the listing is the truth: its costs, the plan's segments.
            segments = dict(zip(self.plan.rows["row_key"], self.plan.rows["segments"], strict=True))
            return Ready(
                record,
                len(members),
                sum(int(segments.get(m.row_key, 1)) for m in members),
                sum((cost for _, cost in listed.values()), Decimal(0)),
            )
        if self.delete(campaign_id):
            self.records.deleted(
                record.local_id,
                f"staged again: campaign {campaign_id} held {len(listed):,} messages where "
                f"this journal staged {len(members):,}",
            )
        self.summary.problems.append(
            f"campaign {campaign_id} did not hold exactly the rows staged in it; it was deleted "
            f"unsent and its rows wait for the next run"
        )
        return None

    def _texts_as_planned(
        self, record: CampaignRecord, campaign_id: int, members: list[MemberRecord]
    ) -> bool:
        """A template campaign's texts are made by Mobizon: check a page against the plan.

        One request, before anything is sent: if Mobizon fills the template in
        differently from the plan (trims a value, say), nobody gets a text the
        results file does not show.
        """
        if record.kind != TEMPLATE:
            return True
        planned = {m.member.recipient: m.member.text for m in members}
        made = self.steps.sample_texts(campaign_id)
        wrong = [(n, t) for n, t in made.items() if n in planned and planned[n] != t]
        if not wrong:
            return True
        number, text = wrong[0]
        if self.delete(campaign_id):
            self.records.deleted(
                record.local_id, "not sent: Mobizon filled in the template differently"
            )
        self.summary.problems.append(
            f"campaign {campaign_id}: Mobizon filled in the template differently from the plan "
            f"(for {number}: {text!r}, planned {planned[number]!r}); deleted unsent: send this "
            f"list with --mode message"
        )
        return False
