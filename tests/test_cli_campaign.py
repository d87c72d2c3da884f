"""`send --mode campaign` end to end: the real command against the emulator over HTTP.

What must hold whatever happens (the issue's "Must show"): every recipient
gets exactly one message, no campaign is sent twice, a campaign this journal
did not create is never touched, and a price above ``--max-cost`` sends
nothing (exit 6).  Lost answers and 503s strike Create, AddRecipients and
Send; the process is SIGKILLed while staging, between staging and sending,
and right after Send, and each time the same command, run again, finishes.
"""

from __future__ import annotations

import io
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from mobizon_batch.campaign_client import CampaignApi, CampaignSpec
from mobizon_batch.cli import main
from mobizon_batch.client import MobizonClient
from mobizon_batch.emulator import MobizonEmulator
from mobizon_batch.table import read_table
from tests.helpers import (
    TEST_KEY,
    numbers,
    read_results,
    send_command,
    subprocess_env,
    write_list,
)

TEMPLATE = "Здравствуйте, {Имя}! Скидка 20% до воскресенья."
#: the campaign text our template becomes ({Имя} is renamed: Mobizon takes Latin names)
CAMPAIGN_TEXT = "Здравствуйте, {field1}! Скидка 20% до воскресенья."
CAMPAIGN_METHODS = frozenset({"campaign/create", "campaign/addrecipients", "campaign/send"})


def campaign_args(source: Path, results: Path, *extra: str) -> list[str]:
    return [
        "send",
        str(source),
        "-o",
        str(results),
        "--mode",
        "campaign",
        "--template",
        TEMPLATE,
        "--settle",
        "0",
        *extra,
    ]


def delivered(emu: MobizonEmulator) -> Counter[str]:
    """Numbers whose message a Send let go (staged ones are held, deleted ones gone)."""
    return Counter(m.to for m in emu.messages() if not m.held)


def foreign_campaign(emu: MobizonEmulator) -> int:
    """Someone else's unsent campaign with the very text ours will have."""
    api = CampaignApi(MobizonClient(TEST_KEY, emu.url))
    campaign_id = api.create(CampaignSpec(name="the shop's own", text=CAMPAIGN_TEXT, kind=3))
    api.add_recipients(campaign_id, [{"recipient": "77019999999", "field1": "Ann"}])
    emu.reset_calls()
    return campaign_id


def assert_untouched(emu: MobizonEmulator, campaign_id: int) -> None:
    campaign = emu.state.campaigns[campaign_id]
    assert campaign.sent_at is None and not campaign.deleted and len(campaign.message_ids) == 1
    assert not [c for c in emu.calls() if c.params.get("id") == str(campaign_id)]


def assert_each_campaign_sent_once(emu: MobizonEmulator) -> None:
    sends = emu.calls("campaign/send")
    assert not [c for c in sends if c.code == 10]  # never a Send of a sent campaign
    sent = [c for c in emu.state.campaigns.values() if c.sent_at is not None]
    accepted = Counter(c.params["id"] for c in sends if c.code in (0, None))
    assert set(accepted) == {str(c.id) for c in sent}


# ---------------------------------------------------------------------- faults


