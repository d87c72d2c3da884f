"""AddRecipients' per-recipient codes as row outcomes: the table, checked case by case."""

from __future__ import annotations

from mobizon_batch.campaign_client import RecipientResult
from mobizon_batch.campaign_journal import MemberRecord
from mobizon_batch.campaign_plan import Member
from mobizon_batch.campaign_results import recipient_outcomes


def member(number: str, tries: int = 1) -> MemberRecord:
    return MemberRecord(
        f"k{number}", 1, "adding", 1, None, tries, Member(f"k{number}", number, "t")
    )


def result(number: str, code: int | None, message_id: int | None = None) -> RecipientResult:
    return RecipientResult(number, number, code, message_id)


def test_each_code_becomes_staged_rejected_or_added_again() -> None:
    chunk = [member(f"7701000000{n}") for n in range(8)]
    answer = [
        result("77010000000", 0, 41),
        result("77010000001", 4),  # already in: staged, id looked up later
        result("77010000002", 5),  # stop list
        result("77010000003", 20),  # template data missing
        result("77010000004", 99),  # system error: again
        result("77010000005", 51),  # short links unavailable: again
        result("77010000006", 77),  # a code the docs do not list
        # 77010000007: no item at all: again
    ]
    staged, rejected, requeued = recipient_outcomes(chunk, answer, max_attempts=3)
    assert [(s.row_key, s.message_id) for s in staged] == [
        ("k77010000000", 41),
        ("k77010000001", None),
    ]
    assert {r.row_key: r.code for r in rejected} == {
        "k77010000002": 5,
        "k77010000003": 20,
        "k77010000006": 77,
    }
    assert "stop list" in rejected[0].error and "(code 77)" in rejected[2].error
    assert requeued == ["k77010000004", "k77010000005", "k77010000007"]


def test_a_number_out_of_attempts_fails_with_its_last_code() -> None:
    staged, rejected, requeued = recipient_outcomes(
        [member("77010000001", tries=3)], [result("77010000001", 99)], max_attempts=3
    )
    assert staged == [] and requeued == []
    assert rejected[0].code == 99 and "3 attempts" in rejected[0].error
