"""From a table to a plan: columns, templates, verdicts, row keys, summaries."""

from __future__ import annotations

from pathlib import Path

import pytest

from mobizon_batch.columns import detect_column
from mobizon_batch.errors import ConfigError, InputError
from mobizon_batch.prepare import PlanOptions, build_plan, row_key
from mobizon_batch.vocabulary import SendState
from tests.helpers import KZ1, KZ2, KZ3, make_table

SENDABLE, INVALID = SendState.SENDABLE, SendState.INVALID
DUPLICATE, OPTED_OUT = SendState.DUPLICATE, SendState.OPTED_OUT


# -------------------------------------------------------------- columns


@pytest.mark.parametrize(
    ("columns", "phone", "text"),
    [
        (["Phone", "Message"], "Phone", "Message"),
        (["ФИО", "Телефон", "Текст"], "Телефон", "Текст"),
        (["Аты-жөні", "Телефон нөмірі", "Мәтін"], "Телефон нөмірі", "Мәтін"),
        (["№", "Номер", "Телефон", "Сообщение"], "Телефон", "Сообщение"),  # strong beats weak
        (["Номер", "SMS"], "Номер", "SMS"),
        (
            ["Телефон клиента", "Текст СМС для отправки"],
            "Телефон клиента",
            "Текст СМС для отправки",
        ),
        (["recipient", "body"], "recipient", "body"),
        (["MOBILE ", "text"], "MOBILE ", "text"),
        (["sms phone", "sms text"], "sms phone", "sms text"),
        (["Отправитель", "Получатель", "Хабарлама"], "Получатель", "Хабарлама"),
    ],
)
def test_columns_are_detected_in_three_languages(columns: list[str], phone: str, text: str) -> None:
    assert detect_column(columns, "phone") == phone
    assert detect_column(columns, "text", exclude=[phone]) == text


def test_detection_refuses_to_guess_between_equals() -> None:
    with pytest.raises(InputError, match="several columns could hold the phones"):
        detect_column(["Телефон", "Mobile"], "phone")
    assert detect_column(["ФИО", "Город"], "phone") is None


def test_flags_pick_columns_loosely_and_fail_clearly() -> None:
    table = make_table({"Tel. number": [KZ1], "Body text": ["hi"]})
    plan = build_plan(table, PlanOptions(phone_column="tel number", text_column="BODY TEXT"))
    assert (plan.phone_column, plan.text_column) == ("Tel. number", "Body text")
    with pytest.raises(ConfigError, match=r"--phone-column 'cell' is not a column.*'Tel. number'"):
        build_plan(table, PlanOptions(phone_column="cell"))


def test_no_text_column_lists_columns_and_flags() -> None:
    table = make_table({"phone": [KZ1], "name": ["A"]})
    with pytest.raises(InputError) as caught:
        build_plan(table, PlanOptions())
    message = str(caught.value)
    assert "no text column found" in message
    assert "'phone', 'name'" in message
    assert "--text-column" in message and "--template" in message


# ------------------------------------------------------------ templates


def test_template_fills_placeholders_and_empty_values_are_invalid() -> None:
    table = make_table({"phone": [KZ1, KZ2], "Имя": [" Айгерим ", "  "]})
    plan = build_plan(table, PlanOptions(template="Здравствуйте, {имя}! Код {{42}}"))
    rows = plan.rows
    assert rows.loc[0, "text"] == "Здравствуйте, Айгерим! Код {42}"
    assert rows.loc[0, "verdict"] == SENDABLE
    assert rows.loc[1, "verdict"] == INVALID
    assert rows.loc[1, "reason"] == "the template placeholder {имя} is empty in this row"
    assert plan.template is not None and plan.text_column is None


def test_unknown_placeholder_and_template_plus_text_column_are_usage_errors() -> None:
    table = make_table({"phone": [KZ1], "text": ["x"]})
    with pytest.raises(ConfigError, match="placeholder 'surname' is not a column"):
        build_plan(table, PlanOptions(template="Hi {surname}"))
    with pytest.raises(ConfigError, match="either --text-column or --template"):
        build_plan(table, PlanOptions(template="Hi", text_column="text"))


# ------------------------------------------------------------- verdicts


