"""Never twice, never lost — against an API that behaves the ways its docs allow.

Each test switches on one behaviour the Mobizon docs do not rule out (the
list lags, ids are not increasing, texts are stored normalized, the account
keeps another time zone) or repeats what a user does across runs (a second
results file, a job after midnight, two journals for one results file), runs
the real command against the emulator on loopback, and counts what recipients
would notice: no recipient gets a text twice, no row is marked sent for a
message it did not create.  Rows left ``unknown`` are allowed, but must be
counted in the summary and explained in the results file.
"""

from __future__ import annotations

import csv
import signal
import subprocess
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from mobizon_batch.cli import jobs as cli_jobs
from mobizon_batch.cli import main
from mobizon_batch.emulator import MobizonEmulator
from tests.helpers import (
    TEST_KEY,
    read_results,
    send_command,
    stop,
    subprocess_env,
    wait_for_sends,
)

SENDS = frozenset({"message/sendsmsmessage"})


def numbers(count: int, start: int = 0) -> list[str]:
    return [f"7701{n:07d}" for n in range(start, start + count)]


def write_list(path: Path, phones: list[str], text: str = "Code {n}: see you") -> Path:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Телефон", "Текст"])
        for n, phone in enumerate(phones):
            writer.writerow([phone, text.format(n=n)])
    return path


def duplicates(emulator: MobizonEmulator, before: set[int] | None = None) -> int:
    """Messages beyond the first a recipient got (among those not in ``before``)."""
    got = Counter(m.to for m in emulator.messages() if m.id not in (before or set()))
    return sum(n - 1 for n in got.values() if n > 1)


def wrongly_adopted(rows: list[dict[str, str]], emulator: MobizonEmulator, before: set[int]) -> int:
    """Rows marked sent whose message is not one this send created, or not theirs."""
    made = {str(m.id): m.to for m in emulator.messages() if m.id not in before}
    return sum(
        1
        for r in rows
        if r["send_status"] == "sent" and made.get(r["message_id"]) != r["recipient"]
    )


def check_unknown_rows_are_explained(rows: list[dict[str, str]], out: str) -> int:
    unknown = [r for r in rows if r["send_status"] == "unknown"]
    for row in unknown:
        assert "outcome unknown" in row["error"], row
    if unknown:
        assert f"{len(unknown)} unknown" in out, out
    return len(unknown)


def lossy_send(
    api_env: MobizonEmulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    text: str = "Code {n}: see you",
    rows: int = 120,
    *extra: str,
) -> tuple[int, list[dict[str, str]], str]:
    """Send ``rows`` rows with 10 % of answers lost after the message was made."""
    api_env.configure(fault_drop_after=0.1, fault_methods=SENDS)
    source = write_list(tmp_path / "list.csv", numbers(rows), text)
    results = tmp_path / "results.csv"
    code = main(["send", str(source), "-o", str(results), "--rate", "0", *extra])
    out = capsys.readouterr().out
    assert sum(1 for c in api_env.calls("message/sendsmsmessage") if c.fault) > 0
    return code, read_results(results), out


# ------------------------------------------------------------- lost answers


