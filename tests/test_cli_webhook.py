"""`mobizon-batch webhook` as a real process: start, refuse, log, stop on SIGTERM; the export."""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mobizon_batch.cli import main
from mobizon_batch.cli.webhook import _event_log
from mobizon_batch.webhook_store import UNSUBSCRIBE, Event, EventStore
from tests.helpers import WEBHOOK_SECRET, post, stop, webhook_event


def webhook_process(tmp_path: Path, *args: str, secret: str | None) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "MOBIZON_WEBHOOK_SECRET"}
    if secret is not None:
        env["MOBIZON_WEBHOOK_SECRET"] = secret
    command = [sys.executable, "-m", "mobizon_batch", "webhook", *args]
    return subprocess.Popen(
        command,
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    process = webhook_process(
        tmp_path,
        "--listen",
        "127.0.0.1:0",
        "--store",
        "events.sqlite",
        "--path",
        "/mobizon",
        secret=WEBHOOK_SECRET,
    )
    assert process.stderr is not None
    first = process.stderr.readline()
    found = re.search(r"http://\S+", first)
    assert found, first
    try:
        yield process, found.group(0)
    finally:
        stop(process, signal.SIGKILL)


def test_the_receiver_logs_each_event_and_stops_cleanly_on_sigterm(
    tmp_path: Path, served: tuple[subprocess.Popen[str], str]
) -> None:
    process, url = served
    good = webhook_event(26, message_id=41000001)
    assert post(url, good)[0] == 200
    assert post(url, webhook_event(26, attempt=2, message_id=41000001))[0] == 200
    assert post(url, webhook_event(27, secret="guess"))[0] == 403

    out, err = stop(process, signal.SIGTERM)

    assert process.returncode == 0
    lines = err.splitlines()
    assert sum("event 26 sms-delivery-report attempt 1: stored" in line for line in lines) == 1
    assert sum("event 26 sms-delivery-report attempt 2: already stored" in line for line in lines)
    assert any("signature does not match" in line for line in lines)
    assert "Stopped (SIGTERM). The store holds 1 event(s)" in err
    assert "Traceback" not in err
    for text in (out, err):
        assert WEBHOOK_SECRET not in text and good["sign"] not in text
    with EventStore(tmp_path / "events.sqlite", create=False) as store:
        assert store.reports_for([41000001])[41000001].status == "DELIVRD"
    assert not Path(f"{tmp_path / 'events.sqlite'}-wal").exists()  # closed and checkpointed


def test_no_secret_refuses_to_start(tmp_path: Path) -> None:
    process = webhook_process(
        tmp_path, "--listen", "127.0.0.1:0", "--store", "events.sqlite", secret=None
    )
    _out, err = stop(process, None, timeout=60)  # it exits by itself

    assert process.returncode == 2
    assert "MOBIZON_WEBHOOK_SECRET" in err and "--insecure-no-signature" in err
    assert "Traceback" not in err
    assert not (tmp_path / "events.sqlite").exists()


def test_unsigned_events_need_the_explicit_flag(tmp_path: Path) -> None:
    process = webhook_process(
        tmp_path,
        "--listen",
        "127.0.0.1:0",
        "--store",
        "events.sqlite",
        "--insecure-no-signature",
        secret=None,
    )
    assert process.stderr is not None
    first = process.stderr.readline()
    url = re.search(r"http://\S+", first)
    try:
        assert url and "UNSIGNED" in first
        assert post(url.group(0), webhook_event(30, secret=None))[0] == 200
    finally:
        stop(process)
    assert process.returncode == 0


@pytest.mark.parametrize(
    "args",
    [
        ["--listen", "localhost", "--store", "s.sqlite"],
        ["--listen", "127.0.0.1:99999", "--store", "s.sqlite"],
        ["--store", "s.sqlite"],
        ["--listen", "127.0.0.1:0", "--export-optout", "o.txt", "--store", "s.sqlite"],
        ["--listen", "127.0.0.1:0", "--store", "s.sqlite", "--threads", "0"],
    ],
)
def test_usage_errors_exit_2(
    args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MOBIZON_WEBHOOK_SECRET", WEBHOOK_SECRET)

    assert main(["webhook", *args]) == 2
    assert not (tmp_path / "s.sqlite").exists()


def test_export_optout_adds_the_unsubscribed_numbers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "events.sqlite"
    with EventStore(store) as events:
        data = {"items": [{"fieldType": "MOBILE", "value": "77011234567"}]}
        events.record(Event("45", UNSUBSCRIBE, "2026-01-15 17:33:47", 1, data))
    optout = tmp_path / "optout.txt"

    code = main(["webhook", "--store", str(store), "--export-optout", str(optout)])

    assert code == 0
    assert optout.read_text() == "+77011234567\n"
    assert f"Added 1 number(s) to {optout}" in capsys.readouterr().out


def test_export_from_a_missing_store_is_a_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["webhook", "--store", str(tmp_path / "no.sqlite"), "--export-optout", "o.txt"])

    assert code == 3
    err = capsys.readouterr().err
    assert "event store not found" in err and "Traceback" not in err


def test_a_busy_port_leaves_no_new_store_and_an_old_one_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MOBIZON_WEBHOOK_SECRET", WEBHOOK_SECRET)
    kept = tmp_path / "kept.sqlite"
    with EventStore(kept) as events:
        events.record(Event("45", UNSUBSCRIBE, "2026-01-15 17:33:47", 1, {"items": []}))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = f"127.0.0.1:{taken.getsockname()[1]}"

        new_code = main(["webhook", "--listen", busy, "--store", "new.sqlite"])
        old_code = main(["webhook", "--listen", busy, "--store", str(kept)])

    assert (new_code, old_code) == (2, 2)
    assert "cannot listen on" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.sqlite"]
    with EventStore(kept, create=False) as events:
        assert events.counts().events == 1


def test_the_secret_is_taken_out_of_waitress_queue_lines_too(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    with _event_log(WEBHOOK_SECRET):
        logging.getLogger("waitress").warning("main %s", WEBHOOK_SECRET)
        logging.getLogger("waitress.queue").warning("queue %s", WEBHOOK_SECRET)

    assert [r.name for r in caplog.records] == ["waitress", "waitress.queue"]
    assert WEBHOOK_SECRET not in caplog.text