def test_each_verdict_with_its_reason(tmp_path: Path) -> None:
    optout = tmp_path / "stop.txt"
    optout.write_text("+7 705 111 22 33\n", encoding="utf-8")
    table = make_table(
        {
            "phone": [
                "8 701 234 56 78",  # sendable
                "+7 (701) 234-56-78",  # same number, same text: duplicate
                KZ1,  # same number, other text: sendable
                "12345",  # bad number
                KZ2,  # empty text
                "8 705 111 22 33",  # opted out
                "abc",  # bad number and empty text: both reasons
            ],
            "text": ["Привет", "Привет", "Пока", "Привет", "  ", "Привет", ""],
        }
    )
    plan = build_plan(table, PlanOptions(optout_path=optout))
    rows = plan.rows
    assert rows["verdict"].tolist() == [
        SENDABLE,
        DUPLICATE,
        SENDABLE,
        INVALID,
        INVALID,
        OPTED_OUT,
        INVALID,
    ]
    assert rows["recipient"].tolist() == [KZ1, KZ1, KZ1, "", KZ2, KZ3, ""]
    assert rows.loc[1, "reason"] == "the same number and text as line 2"
    assert rows.loc[3, "reason"] == "the phone number is too short"
    assert rows.loc[4, "reason"] == "the text is empty"
    assert rows.loc[5, "reason"] == "the number is in the opt-out list"
    assert rows.loc[6, "reason"] == (
        "the phone number has characters that are not part of a number; the text is empty"
    )
    assert rows.loc[0, "reason"] == ""
    summary = plan.summary
    assert (summary.rows, summary.sendable, summary.invalid) == (7, 2, 3)
    assert (summary.duplicate, summary.opted_out) == (1, 1)
    assert summary.invalid_by_reason == {
        "the text is empty": 2,
        "the phone number is too short": 1,
        "the phone number has characters that are not part of a number": 1,
    }
    assert (summary.segments, summary.ucs2_rows, summary.gsm7_rows) == (2, 2, 0)


def test_optout_set_and_precedence_over_duplicates() -> None:
    table = make_table({"phone": [KZ1, KZ1, KZ2], "text": ["a", "a", "a"]})
    plan = build_plan(table, PlanOptions(optout=frozenset({KZ1})))
    assert plan.rows["verdict"].tolist() == [OPTED_OUT, OPTED_OUT, SENDABLE]


def test_allow_duplicates_sends_each_under_its_own_key() -> None:
    table = make_table({"phone": [KZ1, "87012345678"], "text": ["a", "a"]})
    plan = build_plan(table, PlanOptions(allow_duplicates=True))
    rows = plan.rows
    assert rows["verdict"].tolist() == [SENDABLE, SENDABLE]
    assert rows["occurrence"].tolist() == [1, 2]
    assert rows.loc[0, "row_key"] != rows.loc[1, "row_key"]


def test_a_repeat_of_an_invalid_row_is_judged_on_its_own() -> None:
    plan = build_plan(
        make_table({"phone": [KZ1, KZ1], "text": ["x", "x"]}, problems={0: "broken line"}),
        PlanOptions(),
    )
    assert plan.rows["verdict"].tolist() == [INVALID, SENDABLE]
    assert plan.rows.loc[0, "reason"] == "broken line"


def test_max_segments() -> None:
    table = make_table({"phone": [KZ1, KZ2], "text": ["я" * 70, "я" * 71]})
    plan = build_plan(table, PlanOptions(max_segments=1))
    assert plan.rows["segments"].tolist() == [1, 2]
    assert plan.rows["verdict"].tolist() == [SENDABLE, INVALID]
    assert "more than 1 segments" in plan.rows.loc[1, "reason"]
    with pytest.raises(ConfigError, match="at least 1"):
        build_plan(table, PlanOptions(max_segments=0))


def test_texts_lose_outer_spaces_and_windows_line_ends() -> None:
    table = make_table({"phone": [KZ1], "text": ["  line one\r\nline two \n"]})
    rows = build_plan(table, PlanOptions()).rows
    assert rows.loc[0, "text"] == "line one\nline two"
    assert rows.loc[0, "encoding"] == "GSM-7"


