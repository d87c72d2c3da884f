"""`mobizon-batch run JOB.toml` and `mobizon-batch demo`, end to end over loopback HTTP."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import date
from pathlib import Path

import pytest
from openpyxl import load_workbook

from mobizon_batch.cli import main
from mobizon_batch.cli.jobs import command_line
from mobizon_batch.emulator import MobizonEmulator
from mobizon_batch.jobs import job_lock, load_job
from mobizon_batch.runs.status import StatusOptions
from mobizon_batch.samples import write_samples
from mobizon_batch.table import read_table
from tests.helpers import TEST_KEY, free_port, stop

REPO = Path(__file__).resolve().parent.parent
TODAY = date.today().isoformat()


def write_list(path: Path, count: int) -> list[str]:
    phones = [f"7701{n:07d}" for n in range(count)]
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Телефон", "Имя"])
        writer.writerows([phone, f"Клиент {phone[-3:]}"] for phone in phones)
        writer.writerow(["12", "Ошибка"])  # one invalid row: counted, not a failure
    return phones


def write_job(folder: Path, extra: str = "") -> Path:
    job = folder / "nightly.toml"
    job.write_text(
        'name = "nightly"\n'
        'input = "incoming/list.csv"\n'
        'output = "out/{job}-{date}.csv"\n'
        'report = "out/{job}-{date}-report.xlsx"\n'
        "[columns]\n"
        'template = "Здравствуйте, {Имя}! Ваша скидка ждёт вас."\n'
        "[send]\n"
        "rate = 200\n"
        "workers = 4\n"
        "[status]\n"
        'wait = "1m"\n'
        'interval = "1s"\n' + extra,
        encoding="utf-8",
    )
    return job


@pytest.fixture
def job_folder(tmp_path: Path) -> Path:
    (tmp_path / "incoming").mkdir()
    return tmp_path


def test_a_job_sends_follows_statuses_reports_and_summarises(
    api_env: MobizonEmulator, job_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    phones = write_list(job_folder / "incoming" / "list.csv", 30)
    job = write_job(job_folder)
    summary_path = job_folder / "summary.json"
    assert main(["run", str(job), "--summary", str(summary_path)]) == 0
    out_dir = job_folder / "out"
    results = out_dir / f"nightly-{TODAY}.csv"
    frame = read_table(results).frame
    assert Counter(frame["send_status"]) == {"sent": 30, "invalid": 1}
    assert set(frame["status_final"][frame["send_status"] == "sent"]) == {"true"}
    assert Counter(m.to for m in api_env.messages()) == Counter(phones)
    assert api_env.messages()[0].text.startswith("Здравствуйте, Клиент ")
    assert load_workbook(out_dir / f"nightly-{TODAY}-report.xlsx").sheetnames[0] == "Summary"

    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    assert summary["job"] == "nightly" and summary["exit_code"] == 0
    assert summary["send_status"]["sent"] == 30 and summary["send_status"]["invalid"] == 1
    assert summary["send_status"]["failed"] == 0 and summary["send_status"]["unknown"] == 0
    assert sum(summary["delivery_status"].values()) == 30
    assert summary["segments"]["estimated"] == 30
    assert [s["step"] for s in summary["steps"]] == ["send", "status", "report"]
    assert summary["paths"]["output"] == str(results)
    assert summary["started_at"] <= summary["finished_at"]

    log = (out_dir / f"nightly-{TODAY}.log").read_text(encoding="utf-8")
    assert "=== job nightly" in log and "Sent 30 messages" in log and "Wrote" in log
    assert "\r" not in log and TEST_KEY not in log
    assert "Sent 30 messages" in capsys.readouterr().out  # and the screen saw it too


def test_quiet_prints_nothing_on_success_and_one_line_on_failure(
    api_env: MobizonEmulator, job_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_list(job_folder / "incoming" / "list.csv", 3)
    job = write_job(job_folder)
    assert main(["run", str(job), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    api_env.configure(api_key="another-key-000000000000000000000000000")
    assert main(["run", str(job), "--quiet"]) == 5
    err = capsys.readouterr().err
    assert "exit code 5" in err and ".log" in err


def test_a_status_job_refreshes_an_existing_results_file(
    api_env: MobizonEmulator, job_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_list(job_folder / "incoming" / "list.csv", 5)
    results = job_folder / "results.csv"
    assert (
        main(
            [
                "send",
                str(job_folder / "incoming" / "list.csv"),
                "-o",
                str(results),
                "-q",
                "--template",
                "Hi {Имя}",
            ]
        )
        == 0
    )
    job = job_folder / "morning.toml"
    job.write_text(
        'name = "morning"\noutput = "results.csv"\nreport = "report.xlsx"\n'
        '[status]\nwait = "1m"\ninterval = "1s"\n',
        encoding="utf-8",
    )
    api_env.reset_calls()
    assert main(["run", str(job)]) == 0
    assert next(c.method for c in api_env.calls()) == "message/getsmsstatus"
    assert all(c.method != "message/sendsmsmessage" for c in api_env.calls())
    assert set(read_table(results).frame["status_final"][:5]) == {"true"}
    assert (job_folder / "report.xlsx").exists()


def test_a_job_killed_mid_send_resumes_the_same_day(job_folder: Path) -> None:
    phones = write_list(job_folder / "incoming" / "list.csv", 200)
    job = write_job(job_folder)
    job.write_text(
        job.read_text(encoding="utf-8").replace("rate = 200", "rate = 60"), encoding="utf-8"
    )
    with MobizonEmulator(api_key=TEST_KEY, latency=0.01, status_step=0.05) as emulator:
        env = {**os.environ, "MOBIZON_API_KEY": TEST_KEY, "MOBIZON_API_URL": emulator.url}
        command = [sys.executable, "-m", "mobizon_batch", "run", str(job), "--quiet"]
        process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while len(emulator.messages()) < 20 and time.monotonic() < deadline:
            time.sleep(0.02)  # until the job is well into its send
        stop(process, signal.SIGKILL)
        partly = len(emulator.messages())
        again = subprocess.run(
            [*command[:-1], "--summary", str(job_folder / "s.json")],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert again.returncode == 0, again.stderr
        assert "took over the lock" in again.stdout + again.stderr
        messages = emulator.messages()
    assert 0 < partly < 200
    assert Counter(m.to for m in messages) == Counter(phones)
    assert json.loads((job_folder / "s.json").read_text())["send_status"]["sent"] == 200


def test_a_job_already_running_is_refused(
    api_env: MobizonEmulator, job_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_list(job_folder / "incoming" / "list.csv", 3)
    job = write_job(job_folder)
    (job_folder / "out").mkdir()
    lock = load_job(job).lock_path
    with job_lock(lock):
        assert main(["run", str(job)]) == 2
    assert "already running" in capsys.readouterr().err
    assert api_env.calls() == []


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("speed = 5\n", "unknown key 'status.speed'"),
        ("[send]\n", "not valid TOML"),
        ("[extra]\nx = 1\n", "unknown key 'extra'"),
    ],
)
def test_bad_job_files_exit_2_naming_key_and_file(
    api_env: MobizonEmulator,
    job_folder: Path,
    capsys: pytest.CaptureFixture[str],
    extra: str,
    message: str,
) -> None:
    write_list(job_folder / "incoming" / "list.csv", 3)
    job = write_job(job_folder, extra)
    summary = job_folder / "summary.json"
    assert main(["run", str(job), "--summary", str(summary)]) == 2
    err = capsys.readouterr().err
    assert message in err and str(job) in err and "Traceback" not in err
    facts = json.loads(summary.read_text(encoding="utf-8"))
    assert facts["exit_code"] == 2 and message in facts["error"]
    assert api_env.calls() == []


def test_a_job_with_a_wrong_type_or_missing_input(
    api_env: MobizonEmulator, job_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    job = write_job(job_folder)  # incoming/list.csv was never written
    assert main(["run", str(job)]) == 2
    assert "'input' names" in capsys.readouterr().err
    write_list(job_folder / "incoming" / "list.csv", 3)
    job.write_text(
        job.read_text(encoding="utf-8").replace("rate = 200", 'rate = "fast"'), encoding="utf-8"
    )
    assert main(["run", str(job)]) == 2
    assert "'send.rate' must be" in capsys.readouterr().err


def test_the_example_job_files_are_valid() -> None:
    for path in sorted((REPO / "jobs").glob("*.toml")):
        job = load_job(path)
        assert job.output.name.endswith(".xlsx")
        if job.input is not None:
            assert job.input.exists() and job.send["optout"].exists()


# ---------------------------------------------------------------------- demo


def test_demo_runs_the_whole_flow_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("MOBIZON_API_KEY", raising=False)
    monkeypatch.delenv("MOBIZON_API_URL", raising=False)
    out = tmp_path / "demo"
    started = time.monotonic()
    assert main(["demo", "--out", str(out)]) == 0
    assert time.monotonic() - started < 60
    text = capsys.readouterr().out
    assert "Demo done" in text and str(out / "report.xlsx") in text
    frame = read_table(out / "results.xlsx").frame
    assert Counter(frame["send_status"]) == {
        "sent": 10,
        "invalid": 3,
        "opted_out": 2,
        "duplicate": 1,
    }
    sent = frame[frame["send_status"] == "sent"]
    assert sent["message_id"].str.isdigit().all()
    # a boolean in the workbook, TRUE as Excel shows it
    assert {value.lower() for value in sent["status_final"]} == {"true"}
    book = load_workbook(out / "report.xlsx")
    assert book.sheetnames == ["Summary", "Messages", "Problems"]
    assert os.environ.get("MOBIZON_API_KEY") is None  # the demo's own key did not leak out
    # A second demo in the same folder starts afresh and succeeds again.
    assert main(["demo", "--out", str(out)]) == 0


def test_sample_data_folder_matches_the_built_in_samples(tmp_path: Path) -> None:
    fresh = write_samples(tmp_path)
    for name in ("csv", "cp1251", "optout"):
        assert (REPO / "sample_data" / fresh[name].name).read_bytes() == fresh[name].read_bytes()
    committed = load_workbook(REPO / "sample_data" / "recipients.xlsx").active
    built = load_workbook(fresh["xlsx"]).active
    assert committed is not None and built is not None
    assert list(committed.values) == list(built.values)
    assert isinstance(list(built.values)[1][0], int)  # phones stored as numbers


def test_demo_never_touches_a_folder_it_did_not_make(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "recipients.csv").write_text("my own list\n", encoding="utf-8")
    assert main(["demo", "--out", str(work)]) == 2
    assert "did not make" in capsys.readouterr().err
    assert (work / "recipients.csv").read_text(encoding="utf-8") == "my own list\n"


def test_the_environment_url_beats_the_job_files(
    api_env: MobizonEmulator, job_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Documented precedence: flag > MOBIZON_API_URL > the job's api_url > default.
    # A job file pointing at a host that does not answer must not win over the
    # environment, which points at the emulator here.
    phones = write_list(job_folder / "incoming" / "list.csv", 4)
    job = write_job(job_folder)
    text = job.read_text(encoding="utf-8")
    job.write_text(f'api_url = "http://127.0.0.1:{free_port()}"\n' + text, encoding="utf-8")
    assert main(["run", str(job)]) == 0
    assert Counter(m.to for m in api_env.messages()) == Counter(phones)
    assert "Sent 4 messages" in capsys.readouterr().out


def test_the_job_files_url_is_used_when_the_environment_has_none(
    api_env: MobizonEmulator, job_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MOBIZON_API_URL")
    phones = write_list(job_folder / "incoming" / "list.csv", 3)
    job = write_job(job_folder)
    text = job.read_text(encoding="utf-8")
    job.write_text(f'api_url = "{api_env.url}"\n' + text, encoding="utf-8")
    assert main(["run", str(job)]) == 0
    assert Counter(m.to for m in api_env.messages()) == Counter(phones)


def test_a_job_value_out_of_bounds_stops_it_before_anything_is_sent(
    api_env: MobizonEmulator, job_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Job values no longer pass through the command line's parser: the same
    # bounds must hold for them, before anything is sent.
    write_list(job_folder / "incoming" / "list.csv", 3)
    job = write_job(job_folder)
    job.write_text(
        job.read_text(encoding="utf-8").replace("workers = 4", "workers = 4\nvalidity = 30"),
        encoding="utf-8",
    )
    assert main(["run", str(job)]) == 2
    err = capsys.readouterr().err
    assert "'send.validity'" in err and "60 to 1440 minutes" in err
    assert api_env.calls() == []


def test_run_job_from_python_returns_each_steps_result(
    api_env: MobizonEmulator, job_folder: Path
) -> None:
    from mobizon_batch import run_job
    from mobizon_batch.runs import ReportResult, SendListResult, StatusResult

    write_list(job_folder / "incoming" / "list.csv", 5)
    result = run_job(load_job(write_job(job_folder)))
    sent, status, report = (step.result for step in result.steps)
    assert isinstance(sent, SendListResult) and sent.summary is not None
    assert sent.summary.counts["sent"] == 5 and sent.summary.counts["invalid"] == 1
    assert isinstance(status, StatusResult) and status.all_final
    assert isinstance(report, ReportResult) and report.summary.sent == 5
    assert result.figures is not None and result.figures.by_send_status["sent"] == 5
    assert not any(step.stops_job for step in result.steps)


def test_the_status_step_line_names_the_event_store() -> None:
    # The line a job logs for a step is the command that does the same: with the
    # store left out, running it again would ask GetSMSStatus about every row.
    options = StatusOptions("results.csv", wait=7200.0, events="events.sqlite")

    assert command_line("status", options) == [
        "status",
        "results.csv",
        "--wait",
        "7200s",
        "--events",
        "events.sqlite",
    ]
