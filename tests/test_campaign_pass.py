"""The campaign pass against the emulator over loopback: every row once, or none.

Faults strike Create, AddRecipients and Send (lost answers after the work was
done, 999s after the work, 503s and drops before it); whatever happens, each
recipient gets exactly one message, no campaign is sent twice, a campaign not
made by this journal is never touched, and a stop before sending leaves
nothing delivered.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from mobizon_batch.campaign_client import CampaignApi, CampaignSpec
from mobizon_batch.campaign_journal import CampaignJournal
from mobizon_batch.campaign_pass import CampaignOptions, CampaignPass, CampaignSummary, Quote
from mobizon_batch.campaign_plan import group_rows
from mobizon_batch.client import MobizonClient
from mobizon_batch.emulator import MobizonEmulator
from mobizon_batch.errors import ConfigError
from mobizon_batch.journal import Journal, Outcome
from mobizon_batch.prepare import PlanOptions, build_plan
from mobizon_batch.table import read_table
from tests.helpers import TEST_KEY

CAMPAIGN_METHODS = frozenset({"campaign/create", "campaign/addrecipients", "campaign/send"})


def numbers(count: int, start: int = 0) -> list[str]:
    return [f"7701{n:07d}" for n in range(start, start + count)]


def write_rows(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture
def emu() -> Iterator[MobizonEmulator]:
    with MobizonEmulator(api_key=TEST_KEY, status_step=0.05) as emulator:
        yield emulator


def run_pass(
    emu: MobizonEmulator,
    source: Path,
    journal_path: Path,
    plan_options: PlanOptions | None = None,
    confirm: Callable[[Quote], bool] | None = None,
    **options: object,
) -> CampaignSummary:
    plan = build_plan(read_table(source), plan_options or PlanOptions())
    settings = CampaignOptions(name="list 2026-11-29", settle_seconds=0, **options)  # type: ignore[arg-type]
    with (
        MobizonClient(TEST_KEY, emu.url, timeout=(2.0, 5.0)) as client,
        Journal(journal_path) as journal,
    ):
        journal.register(plan.entries())
        campaign_pass = CampaignPass(
            client, journal, plan, settings, confirm=confirm, sleep=lambda s: None
        )
        return campaign_pass.run()


def delivered(emu: MobizonEmulator) -> Counter[str]:
    """Numbers with a message that was (or will be) delivered: released by a Send."""
    return Counter(m.to for m in emu.messages() if not m.held)


def journal_rows(path: Path) -> dict[str, tuple[str, int | None]]:
    with Journal(path) as journal:
        return {r.recipient: (r.state, r.message_id) for r in journal.rows()}


# Seeds whose rolls include lost answers (checked below: a seed without one fails).
@pytest.mark.parametrize("seed", [0, 1, 3, 4, 6, 7, 8, 9])
def test_lost_answers_and_503s_on_every_campaign_call_still_send_each_row_once(
    emu: MobizonEmulator, tmp_path: Path, seed: int
) -> None:
    phones = numbers(1300)
    source = write_rows(tmp_path / "l.csv", ["phone", "text"], [[p, "Sale today"] for p in phones])
    emu.configure(
        seed=seed,
        fault_methods=CAMPAIGN_METHODS,
        fault_503=0.1,
        fault_drop_before=0.1,
        fault_drop_after=0.2,
        fault_999_after=0.1,
    )
    journal = tmp_path / "j.sqlite"
    summary = run_pass(emu, source, journal, max_attempts=10)
    for _ in range(5):  # a run that gave up (retries ran out) is simply run again
        if summary.counts["sent"] == len(phones):
            break
        summary = run_pass(emu, source, journal, max_attempts=10)
    assert summary.counts["sent"] == len(phones), summary
    assert delivered(emu) == Counter(phones)  # each exactly once
    sends = emu.calls("campaign/send")
    assert not [c for c in sends if c.code == 10]  # never a second Send of a sent campaign
    rows = journal_rows(journal)
    by_id = {m.id: m.to for m in emu.messages()}
    assert all(by_id[message_id] == phone for phone, (_, message_id) in rows.items() if message_id)
    faults = Counter(c.fault for c in emu.calls())
    assert faults["drop_after"] + faults["999_after"] > 0


def test_a_send_lost_before_it_arrived_is_not_taken_for_sent_when_the_list_lags(
    emu: MobizonEmulator, tmp_path: Path
) -> None:
    # Every Send is dropped before the service sees it, and Campaign/List does not
    # show new campaigns for an hour: the campaign reads READY_FOR_SEND and is not
    # listed as NEW, which is also how a sent, scheduled one looks.  Taking that for
    # "sent" would mark every row sent with nothing delivered.
    phones = numbers(30)
    source = write_rows(tmp_path / "l.csv", ["phone", "text"], [[p, "Sale today"] for p in phones])
    emu.configure(
        campaign_list_lag=3600,
        fault_methods=frozenset({"campaign/send"}),
        fault_drop_before=1.0,
    )
    journal = tmp_path / "j.sqlite"
    summary = run_pass(emu, source, journal, max_attempts=3)
    assert summary.counts.get("sent", 0) == 0, summary
    assert delivered(emu) == Counter()
    assert all(state != "sent" for state, _ in journal_rows(journal).values())
    emu.configure(fault_drop_before=0.0)
    summary = run_pass(emu, source, journal, max_attempts=3)
    assert summary.counts["sent"] == len(phones), summary
    assert delivered(emu) == Counter(phones)  # each exactly once


def test_a_lost_send_of_a_scheduled_campaign_is_settled_by_a_second_send(
    emu: MobizonEmulator, tmp_path: Path
) -> None:
    # A scheduled campaign that was sent also reads READY_FOR_SEND and is not NEW;
    # with the listing lagging, only a second Send tells: code 10, it went through.
    phones = numbers(20)
    source = write_rows(tmp_path / "l.csv", ["phone", "text"], [[p, "Sale today"] for p in phones])
    # Seed 1's first two rolls: the first Send's answer is lost, the second's is not.
    emu.configure(
        seed=1,
        campaign_list_lag=3600,
        fault_methods=frozenset({"campaign/send"}),
        fault_drop_after=0.5,
    )
    later = datetime.now().replace(microsecond=0) + timedelta(hours=3)
    journal = tmp_path / "j.sqlite"
    summary = run_pass(emu, source, journal, max_attempts=3, deferred_to=later)
    sends = emu.calls("campaign/send")
    assert [c.fault for c in sends] == ["drop_after", ""] and sends[1].code == 10
    assert summary.counts["sent"] == len(phones), summary
    assert Counter(m.to for m in emu.messages()) == Counter(phones)  # one message each


def test_a_lost_create_is_found_again_and_no_twin_is_left(
    emu: MobizonEmulator, tmp_path: Path
) -> None:
    source = write_rows(tmp_path / "l.csv", ["phone", "text"], [[p, "Hi"] for p in numbers(10)])
    emu.configure(fault_methods=frozenset({"campaign/create"}), fault_drop_after=1.0)
    summary = run_pass(emu, source, tmp_path / "j.sqlite", max_attempts=2)
    assert summary.counts["sent"] == 10
    assert len(emu.calls("campaign/create")) == 1 and len(emu.state.campaigns) == 1


def test_already_staged_numbers_get_their_ids_from_the_message_list(
    emu: MobizonEmulator, tmp_path: Path
) -> None:
    phones = numbers(700)
    source = write_rows(tmp_path / "l.csv", ["phone", "text"], [[p, "Hi"] for p in phones])
    emu.configure(fault_methods=frozenset({"campaign/addrecipients"}), fault_drop_after=0.5, seed=1)
    journal = tmp_path / "j.sqlite"
    summary = run_pass(emu, source, journal, max_attempts=10)
    assert summary.counts["sent"] == 700
    codes = [c.code for c in emu.calls("campaign/addrecipients")]
    assert None in codes and emu.calls("message/list")  # lost, re-added (code 4), looked up
    rows = journal_rows(journal)
    assert {phone: message_id for phone, (_, message_id) in rows.items()} == {
        m.to: m.id for m in emu.messages()
    }


def test_a_foreign_campaign_with_the_same_text_is_never_touched(
    emu: MobizonEmulator, tmp_path: Path
) -> None:
    foreign_api = CampaignApi(MobizonClient(TEST_KEY, emu.url))
    foreign = foreign_api.create(CampaignSpec(name="someone else's", text="Hi"))
    foreign_api.add_recipients(foreign, numbers(3, 500))
    emu.reset_calls()
    source = write_rows(tmp_path / "l.csv", ["phone", "text"], [[p, "Hi"] for p in numbers(5)])
    emu.configure(fault_methods=CAMPAIGN_METHODS, fault_drop_after=0.5, seed=1)
    summary = run_pass(emu, source, tmp_path / "j.sqlite", max_attempts=10)
    assert summary.counts["sent"] == 5
    campaign = emu.state.campaigns[foreign]
    assert campaign.sent_at is None and not campaign.deleted and len(campaign.message_ids) == 3
    assert not [c for c in emu.calls() if c.params.get("id") == str(foreign)]


def test_max_cost_below_the_price_stops_before_anything_is_delivered(
    emu: MobizonEmulator, tmp_path: Path
) -> None:
    source = write_rows(tmp_path / "l.csv", ["phone", "text"], [[p, "Hi"] for p in numbers(20)])
    journal = tmp_path / "j.sqlite"
    summary = run_pass(emu, source, journal, max_cost=Decimal("100"))
    assert summary.quote is not None and summary.quote.cost == 20 * emu.config.price_per_segment
    assert "--max-cost" in summary.stopped
    assert emu.messages() == [] and not emu.calls("campaign/send")  # staged, then deleted
    assert all(c.deleted for c in emu.state.campaigns.values())
    assert {state for state, _ in journal_rows(journal).values()} == {"pending"}
    again = run_pass(emu, source, journal)  # the same list, without the limit
    assert again.counts["sent"] == 20 and delivered(emu) == Counter(numbers(20))


def test_a_balance_below_the_cost_or_a_no_at_the_prompt_sends_nothing(
    emu: MobizonEmulator, tmp_path: Path
) -> None:
    source = write_rows(tmp_path / "l.csv", ["phone", "text"], [[p, "Hi"] for p in numbers(5)])
    emu.balance = Decimal("10")
    poor = run_pass(emu, source, tmp_path / "a.sqlite")
    assert "balance" in poor.stopped
    emu.balance = Decimal("1000")
    asked: list[Quote] = []

    def no(quote: Quote) -> bool:
        asked.append(quote)
        return False

    declined = run_pass(emu, source, tmp_path / "b.sqlite", confirm=no)
    assert declined.stopped == "not confirmed at the prompt" and len(asked) == 1
    assert asked[0].messages == 5 and asked[0].balance == Decimal("1000")
    assert not emu.calls("campaign/send") and delivered(emu) == Counter()


def test_recipient_codes_become_row_outcomes_with_sentences(
    emu: MobizonEmulator, tmp_path: Path
) -> None:
    phones = numbers(6)
    emu.configure(stop_list=frozenset({phones[1]}), unserved_prefixes=frozenset({"77010000002"}))
    source = write_rows(tmp_path / "l.csv", ["phone", "text"], [[p, "Hi"] for p in phones])
    journal = tmp_path / "j.sqlite"
    summary = run_pass(emu, source, journal)
    assert summary.counts == Counter({"sent": 4, "failed": 2})
    with Journal(journal) as opened:
        failed = {r.recipient: (r.error_code, r.error) for r in opened.rows(["failed"])}
    assert failed[phones[1]][0] == 5 and "stop list" in failed[phones[1]][1]
    assert failed[phones[2]][0] == 8 and "operator" in failed[phones[2]][1]


def test_lagging_counters_are_waited_for_or_checked_by_listing(
    emu: MobizonEmulator, tmp_path: Path
) -> None:
    emu.configure(counters_lag=3600)  # the counters never catch up within the run
    source = write_rows(tmp_path / "l.csv", ["phone", "text"], [[p, "Hi"] for p in numbers(30)])
    summary = run_pass(emu, source, tmp_path / "j.sqlite", verify_rounds=2)
    assert summary.counts["sent"] == 30
    assert summary.quote is not None and summary.quote.cost == 30 * emu.config.price_per_segment


def test_template_lists_become_one_template_campaign_with_renamed_placeholders(
    emu: MobizonEmulator, tmp_path: Path
) -> None:
    phones = numbers(4)
    rows = [[p, f"Имя{i}", f"{i}0"] for i, p in enumerate(phones)]
    rows.append([phones[0], "Second", "99"])  # the same person, another text: a 2nd campaign
    source = write_rows(tmp_path / "l.csv", ["phone", "Имя клиента", "sum"], rows)
    options = PlanOptions(template="Dear {Имя клиента}, you owe {sum} KZT")
    summary = run_pass(emu, source, tmp_path / "j.sqlite", options)
    assert summary.counts["sent"] == 5
    campaigns = list(emu.state.campaigns.values())
    assert [c.type for c in campaigns] == [3, 3]
    assert campaigns[0].text == "Dear {field1}, you owe {sum} KZT"
    assert sorted(m.text for m in emu.messages()) == sorted(
        [f"Dear Имя{i}, you owe {i}0 KZT" for i in range(4)] + ["Dear Second, you owe 99 KZT"]
    )
    flags = {c.params["params"]["placeholdersFlag"] for c in emu.calls("campaign/addrecipients")}
    assert flags == {"3"}


def test_a_list_of_all_different_texts_is_refused_naming_message_mode(
    emu: MobizonEmulator, tmp_path: Path
) -> None:
    rows = [[p, f"Code {i}"] for i, p in enumerate(numbers(30))]
    source = write_rows(tmp_path / "l.csv", ["phone", "text"], rows)
    with pytest.raises(ConfigError, match="--mode message"):
        run_pass(emu, source, tmp_path / "j.sqlite")
    assert emu.calls() == []


def test_moderation_is_reported_and_rows_stay_sent(emu: MobizonEmulator, tmp_path: Path) -> None:
    emu.configure(campaign_moderation="approve")
    source = write_rows(tmp_path / "l.csv", ["phone", "text"], [[p, "Hi"] for p in numbers(3)])
    journal = tmp_path / "j.sqlite"
    summary = run_pass(emu, source, journal)
    assert summary.counts["sent"] == 3 and len(summary.moderation) == 1
    with Journal(journal) as opened:
        records = CampaignJournal(opened).campaigns()
    assert [(r.state, r.moderation) for r in records] == [("sent", True)]


def test_a_template_mobizon_fills_in_differently_is_never_sent(
    emu: MobizonEmulator, tmp_path: Path
) -> None:
    emu.configure(placeholder_max=5)  # the provider cuts long values (the docs say nothing)
    rows = [[p, "Alexandra"] for p in numbers(4)]
    source = write_rows(tmp_path / "l.csv", ["phone", "name"], rows)
    journal = tmp_path / "j.sqlite"
    summary = run_pass(emu, source, journal, PlanOptions(template="Dear {name}, hello"))
    assert any("--mode message" in p and "Alexandr" in p for p in summary.problems)
    assert not emu.calls("campaign/send") and delivered(emu) == Counter()
    assert all(c.deleted for c in emu.state.campaigns.values())
    assert {state for state, _ in journal_rows(journal).values()} == {"pending"}


def test_a_staged_campaign_whose_rows_left_the_list_is_deleted_not_sent(
    emu: MobizonEmulator, tmp_path: Path
) -> None:
    phones = numbers(10)
    source = write_rows(tmp_path / "l.csv", ["phone", "text"], [[p, "Hi"] for p in phones])
    journal = tmp_path / "j.sqlite"
    emu.configure(fault_methods=frozenset({"campaign/delete"}), fault_503=1.0)
    stopped = run_pass(emu, source, journal, max_cost=Decimal("1"), max_attempts=1)
    assert stopped.stopped and any("could not be deleted" in p for p in stopped.problems)
    staged = [c for c in emu.state.campaigns.values() if not c.deleted]
    assert len(staged) == 1 and len(staged[0].message_ids) == 10  # left staged, unsent
    emu.configure(fault_503=0.0)
    shorter = write_rows(tmp_path / "l.csv", ["phone", "text"], [[p, "Hi"] for p in phones[:6]])
    summary = run_pass(emu, shorter, journal)
    assert summary.counts["sent"] == 6
    assert delivered(emu) == Counter(phones[:6])  # the rows that left the list reach nobody
    assert staged[0].deleted and len(emu.calls("campaign/send")) == 1


def test_a_template_with_literal_braces_is_refused_naming_message_mode(
    emu: MobizonEmulator, tmp_path: Path
) -> None:
    rows = [[p, f"N{i}"] for i, p in enumerate(numbers(30))]
    source = write_rows(tmp_path / "l.csv", ["phone", "name"], rows)
    with pytest.raises(ConfigError, match=r"literal brace.*--mode message"):
        run_pass(emu, source, tmp_path / "j.sqlite", PlanOptions(template="{{code}} for {name}"))
    assert emu.calls() == []


def test_a_few_texts_from_a_template_with_braces_go_to_bulk_campaigns(
    emu: MobizonEmulator, tmp_path: Path
) -> None:
    rows = [[p, "A" if i % 2 else "B"] for i, p in enumerate(numbers(6))]
    source = write_rows(tmp_path / "l.csv", ["phone", "name"], rows)
    summary = run_pass(emu, source, tmp_path / "j.sqlite", PlanOptions(template="{{x}} {name}"))
    assert summary.counts["sent"] == 6
    assert sorted((c.type, c.text) for c in emu.state.campaigns.values()) == [
        (2, "{x} A"),
        (2, "{x} B"),
    ]


def test_a_queued_row_decided_elsewhere_meanwhile_leaves_its_campaign(
    emu: MobizonEmulator, tmp_path: Path
) -> None:
    phones = numbers(4)
    source = write_rows(tmp_path / "l.csv", ["phone", "text"], [[p, "Hi"] for p in phones])
    journal_path = tmp_path / "j.sqlite"
    plan = build_plan(read_table(source), PlanOptions())
    with Journal(journal_path) as journal:  # a run that stopped right after planning its campaign
        journal.register(plan.entries())
        records = CampaignJournal(journal)
        (draft,) = group_rows(plan, [r.row_key for r in journal.rows()])
        records.add(draft, "list")
        decided = journal.rows()[1]  # ... and a row another pass has decided since
        journal.record([Outcome(decided.row_key, "failed", error="decided elsewhere")])
    summary = run_pass(emu, source, journal_path)
    assert summary.counts == Counter({"sent": 3, "failed": 1})
    assert delivered(emu) == Counter(p for p in phones if p != decided.recipient)


def test_a_few_already_staged_numbers_are_looked_up_one_by_one(
    emu: MobizonEmulator, tmp_path: Path
) -> None:
    phones = numbers(1003)  # chunks of 500, 500 and 3; the answer to the 3 is lost
    source = write_rows(tmp_path / "l.csv", ["phone", "text"], [[p, "Hi"] for p in phones])
    emu.configure(
        fault_methods=frozenset({"campaign/addrecipients"}), fault_drop_after=0.5, seed=24
    )
    journal = tmp_path / "j.sqlite"
    summary = run_pass(emu, source, journal)
    assert summary.counts["sent"] == 1003
    assert [c.fault for c in emu.calls("campaign/addrecipients")] == ["", "", "drop_after", ""]
    lookups = emu.calls("message/list")
    assert len(lookups) == 3 and all("to" in c.params["criteria"] for c in lookups)
    rows = journal_rows(journal)
    assert {phone: message_id for phone, (_, message_id) in rows.items()} == {
        m.to: m.id for m in emu.messages()
    }