def test_a_lagging_message_list_causes_no_duplicates(
    api_env: MobizonEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A new message shows in Message/List only 3 s after it was made; --settle is 1 s.
    api_env.configure(list_lag=3.0)
    code, rows, out = lossy_send(
        api_env, tmp_path, capsys, "Code {n}: see you", 120, "--settle", "1"
    )
    assert duplicates(api_env) == 0
    assert wrongly_adopted(rows, api_env, set()) == 0
    unknown = check_unknown_rows_are_explained(rows, out)
    assert code == (4 if unknown else 0)
    assert Counter(r["send_status"] for r in rows)["sent"] + unknown == 120


def test_ids_that_do_not_grow_cause_no_duplicates(
    api_env: MobizonEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    api_env.configure(random_ids=True)
    code, rows, out = lossy_send(
        api_env, tmp_path, capsys, "Code {n}: see you", 150, "--settle", "0"
    )
    assert duplicates(api_env) == 0
    assert wrongly_adopted(rows, api_env, set()) == 0
    unknown = check_unknown_rows_are_explained(rows, out)
    assert code == (4 if unknown else 0)
    assert "found already sent" in out  # lost answers were adopted, not all left unknown


def test_texts_stored_with_normalized_spaces_cause_no_duplicates(
    api_env: MobizonEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    api_env.configure(normalize_whitespace=True)
    code, rows, out = lossy_send(
        api_env, tmp_path, capsys, "Code  {n}:  see  you ", 150, "--settle", "0"
    )
    assert duplicates(api_env) == 0
    assert wrongly_adopted(rows, api_env, set()) == 0
    unknown = check_unknown_rows_are_explained(rows, out)
    assert code == (4 if unknown else 0)
    assert "found already sent" in out


def test_an_account_in_another_time_zone_changes_nothing(
    api_env: MobizonEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The account's clock runs 5 h 30 min (and a few seconds) ahead of ours, ids random.
    api_env.configure(clock_offset=5.5 * 3600 + 7, random_ids=True)
    code, rows, out = lossy_send(
        api_env, tmp_path, capsys, "Code {n}: see you", 120, "--settle", "0"
    )
    assert duplicates(api_env) == 0
    assert wrongly_adopted(rows, api_env, set()) == 0
    unknown = check_unknown_rows_are_explained(rows, out)
    assert code == (4 if unknown else 0)
    assert "found already sent" in out


def test_rows_in_flight_at_a_crash_never_adopt_an_earlier_send(tmp_path: Path) -> None:
    # Sent once two hours ago (day1.csv); the same list again to day2.csv, killed
    # during its first batch while rows wait for rate slots, then run again.
    phones = numbers(60)
    text = "Your order is ready."
    source = write_list(tmp_path / "list.csv", phones, text)
    with MobizonEmulator(api_key=TEST_KEY, clock_offset=3.5 * 3600, latency=0.02) as emulator:
        env = subprocess_env(emulator)
        day1 = subprocess.run(send_command(source, tmp_path / "day1.csv", "--rate", "0"), env=env)
        assert day1.returncode == 0
        emulator.shift_messages(2 * 3600)
        earlier = {m.id for m in emulator.messages()}
        day2 = tmp_path / "day2.csv"
        command = send_command(source, day2, "--allow-resend")
        process = subprocess.Popen(
            [*command, "--rate", "2"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        wait_for_sends(emulator, len(earlier) + 1)
        stop(process, signal.SIGKILL)
        rerun = subprocess.run([*command, "--rate", "0"], env=env, capture_output=True, text=True)
        rows = read_results(day2)
        assert wrongly_adopted(rows, emulator, earlier) == 0
        assert duplicates(emulator, earlier) == 0
        unknown = [r for r in rows if r["send_status"] == "unknown"]
        assert rerun.returncode == (4 if unknown else 0), rerun.stderr
        assert all("outcome unknown" in r["error"] for r in unknown)
        today = Counter(m.to for m in emulator.messages() if m.id not in earlier)
        assert all(today[r["recipient"]] == 1 for r in rows if r["send_status"] == "sent")
        assert len(unknown) <= 16  # at most the rows in flight at the kill


# ------------------------------------------------------------- across runs


def test_the_same_list_to_a_second_results_file_sends_nothing_new(
    api_env: MobizonEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    phones = numbers(40)
    source = write_list(tmp_path / "list.csv", phones)
    assert main(["send", str(source), "-o", str(tmp_path / "day1.csv"), "--rate", "0"]) == 0
    capsys.readouterr()
    typo = tmp_path / "day1-typo.csv"
    code = main(["send", str(source), "-o", str(typo), "--rate", "0"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert len(api_env.messages()) == 40  # nothing new
    rows = read_results(typo)
    first = {r["recipient"]: r["message_id"] for r in read_results(tmp_path / "day1.csv")}
    for row in rows:
        assert row["send_status"] == "already_sent"
        assert row["message_id"] == first[row["recipient"]]  # status and report work on it
        assert "already sent this text to this number within 24h" in row["error"]
    assert "40 rows already sent" in out and "Message/List call" in out
    # With --allow-resend it sends.
    again = main(["send", str(source), "-o", str(typo), "--rate", "0", "--allow-resend"])
    assert again == 0
    assert Counter(m.to for m in api_env.messages()) == Counter({p: 2 for p in phones})
    assert {r["send_status"] for r in read_results(typo)} == {"sent"}


def test_messages_only_staged_in_an_unsent_campaign_are_not_history(
    api_env: MobizonEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    api_env.preload(5, prefix="7701", text=f"Code {0}: see you", sent=False)
    source = write_list(tmp_path / "list.csv", numbers(5))
    assert main(["send", str(source), "-o", str(tmp_path / "r.csv"), "--rate", "0"]) == 0
    assert {r["send_status"] for r in read_results(tmp_path / "r.csv")} == {"sent"}


def test_a_resend_window_lets_older_messages_go_again(
    api_env: MobizonEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_list(tmp_path / "list.csv", numbers(10))
    assert main(["send", str(source), "-o", str(tmp_path / "a.csv"), "--rate", "0"]) == 0
    api_env.shift_messages(3 * 3600)  # three hours ago
    b = tmp_path / "b.csv"
    assert main(["send", str(source), "-o", str(b), "--rate", "0", "--resend-window", "2h"]) == 0
    assert {r["send_status"] for r in read_results(b)} == {"sent"}
    c = tmp_path / "c.csv"
    assert main(["send", str(source), "-o", str(c), "--rate", "0", "--resend-window", "4h"]) == 0
    assert {r["send_status"] for r in read_results(c)} == {"already_sent"}
    assert len(api_env.messages()) == 20


def test_a_job_run_again_after_midnight_does_not_send_the_list_again(
    api_env: MobizonEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = write_list(tmp_path / "list.csv", numbers(30))
    job = tmp_path / "job.toml"
    job.write_text(
        f'name = "promo"\ninput = "{source}"\noutput = "out/{{job}}-{{date}}.csv"\n'
        f'[columns]\nphone = "Телефон"\ntext = "Текст"\n[send]\nrate = 0\n'
        f"[status]\nskip = true\n",
        encoding="utf-8",
    )
    assert main(["run", str(job)]) == 0
    write_list(source, numbers(35))  # by tomorrow the list grew by five

    class Tomorrow(datetime):
        @classmethod
        def now(cls, tz: object = None) -> Tomorrow:  # type: ignore[override]
            moment = datetime.now() + timedelta(days=1)
            return cls.fromtimestamp(moment.timestamp())

    monkeypatch.setattr(cli_jobs, "datetime", Tomorrow)
    capsys.readouterr()
    assert main(["run", str(job)]) == 0
    outputs = sorted((tmp_path / "out").glob("promo-*.csv"))
    assert len(outputs) == 2
    second = Counter(r["send_status"] for r in read_results(outputs[1]))
    assert second == Counter({"already_sent": 30, "sent": 5})
    assert Counter(m.to for m in api_env.messages()) == Counter(numbers(35))
    # allow_resend and resend_window are job keys too.
    job.write_text(
        job.read_text(encoding="utf-8").replace("rate = 0", 'rate = 0\nresend_window = "1h"\n'),
        encoding="utf-8",
    )
    assert main(["run", str(job)]) == 0


def test_one_results_file_has_one_owner_whatever_the_journal(tmp_path: Path) -> None:
    phones = numbers(200)
    source = write_list(tmp_path / "list.csv", phones)
    results = tmp_path / "results.csv"
    with MobizonEmulator(api_key=TEST_KEY, latency=0.01) as emulator:
        env = subprocess_env(emulator)
        processes = [
            subprocess.Popen(
                send_command(source, results, "--journal", str(tmp_path / f"j{n}.sqlite")),
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for n in range(2)
        ]
        try:
            outcomes = [(p.wait(timeout=120), p.communicate()[1]) for p in processes]
        finally:
            for p in processes:
                stop(p, signal.SIGKILL)
        codes = sorted(code for code, _ in outcomes)
        assert duplicates(emulator) == 0
        assert Counter(m.to for m in emulator.messages()) == Counter(phones)
    # One sent everything; the other was refused before sending
    # (or, once the first had finished, refused a results file whose journal is elsewhere).
    refused = [err for code, err in outcomes if code == 2]
    assert codes == [0, 2]
    assert all("in use" in err or "journal" in err for err in refused), refused
