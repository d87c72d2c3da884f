"""Message/List export across pages, against the emulator."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from mobizon_batch import errors
from mobizon_batch.cli import main
from mobizon_batch.client import MobizonClient
from mobizon_batch.emulator import MobizonEmulator
from mobizon_batch.errors import ConfigError
from mobizon_batch.listing import (
    ListFilter,
    export_frame,
    export_messages,
    parse_moment,
    parse_sort,
)
from mobizon_batch.runs.report import ExportOptions, export_list
from tests.helpers import INSTANT, TEST_KEY, FakeClock

LIST_CALL = "message/list"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def emu(clock: FakeClock) -> Iterator[MobizonEmulator]:
    with MobizonEmulator(api_key=TEST_KEY, status_step=60.0, clock=clock) as emulator:
        yield emulator


@pytest.fixture
def api(emu: MobizonEmulator) -> Iterator[MobizonClient]:
    with MobizonClient(TEST_KEY, emu.url, timeout=(2.0, 5.0)) as client:
        yield client


def send_many(api: MobizonClient, count: int, prefix: str = "7701") -> list[int]:
    return [api.send_sms(f"{prefix}{i:07d}", f"Promo {i}").message_id for i in range(count)]


def test_an_export_spans_every_page(emu: MobizonEmulator, api: MobizonClient) -> None:
    ids = send_many(api, 257)
    emu.reset_calls()
    seen: list[tuple[int, int]] = []

    export = export_messages(api, policy=INSTANT, progress=lambda n, t: seen.append((n, t)))

    calls = emu.calls(LIST_CALL)
    assert [c.params["pagination"] for c in calls] == [
        {"currentPage": str(page), "pageSize": "100"} for page in range(3)
    ]
    assert all(c.params["withNumberInfo"] == "1" for c in calls)
    assert (export.pages, export.calls, export.total_first, export.total_last) == (3, 3, 257, 257)
    assert not export.changed and export.duplicates == 0
    assert sorted(item["id"] for item in export.items) == ids
    assert seen == [(100, 257), (200, 257), (257, 257)]


def test_filters_become_criteria_and_the_api_filters(
    emu: MobizonEmulator, api: MobizonClient, clock: FakeClock
) -> None:
    send_many(api, 30, prefix="7701")
    clock.now += 3600
    send_many(api, 20, prefix="7705")
    emu.reset_calls()
    since = datetime.fromtimestamp(clock.now - 60)
    export = export_messages(
        api, ListFilter(since=since, to="7705", statuses=("NEW",)), sort={"to": "DESC"}
    )
    params = emu.calls(LIST_CALL)[0].params
    assert params["criteria"] == {
        "campaignCreateTsFrom": since.strftime("%Y-%m-%d %H:%M:%S"),
        "status": "NEW",
        "to": "7705",
    }
    assert params["sort"] == {"to": "DESC"}
    numbers = [item["to"] for item in export.items]
    assert len(numbers) == 20 and numbers == sorted(numbers, reverse=True)


def test_several_statuses_take_one_call_each_campaigns_go_as_a_list() -> None:
    # criteria[status] is one value in the docs; campaignIds is documented as an array.
    filters = ListFilter(statuses=("DELIVRD", "UNDELIV", "DELIVRD", "NEW"), campaign_ids=(1, 2))
    assert filters.calls() == [  # each once, in the order a message lives
        {"status": "NEW", "campaignIds": [1, 2]},
        {"status": "DELIVRD", "campaignIds": [1, 2]},
        {"status": "UNDELIV", "campaignIds": [1, 2]},
    ]
    with pytest.raises(ValueError, match="one call each"):
        filters.criteria()


def test_two_statuses_make_two_list_calls_merged_into_one_export(
    emu: MobizonEmulator, api: MobizonClient, clock: FakeClock
) -> None:
    early = send_many(api, 150)  # final after an hour
    clock.now += 3600
    late = send_many(api, 7, prefix="7705")  # still NEW
    final = {m.id: emu.status_of(m)["status"] for m in emu.messages()}
    delivered = [i for i in early if final[i] == "DELIVRD"]
    emu.reset_calls()

    export = export_messages(
        api, ListFilter(statuses=("NEW", "DELIVRD")), sort={"campaignId": "ASC"}, policy=INSTANT
    )

    calls = emu.calls(LIST_CALL)
    assert 100 < len(delivered) < 150  # so DELIVRD takes two pages
    assert [c.params["criteria"] for c in calls] == [
        {"status": "NEW"},
        {"status": "DELIVRD"},
        {"status": "DELIVRD"},
    ]
    assert all(c.code == 0 for c in calls)
    assert [item["id"] for item in export.items] == sorted(delivered + late)
    assert (export.total_first, export.total_last) == (len(delivered) + 7, len(delivered) + 7)
    assert not export.changed and export.pages == 3


def test_an_item_listed_under_two_statuses_is_written_once(
    emu: MobizonEmulator, api: MobizonClient, clock: FakeClock
) -> None:
    (first,) = send_many(api, 1)
    final = emu.messages()[0].final_status

    def moves_on(rows: int, total: int) -> None:
        clock.now += 3600  # between the two calls, NEW becomes final

    export = export_messages(api, ListFilter(statuses=("NEW", final)), progress=moves_on)
    assert [item["id"] for item in export.items] == [first]
    assert export.duplicates == 1 and export.changed


def test_the_emulator_refuses_a_status_array(emu: MobizonEmulator, api: MobizonClient) -> None:
    send_many(api, 1)
    with pytest.raises(errors.ValidationError) as caught:
        api.list_messages({"status": ["NEW", "DELIVRD"]})
    assert caught.value.code == 1 and "criteria[status]" in str(caught.value.details)


def test_too_many_campaign_ids_or_a_backwards_range_is_refused() -> None:
    with pytest.raises(ConfigError, match="at most 100 campaign ids"):
        ListFilter(campaign_ids=tuple(range(101))).criteria()
    with pytest.raises(ConfigError, match="after"):
        ListFilter(since=datetime(2026, 2, 1), until=datetime(2026, 1, 1)).criteria()


def test_a_set_that_grows_while_paging_is_reported(
    emu: MobizonEmulator, api: MobizonClient
) -> None:
    send_many(api, 250)

    def send_more(rows: int, total: int) -> None:
        # New messages arrive between pages: the default order is newest
        # first, so items shift and one of them comes back on the next page.
        if rows == 100:
            send_many(api, 5, prefix="7707")

    export = export_messages(api, progress=send_more)
    assert export.changed
    assert (export.total_first, export.total_last) == (250, 255)
    assert export.duplicates == 5
    assert len({item["id"] for item in export.items}) == len(export.items) == 250


def test_pages_turned_away_with_503_are_asked_again(
    emu: MobizonEmulator, api: MobizonClient
) -> None:
    send_many(api, 120)
    emu.configure(fault_503=0.5, fault_methods=frozenset({LIST_CALL}))
    export = export_messages(api, policy=INSTANT)
    assert len(export.items) == 120 and export.calls > export.pages == 2


def test_export_frame_columns_and_text(emu: MobizonEmulator, api: MobizonClient) -> None:
    send_many(api, 2)
    export = export_messages(api, sort={"campaignId": "ASC"})
    frame = export_frame(export.items)
    assert list(frame.columns) == [
        "message_id",
        "campaign_id",
        "from",
        "recipient",
        "text",
        "status",
        "seg_num",
        "segUserBuy",
        "countryA2",
        "operatorName",
        "start_send_ts",
        "status_update_ts",
        "groups",
        "uuid",
    ]
    first = frame.iloc[0]
    assert first["message_id"] == "41000001" and first["recipient"] == "77010000000"
    assert first["segUserBuy"] == "9.5000" and first["countryA2"] == "KZ"
    assert first["operatorName"] == "Kcell" and first["start_send_ts"] == ""


def test_unknown_fields_are_kept_as_extra_columns() -> None:
    frame = export_frame([{"id": 1, "to": "7701", "newField": {"a": 1}, "tags": ["x", "y"]}])
    assert list(frame.columns)[-2:] == ["newField", "tags"]
    assert frame.loc[0, "newField"] == '{"a": 1}' and frame.loc[0, "tags"] == "x, y"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("status", {"status": "ASC"}),
        ("startSendTs:desc", {"startSendTs": "DESC"}),
        ("start_send_ts:DESC", {"startSendTs": "DESC"}),
        ("SEGNUM:asc", {"segNum": "ASC"}),
        ("campaign_id", {"campaignId": "ASC"}),
    ],
)
def test_parse_sort(text: str, expected: dict[str, str]) -> None:
    assert parse_sort(text) == expected


@pytest.mark.parametrize("bad", ["price", "status:up", ""])
def test_bad_sort_is_a_configuration_error(bad: str) -> None:
    with pytest.raises(ConfigError):
        parse_sort(bad)


NOW = datetime(2026, 11, 28, 12, 30, 0)


@pytest.mark.parametrize(
    ("text", "end_of_day", "expected"),
    [
        ("2026-11-20", False, datetime(2026, 11, 20)),
        ("2026-11-20", True, datetime(2026, 11, 20, 23, 59, 59)),
        ("2026-11-20 14:05", False, datetime(2026, 11, 20, 14, 5)),
        ("2026-11-20T14:05:09", True, datetime(2026, 11, 20, 14, 5, 9)),
        ("2h", False, datetime(2026, 11, 28, 10, 30)),
        ("1d", True, datetime(2026, 11, 27, 12, 30)),
    ],
)
def test_parse_moment(text: str, end_of_day: bool, expected: datetime) -> None:
    assert parse_moment(text, now=NOW, end_of_day=end_of_day) == expected


@pytest.mark.parametrize("bad", ["yesterday", "2026-13-01", "20.11.2026", "5"])
def test_bad_moments_are_configuration_errors(bad: str) -> None:
    with pytest.raises(ConfigError):
        parse_moment(bad, now=NOW)


# ------------------------------------------------------------ the command


def test_list_command_exports_every_page_to_csv(
    api_env: MobizonEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with MobizonClient(TEST_KEY, api_env.url) as client:
        send_many(client, 230)
        send_many(client, 40, prefix="7705")
    api_env.reset_calls()
    out = tmp_path / "export.csv"
    assert main(["list", "-o", str(out), "--to", "7701", "--sort", "campaignId", "-q"]) == 0
    captured = capsys.readouterr()
    assert f"Exported 230 message(s) in 3 page(s) to {out}." in captured.out
    assert "warning" not in captured.err and "Traceback" not in captured.err
    assert len(api_env.calls(LIST_CALL)) == 3
    with out.open(newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 230
    assert rows[0]["message_id"] == "41000001" and rows[0]["recipient"] == "77010000000"
    assert [int(r["campaign_id"]) for r in rows] == sorted(int(r["campaign_id"]) for r in rows)


def test_list_command_to_xlsx_with_filters(
    api_env: MobizonEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Statuses stand still: listing four statuses takes four calls, one after the other.
    api_env.configure(status_step=3600.0)
    with MobizonClient(TEST_KEY, api_env.url) as client:
        send_many(client, 5)
    out = tmp_path / "export.xlsx"
    argv = [
        "list",
        "-o",
        str(out),
        "--since",
        "1h",
        "--until",
        "2099-01-01",
        "--status",
        "NEW,ENQUEUD",
        "--status",
        "ACCEPTD",
        "--status",
        "DELIVRD",
        "-q",
    ]
    assert main(argv) == 0
    calls = api_env.calls(LIST_CALL)
    assert [c.params["criteria"]["status"] for c in calls] == [
        "NEW",
        "ENQUEUD",
        "ACCEPTD",
        "DELIVRD",
    ]
    assert all(c.code == 0 for c in calls)
    assert all(c.params["criteria"]["campaignCreateTsTo"] == "2099-01-01 23:59:59" for c in calls)
    sheet = openpyxl.load_workbook(out).worksheets[0]
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:4] == ("message_id", "campaign_id", "from", "recipient")
    assert len(rows) == 6 and rows[1][3] == "77010000004"  # the number is text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-o", "x.pdf"], "name the output file .csv or .xlsx"),
        (["-o", "nowhere/x.csv"], "the folder nowhere does not exist"),
        (["-o", "x.csv", "--sort", "price"], "cannot sort by 'price'"),
        (["-o", "x.csv", "--since", "yesterday"], "is neither a time"),
        (["-o", "x.csv", "--campaign-ids", "1,x"], "'x' is not a campaign id"),
        (["-o", "x.csv", "--since", "2026-02-01", "--until", "2026-01-01"], "is after"),
    ],
)
def test_list_command_refuses_bad_flags_with_exit_2(
    api_env: MobizonEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["list", *argv]) == 2
    assert message in capsys.readouterr().err
    assert api_env.calls() == []


def test_list_command_warns_when_the_set_changes(
    api_env: MobizonEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    client = MobizonClient(TEST_KEY, api_env.url)
    send_many(client, 150)
    real = MobizonClient.list_messages

    def growing(self: MobizonClient, *args: Any, **kwargs: Any) -> Any:
        answer = real(self, *args, **kwargs)
        send_many(client, 1, prefix="7707")  # a message arrives after each page
        return answer

    monkeypatch.setattr(MobizonClient, "list_messages", growing)
    assert main(["list", "-o", str(tmp_path / "x.csv"), "-q"]) == 0
    err = capsys.readouterr().err
    assert "warning: the list changed while it was being read" in err
    assert "counted 150 at the start and 151 at the end" in err


def test_a_python_caller_gets_the_list_commands_reading_of_the_filters(
    api_env: MobizonEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    api_env.configure(status_step=3600.0)
    options = ExportOptions(
        tmp_path / "export.csv",
        since="1h",
        until="2099-01-01",
        statuses=["new, bogus"],
        to="+7 701",
        campaign_ids="5, 7",
        timezone="+05:00",
    )

    result = export_list(options)

    assert result.filters.statuses == ("NEW", "BOGUS")
    assert result.filters.to == "7701" and result.filters.campaign_ids == (5, 7)
    assert result.filters.until == datetime(2099, 1, 1, 23, 59, 59)
    account_now = datetime.now(UTC) + timedelta(hours=5)
    assert result.filters.since is not None
    assert abs(result.filters.since - (account_now.replace(tzinfo=None) - timedelta(hours=1))) < (
        timedelta(minutes=1)
    )
    assert len(result.warnings) == 1 and result.warnings[0].startswith("BOGUS is not a status")
    assert capsys.readouterr().err == ""  # the warning is the caller's to show
    with pytest.raises(ConfigError, match="'x' is not a campaign id"):
        export_list(ExportOptions(tmp_path / "other.csv", campaign_ids="1,x"))
    assert len(api_env.calls(LIST_CALL)) == 2  # one a status; none for the refused one


def test_list_command_prints_the_warning_about_an_unknown_status(
    api_env: MobizonEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["list", "-o", str(tmp_path / "x.csv"), "--status", "bogus", "-q"]) == 0
    assert "warning: BOGUS is not a status Mobizon documents" in capsys.readouterr().err
