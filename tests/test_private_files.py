"""Files holding numbers or texts are created owner-only; an existing file keeps its mode.

Checked under the usual umask (022), which made every one of them readable
by all accounts before.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from mobizon_batch.cli import main
from mobizon_batch.emulator import MobizonEmulator
from mobizon_batch.jobs import job_lock
from mobizon_batch.journal import Journal, PlanEntry
from mobizon_batch.private_files import create_private, mode_to_keep, open_private_append

TODAY = date.today().isoformat()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def write_list(path: Path) -> Path:
    rows = "".join(f"7701{n:07d},Клиент {n}\n" for n in range(5))
    path.write_text("Телефон,Имя\n" + rows, encoding="utf-8")
    return path


def test_the_helpers_create_private_and_keep_what_exists(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh"
    assert create_private(fresh) and mode(fresh) == 0o600
    assert not create_private(fresh)
    shared = tmp_path / "shared"
    shared.write_text("x", encoding="utf-8")
    os.chmod(shared, 0o640)
    assert not create_private(shared) and mode(shared) == 0o640
    with open_private_append(tmp_path / "log") as log:
        log.write("line\n")
    assert mode(tmp_path / "log") == 0o600
    with open_private_append(shared) as log:
        log.write("more\n")
    assert mode(shared) == 0o640 and shared.read_text(encoding="utf-8") == "xmore\n"
    assert mode_to_keep(shared) == 0o640
    assert mode_to_keep(tmp_path / "none") is None


def test_the_journal_and_its_wal_shm_and_lock_are_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "send.journal.sqlite"
    with Journal(path) as journal:
        journal.register([PlanEntry("k1", "77010000001", "hi", "sendable")])
        created = [path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}.lock")]
        assert {p.name: mode(p) for p in created} == {p.name: 0o600 for p in created}


def test_a_job_writes_every_file_owner_only(api_env: MobizonEmulator, tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    write_list(tmp_path / "in" / "list.csv")
    job = tmp_path / "job.toml"
    job.write_text(
        'name = "nightly"\ninput = "in/list.csv"\noutput = "out/{job}.csv"\n'
        'report = "out/{job}-report.xlsx"\n[columns]\ntemplate = "Привет, {Имя}!"\n'
        "[send]\nrate = 100\n[status]\nskip = true\n",
        encoding="utf-8",
    )
    summary = tmp_path / "summary.json"
    assert main(["run", str(job), "--summary", str(summary)]) == 0
    out = tmp_path / "out"
    written = {
        "results": out / "nightly.csv",
        "report": out / "nightly-report.xlsx",
        "log": out / f"nightly-{TODAY}.log",
        "journal": out / "nightly.csv.journal.sqlite",
        "summary": summary,
    }
    assert {what: mode(path) for what, path in written.items()} == dict.fromkeys(written, 0o600)
    assert mode(tmp_path / "in" / "list.csv") == 0o644  # what it only reads is left alone
    lock = out / "again.csv.lock"  # a clean run removes its locks: look at one while held
    with job_lock(lock):
        assert mode(lock) == 0o600


def test_validate_reports_and_dry_runs_are_owner_only(tmp_path: Path) -> None:
    source = write_list(tmp_path / "list.csv")
    texts = ["--text-column", "Имя"]
    assert main(["validate", str(source), "-o", str(tmp_path / "report.csv"), *texts]) == 0
    planned = str(tmp_path / "planned.xlsx")
    assert main(["send", str(source), "-o", planned, "--dry-run", *texts]) == 0
    assert mode(tmp_path / "report.csv") == 0o600
    assert mode(tmp_path / "planned.xlsx") == 0o600


def test_an_existing_results_file_keeps_its_mode(api_env: MobizonEmulator, tmp_path: Path) -> None:
    source = write_list(tmp_path / "list.csv")
    results = tmp_path / "results.csv"
    results.write_text("", encoding="utf-8")
    os.chmod(results, 0o640)  # the operator shares results with a group on purpose
    command = ["send", str(source), "-o", str(results), "--text-column", "Имя", "-q"]
    assert main(command) == 0
    assert mode(results) == 0o640
    assert results.read_text(encoding="utf-8-sig").startswith("Телефон,Имя,recipient")
