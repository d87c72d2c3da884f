"""The whole loop offline: send → Mobizon (the emulator) pushes reports → receiver → status.

Nothing here is simulated but the SMS network: the real ``send`` and
``status`` commands, the emulator as an HTTP server delivering signed webhooks
(with redeliveries of the same eventId), and the receiver on real waitress.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from mobizon_batch.cli import main
from mobizon_batch.emulator import MobizonEmulator
from mobizon_batch.runs.webhook import Receiver
from mobizon_batch.webhook_store import EventStore
from tests.helpers import STATUS_CALL, TEST_KEY, WEBHOOK_SECRET, wait_for

ROWS = 300


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))


def test_pushed_reports_make_every_row_final_without_a_status_call(
    receiver: Receiver,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    listing = tmp_path / "list.csv"
    listing.write_text(
        "phone,name\n" + "".join(f"+7701{i:07d},n{i}\n" for i in range(ROWS)), encoding="utf-8"
    )
    results = tmp_path / "results.csv"
    with MobizonEmulator(
        api_key=TEST_KEY,
        status_step=0.01,
        webhook_url=receiver.url,
        webhook_secret=WEBHOOK_SECRET,
        webhook_redeliveries=1,
        webhook_retry_pause=0.01,
        webhook_numbers_as_text=True,
    ) as emu:
        monkeypatch.setenv("MOBIZON_API_KEY", TEST_KEY)
        monkeypatch.setenv("MOBIZON_API_URL", emu.url)
        assert (
            main(
                [
                    "send",
                    str(listing),
                    "-o",
                    str(results),
                    "--template",
                    "Hi {name}",
                    "--rate",
                    "0",
                    "-q",
                ]
            )
            == 0
        )
        wait_for(lambda: emu.webhooks_outstanding() == 0, "every report delivered", 120)
        deliveries = emu.webhook_deliveries()
        finals = {m.id: m.final_status for m in emu.messages()}
        capsys.readouterr()
        emu.reset_calls()

        code = main(["status", str(results), "--events", str(receiver.options.store)])

        status_calls = emu.calls(STATUS_CALL)
    assert code == 0
    assert len(status_calls) == 0
    # Each of the 300 events went twice (same eventId, attempt 2), all accepted.
    assert len(deliveries) == 2 * ROWS and {d.status for d in deliveries} == {200}
    assert sorted(d.attempt for d in deliveries) == [1] * ROWS + [2] * ROWS
    with EventStore(receiver.options.store, create=False) as store:
        counts = store.counts()
    assert (counts.events, counts.deliveries) == (ROWS, 2 * ROWS)
    rows = read_rows(results)
    assert len(rows) == ROWS
    assert all(row["status_final"] == "true" for row in rows)
    assert {int(row["message_id"]): row["status"] for row in rows} == finals
    out = capsys.readouterr().out
    assert f"From webhook events: {ROWS} row(s) made final, no call spent." in out


def test_a_status_job_reads_the_events_named_in_its_file(
    receiver: Receiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    listing = tmp_path / "list.csv"
    listing.write_text("phone\n" + "".join(f"+7701{i:07d}\n" for i in range(20)), "utf-8")
    store = receiver.options.store
    job = tmp_path / "morning.toml"
    job.write_text(
        f'name = "morning"\noutput = "results.csv"\n[status]\nevents = "{store.name}"\n',
        encoding="utf-8",
    )
    with MobizonEmulator(
        api_key=TEST_KEY,
        status_step=0.01,
        webhook_url=receiver.url,
        webhook_secret=WEBHOOK_SECRET,
    ) as emu:
        monkeypatch.setenv("MOBIZON_API_KEY", TEST_KEY)
        monkeypatch.setenv("MOBIZON_API_URL", emu.url)
        send = ["send", str(listing), "-o", str(tmp_path / "results.csv"), "--template", "Hi"]
        assert main([*send, "--rate", "0", "-q"]) == 0
        wait_for(lambda: emu.webhooks_outstanding() == 0, "every report delivered", 120)
        emu.reset_calls()

        assert main(["run", str(job), "--quiet"]) == 0

        assert emu.calls(STATUS_CALL) == []
    assert {row["status_final"] for row in read_rows(tmp_path / "results.csv")} == {"true"}


def test_a_job_naming_a_missing_store_stops_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    job = tmp_path / "morning.toml"
    job.write_text(
        'name = "morning"\noutput = "results.csv"\n[status]\nevents = "nope.sqlite"\n',
        encoding="utf-8",
    )

    assert main(["run", str(job)]) == 2
    err = capsys.readouterr().err
    assert "'status.events'" in err and "nope.sqlite" in err and "does not exist" in err
