"""Sending as people do it: a look before the leap, send windows, cron, job files.

The prompt is tested on a real pseudo-terminal (a subprocess whose stdin
and stdout are a pty), the send window with hours computed from the
recipients' real time zone now, so that no test depends on the hour it
runs at.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import pty
import select
import shlex
import signal
import subprocess
import sys
import time
import zoneinfo
from pathlib import Path

import pytest
import tqdm

from mobizon_batch import journal as journal_module
from mobizon_batch.cli import main
from mobizon_batch.cli.exits import EXIT_INCOMPLETE, EXIT_OK, EXIT_STOPPED
from mobizon_batch.cli.output import TerminalObserver
from mobizon_batch.cli.status import print_refresh
from mobizon_batch.emulator import MobizonEmulator
from mobizon_batch.journal import Journal, PlanEntry
from mobizon_batch.runs.status import StatusResult
from mobizon_batch.send import SendProgress
from mobizon_batch.sendwindow import next_opening, parse_window
from mobizon_batch.status import RefreshResult
from mobizon_batch.table import read_table
from tests.fixtures import realistic
from tests.helpers import TEST_KEY, stop

SEND_CALL = "message/sendsmsmessage"


def write_list(path: Path, count: int) -> Path:
    lines = ["phone,text", *(f"7701{n:07d},Hello number {n}" for n in range(count))]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def almaty_window(start_hours: float, end_hours: float) -> str:
    """A window from now + start to now + end hours, Almaty time, as HH:MM-HH:MM."""
    now = dt.datetime.now(zoneinfo.ZoneInfo("Asia/Almaty"))
    start = now + dt.timedelta(hours=start_hours)
    end = now + dt.timedelta(hours=end_hours)
    return f"{start:%H:%M}-{end:%H:%M}"


# ------------------------------------------------------------ Send? [y/N]


def run_on_a_terminal(command: list[str], env: dict[str, str], answer: str) -> tuple[int, str]:
    """Run ``command`` with a pty as stdin and stdout; answer the prompt; its code and screen."""
    master, slave = pty.openpty()
    process = subprocess.Popen(
        command, stdin=slave, stdout=slave, stderr=subprocess.PIPE, env=env, close_fds=True
    )
    os.close(slave)
    screen = b""
    deadline = time.monotonic() + 120
    answered = False
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                screen += chunk
                if not answered and b"Send? [y/N]" in screen:
                    os.write(master, answer.encode() + b"\n")
                    answered = True
            elif process.poll() is not None:
                break
        code = process.wait(timeout=60)
    finally:
        _, err = stop(process, signal.SIGKILL)  # reaped, or killed if it hangs
        os.close(master)
    return code, screen.decode("utf-8", "replace") + (err or b"").decode()


def terminal_env(emulator: MobizonEmulator) -> dict[str, str]:
    return {**os.environ, "MOBIZON_API_KEY": TEST_KEY, "MOBIZON_API_URL": emulator.url}


def test_no_at_the_prompt_sends_nothing_and_exits_6(
    api_env: MobizonEmulator, tmp_path: Path
) -> None:
    source = write_list(tmp_path / "list.csv", 5)
    results = tmp_path / "results.csv"
    command = [sys.executable, "-m", "mobizon_batch", "send", str(source), "-o", str(results)]
    code, screen = run_on_a_terminal(command, terminal_env(api_env), "n")
    assert code == EXIT_STOPPED, screen
    assert "About to send 5 rows (5 segments); balance" in screen
    assert api_env.calls(SEND_CALL) == []
    assert set(read_table(results).frame["send_status"]) == {"pending"}


def test_yes_at_the_prompt_sends(api_env: MobizonEmulator, tmp_path: Path) -> None:
    source = write_list(tmp_path / "list.csv", 3)
    results = tmp_path / "results.csv"
    command = [sys.executable, "-m", "mobizon_batch", "send", str(source), "-o", str(results)]
    code, screen = run_on_a_terminal(command, terminal_env(api_env), "y")
    assert code == EXIT_OK, screen
    assert len(api_env.messages()) == 3


def test_yes_flag_skips_the_prompt_on_a_terminal(api_env: MobizonEmulator, tmp_path: Path) -> None:
    source = write_list(tmp_path / "list.csv", 2)
    command = [
        *(sys.executable, "-m", "mobizon_batch", "send", str(source)),
        *("-o", str(tmp_path / "r.csv"), "--yes"),
    ]
    code, screen = run_on_a_terminal(command, terminal_env(api_env), "n")
    assert code == EXIT_OK, screen
    assert "Send? [y/N]" not in screen
    assert len(api_env.messages()) == 2


def test_off_a_terminal_nothing_is_asked(
    api_env: MobizonEmulator, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = write_list(tmp_path / "list.csv", 2)
    assert main(["send", str(source), "-o", str(tmp_path / "r.csv")]) == EXIT_OK
    assert "Send?" not in capsys.readouterr().out
    assert len(api_env.messages()) == 2


# ------------------------------------------------------------ send window


def test_rows_outside_their_send_window_wait_pending_and_the_run_says_when(
    api_env: MobizonEmulator, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = write_list(tmp_path / "list.csv", 4)
    results = tmp_path / "results.csv"
    window = almaty_window(2, 3)
    code = main(["send", str(source), "-o", str(results), "--send-window", window])
    _, err = capsys.readouterr()
    assert code == EXIT_INCOMPLETE, err
    assert api_env.calls(SEND_CALL) == []
    frame = read_table(results).frame
    assert set(frame["send_status"]) == {"pending"}
    opens = window.split("-")[0]
    assert set(frame["error"]) == {f"waits for its send window (opens {opens} Asia/Almaty)"}
    assert "4 rows wait for their send window: run the same command again after" in err

    code = main(["send", str(source), "-o", str(results), "--send-window", almaty_window(-1, 2)])
    assert code == EXIT_OK, capsys.readouterr().err
    assert set(read_table(results).frame["send_status"]) == {"sent"}
    assert len(api_env.messages()) == 4


def test_a_bad_send_window_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = write_list(tmp_path / "list.csv", 1)
    code = main(["send", str(source), "-o", str(tmp_path / "r.csv"), "--send-window", "9-21"])
    assert code == 2
    assert "HH:MM-HH:MM" in capsys.readouterr().err


def test_next_opening_for_a_campaign_of_two_zones() -> None:
    window = parse_window("09:00-21:00")
    night = dt.datetime(2026, 11, 29, 1, 0, tzinfo=dt.UTC)  # 06:00 Almaty and Tashkent
    opening = next_opening(["77012345678", "998901234567"], window, night)
    assert opening == dt.datetime(2026, 11, 29, 4, 0, tzinfo=dt.UTC)  # 09:00 in both (+05)
    day = dt.datetime(2026, 11, 29, 6, 0, tzinfo=dt.UTC)
    assert next_opening(["77012345678"], window, day) == day


# ------------------------------------------------------------ job files


def test_a_job_takes_settle_send_window_and_header_row_and_logs_a_quoted_command(
    api_env: MobizonEmulator, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    realistic.crm_export_csv(tmp_path / "crm.csv")
    job = tmp_path / "crm.toml"
    job.write_text(
        'name = "crm"\n'
        'input = "crm.csv"\n'
        'output = "out/{job}.csv"\n'
        "[read]\n"
        "header_row = 3\n"
        "[columns]\n"
        'template = "Здравствуйте, {Имя}! Ваш заказ готов."\n'
        "[send]\n"
        "settle = 0.5\n"
        f'send_window = "{almaty_window(-1, 2)}"\n'
        "[status]\n"
        "skip = true\n",
        encoding="utf-8",
    )
    assert main(["run", str(job)]) == EXIT_OK, capsys.readouterr().err
    log = next((tmp_path / "out").glob("crm-*.log")).read_text(encoding="utf-8")
    line = next(x for x in log.splitlines() if x.startswith("== send: "))
    argv = shlex.split(line.removeprefix("== send: "))
    assert argv[argv.index("--template") + 1] == "Здравствуйте, {Имя}! Ваш заказ готов."
    assert argv[argv.index("--settle") + 1] == "0.5"
    assert argv[argv.index("--header-row") + 1] == "3"
    assert "--send-window" in argv
    assert len(api_env.messages()) == 3
    assert not list((tmp_path / "out").glob("*.lock"))  # a clean run leaves no lock file


def test_a_bad_send_window_in_a_job_stops_it_before_anything(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    realistic.crm_export_csv(tmp_path / "crm.csv")
    job = tmp_path / "crm.toml"
    job.write_text(
        'name = "crm"\ninput = "crm.csv"\noutput = "out/r.csv"\n[send]\nsend_window = "late"\n',
        encoding="utf-8",
    )
    assert main(["run", str(job)]) == 2
    assert "'send.send_window'" in capsys.readouterr().err


# ------------------------------------------------------------ small things


def test_a_text_too_long_says_how_many_segments_it_needs(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = tmp_path / "long.csv"
    source.write_text(f"phone,text\n77012345678,{'я' * 530}\n77021112233,hi\n", encoding="utf-8")
    assert main(["validate", str(source)]) == EXIT_OK
    assert "the text needs 8 segments, more than 6" in capsys.readouterr().out


def test_reasons_that_add_up_to_more_than_the_invalid_rows_say_why(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = tmp_path / "bad.csv"
    source.write_text("phone,text\n12,\n77021112233,hi\n", encoding="utf-8")
    assert main(["validate", str(source)]) == EXIT_OK
    out = capsys.readouterr().out
    assert "invalid               1" in out
    assert "(a row can have more than one reason)" in out


def test_the_status_summary_groups_thousands_everywhere(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    result = RefreshResult(rows=4690, with_id=4690, to_ask=4690, asked=4690, calls=47, final=4690)
    result.by_status["DELIVRD"] = 4690
    print_refresh(StatusResult(result, None, tmp_path / "r.csv", 1))
    out = capsys.readouterr().out
    assert "4690" not in out
    assert "Asked about 4,690 id(s)" in out and "DELIVRD 4,690" in out


def test_an_adopted_row_was_sent_when_its_request_was_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    times = iter(["2026-11-29 09:00:00", "2026-11-29 09:00:00", "2026-11-29 09:05:00"])
    with Journal(tmp_path / "j.sqlite") as journal:
        journal.register([PlanEntry("k1", "77012345678", "hi", "sendable", "", 1)])
        monkeypatch.setattr(journal_module, "now_text", lambda: next(times))
        stamp, _ = journal.claim(["k1"])
        assert journal.adopt("k1", [(41000001, None)]) == 41000001
        row = journal.get("k1")
    assert row is not None
    assert row.sent_at == stamp == "2026-11-29 09:00:00"  # not the adoption, 5 minutes later


def test_a_resumed_send_bar_counts_only_this_runs_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    class Screen(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stderr", Screen())
    observer = TerminalObserver(argparse.Namespace(quiet=False))
    with observer.sending(lambda: None):
        bar = observer._bar
        assert isinstance(bar, tqdm.tqdm) and not bar.disable
        observer.sent(SendProgress(done=1296, total=5000, sent=1296, failed=0, unknown=0, rate=0))
        observer.sent(SendProgress(done=1300, total=5000, sent=1300, failed=0, unknown=0, rate=0))
        facts = bar.format_dict
    assert facts["n"] - facts["initial"] == 4  # the 1,296 earlier rows are not this run's