@pytest.mark.parametrize("seed", [0, 1, 3])
def test_lost_answers_and_503s_on_campaign_calls_send_every_row_once(
    api_env: MobizonEmulator, tmp_path: Path, seed: int, capsys: pytest.CaptureFixture[str]
) -> None:
    phones = numbers(1200)
    source = write_list(tmp_path / "list.csv", phones)
    foreign = foreign_campaign(api_env)
    api_env.configure(
        seed=seed,
        fault_methods=CAMPAIGN_METHODS,
        fault_503=0.1,
        fault_drop_before=0.1,
        fault_drop_after=0.2,
        fault_999_after=0.1,
    )
    results = tmp_path / "results.csv"
    codes = [main(campaign_args(source, results, "--max-attempts", "8"))]
    while codes[-1] != 0 and len(codes) < 4:  # retries that ran out: the same command again
        codes.append(main(campaign_args(source, results, "--max-attempts", "8")))
    out = capsys.readouterr().out
    assert codes[-1] == 0, out
    assert delivered(api_env) == Counter(phones)
    assert_each_campaign_sent_once(api_env)
    assert_untouched(api_env, foreign)
    faults = Counter(c.fault for c in api_env.calls())
    assert faults["drop_after"] + faults["999_after"] > 0
    rows = read_results(results)
    assert {r["send_status"] for r in rows} == {"sent"}
    by_id = {str(m.id): m for m in api_env.messages()}
    assert all(by_id[r["message_id"]].to == r["recipient"] for r in rows)
    assert all(
        by_id[r["message_id"]].text
        == f"Здравствуйте, Клиент {r['recipient'][-4:]}! Скидка 20% до воскресенья."
        for r in rows
    )
    assert "Cost: " in out


# -------------------------------------------------------------------- crashes


@pytest.mark.parametrize(
    ("moment", "method", "calls_before_kill"),
    [
        ("while staging", "campaign/addrecipients", 2),
        ("between staging and sending", "campaign/getinfo", 1),
        ("right after Send", "campaign/send", 1),
    ],
)
def test_killed_then_run_again_every_recipient_once_no_campaign_twice(
    tmp_path: Path, moment: str, method: str, calls_before_kill: int
) -> None:
    phones = numbers(1300)  # three AddRecipients calls
    source = write_list(tmp_path / "list.csv", phones)
    results = tmp_path / "results.csv"
    command = send_command(
        source, results, "--mode", "campaign", "--template", TEMPLATE, "--settle", "0"
    )
    with MobizonEmulator(api_key=TEST_KEY, status_step=0.05) as emu:
        foreign = foreign_campaign(emu)
        # The method's work is done and logged, its answer held back: the kill lands there.
        emu.configure(hold_after=30.0, hold_methods=frozenset({method}))
        env = subprocess_env(emu)
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while len(emu.calls(method)) < calls_before_kill and time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert len(emu.calls(method)) == calls_before_kill, moment
        if method == "campaign/send":
            assert delivered(emu) == Counter(phones)  # it was sent; the journal does not know
        else:
            assert delivered(emu) == Counter()  # staged only: nothing reached anybody
        emu.configure(hold_after=0.0)
        final = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert final.returncode == 0, final.stderr
        assert delivered(emu) == Counter(phones)
        assert_each_campaign_sent_once(emu)
        assert len(emu.calls("campaign/send")) == 1
        assert_untouched(emu, foreign)
        messages = {str(m.id): m.to for m in emu.messages()}
    rows = read_results(results)
    assert [r["recipient"] for r in rows] == phones
    assert {r["send_status"] for r in rows} == {"sent"}
    assert all(messages[r["message_id"]] == r["recipient"] for r in rows)


# ----------------------------------------------------------------- the price


