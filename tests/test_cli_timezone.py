"""--deferred-to is checked on the account's clock, not this machine's (TZ set in the test).

Mobizon reads ``params[deferredToTs]`` in the account's time zone.  Here the
machine runs in one zone (``TZ``) and the emulator keeps the account in
another (its ``timezone`` knob), so a check against the machine's clock would
let through a time the API refuses for every row, or refuse a valid one.
"""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest

from mobizon_batch.cli import main
from mobizon_batch.client import MobizonClient
from mobizon_batch.emulator import MobizonEmulator
from mobizon_batch.registry import remember_offset
from tests.helpers import TEST_KEY

SEND = "message/sendsmsmessage"


@pytest.fixture
def machine_zone() -> Iterator[Callable[[str], None]]:
    """Set this process's local zone (``TZ``) for one test, and put it back after."""
    before = os.environ.get("TZ")

    def set_zone(name: str) -> None:
        os.environ["TZ"] = name
        time.tzset()

    yield set_zone
    if before is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = before
    time.tzset()


def account(
    monkeypatch: pytest.MonkeyPatch, zone: str, *, status_step: float = 2.0
) -> MobizonEmulator:
    emulator = MobizonEmulator(api_key=TEST_KEY, timezone=zone, status_step=status_step)
    emulator.start()
    monkeypatch.setenv("MOBIZON_API_KEY", TEST_KEY)
    monkeypatch.setenv("MOBIZON_API_URL", emulator.url)
    return emulator


def wall_time(zone: str, ahead: timedelta) -> str:
    return (datetime.now(ZoneInfo(zone)) + ahead).strftime("%Y-%m-%d %H:%M:%S")


def write_list(path: Path, count: int = 3) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["phone", "text"])
        for n in range(count):
            writer.writerow([f"7701{n:07d}", f"Reminder {n}"])
    return path


def send(tmp_path: Path, *flags: str) -> int:
    source = write_list(tmp_path / "list.csv")
    return main(["send", str(source), "-o", str(tmp_path / "out.csv"), *flags])


