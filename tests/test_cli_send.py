"""`mobizon-batch send` end to end: the real command against the emulator over HTTP.

The headline promises are checked here through the command line: under
faults and rate limiting every row ends sent exactly once; a process killed
at any moment and started again sends nothing twice and loses nothing;
Ctrl-C stops cleanly; a bad key sends nothing; the key is written nowhere.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from openpyxl import load_workbook

from mobizon_batch import send as send_module
from mobizon_batch.cli import main
from mobizon_batch.emulator import MobizonEmulator
from mobizon_batch.journal import Journal
from mobizon_batch.runs import send as runs_send
from tests.helpers import (
    TEST_KEY,
    numbers,
    read_results,
    send_command,
    stop,
    subprocess_env,
    wait_for_sends,
    write_list,
)


@pytest.fixture
def instant_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Backoff waits of the send pass shrink to a millisecond (the HTTP stays real)."""

    def quick(self: send_module.SendPass, seconds: float) -> None:
        self._halt.wait(min(seconds, 0.001))

    monkeypatch.setattr(send_module.SendPass, "_interruptible_sleep", quick)


# ---------------------------------------------------------------------- faults


def test_faults_and_rate_limit_every_row_sent_exactly_once(
    api_env: MobizonEmulator,
    instant_retries: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    phones = numbers(2000)
    source = write_list(tmp_path / "list.csv", phones)
    api_env.configure(fault_503=0.05, fault_drop_before=0.05, fault_drop_after=0.03, rate_limit=100)
    results = tmp_path / "results.csv"
    code = main(
        [
            "send",
            str(source),
            "-o",
            str(results),
            "--rate",
            "500",
            "--settle",
            "0",
            "--max-attempts",
            "10",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    calls = api_env.calls("message/sendsmsmessage")
    faults = Counter(c.fault for c in calls)
    assert faults["503"] > 50 and faults["drop_before"] > 50 and faults["drop_after"] > 30
    assert sum(1 for c in calls if c.code == 30) > 0  # the rate limit did bite
    assert Counter(m.to for m in api_env.messages()) == Counter(phones)  # each exactly once
    rows = read_results(results)
    assert len(rows) == 2000
    assert {r["send_status"] for r in rows} == {"sent"}
    by_id = {str(m.id): m.to for m in api_env.messages()}
    assert all(by_id[r["message_id"]] == r["recipient"] for r in rows)
    assert "found already sent" in out


# ------------------------------------------------------------------- crashes


def test_killed_at_any_moment_then_rerun_sends_nothing_twice(tmp_path: Path) -> None:
    phones = numbers(240)
    source = write_list(tmp_path / "list.csv", phones)
    results = tmp_path / "results.csv"
    with MobizonEmulator(api_key=TEST_KEY, latency=0.02, fault_drop_after=0.05) as emulator:
        env = subprocess_env(emulator)
        command = send_command(source, results, "--rate", "120", "--settle", "0.1")
        kills = 0
        for delay in (0.3, 0.05, 0.6, 0.01, 0.2):
            process = subprocess.Popen(
                command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            # Kill it at a different moment of its sending each time.
            wait_for_sends(emulator, len(emulator.calls("message/sendsmsmessage")) + 1)
            time.sleep(delay)
            if process.poll() is None:
                kills += 1
            stop(process, signal.SIGKILL)
        sent_before_last_run = len(emulator.messages())
        final = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert final.returncode == 0, final.stderr
        messages = emulator.messages()
    assert kills >= 3 and sent_before_last_run > 0
    assert Counter(m.to for m in messages) == Counter(phones)  # zero duplicates, zero missing
    rows = read_results(results)
    assert [r["recipient"] for r in rows] == phones
    assert {r["send_status"] for r in rows} == {"sent"}
    assert {r["message_id"] for r in rows} == {str(m.id) for m in messages}


def test_ctrl_c_exits_130_and_the_same_command_finishes(tmp_path: Path) -> None:
    phones = numbers(300)
    source = write_list(tmp_path / "list.csv", phones)
    results = tmp_path / "results.csv"
    with MobizonEmulator(api_key=TEST_KEY, latency=0.01) as emulator:
        env = subprocess_env(emulator)
        command = send_command(source, results, "--rate", "100")
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        wait_for_sends(emulator, 20)
        _, err = stop(process)
        assert process.returncode == 130, err
        assert "Traceback" not in err and "run the same command again" in err
        interrupted = read_results(results)
        statuses = Counter(r["send_status"] for r in interrupted)
        assert set(statuses) == {"sent", "pending"}
        assert statuses["sent"] == len(emulator.messages())
        resumed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
        assert resumed.returncode == 0, resumed.stderr
        assert Counter(m.to for m in emulator.messages()) == Counter(phones)
    assert {r["send_status"] for r in read_results(results)} == {"sent"}


# --------------------------------------------------------------- refusals


def test_bad_key_exits_5_and_sends_nothing(
    api_env: MobizonEmulator,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MOBIZON_API_KEY", "Q" * 40)
    source = write_list(tmp_path / "list.csv", numbers(5))
    assert main(["send", str(source), "-o", str(tmp_path / "r.csv")]) == 5
    err = capsys.readouterr().err
    assert "key was refused" in err and "Traceback" not in err
    assert api_env.messages() == []
    assert not (tmp_path / "r.csv.journal.sqlite").exists()


def test_invalid_rows_change_nothing_for_the_good_ones(
    api_env: MobizonEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = numbers(6)
    messy = write_list(
        tmp_path / "messy.csv", good, [["12", "bad", "short number"], ["77010009999", "x", ""]]
    )
    results = tmp_path / "r.csv"
    assert main(["send", str(messy), "-o", str(results), "-q"]) == 0
    rows = read_results(results)
    assert [r["send_status"] for r in rows] == ["sent"] * 6 + ["invalid", "invalid"]
    assert rows[6]["error"] and rows[7]["error"]
    # The same good rows, cleaned up and reordered: nothing is sent again.
    clean = write_list(tmp_path / "clean.csv", list(reversed(good)))
    assert main(["send", str(clean), "-o", str(results), "-q"]) == 0
    assert Counter(m.to for m in api_env.messages()) == Counter(good)
    assert [r["recipient"] for r in read_results(results)] == list(reversed(good))


def test_rejected_row_is_failed_with_reason_and_exit_4(
    api_env: MobizonEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_list(tmp_path / "list.csv", numbers(3))
    results = tmp_path / "r.csv"
    # --accept-possible lets a number through that the API then refuses (16 digits).
    source.write_text(
        source.read_text(encoding="utf-8") + "+7701234567890123,x,hello\n", encoding="utf-8"
    )
    code = main(["send", str(source), "-o", str(results), "-q", "--accept-possible"])
    rows = read_results(results)
    if rows[-1]["send_status"] == "invalid":  # the number check caught it before the API
        assert code == 0
    else:
        assert code == 4
        assert rows[-1]["send_status"] == "failed" and rows[-1]["error_code"] == "1"
    assert [r["send_status"] for r in rows[:3]] == ["sent"] * 3


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--deferred-to", "2001-01-01 10:00:00"], "between 1 hour and 14 days"),
        (["--deferred-to", "soon"], "YYYY-MM-DD HH:MM:SS"),
        (["--validity", "30"], "60 to 1440"),
        (["--resend-window", "2"], "is not a duration"),
        (["-o", "r.pdf"], ".csv or .xlsx"),
    ],
)
def test_bad_send_options_exit_2_before_anything(
    api_env: MobizonEmulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    flags: list[str],
    message: str,
) -> None:
    source = write_list(tmp_path / "list.csv", numbers(2))
    argv = ["send", str(source), "-o", str(tmp_path / "r.csv"), *flags]
    if flags[0] == "-o":
        argv = ["send", str(source), "-o", str(tmp_path / flags[1])]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert api_env.calls() == []


def test_results_without_their_journal_are_not_sent_again(
    api_env: MobizonEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_list(tmp_path / "list.csv", numbers(3))
    results = tmp_path / "r.csv"
    assert main(["send", str(source), "-o", str(results), "-q"]) == 0
    (tmp_path / "r.csv.journal.sqlite").unlink()
    assert main(["send", str(source), "-o", str(results), "-q"]) == 2
    assert "could send those rows twice" in capsys.readouterr().err
    assert len(api_env.messages()) == 3


def test_a_journal_in_use_is_refused(
    api_env: MobizonEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_list(tmp_path / "list.csv", numbers(3))
    results = tmp_path / "r.csv"
    with Journal(tmp_path / "r.csv.journal.sqlite"):
        assert main(["send", str(source), "-o", str(results), "-q"]) == 2
    assert "in use" in capsys.readouterr().err
    assert api_env.messages() == []


# ------------------------------------------------------------ results files


def test_xlsx_results_hold_integer_ids_and_text_phones(
    api_env: MobizonEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_list(tmp_path / "list.csv", numbers(4), [["=1+1", "formula", "hi"]])
    results = tmp_path / "r.xlsx"
    assert main(["send", str(source), "-o", str(results), "-q"]) == 0
    sheet = load_workbook(results).active
    assert sheet is not None
    header = [c.value for c in sheet[1]]
    rows = [
        dict(zip(header, (c.value for c in row), strict=True)) for row in sheet.iter_rows(min_row=2)
    ]
    assert all(isinstance(r["message_id"], int) for r in rows[:4])
    assert rows[0]["recipient"] == "77010000000"  # text, not a number
    assert rows[4]["Телефон"] == "=1+1" and rows[4]["send_status"] == "invalid"


def test_dry_run_after_a_partial_send_shows_what_is_left(
    api_env: MobizonEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "r.csv"
    first = write_list(tmp_path / "first.csv", numbers(3))
    assert main(["send", str(first), "-o", str(results), "-q"]) == 0
    more = write_list(tmp_path / "more.csv", numbers(5))
    api_env.reset_calls()
    before = results.read_bytes()
    assert main(["send", str(more), "-o", str(results), "--dry-run"]) == 0
    assert api_env.calls() == []
    assert results.read_bytes() == before  # a dry run never overwrites results
    planned = read_results(tmp_path / "r.dry-run.csv")
    assert [r["send_status"] for r in planned] == ["sent"] * 3 + ["planned"] * 2


# ------------------------------------------------------------------ the key


def test_the_key_is_in_no_output_file_journal_or_log(
    api_env: MobizonEmulator,
    instant_retries: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    api_env.configure(fault_drop_after=0.2, fault_503=0.1)
    source = write_list(tmp_path / "list.csv", numbers(40))
    results = tmp_path / "r.xlsx"
    assert main(["-vv", "send", str(source), "-o", str(results), "--settle", "0"]) == 0
    captured = capsys.readouterr()
    assert "urllib3" in captured.err  # -vv logged every request line ...
    written = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert len(written) > 10_000
    for blob in (written, captured.out.encode(), captured.err.encode()):
        assert TEST_KEY.encode() not in blob  # ... and still the key is nowhere


def test_sigterm_stops_like_ctrl_c(tmp_path: Path) -> None:
    phones = numbers(200)
    source = write_list(tmp_path / "list.csv", phones)
    results = tmp_path / "results.csv"
    with MobizonEmulator(api_key=TEST_KEY, latency=0.01) as emulator:
        env = subprocess_env(emulator)
        command = send_command(source, results, "--rate", "80")
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        wait_for_sends(emulator, 20)
        _, err = stop(process, signal.SIGTERM)
        assert process.returncode == 130, err
        resumed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
        assert resumed.returncode == 0, resumed.stderr
        assert Counter(m.to for m in emulator.messages()) == Counter(phones)


def test_a_second_ctrl_c_quits_at_once_and_the_rerun_settles_everything(tmp_path: Path) -> None:
    phones = numbers(40)
    source = write_list(tmp_path / "list.csv", phones)
    results = tmp_path / "results.csv"
    # Answers take 8 s: after the first Ctrl-C the requests in flight keep it
    # waiting; the second must end it while they are still unanswered.
    slow_sends = frozenset({"message/sendsmsmessage"})
    with MobizonEmulator(api_key=TEST_KEY, latency=8.0, latency_methods=slow_sends) as emulator:
        env = subprocess_env(emulator)
        command = send_command(source, results, "--rate", "0", "--settle", "0")
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        wait_for_sends(emulator)  # the first requests are on their way
        process.send_signal(signal.SIGINT)
        time.sleep(0.3)
        _, err = stop(process)  # the second Ctrl-C
        # Quitting "at once" means before the answers it was waiting for came back:
        # the emulator is still handling those requests when the process is gone.
        still_unanswered = emulator.active()
        assert process.returncode == 130, err
        assert still_unanswered > 0 and "quitting at once" in err
        emulator.configure(latency=0.0)
        deadline = time.monotonic() + 30
        while emulator.active() and time.monotonic() < deadline:
            time.sleep(0.05)  # the requests the dead process made are processed by now
        resumed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
        assert resumed.returncode == 0, resumed.stderr
        assert Counter(m.to for m in emulator.messages()) == Counter(phones)


def test_the_missing_journal_guard_finds_a_suffixed_id_column(
    api_env: MobizonEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "list.csv"
    source.write_text("phone,text,message_id\n77010000001,hi,old-7\n", encoding="utf-8")
    results = tmp_path / "r.csv"
    assert main(["send", str(source), "-o", str(results), "-q"]) == 0
    assert "message_id_result" in results.read_text(encoding="utf-8-sig").splitlines()[0]
    (tmp_path / "r.csv.journal.sqlite").unlink()
    source.write_text("phone,text,message_id\n77010000001,hi,\n", encoding="utf-8")
    assert main(["send", str(source), "-o", str(results), "-q"]) == 2
    assert "could send those rows twice" in capsys.readouterr().err
    assert len(api_env.messages()) == 1


def test_statuses_filled_in_survive_a_resumed_send(
    api_env: MobizonEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "r.csv"
    first = write_list(tmp_path / "first.csv", numbers(3))
    assert main(["send", str(first), "-o", str(results), "-q"]) == 0
    time.sleep(0.6)  # the emulator's statuses become final
    assert main(["status", str(results), "-q"]) == 0
    before = read_results(results)
    assert {r["status_final"] for r in before} == {"true"}
    # The list grows; the same command sends the new rows and keeps what status learned.
    more = write_list(tmp_path / "more.csv", numbers(5))
    assert main(["send", str(more), "-o", str(results), "-q"]) == 0
    after = read_results(results)
    assert [r["status"] for r in after[:3]] == [r["status"] for r in before]
    assert [r["status"] for r in after[3:]] == ["", ""]
    assert list(after[0]) == list(before[0])  # same columns, same order
    assert len(api_env.messages()) == 5


def test_a_dry_run_cannot_clear_the_ids_a_later_send_relies_on(
    api_env: MobizonEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_list(tmp_path / "list.csv", numbers(3))
    results = tmp_path / "r.csv"
    assert main(["send", str(source), "-o", str(results), "-q"]) == 0
    (tmp_path / "r.csv.journal.sqlite").rename(tmp_path / "elsewhere.sqlite")
    assert main(["send", str(source), "-o", str(results), "--dry-run", "-q"]) == 0
    assert main(["send", str(source), "-o", str(results), "-q"]) == 2  # still refused
    assert len(api_env.messages()) == 3


@pytest.mark.parametrize("which", ["--optout", "--journal"])
def test_results_may_not_overwrite_the_optout_list_or_the_journal(
    api_env: MobizonEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str], which: str
) -> None:
    source = write_list(tmp_path / "list.csv", numbers(2))
    other = tmp_path / "other.csv"
    other.write_text("phone\n77000000000\n", encoding="utf-8")
    assert main(["send", str(source), "-o", str(other), which, str(other)]) == 2
    assert "would overwrite" in capsys.readouterr().err
    assert other.read_text(encoding="utf-8") == "phone\n77000000000\n"


def test_a_shorter_list_keeps_earlier_sent_rows_in_the_results(
    api_env: MobizonEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "r.csv"
    assert (
        main(["send", str(write_list(tmp_path / "a.csv", numbers(5))), "-o", str(results), "-q"])
        == 0
    )
    shorter = write_list(tmp_path / "b.csv", numbers(4, start=2))  # rows 3-6
    assert main(["send", str(shorter), "-o", str(results), "-q"]) == 0
    rows = read_results(results)
    assert [r["recipient"] for r in rows] == numbers(4, start=2) + numbers(2)
    assert [r["send_status"] for r in rows] == ["sent"] * 6
    assert rows[-1]["Телефон"] == "" and "earlier run" in rows[-1]["error"]
    assert len(api_env.messages()) == 6


def test_an_unwritable_results_file_is_reported_after_the_summary(
    api_env: MobizonEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from mobizon_batch.errors import ConfigError

    def locked(*args: object, **kwargs: object) -> None:
        raise ConfigError("cannot write r.csv: Permission denied (is it open in another program?)")

    monkeypatch.setattr(runs_send, "write_table", locked)
    source = write_list(tmp_path / "list.csv", numbers(5))
    assert main(["send", str(source), "-o", str(tmp_path / "r.csv")]) == 2
    captured = capsys.readouterr()
    assert "Sent 5 messages" in captured.out  # the summary still tells what happened
    assert "run the same command again" in captured.err and "journal" in captured.err
    assert len(api_env.messages()) == 5


@pytest.mark.parametrize("workers", ["1", "3"])
def test_a_send_with_few_workers_reads_the_history_without_pool_warnings(
    api_env: MobizonEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str], workers: str
) -> None:
    """The history guard reads pages four at a time whatever ``--workers`` says."""
    api_env.preload(1_000, text="Sale today")  # ten pages of history
    source = write_list(tmp_path / "list.csv", numbers(20, start=5_000))  # the whole window wins
    assert main(["send", str(source), "-o", str(tmp_path / "r.csv"), "--workers", workers]) == 0
    assert len(api_env.calls("message/list")) >= 10
    assert "Connection pool is full" not in capsys.readouterr().err
    assert len(api_env.messages()) == 1_020
