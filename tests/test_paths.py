"""No file a command writes may be one it reads, or one it writes for something else.

Each case here destroyed or overwrote a file before: a job's log appended to
its own input list, a report written over the input workbook, a ``{job}``
of ``..`` writing outside its folder.  The files must come out unchanged.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import pytest

from mobizon_batch.cli import main
from mobizon_batch.errors import ConfigError
from mobizon_batch.jobs import load_job
from mobizon_batch.paths import check_distinct, same_file

TODAY = date(2026, 11, 28)
LIST = "phone,text\n77012345678,hello\n77012345679,hi\n"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "jobs").mkdir()
    (tmp_path / "in.csv").write_text(LIST, encoding="utf-8")
    return tmp_path


def job_file(folder: Path, text: str) -> Path:
    path = folder / "jobs" / "job.toml"
    path.write_text(text, encoding="utf-8")
    return path


def refused(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_job(path, TODAY)
    return str(caught.value)


def test_a_log_that_is_the_input_is_refused_and_the_list_stays_whole(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    job = job_file(
        folder, 'name = "x"\ninput = "../in.csv"\noutput = "../out/r.csv"\nlog = "../in.csv"\n'
    )
    message = refused(job)
    assert "'log'" in message and "'input'" in message and str(job) in message
    assert main(["run", str(job)]) == 2
    assert "'log'" in capsys.readouterr().err
    assert (folder / "in.csv").read_text(encoding="utf-8") == LIST


def test_a_report_that_is_the_input_workbook_is_refused(folder: Path) -> None:
    workbook = folder / "in.xlsx"
    workbook.write_bytes(b"PK\x05\x06" + b"\x00" * 18)  # stands for the marketer's workbook
    before = workbook.read_bytes()
    job = job_file(
        folder, 'name = "x"\ninput = "../in.xlsx"\noutput = "../r.csv"\nreport = "../in.xlsx"\n'
    )
    assert "'report'" in refused(job) and "'input'" in refused(job)
    assert main(["run", str(job)]) == 2
    assert workbook.read_bytes() == before


def test_a_job_name_cannot_climb_out_of_the_output_folder(folder: Path) -> None:
    for name in ("..", "."):
        job = job_file(folder, f'name = "{name}"\noutput = "out/{{job}}/x.csv"\n')
        assert "not . or .." in refused(job)
    assert not (folder / "jobs" / "x.csv").exists()


@pytest.mark.parametrize(
    ("key", "value", "other"),
    [
        ("journal", "../in.csv", "'input'"),
        ("journal", "../optout.txt", "'send.optout'"),
        ("log", "../optout.txt", "'send.optout'"),
        ("log", "job.toml", "the job file"),
        ("journal", "../out/r.xlsx", "'output'"),
        ("journal", "../out/r.xlsx.lock", "the job's lock file"),
        ("log", "../out/r.xlsx.journal.sqlite-wal", "the journal's -wal file"),
        ("log", "../out/r.xlsx", "'output'"),
    ],
)
def test_every_written_file_differs_from_the_read_ones_and_the_others(
    folder: Path, key: str, value: str, other: str
) -> None:
    (folder / "optout.txt").write_text("77000000000\n", encoding="utf-8")
    text = (
        'name = "x"\ninput = "../in.csv"\noutput = "../out/r.xlsx"\n'
        f'{key} = "{value}"\n[send]\noptout = "../optout.txt"\n'
    )
    message = refused(job_file(folder, text))
    assert f"'{key}'" in message and other in message


def test_links_are_followed_symbolic_and_hard(folder: Path) -> None:
    os.symlink(folder / "in.csv", folder / "soft.csv")
    os.link(folder / "in.csv", folder / "hard.csv")
    for link in ("soft.csv", "hard.csv"):
        job = job_file(
            folder, f'name = "x"\ninput = "../in.csv"\noutput = "../r.csv"\nlog = "../{link}"\n'
        )
        assert "'log'" in refused(job)
    assert same_file(folder / "hard.csv", folder / "in.csv")
    assert not same_file(folder / "in.csv", folder / "other.csv")


def test_the_summary_flag_is_checked_against_the_job(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    job = job_file(folder, 'name = "x"\ninput = "../in.csv"\noutput = "../r.csv"\n')
    assert main(["run", str(job), "--summary", str(folder / "in.csv")]) == 2
    assert "--summary" in capsys.readouterr().err
    assert (folder / "in.csv").read_text(encoding="utf-8") == LIST


def test_send_flags_get_the_same_checks(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = str(folder / "in.csv")
    out = str(folder / "r.csv")
    assert main(["send", source, "-o", out, "--journal", source, "--dry-run"]) == 2
    assert "the journal" in capsys.readouterr().err
    optout = folder / "j.sqlite-wal"  # an unlucky name: the journal's write-ahead log
    optout.write_text("77000000000\n", encoding="utf-8")
    journal = str(folder / "j.sqlite")
    code = main(["send", source, "-o", out, "--optout", str(optout), "--journal", journal])
    assert code == 2 and "the opt-out list" in capsys.readouterr().err
    os.link(folder / "in.csv", folder / "hard.csv")
    assert main(["validate", source, "-o", str(folder / "hard.csv")]) == 2
    assert "would overwrite the input list" in capsys.readouterr().err
    assert (folder / "in.csv").read_text(encoding="utf-8") == LIST
    assert optout.read_text(encoding="utf-8") == "77000000000\n"


def test_check_distinct_names_both_purposes(tmp_path: Path) -> None:
    one = tmp_path / "a.csv"
    with pytest.raises(ConfigError, match=r"the log and the results are the same file"):
        check_distinct({"the results": one, "the log": tmp_path / "x" / ".." / "a.csv"}, {})
    check_distinct({"the results": one, "the report": None}, {"the list": tmp_path / "b.csv"})


def test_a_summary_never_overwrites_a_file_that_is_not_one(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = job_file(folder, 'name = "x"\n')  # fails to load: the job's files are unknown
    assert main(["run", str(broken), "--summary", str(folder / "in.csv")]) == 2
    assert "is not a JSON summary" in capsys.readouterr().err
    assert (folder / "in.csv").read_text(encoding="utf-8") == LIST
    summary = folder / "summary.json"
    assert main(["run", str(broken), "--summary", str(summary)]) == 2
    assert main(["run", str(broken), "--summary", str(summary)]) == 2  # its own: replaced
    assert summary.read_text(encoding="utf-8").startswith("{")
