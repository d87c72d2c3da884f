"""A disk that fills up while sending: one sentence, exit code 7, and a rerun that finishes.

The command runs in a child process whose disk "fills up" at a chosen
moment (``tests/fixtures/full_disk.py``: SQLite's own error for the
journal, ENOSPC for files).  The promise checked is the README's: nothing
is lost, nothing is sent twice, the same command run again completes.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

from mobizon_batch.cli.exits import EXIT_STORAGE
from mobizon_batch.emulator import MobizonEmulator
from tests.helpers import (
    TEST_KEY,
    numbers,
    read_results,
    send_command,
    subprocess_env,
    write_list,
)

REPO = Path(__file__).resolve().parent.parent


def on_a_filling_disk(
    command: list[str], env: dict[str, str], **full: str
) -> subprocess.CompletedProcess[str]:
    """``command`` (a ``python -m mobizon_batch`` line) with the disk filling as ``full`` says."""
    patched = [sys.executable, "-m", "tests.fixtures.full_disk", *command[3:]]
    return subprocess.run(
        patched, env={**env, **full}, cwd=REPO, capture_output=True, text=True, timeout=180
    )


def test_the_journal_disk_fills_up_mid_send_then_the_rerun_finishes(tmp_path: Path) -> None:
    phones = numbers(150)
    source = write_list(tmp_path / "list.csv", phones)
    results = tmp_path / "results.csv"
    with MobizonEmulator(api_key=TEST_KEY, latency=0.01) as emulator:
        env = subprocess_env(emulator)
        command = send_command(
            source, results, "--rate", "300", "--workers", "4", "--settle", "0.1"
        )
        stopped = on_a_filling_disk(command, env, FULL_AFTER_COMMITS="12")
        sent_before = len(emulator.messages())
        rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
        messages = emulator.messages()
    err = stopped.stderr
    assert stopped.returncode == EXIT_STORAGE, err
    assert "Traceback" not in err and "internal error" not in err
    assert "sending stopped: cannot write the journal" in err and "the disk is full" in err
    assert "The journal is intact" in err and "run the same command again" in err
    assert 0 < sent_before < len(phones)
    assert rerun.returncode == 0, rerun.stderr
    assert Counter(m.to for m in messages) == Counter(phones)  # none twice, none missing
    rows = read_results(results)
    assert [r["recipient"] for r in rows] == phones
    assert {r["send_status"] for r in rows} == {"sent"}


def test_a_results_file_the_disk_has_no_room_for_is_written_by_the_rerun(tmp_path: Path) -> None:
    phones = numbers(40)
    source = write_list(tmp_path / "list.csv", phones)
    results = tmp_path / "results.csv"
    with MobizonEmulator(api_key=TEST_KEY) as emulator:
        env = subprocess_env(emulator)
        command = send_command(source, results, "--rate", "300")
        stopped = on_a_filling_disk(command, env, FULL_FILES="1")
        written_then = results.exists()
        rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        messages = emulator.messages()
    err = stopped.stderr
    assert stopped.returncode == EXIT_STORAGE, err
    assert f"cannot write {results}: the disk is full" in err
    assert "free space on that disk and run the same command again" in err
    assert "Traceback" not in err and not written_then
    assert rerun.returncode == 0, rerun.stderr
    assert Counter(m.to for m in messages) == Counter(phones)
    assert {r["send_status"] for r in read_results(results)} == {"sent"}