def test_max_cost_below_the_price_exits_6_and_delivers_nothing(
    api_env: MobizonEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    phones = numbers(40)
    source = write_list(tmp_path / "list.csv", phones)
    results = tmp_path / "results.csv"
    code = main(campaign_args(source, results, "--max-cost", "300"))
    captured = capsys.readouterr()
    assert code == 6, captured.err
    price = 40 * api_env.config.price_per_segment  # 380.00: one GSM-7 segment each
    assert f"Cost: {price:,.2f} KZT for 40 messages (40 segments) in 1 campaign" in captured.out
    assert "--max-cost" in captured.err
    assert delivered(api_env) == Counter() and not api_env.calls("campaign/send")
    assert all(c.deleted for c in api_env.state.campaigns.values())
    assert {r["send_status"] for r in read_results(results)} == {"pending"}
    assert main(campaign_args(source, results, "--max-cost", "400")) == 0
    assert delivered(api_env) == Counter(phones)


def test_a_balance_below_the_price_exits_6(
    api_env: MobizonEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from decimal import Decimal

    api_env.balance = Decimal("100")
    source = write_list(tmp_path / "list.csv", numbers(40))
    assert main(campaign_args(source, tmp_path / "results.csv")) == 6
    assert "balance" in capsys.readouterr().err
    assert delivered(api_env) == Counter()


class Keyboard(io.StringIO):
    """A terminal's stdin with these answers typed in; ``read_lines`` counts what was asked."""

    def __init__(self, answers: str) -> None:
        super().__init__(answers)
        self.read_lines = 0

    def isatty(self) -> bool:
        return True

    def readline(self, size: int | None = -1) -> str:
        self.read_lines += 1
        return super().readline(-1 if size is None else size)


def on_a_terminal(monkeypatch: pytest.MonkeyPatch, answers: str) -> Keyboard:
    keyboard = Keyboard(answers)
    monkeypatch.setattr(sys, "stdin", keyboard)
    monkeypatch.setattr("sys.stdout.isatty", lambda: True, raising=False)
    return keyboard


def test_no_prompt_off_a_terminal_and_the_prompt_can_say_no(
    api_env: MobizonEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = write_list(tmp_path / "list.csv", numbers(5))
    assert main(campaign_args(source, tmp_path / "a.csv")) == 0  # pytest's stdin: no terminal
    assert "Send? [y/N]" not in capsys.readouterr().out
    keyboard = on_a_terminal(monkeypatch, "n\n")
    other = write_list(tmp_path / "other.csv", numbers(5, 100))
    assert main(campaign_args(other, tmp_path / "b.csv")) == 6
    out = capsys.readouterr().out
    assert keyboard.read_lines == 1  # one question: at the price, not before staging
    assert out.index("Cost: 47.50 KZT") < out.index("Send? [y/N]")
    assert main(campaign_args(other, tmp_path / "b.csv", "--yes")) == 0
    assert keyboard.read_lines == 1
    assert delivered(api_env) == Counter(numbers(5) + numbers(5, 100))


# ------------------------------------------------------------ usage and jobs


def test_campaign_only_options_and_mixed_modes_are_refused(
    api_env: MobizonEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_list(tmp_path / "list.csv", numbers(5))
    results = tmp_path / "results.csv"
    assert main(["send", str(source), "-o", str(results), "--max-cost", "10"]) == 2
    assert "--mode campaign" in capsys.readouterr().err
    assert main(campaign_args(source, results, "--send-window", "09:00-20:00")) == 2
    assert "no campaign equivalent" in capsys.readouterr().err
    # A campaign left staged (too dear, and it could not be deleted) is not message mode's.
    api_env.configure(fault_methods=frozenset({"campaign/delete"}), fault_503=1.0)
    assert main(campaign_args(source, results, "--max-cost", "1", "--max-attempts", "1")) == 6
    assert [c for c in api_env.state.campaigns.values() if not c.deleted]
    api_env.configure(fault_503=0.0)
    capsys.readouterr()
    code = main(["send", str(source), "-o", str(results), "--template", TEMPLATE])
    assert code == 2
    assert "--mode campaign" in capsys.readouterr().err
    assert api_env.calls("message/sendsmsmessage") == []
    # ... and campaign mode takes it up again: verified, priced, sent once.
    assert main(campaign_args(source, results)) == 0
    assert delivered(api_env) == Counter(numbers(5))
    assert len(api_env.state.campaigns) == 1


def test_a_list_of_all_different_texts_is_refused_naming_message_mode(
    api_env: MobizonEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_list(tmp_path / "list.csv", numbers(30))  # "Ваш код NNNNN.": 30 texts
    code = main(["send", str(source), "-o", str(tmp_path / "r.csv"), "--mode", "campaign"])
    assert code == 2
    assert "--mode message" in capsys.readouterr().err
    assert not [c for c in api_env.calls() if c.method.startswith("campaign/")]


def test_a_job_with_mode_campaign_sends_through_campaigns(
    api_env: MobizonEmulator, tmp_path: Path
) -> None:
    phones = numbers(25)
    write_list(tmp_path / "list.csv", phones)
    job = tmp_path / "promo.toml"
    job.write_text(
        'name = "promo"\n'
        'input = "list.csv"\n'
        'output = "out/{job}.csv"\n'
        "[columns]\n"
        f'template = "{TEMPLATE}"\n'
        "[send]\n"
        'mode = "campaign"\n'
        "max_cost = 1000\n"
        "[status]\n"
        "skip = true\n",
        encoding="utf-8",
    )
    assert main(["run", str(job)]) == 0
    assert delivered(api_env) == Counter(phones)
    assert len(api_env.calls("campaign/send")) == 1
    assert api_env.calls("message/sendsmsmessage") == []


def test_the_demo_shows_campaign_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("MOBIZON_API_KEY", raising=False)
    monkeypatch.delenv("MOBIZON_API_URL", raising=False)
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "--mode campaign" in text and "Cost: " in text and "in 1 campaign" in text
    frame = read_table(out / "results-campaign.xlsx").frame
    assert Counter(frame["send_status"])["sent"] == 11
    sent = frame[frame["send_status"] == "sent"]
    assert sent["campaign_id"].nunique() == 1 and sent["message_id"].str.isdigit().all()
    assert "11 messages staged in one campaign" in text


def test_the_emulator_command_has_the_campaign_knobs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    phones = numbers(5)
    command = [
        *send_command(tmp_path, tmp_path)[:3],  # python -m mobizon_batch
        "emulator",
        "--port",
        "0",
        "--api-key",
        TEST_KEY,
        "--stop-list",
        phones[1],
        "--balance",
        "50",
        "--campaign-moderation",
        "approve",
    ]
    emulator = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert emulator.stdout is not None
        url = emulator.stdout.readline().strip().rsplit(" ", 1)[-1]
        monkeypatch.setenv("MOBIZON_API_KEY", TEST_KEY)
        monkeypatch.setenv("MOBIZON_API_URL", url)
        source = write_list(tmp_path / "list.csv", phones)
        results = tmp_path / "results.csv"
        assert main(campaign_args(source, results)) == 4  # one row failed: the stop list
        out = capsys.readouterr().out
        assert "balance 50.00 KZT" in out and "under moderation" in out
        rows = {r["recipient"]: r for r in read_results(results)}
        assert rows[phones[1]]["send_status"] == "failed" and rows[phones[1]]["error_code"] == "5"
        assert {rows[p]["send_status"] for p in phones if p != phones[1]} == {"sent"}
    finally:
        emulator.terminate()
        emulator.wait(timeout=10)


def test_status_reports_a_declined_campaigns_rows_as_failed_with_the_comment(
    api_env: MobizonEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    api_env.configure(campaign_moderation="decline", moderation_seconds=0.2)
    phones = numbers(3)
    source = write_list(tmp_path / "list.csv", phones)
    results = tmp_path / "results.csv"
    assert main(campaign_args(source, results)) == 0
    assert "under moderation" in capsys.readouterr().out
    rows = read_results(results)
    assert {r["send_status"] for r in rows} == {"sent"}
    time.sleep(0.3)  # the emulated moderator decides
    code = main(["status", str(results), "--wait", "30s", "--interval", "1s"])
    assert code == 0, capsys.readouterr()
    rows = read_results(results)
    assert {r["send_status"] for r in rows} == {"failed"}
    assert {r["status"] for r in rows} == {"DECLINED"} and {r["status_final"] for r in rows} == {
        "true"
    }
    assert all(r["error"].startswith("declined by the Mobizon moderator: ") for r in rows)
    assert len(api_env.calls("campaign/getinfo")) <= 3  # once per round, not per row
    assert delivered(api_env) == Counter()


def test_a_campaign_dry_run_shows_the_campaigns_and_sends_nothing(
    api_env: MobizonEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_list(tmp_path / "list.csv", numbers(7), [[numbers(1)[0], "Второй", "x"]])
    results = tmp_path / "results.csv"
    assert main([*campaign_args(source, results), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "campaign mode would make 2 campaigns:" in out  # a number twice: a second campaign
    assert "template         7 rows" in out and "template         1 rows" in out
    assert api_env.calls() == []
    different = write_list(tmp_path / "codes.csv", numbers(30))
    code = main(["send", str(different), "-o", str(results), "--mode", "campaign", "--dry-run"])
    assert code == 2 and "--mode message" in capsys.readouterr().err


def test_status_clears_the_moderation_note_once_a_campaign_is_approved(
    api_env: MobizonEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    api_env.configure(campaign_moderation="approve", moderation_seconds=0.1)
    source = write_list(tmp_path / "list.csv", numbers(3))
    results = tmp_path / "results.csv"
    assert main(campaign_args(source, results)) == 0
    assert {r["error"] for r in read_results(results)} == {"campaign under moderation"}
    assert main(["status", str(results), "--wait", "30s", "--interval", "1s"]) == 0
    rows = read_results(results)
    assert {r["send_status"] for r in rows} == {"sent"} and {r["error"] for r in rows} == {""}
    assert {r["status_final"] for r in rows} == {"true"}
    assert delivered(api_env) == Counter(numbers(3))


def test_quiet_on_a_terminal_still_shows_the_price_it_asks_about(
    api_env: MobizonEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    on_a_terminal(monkeypatch, "y\n")
    source = write_list(tmp_path / "list.csv", numbers(2))
    assert main([*campaign_args(source, tmp_path / "r.csv"), "-q"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Cost: 19.00 KZT for 2 messages (2 segments) in 1 campaign")
    assert delivered(api_env) == Counter(numbers(2))


def test_ctrl_c_at_the_prompt_means_no(
    api_env: MobizonEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keyboard = on_a_terminal(monkeypatch, "")

    def interrupted(size: int | None = -1) -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr(keyboard, "readline", interrupted)
    source = write_list(tmp_path / "list.csv", numbers(2))
    assert main(campaign_args(source, tmp_path / "r.csv")) == 6
    assert delivered(api_env) == Counter() and not api_env.calls("campaign/send")


def test_the_history_guard_keeps_a_list_sent_in_campaigns_from_going_out_twice(
    api_env: MobizonEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    phones = numbers(30)
    source = write_list(tmp_path / "list.csv", phones)
    assert main(campaign_args(source, tmp_path / "monday.csv")) == 0
    # The same list again, to another results file (so another journal): the account knows.
    assert main(campaign_args(source, tmp_path / "monday-again.csv")) == 0
    rows = read_results(tmp_path / "monday-again.csv")
    assert {r["send_status"] for r in rows} == {"already_sent"}
    assert delivered(api_env) == Counter(phones) and len(api_env.calls("campaign/send")) == 1


def test_staged_messages_never_count_as_sent_for_the_history_guard(
    api_env: MobizonEmulator, tmp_path: Path
) -> None:
    phones = numbers(5)
    source = write_list(tmp_path / "list.csv", phones)
    api_env.configure(fault_methods=frozenset({"campaign/delete"}), fault_503=1.0)
    args = campaign_args(source, tmp_path / "a.csv", "--max-cost", "1", "--max-attempts", "1")
    assert main(args) == 6  # too dear; its campaign stays staged, undeleted
    api_env.configure(fault_503=0.0)
    assert main(campaign_args(source, tmp_path / "b.csv")) == 0  # another journal
    assert {r["send_status"] for r in read_results(tmp_path / "b.csv")} == {"sent"}
    assert delivered(api_env) == Counter(phones)