def test_region_decides_national_numbers() -> None:
    table = make_table({"phone": ["8 916 123 45 67", "050 123 45 67"], "text": ["a", "b"]})
    assert build_plan(table, PlanOptions(region="ru")).rows["recipient"].tolist()[0] == (
        "79161234567"
    )
    assert build_plan(table, PlanOptions(region="UA")).rows["recipient"].tolist()[1] == (
        "380501234567"
    )
    with pytest.raises(ConfigError, match="unknown region"):
        build_plan(table, PlanOptions(region="Kazakhstan"))


# -------------------------------------------------------------- row keys


def test_row_keys_are_stable_when_rows_move_or_are_added() -> None:
    first = build_plan(
        make_table({"phone": [KZ1, KZ2, KZ1], "text": ["a", "b", "a"]}),
        PlanOptions(allow_duplicates=True),
    ).rows
    second = build_plan(
        make_table(
            {"phone": [KZ3, "87021112233", KZ1, "+7 701 234 56 78"], "text": ["new", "b", "a", "a"]}
        ),
        PlanOptions(allow_duplicates=True),
    ).rows
    assert set(first["row_key"]) <= set(second["row_key"])
    assert first.loc[0, "row_key"] == row_key(KZ1, "a", 1)
    assert first.loc[2, "row_key"] == row_key(KZ1, "a", 2)
    assert len(first.loc[0, "row_key"]) == 32


def test_unreadable_numbers_are_keyed_by_their_cell() -> None:
    rows = build_plan(make_table({"phone": ["abc"], "text": ["a"]}), PlanOptions()).rows
    assert rows.loc[0, "row_key"] == row_key("abc", "a", 1)


def test_row_key_parts_cannot_run_together() -> None:
    assert row_key("1", "23", 1) != row_key("12", "3", 1)


# ------------------------------------------------------ plan and outputs


def test_plan_rows_are_aligned_with_the_input_and_progress_adds_up() -> None:
    table = make_table({"phone": [KZ1] * 5, "text": list("abcde")}, first_line=10)
    ticks: list[int] = []
    plan = build_plan(table, PlanOptions(), progress=ticks.append)
    assert sum(ticks) == 5
    assert list(plan.rows.index) == list(table.frame.index)
    assert plan.rows["source_line"].tolist() == [10, 11, 12, 13, 14]
    assert list(plan.rows.columns) == [
        "recipient",
        "text",
        "verdict",
        "reason",
        "segments",
        "encoding",
        "row_key",
        "source_line",
        "occurrence",
    ]
    assert len(plan.sendable()) == 5


def test_no_reason_contains_the_separator_used_to_join_reasons() -> None:
    """Reasons are joined with "; " and split again to count them in the summary."""
    from mobizon_batch import phones, prepare

    sentences = [getattr(phones, n) for n in dir(phones) if n.startswith("REASON_")]
    sentences += [phones.reason_not_valid("KZ"), phones.reason_not_valid(None)]
    sentences += [prepare.REASON_NO_TEXT, prepare.REASON_OPTED_OUT]
    assert all(prepare.REASON_SEPARATOR not in s for s in sentences)


def test_row_keys_match_one_row_at_a_time_and_can_be_left_out() -> None:
    """The column-wise keys are row_key's; a plan without keys has the same verdicts."""
    table = make_table(
        {
            "phone": [KZ1, "87012345678", "bad", KZ2, KZ1],
            "text": ["Привет", "Привет", "x\ud800y", "", "Привет"],
        }
    )
    keyed = build_plan(table, PlanOptions())
    expected = [
        row_key(recipient or raw, text, occurrence)
        for recipient, raw, text, occurrence in zip(
            keyed.rows["recipient"],
            table.frame["phone"],
            keyed.rows["text"],
            keyed.rows["occurrence"],
            strict=True,
        )
    ]
    assert keyed.rows["row_key"].tolist() == expected
    bare = build_plan(table, PlanOptions(), row_keys=False)
    columns = ["recipient", "verdict", "reason", "segments", "encoding"]
    assert bare.rows[columns].equals(keyed.rows[columns])
    assert set(bare.rows["row_key"]) == {""}
    with pytest.raises(ValueError, match="without row keys"):
        list(bare.entries())
