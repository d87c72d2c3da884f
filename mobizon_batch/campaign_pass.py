"""The campaign send pass: stage, settle, verify, price, confirm, send once.

The order is the guarantee (design, "Campaign mode"):

1. **Settle what an earlier run left** — a Create whose answer was lost (found
   again in Campaign/List by its tagged name), a Send whose answer was lost
   (read back: GetInfo, Campaign/List ``status=NEW``), staged campaigns that
   carry rows the list no longer has (deleted; their rows are staged again).
2. **Stage** the rows not staged yet: one campaign per group
   (``campaign_plan``), at most 500 recipients a call, one call at a time per
   campaign (the provider locks a campaign while adding), each chunk's intent
   committed before its call.  A lost answer is settled by adding the chunk
   again (already staged numbers answer code 4) and reading the ids of those
   from Message/List ``criteria[campaignIds]``.  Staging delivers nothing, so
   a crash anywhere up to here costs nothing and loses nothing.
3. **Verify** (``campaign_verify``): every campaign is ours (its tagged
   name) and holds exactly the journal's rows (GetInfo counters; Message/List
   when the counters disagree or lag), and a template campaign's texts are
   the plan's.  A campaign that differs is deleted and its rows staged again.
4. **Price and confirm**: the counters' cost against ``max_cost`` and the
   balance, then ``confirm`` (the prompt).  Stopped here → every staged
   campaign of this run is deleted, rows are pending again, nothing was sent.
5. **Send once**: the Send intent is committed first; a lost answer is read
   back, never blindly repeated.

Only campaigns recorded in this journal are ever sent or deleted.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Collection
from decimal import Decimal

from mobizon_batch.campaign_client import MAX_RECIPIENTS_PER_CALL, CampaignSpec
from mobizon_batch.campaign_journal import (
    ADDING,
    CAMPAIGN_SENDING,
    CREATING,
    QUEUED,
    STAGED,
    STAGING,
    UNFINISHED,
    CampaignJournal,
    CampaignRecord,
)
from mobizon_batch.campaign_plan import group_rows, rate_to_limit
from mobizon_batch.campaign_results import (
    CampaignOptions,
    CampaignProgress,
    CampaignSummary,
    Quote,
    recipient_outcomes,
)
from mobizon_batch.campaign_steps import CampaignSteps, SendCheck
from mobizon_batch.campaign_verify import Ready, Verifier
from mobizon_batch.client import MobizonClient
from mobizon_batch.errors import (
    AnswerLost,
    ApiError,
    ConcurrentSave,
    ConfigError,
    NotFound,
    RateLimited,
    RunAborted,
    ServiceError,
    TransportError,
)
from mobizon_batch.journal import Journal
from mobizon_batch.prepare import Plan
from mobizon_batch.vocabulary import SendState


class _Stop(Exception):
    """Internal: a stop was requested; end the pass where it stands."""


class CampaignPass:
    """Send the list's pending rows through Mobizon campaigns (see the module docstring)."""

    def __init__(
        self,
        client: MobizonClient,
        journal: Journal,
        plan: Plan,
        options: CampaignOptions,
        *,
        keys: Collection[str] | None = None,
        confirm: Callable[[Quote], bool] | None = None,
        on_quote: Callable[[Quote], None] | None = None,
        on_progress: Callable[[CampaignProgress], None] | None = None,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.journal = journal
        self.records = CampaignJournal(journal)
        self.plan = plan
        self.options = options
        self.keys = frozenset(keys) if keys is not None else frozenset(plan.rows["row_key"])
        self.confirm = confirm
        self.on_quote = on_quote
        self.on_progress = on_progress
        self._halt = threading.Event()
        self._sleep = sleep or self._interruptible_sleep
        self._clock = clock
        self.steps = CampaignSteps(
            client, attempts=options.max_attempts, sleep=self._sleep, halt=self._halt
        )
        self.summary = CampaignSummary(Counter())
        self.verifier = Verifier(
            self.steps,
            self.records,
            plan,
            self.keys,
            options,
            self.summary,
            delete=self._delete_quietly,
            sleep=self._sleep,
            check_halt=self._check_halt,
        )

    def _interruptible_sleep(self, seconds: float) -> None:
        self._halt.wait(seconds)

    def request_stop(self) -> None:
        """Ctrl-C or SIGTERM: finish the call in flight, start no other (never a Send)."""
        self.summary.interrupted = True
        self._halt.set()

    def _check_halt(self) -> None:
        if self._halt.is_set():
            raise _Stop

    # ------------------------------------------------------------------ run

    def run(self) -> CampaignSummary:
        started = self._clock()
        summary = self.summary
        try:
            self._refuse_unsettled_message_rows()
            group_rows(self.plan, self._unassigned())  # a list campaign mode refuses: say it now
            self._settle_unfinished()
            for draft in group_rows(self.plan, self._unassigned()):
                self.records.add(draft, self.options.name)
            staging_started = self._clock()
            self._stage_all()
            summary.staging_seconds = self._clock() - staging_started
            ready = self.verifier.verify_all()
            if ready:
                self._price_and_send(ready)
        except _Stop:
            summary.interrupted = True
        except ConfigError as exc:
            if not self.steps.requests:  # refused before any request: a usage error
                raise
            summary.aborted = RunAborted(str(exc), exc)
        except TransportError as exc:
            summary.unreachable = (
                f"the API could not be reached ({exc}); nothing more was sent: run the same "
                f"command again"
            )
        except (RateLimited, ConcurrentSave, ServiceError) as exc:  # retries ran out
            summary.unreachable = (
                f"the API kept failing ({exc}); nothing more was sent: run the same "
                f"command again later"
            )
        except ApiError as exc:
            cause = exc if exc.aborts_run else None
            summary.aborted = RunAborted(str(exc), cause)
        summary.requests = self.steps.requests
        summary.counts = self.journal.counts(self.keys)
        summary.elapsed = self._clock() - started
        return summary

    def _refuse_unsettled_message_rows(self) -> None:
        """Rows a message-mode run left in flight must be settled by that mode first."""
        assigned = self.records.assigned_keys()
        loose = [
            row
            for row in self.journal.rows([SendState.UNKNOWN, SendState.SENDING])
            if row.row_key in self.keys and row.row_key not in assigned
        ]
        if loose:
            raise ConfigError(
                f"{len(loose):,} rows of this journal were being sent one by one (message "
                f"mode) and their outcome is not settled: run the same command with "
                f"--mode message first, then campaign mode for the rest"
            )

    def _unassigned(self) -> list[str]:
        assigned = self.records.assigned_keys()
        return [
            row.row_key
            for row in self.journal.rows([SendState.PENDING])
            if row.row_key in self.keys and row.row_key not in assigned
        ]

    # ------------------------------------------------------- earlier runs

    def _settle_unfinished(self) -> None:
        pending = {row.row_key for row in self.journal.rows([SendState.PENDING])}
        for record in self.records.campaigns(UNFINISHED):
            self._check_halt()
            if record.state == CREATING and record.intent_at is not None:
                self._settle_create(record)
            elif record.state == CAMPAIGN_SENDING:
                self._settle_send(record)
            record = self.records.campaign(record.local_id)
            if record.state in (CREATING, STAGING):
                self._keep_to_list(record, pending)

    def _settle_create(self, record: CampaignRecord) -> bool:
        """Find a campaign whose Create answer was lost; True if adopted."""
        for round_number in range(2):
            found = self.steps.find_created(record)
            if found:
                self.records.created(record.local_id, found[0])
                for extra in found[1:]:  # ours by name: empty twins of a lost Create
                    self._delete_quietly(extra)
                return True
            if round_number == 0:
                self._sleep(self.options.settle_seconds)
        return False  # never made (or not listed yet): an empty twin would reach nobody

    def _settle_send(self, record: CampaignRecord) -> None:
        assert record.campaign_id is not None
        check = self.steps.check_sent(record.campaign_id)
        if check.deleted:
            self.records.deleted(
                record.local_id, "not sent: the campaign was deleted in the Mobizon panel"
            )
        elif check.sent and not check.unsure:
            self._mark_sent(record, check.moderation, check.declined)
        else:  # back to staging; if it was sent after all, its next Send answers code 10
            self.records.created(record.local_id, record.campaign_id)

    def _keep_to_list(self, record: CampaignRecord, pending: Collection[str]) -> None:
        """A campaign not sent yet carries only rows of the current list still to send.

        A queued row (not added yet) that left the list, or that is no longer
        pending (another pass decided it meanwhile: say the history guard found
        it already sent), simply leaves the campaign.  A row already staged
        that left the list takes the whole unsent campaign with it: deleted,
        its other rows staged again.
        """
        members = self.records.members(record.local_id)
        stale = [
            m.row_key
            for m in members
            if m.state == QUEUED and (m.row_key not in self.keys or m.row_key not in pending)
        ]
        if stale:
            self.records.drop_queued(record.local_id, stale)
        if all(m.row_key in self.keys for m in members if m.state != QUEUED):
            return
        if record.campaign_id is None or self._delete_quietly(record.campaign_id):
            self.records.deleted(
                record.local_id, "staged again: the list changed since this row was staged"
            )

    # -------------------------------------------------------------- staging

    def _stage_all(self) -> None:
        for record in self.records.campaigns([CREATING, STAGING]):
            self._check_halt()
            campaign_id = record.campaign_id or self._create(record)
            if campaign_id is None:
                continue
            self._stage(self.records.campaign(record.local_id), campaign_id)

    def _spec(self, record: CampaignRecord) -> CampaignSpec:
        options = self.options
        limit = rate_to_limit(options.rate)
        return CampaignSpec(
            name=record.name,
            text=record.text,
            kind=record.kind,
            sender=options.sender,
            rate_limit=limit[0] if limit else None,
            rate_period=limit[1] if limit else None,
            deferred_to=options.deferred_to,
            validity=options.validity,
            mclass=0 if options.flash else None,
        )

    def _create(self, record: CampaignRecord) -> int | None:
        for _ in range(self.options.max_attempts):
            self._check_halt()
            self.records.create_intent(record.local_id)
            record = self.records.campaign(record.local_id)
            try:
                campaign_id = self.steps.create(self._spec(record))
            except (AnswerLost, ServiceError):
                if self._settle_create(record):
                    return self.records.campaign(record.local_id).campaign_id
                continue
            except ApiError as exc:
                if exc.aborts_run or isinstance(exc, ConcurrentSave):
                    raise
                self.records.abandon(
                    record.local_id, exc.code, f"Mobizon refused to create the campaign: {exc}"
                )
                self.summary.problems.append(f"a campaign could not be created: {exc}")
                return None
            self.records.created(record.local_id, campaign_id)
            self.summary.created += 1
            return campaign_id
        self.summary.problems.append(
            "a campaign could not be created (no answer); its rows wait for the next run"
        )
        return None

    def _stage(self, record: CampaignRecord, campaign_id: int) -> None:
        total = self.records.count_members(record.local_id, [QUEUED, ADDING, STAGED])
        while True:
            self._check_halt()
            # Chunks whose answer was lost first (added again as they were), then new ones.
            chunk = self.records.members(
                record.local_id, [ADDING], limit=MAX_RECIPIENTS_PER_CALL
            ) or self.records.members(record.local_id, [QUEUED], limit=MAX_RECIPIENTS_PER_CALL)
            if not chunk:
                break
            self.records.claim_chunk(record.local_id, [m.row_key for m in chunk])
            try:
                results = self.steps.add(campaign_id, record.kind, [m.member for m in chunk])
            except NotFound:
                self.records.deleted(
                    record.local_id, "staged again: the campaign was deleted in the Mobizon panel"
                )
                return
            staged, rejected, requeued = recipient_outcomes(
                chunk, results, self.options.max_attempts
            )
            self.records.record_staging(record.local_id, staged, rejected, requeued)
            self.summary.staged_now += len(staged)
            self.summary.rejected_now += len(rejected)
            if self.on_progress is not None:
                left = self.records.count_members(record.local_id, [QUEUED, ADDING])
                self.on_progress(CampaignProgress("staging", total - left, total))
        self.verifier.resolve_ids(record, campaign_id)

    # ------------------------------------------------------ price and send

    def _price_and_send(self, ready: list[Ready]) -> None:
        balance, currency = self.steps.balance()
        quote = Quote(
            campaigns=len(ready),
            messages=sum(r.messages for r in ready),
            segments=sum(r.segments for r in ready),
            cost=sum((r.cost for r in ready), Decimal(0)),
            balance=balance,
            currency=currency,
        )
        self.summary.quote = quote
        if self.on_quote is not None:
            self.on_quote(quote)
        stop = ""
        limit = self.options.max_cost
        if limit is not None and quote.cost > limit:
            stop = f"the cost, {quote.cost:,.2f} {currency}, is above --max-cost {limit:,.2f}"
        elif quote.cost > balance:
            stop = f"the balance, {balance:,.2f} {currency}, is below the cost, {quote.cost:,.2f}"
        elif self.confirm is not None and not self.confirm(quote):
            stop = "not confirmed at the prompt"
        if stop:
            for item in ready:
                assert item.record.campaign_id is not None
                if self._delete_quietly(item.record.campaign_id):
                    self.records.deleted(item.record.local_id, f"not sent: {stop}")
            self.summary.stopped = stop
            return
        for item in ready:
            self._check_halt()
            self._send(item.record)

    def _send(self, record: CampaignRecord) -> None:
        assert record.campaign_id is not None
        unsure: SendCheck | None = None  # the last reading could not tell sent from not
        for _ in range(self.options.max_attempts):
            self.records.send_intent(record.local_id)
            try:
                moderation = self.steps.send(record.campaign_id)
            except (AnswerLost, ServiceError, ConcurrentSave) as exc:
                if unsure is not None and isinstance(exc, ConcurrentSave):
                    # Send refused for a campaign that exists: its status no longer
                    # allows sending, so the earlier Send went through.
                    self._mark_sent(record, unsure.moderation, unsure.declined)
                    return
                check = self.steps.check_sent(record.campaign_id)
                if check.sent and not check.unsure:
                    self._mark_sent(record, check.moderation, check.declined)
                    return
                unsure = check if check.unsure else None
                if check.deleted:
                    self.records.deleted(record.local_id, "not sent: deleted in the Mobizon panel")
                    return
                continue  # not sent, or unsure: Send again (a sent one answers code 10)
            except TransportError:
                self.records.created(record.local_id, record.campaign_id)  # surely not sent
                raise
            self._mark_sent(record, moderation, "")
            return
        self.records.created(record.local_id, record.campaign_id)
        self.summary.problems.append(
            f"campaign {record.campaign_id} could not be sent; it stays staged for the next run"
        )

    def _mark_sent(self, record: CampaignRecord, moderation: bool, declined: str) -> None:
        assert record.campaign_id is not None
        self.records.sent(record.local_id, moderation=moderation, comment=declined)
        summary = self.summary
        summary.sent_campaigns.append(record.campaign_id)
        summary.sent_now += self.records.count_members(record.local_id, [STAGED])
        if moderation:
            summary.moderation.append(record.campaign_id)
        if declined:
            summary.declined.append((record.campaign_id, declined))

    def _delete_quietly(self, campaign_id: int) -> bool:
        """Delete a campaign of ours that was never sent; True if it is gone.

        When it cannot be deleted now, the journal keeps it as it was: the next
        run finds it again (and never sends it without verifying and pricing it).
        """
        try:
            self.steps.delete(campaign_id)
        except NotFound:
            return True
        except (ApiError, TransportError) as exc:
            if isinstance(exc, ApiError) and exc.aborts_run:
                raise
            self.summary.problems.append(
                f"campaign {campaign_id} (never sent) could not be deleted now ({exc}); "
                f"the next run takes it up again"
            )
            return False
        return True


__all__ = [
    "CampaignOptions",
    "CampaignPass",
    "CampaignProgress",
    "CampaignSummary",
    "Quote",
]
