"""Job files are checked strictly before anything runs; the job lock."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest

from mobizon_batch.errors import ConfigError
from mobizon_batch.jobs import job_lock, load_job
from tests.helpers import stop

TODAY = date(2026, 11, 28)


def write_job(folder: Path, text: str) -> Path:
    (folder / "incoming").mkdir(exist_ok=True)
    (folder / "incoming" / "promo.csv").write_text("phone,text\n77012345678,hi\n", encoding="utf-8")
    (folder / "optout.txt").write_text("77000000000\n", encoding="utf-8")
    path = folder / "job.toml"
    path.write_text(text, encoding="utf-8")
    return path


GOOD = """
name = "nightly-promo"
input = "incoming/promo.csv"
output = "out/{job}-{date}.xlsx"
report = "out/{job}-{date}-report.xlsx"
[columns]
phone = "Телефон"
template = "Здравствуйте, {name}!"
[send]
rate = 20
workers = 4
sender = "Shop"
allow_duplicates = false
optout = "optout.txt"
[status]
wait = "2h"
interval = "5m"
"""


def test_a_good_job_resolves_paths_and_placeholders(tmp_path: Path) -> None:
    job = load_job(write_job(tmp_path, GOOD), TODAY)
    assert job.name == "nightly-promo" and job.sends
    assert job.input == tmp_path / "incoming" / "promo.csv"
    assert job.output == tmp_path / "out" / "nightly-promo-2026-11-28.xlsx"
    assert job.report == tmp_path / "out" / "nightly-promo-2026-11-28-report.xlsx"
    assert job.log == tmp_path / "out" / "nightly-promo-2026-11-28.log"
    assert job.send["optout"] == tmp_path / "optout.txt"
    assert job.send["rate"] == 20 and job.status == {"wait": "2h", "interval": "5m"}
    assert job.columns == {"phone": "Телефон", "template": "Здравствуйте, {name}!"}


def test_a_status_job_needs_no_input(tmp_path: Path) -> None:
    text = (
        'name = "morning"\noutput = "out/nightly-promo-{yesterday}.xlsx"\n[status]\nwait = "10m"\n'
    )
    job = load_job(write_job(tmp_path, text), TODAY)
    assert not job.sends
    assert job.output.name == "nightly-promo-2026-11-27.xlsx"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('name = "x"\noutput = "o.csv"\ncolour = "red"\n', "unknown key 'colour'"),
        (
            'name = "x"\noutput = "o.csv"\ninput = "incoming/promo.csv"\n[send]\nrat = 5\n',
            "unknown key 'send.rat'",
        ),
        (
            'name = "x"\noutput = "o.csv"\ninput = "incoming/promo.csv"\n[send]\nrate = "fast"\n',
            "'send.rate' must be",
        ),
        (
            'name = "x"\noutput = "o.csv"\ninput = "incoming/promo.csv"\n[send]\nworkers = true\n',
            "'send.workers' must be a whole number",
        ),
        (
            'name = "x"\noutput = "o.csv"\ninput = "incoming/promo.csv"\n[send]\nallow_duplicates = 1\n',
            "true or false",
        ),
        ('name = "x"\noutput = "o.csv"\ninput = "missing.csv"\n', "'input' names"),
        ('output = "o.csv"\n', "'name' is required"),
        ('name = "x"\n', "'output' is required"),
        ('name = "x"\noutput = "o-{when}.csv"\n', "placeholder other than"),
        ('name = "x"\noutput = "o-{job.upper}.csv"\n', "placeholder other than"),
        ('name = "x"\noutput = "o-{date[0]}.csv"\n', "placeholder other than"),
        ('name = "x"\noutput = "o-{job!r}.csv"\n', "placeholder other than"),
        ('name = "x"\noutput = "o.pdf"\n', "'output' must name a .csv or .xlsx"),
        ('name = "x"\noutput = "o.csv"\nreport = "r.csv"\n', "'report' must name an .xlsx"),
        ('name = "x"\noutput = "o.xlsx"\nreport = "o.xlsx"\n', "name the same file"),
        ('name = "x"\noutput = "o.csv"\n[status]\nwait = "abc"\n', "'status.wait'"),
        ('name = "x"\noutput = "o.csv"\n[status]\ninterval = "5"\n', "'status.interval'"),
        ('name = "x"\noutput = "o.csv"\n[columns]\nphone = "p"\n', "need 'input'"),
        (
            'name = "x"\noutput = "o.csv"\ninput = "incoming/promo.csv"\n[send]\nresend_window = "1"\n',
            "'send.resend_window'",
        ),
        (
            'name = "x"\noutput = "o.csv"\ninput = "incoming/promo.csv"\n[send]\nallow_resend = "yes"\n',
            "true or false",
        ),
        (
            'name = "x"\noutput = "o.csv"\ninput = "incoming/promo.csv"\n[send]\noptout = "nope.txt"\n',
            "'send.optout' names",
        ),
        (
            'name = "x"\noutput = "o.csv"\ninput = "incoming/promo.csv"\n[columns]\ntext = "t"\ntemplate = "u"\n',
            "not both",
        ),
        ('name = "x"\noutput = "o.csv"\nsend = 5\n', "[send] must be a table"),
        ('name = "x"\noutput = "o.csv"\n[status\n', "not valid TOML"),
        ('name = "a/b"\noutput = "o.csv"\n', "without slashes"),
    ],
)
def test_bad_job_files_name_the_key_and_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = write_job(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_job(path, TODAY)
    assert message in str(caught.value)
    assert str(path) in str(caught.value)


def test_missing_job_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_job(tmp_path / "nope.toml")


def test_lock_refuses_a_second_holder_and_takes_over_a_dead_ones(tmp_path: Path) -> None:
    lock_path = tmp_path / "out" / "job.lock"
    with job_lock(lock_path) as first:
        assert first.took_over == ""
        with pytest.raises(ConfigError, match="already running"):
            job_lock(lock_path).__enter__()
    # A process that takes the lock and dies without releasing it.
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from mobizon_batch.jobs import job_lock; "
            f"lock = job_lock(Path({str(lock_path)!r})).__enter__(); print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(ConfigError, match=f"process {holder.pid}"):
            job_lock(lock_path).__enter__()
    finally:
        stop(holder, signal.SIGKILL)
    time.sleep(0.05)
    with job_lock(lock_path) as taken:
        assert taken.took_over == f"process {holder.pid}"


def test_a_status_job_has_a_log_of_its_own(tmp_path: Path) -> None:
    text = 'name = "morning"\noutput = "out/nightly-{yesterday}.xlsx"\n'
    job = load_job(write_job(tmp_path, text), TODAY)
    assert job.log == tmp_path / "out" / "morning-2026-11-28.log"