def test_a_time_valid_on_the_account_clock_is_sent(
    machine_zone: Callable[[str], None],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    machine_zone("UTC")
    emulator = account(monkeypatch, "Asia/Tashkent")  # UTC+5
    try:
        deferred = wall_time("Asia/Tashkent", timedelta(hours=2))
        assert send(tmp_path, "--deferred-to", deferred, "--timezone", "Asia/Tashkent") == 0
        messages = emulator.messages()
    finally:
        emulator.stop()
    assert len(messages) == 3 and all(m.deferred_to for m in messages)
    out = capsys.readouterr().out
    assert "Asia/Tashkent (UTC+05:00, from --timezone)" in out


def test_a_time_only_the_machine_thinks_valid_is_refused_before_sending(
    machine_zone: Callable[[str], None],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    machine_zone("UTC")
    emulator = account(monkeypatch, "Asia/Tashkent")
    try:
        # Two hours ahead here is three hours ago for the account: the API would
        # refuse every row.
        deferred = wall_time("UTC", timedelta(hours=2))
        assert send(tmp_path, "--deferred-to", deferred, "--timezone", "Asia/Tashkent") == 2
        sends = emulator.calls(SEND)
    finally:
        emulator.stop()
    assert sends == []
    err = capsys.readouterr().err
    assert "in the account's time zone, Asia/Tashkent (UTC+05:00, from --timezone)" in err
    assert "Traceback" not in err


def test_without_timezone_the_zone_is_learned_from_the_api_times(
    machine_zone: Callable[[str], None],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    machine_zone("UTC")
    emulator = account(monkeypatch, "Asia/Tashkent", status_step=0.0)
    try:
        with MobizonClient(TEST_KEY, emulator.url) as client:
            client.send_sms("77019999999", "an earlier message")  # the account is in use
        too_early = wall_time("UTC", timedelta(hours=2))
        assert send(tmp_path, "--deferred-to", too_early) == 2
        assert emulator.calls(SEND)[1:] == []
        err = capsys.readouterr().err
        assert "UTC+05:00 (learned from the API's newest timestamps" in err
        right = wall_time("Asia/Tashkent", timedelta(hours=2))
        assert send(tmp_path, "--deferred-to", right) == 0
        assert len(emulator.messages()) == 4
    finally:
        emulator.stop()


def test_an_account_west_of_the_machine_is_not_refused(
    machine_zone: Callable[[str], None],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    machine_zone("Asia/Tashkent")
    emulator = account(monkeypatch, "America/Sao_Paulo")  # UTC-3: 8 hours behind
    try:
        # 90 minutes ahead for the account is more than six hours ago here.
        deferred = wall_time("America/Sao_Paulo", timedelta(minutes=90))
        code = send(tmp_path, "--deferred-to", deferred, "--timezone", "America/Sao_Paulo")
        messages = emulator.messages()
    finally:
        emulator.stop()
    assert code == 0 and len(messages) == 3
    assert "America/Sao_Paulo (UTC-03:00, from --timezone)" in capsys.readouterr().out


def test_a_dry_run_checks_on_the_given_zone_without_calls(
    machine_zone: Callable[[str], None],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    machine_zone("UTC")
    emulator = account(monkeypatch, "Asia/Tashkent")
    try:
        deferred = wall_time("UTC", timedelta(hours=2))
        code = send(tmp_path, "--dry-run", "--deferred-to", deferred, "--timezone", "+05:00")
        calls = emulator.calls()
    finally:
        emulator.stop()
    assert code == 2 and calls == []
    assert "UTC+05:00 (from --timezone)" in capsys.readouterr().err


@pytest.mark.parametrize("zone", ["Mars/Olympus", "+15:00"])
def test_a_bad_timezone_is_one_sentence_and_exit_2(
    api_env: MobizonEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str], zone: str
) -> None:
    deferred = wall_time("UTC", timedelta(hours=3))
    assert send(tmp_path, "--deferred-to", deferred, "--timezone", zone) == 2
    err = capsys.readouterr().err
    assert f"--timezone {zone!r}" in err and "Traceback" not in err
    assert api_env.calls() == []


def test_a_job_file_gives_the_zone_as_timezone(
    machine_zone: Callable[[str], None], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from mobizon_batch import run_job
    from mobizon_batch.jobs import load_job
    from mobizon_batch.runs import SendListResult

    machine_zone("UTC")
    emulator = account(monkeypatch, "Asia/Tashkent")
    write_list(tmp_path / "list.csv")
    deferred = wall_time("Asia/Tashkent", timedelta(hours=2))
    job = tmp_path / "later.toml"
    job.write_text(
        'name = "later"\ninput = "list.csv"\noutput = "out.csv"\n'
        f'[send]\ndeferred_to = "{deferred}"\ntimezone = "Asia/Tashkent"\n'
        "[status]\nskip = true\n",
        encoding="utf-8",
    )
    try:
        result = run_job(load_job(job))
        messages = emulator.messages()
    finally:
        emulator.stop()
    sent = result.steps[0].result
    assert isinstance(sent, SendListResult) and sent.summary is not None
    assert sent.summary.counts["sent"] == 3 and len(messages) == 3
    assert sent.account_zone == "Asia/Tashkent (UTC+05:00, from --timezone)"


class ShiftedClock:
    """The real time, moved by ``shift`` seconds (messages created in the past)."""

    def __init__(self) -> None:
        self.shift = 0.0

    def __call__(self) -> float:
        return time.time() + self.shift


def test_list_durations_count_back_from_the_account_clock(
    machine_zone: Callable[[str], None],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    machine_zone("UTC")
    clock = ShiftedClock()
    emulator = MobizonEmulator(api_key=TEST_KEY, timezone="Asia/Tashkent", clock=clock)
    emulator.start()
    monkeypatch.setenv("MOBIZON_API_KEY", TEST_KEY)
    monkeypatch.setenv("MOBIZON_API_URL", emulator.url)
    try:
        with MobizonClient(TEST_KEY, emulator.url) as client:
            clock.shift = -3 * 3600
            client.send_sms("77010000001", "three hours ago")
            clock.shift = 0
            client.send_sms("77010000002", "just now")
        out = tmp_path / "last-hour.csv"
        argv = ["list", "-o", str(out), "--since", "1h", "--timezone", "Asia/Tashkent", "-q"]
        assert main(argv) == 0
    finally:
        emulator.stop()
    with open(out, encoding="utf-8-sig", newline="") as handle:
        texts = [row["text"] for row in csv.DictReader(handle)]
    # On the machine's clock "1h ago" would be six hours ago for the account.
    assert texts == ["just now"]


# ----------------------------------- the lead our own earlier sends measured (registry)


def test_deferred_to_is_checked_on_the_lead_earlier_sends_measured(
    machine_zone: Callable[[str], None],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    machine_zone("Asia/Tashkent")  # the guess for a host with no country: UTC+5
    emulator = account(monkeypatch, "America/Sao_Paulo")  # UTC-3: 8 hours behind
    # What an earlier send through this host learned (a lower bound, a little short).
    remember_offset(urlsplit(emulator.url).netloc, -8 * 3600 - 2.5)
    try:
        # 90 minutes ahead for the account is more than six hours ago on the guess.
        deferred = wall_time("America/Sao_Paulo", timedelta(minutes=90))
        code = send(tmp_path, "--deferred-to", deferred)
        messages = emulator.messages()
    finally:
        emulator.stop()
    out, err = capsys.readouterr()
    assert code == 0 and len(messages) == 3, err
    assert "UTC-03:00 (learned from earlier sends through this API host)" in out


def test_a_dry_run_uses_the_measured_lead_too(
    machine_zone: Callable[[str], None],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    machine_zone("UTC")
    monkeypatch.delenv("MOBIZON_API_KEY", raising=False)
    monkeypatch.setenv("MOBIZON_API_URL", "https://api.mobizon.kz")  # the domain says UTC+5
    remember_offset("api.mobizon.kz", 2 * 3600)  # but this account's clock is UTC+2
    in_two_hours = wall_time("Europe/Kyiv", timedelta(hours=2))  # Kyiv: UTC+2 in November

    assert send(tmp_path, "--dry-run", "--deferred-to", in_two_hours) == 0
    assert "UTC+02:00 (learned from earlier sends through this API host)" in capsys.readouterr().out


def test_list_durations_count_back_from_the_measured_lead(
    machine_zone: Callable[[str], None], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    machine_zone("UTC")
    clock = ShiftedClock()
    emulator = MobizonEmulator(api_key=TEST_KEY, timezone="Asia/Tashkent", clock=clock)
    emulator.start()
    monkeypatch.setenv("MOBIZON_API_KEY", TEST_KEY)
    monkeypatch.setenv("MOBIZON_API_URL", emulator.url)
    remember_offset(urlsplit(emulator.url).netloc, 5 * 3600 - 1.5)
    try:
        with MobizonClient(TEST_KEY, emulator.url) as client:
            clock.shift = -3 * 3600
            client.send_sms("77010000001", "three hours ago")
            clock.shift = 0
            client.send_sms("77010000002", "just now")
        out = tmp_path / "last-hour.csv"
        assert main(["list", "-o", str(out), "--since", "1h", "-q"]) == 0
    finally:
        emulator.stop()
    with open(out, encoding="utf-8-sig", newline="") as handle:
        texts = [row["text"] for row in csv.DictReader(handle)]
    # On the machine's clock (UTC, no domain) "1h ago" would be six hours ago for the account.
    assert texts == ["just now"]
