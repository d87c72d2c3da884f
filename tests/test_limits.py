"""Hostile lists are refused with a sentence, in bounded memory, before any reader runs.

The two bombs of the report — a 1 MB workbook holding one 1 GiB shared
string, a 2 MB one holding fifty million tiny strings — are run through the
real command in a child process whose peak memory is measured (and capped,
so that a regression fails the test instead of exhausting the machine).
"""

from __future__ import annotations

import random
import resource
import string
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from mobizon_batch.cli import main
from mobizon_batch.errors import ConfigError, InputError
from mobizon_batch.jobs import load_job
from mobizon_batch.prepare import PlanOptions, build_plan
from mobizon_batch.runs.common import ApiOptions
from mobizon_batch.runs.jobs import send_options
from mobizon_batch.table import ReadLimits, read_table
from mobizon_batch.table import limits as limits_module
from mobizon_batch.table import reading as reading_module
from mobizon_batch.table.limits import check_csv, check_workbook
from tests.fixtures import bombs

#: Far above what refusing a bomb takes (~150 MB for Python, pandas and openpyxl),
#: far below what reading one took (3.5 and 4.8 GB).
MEMORY_CAP_MB = 600
#: The child may not grow past this at all: a regression fails fast instead of swapping.
ADDRESS_SPACE_CAP = 2 * 1024**3

# Runs a command in a child with a capped address space; prints the child's peak RSS in KB.
_MEASURE = """
import resource, subprocess, sys
def cap():
    resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[1]), int(sys.argv[1])))
done = subprocess.run(sys.argv[2:], preexec_fn=cap, capture_output=True, text=True, timeout=300)
sys.stdout.write(done.stderr)
print(f"\\nPEAK_KB {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}")
sys.exit(done.returncode)
"""


def run_measured(*args: str) -> tuple[int, str, float]:
    """Exit code, stderr and peak memory (MB) of ``mobizon-batch ARGS`` in a fresh process."""
    command = [sys.executable, "-m", "mobizon_batch", *args]
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(ADDRESS_SPACE_CAP), *command],
        capture_output=True,
        text=True,
        timeout=600,
    )
    text, _, peak = done.stdout.rpartition("PEAK_KB ")
    return done.returncode, text, int(peak) / 1024


@pytest.mark.parametrize(
    ("build", "packed_mb"),
    [(bombs.one_huge_string, 1.1), (bombs.many_tiny_strings, 2.2)],
    ids=["one 1 GiB string", "50 million strings"],
)
def test_the_reported_bombs_exit_3_with_a_sentence_in_bounded_memory(
    tmp_path: Path, build: Callable[[Path], Path], packed_mb: float
) -> None:
    bomb = build(tmp_path / "list.xlsx")
    assert bomb.stat().st_size < packed_mb * 1024 * 1024
    code, err, peak_mb = run_measured("validate", str(bomb))
    assert code == 3, err
    assert "list.xlsx would unpack to" in err and "--max-input-mb" in err
    assert "Traceback" not in err and "internal error" not in err
    assert peak_mb < MEMORY_CAP_MB, f"peak memory {peak_mb:.0f} MB"


def test_a_bomb_under_a_raised_size_limit_is_still_refused_by_its_ratio(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bomb = bombs.one_huge_string(tmp_path / "list.xlsx")
    assert main(["validate", str(bomb), "--max-input-mb", "2000"]) == 3
    err = capsys.readouterr().err
    assert "decompression bomb" in err and "xl/sharedStrings.xml" in err
    assert "to 1" in err and "--max-input-mb" in err


def test_the_limit_is_hit_before_any_reader_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def never(*args: object) -> None:
        raise AssertionError("a reader ran")

    monkeypatch.setattr(reading_module, "read_xlsx", never)
    monkeypatch.setattr(reading_module, "read_csv", never)
    with pytest.raises(InputError, match="would unpack to 811 MB"):
        read_table(bombs.many_tiny_strings(tmp_path / "b.xlsx"))
    big = tmp_path / "big.csv"
    big.write_bytes(b"phone,text\n" + b"77012345678,hello\n" * 70_000)  # 1.2 MB
    with pytest.raises(InputError, match=r"big\.csv is 1\.2 MB, over the 1 MB limit"):
        read_table(big, limits=ReadLimits(1))


def distinct_strings(count: int) -> list[bytes]:
    return [f"<si><t>7701{n:07d}</t></si>".encode() for n in range(count)]


def test_too_many_shared_strings_are_counted_without_loading_them(tmp_path: Path) -> None:
    limits = ReadLimits(10)  # 100,000 shared strings
    fine = bombs.shared_strings(tmp_path / "fine.xlsx", distinct_strings(100_000))
    check_workbook(fine, limits)
    many = bombs.shared_strings(tmp_path / "many.xlsx", distinct_strings(100_001))
    with pytest.raises(InputError, match=r"more than 100,000 different texts"):
        check_workbook(many, limits)


def test_a_cell_over_the_limit_is_refused(tmp_path: Path) -> None:
    noise = "".join(random.Random(5).choices(string.ascii_letters, k=1_100_000)).encode()
    path = bombs.shared_strings(tmp_path / "long.xlsx", [b"<si><t>" + noise + b"</t></si>"])
    with pytest.raises(InputError, match=r"a cell longer than 1 MB"):
        check_workbook(path, ReadLimits(10))
    assert len(read_table(path, limits=ReadLimits(1000)).frame["text"][0]) == 1_100_000
    under = [b"<si><t>a</t></si>", b"<si><t>" + noise[:700_000] + b"</t></si>"] * 3
    check_workbook(bombs.shared_strings(tmp_path / "under.xlsx", under), ReadLimits(10))


def test_the_shared_strings_scan_skips_comments_cdata_and_survives_chunk_edges(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = [
        b"<si><t>one</t></si>",
        b"<!-- <si><t>not one</t></si> -->",
        b"<x:si><x:t>prefixed</x:t></x:si>",
        b"<si><t><![CDATA[<si>not</si><si>either</si>]]></t></si>",
        b"<?pi <si> ?>",
        b'<si><r><t xml:space="preserve">rich </t></r><r><t>text</t></r></si>',
    ]
    path = bombs.shared_strings(tmp_path / "odd.xlsx", items)
    for chunk in (3, 7, 64, 4096):
        monkeypatch.setattr(limits_module, "_CHUNK", chunk)
        check_workbook(path, ReadLimits(1))  # 4 strings: well within 10,000
        with pytest.raises(InputError, match="more than 3 different texts"):
            monkeypatch.setattr(ReadLimits, "max_shared_strings", property(lambda self: 3))
            check_workbook(path, ReadLimits(1))
        monkeypatch.undo()


def test_shared_strings_are_found_where_the_workbook_says(tmp_path: Path) -> None:
    hidden = bombs.shared_strings(
        tmp_path / "hidden.xlsx", distinct_strings(10_001), name="xl/strings/texts.xml"
    )
    with pytest.raises(InputError, match=r"more than 10,000 different texts"):
        check_workbook(hidden, ReadLimits(1))


def test_a_doctype_is_refused(tmp_path: Path) -> None:
    path = bombs.shared_strings(
        tmp_path / "dtd.xlsx", [b'<!DOCTYPE sst [<!ENTITY a "aaaa">]>', b"<si><t>&a;</t></si>"]
    )
    with pytest.raises(InputError, match="declares a DOCTYPE"):
        read_table(path)


def test_a_csv_line_over_the_limit_is_refused_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "long.csv"
    path.write_bytes(b"phone,text\r\n77012345678,hi\r\n77012345679," + b"x" * (1 << 20) + b"\r\n")
    with pytest.raises(InputError, match=r"long\.csv, line 3, is longer than 1 MB"):
        read_table(path)
    assert len(read_table(path, limits=ReadLimits(1000)).frame) == 2
    for chunk in (5, 4096):  # the same answer wherever the chunks end
        monkeypatch.setattr(limits_module, "_CHUNK", chunk)
        with pytest.raises(InputError, match="line 3, is longer"):
            check_csv(path, ReadLimits(2))


def test_short_lines_with_any_line_ending_pass(tmp_path: Path) -> None:
    for ending in (b"\n", b"\r", b"\r\n"):
        path = tmp_path / "ok.csv"
        path.write_bytes(b"phone,text" + ending + (b"77012345678,hi" + ending) * 100_000)
        check_csv(path, ReadLimits(2))  # 1.5 MB of 15-byte lines, limit 1 MB a line


def test_a_nul_byte_makes_its_row_invalid_not_the_file_binary(tmp_path: Path) -> None:
    path = tmp_path / "nul.csv"
    path.write_bytes(b"phone,text\n77012345678,hello\n77012345679,hi\x00there\n77012345670,ok\n")
    table = read_table(path)
    assert len(table) == 3 and list(table.row_problems) == [1]
    plan = build_plan(table, PlanOptions())
    assert list(plan.rows["verdict"]) == ["sendable", "invalid", "sendable"]
    assert plan.rows["source_line"].iloc[1] == 3
    assert "zero byte (NUL)" in plan.rows["reason"].iloc[1]
    garbage = tmp_path / "garbage.csv"
    garbage.write_bytes(b"phone,text\n" + b"\x00\x01\x02" * 200)
    with pytest.raises(InputError, match="looks like a binary file"):
        read_table(garbage)


def test_validate_names_the_nul_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "nul.csv"
    path.write_bytes(b"phone,text\n77012345678,hello\n7701234\x005679,hi\n")
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "line 3" in out and "zero byte (NUL)" in out


def test_the_max_input_mb_flag_must_be_a_positive_number(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "l.csv"
    path.write_text("phone,text\n77012345678,hi\n", encoding="utf-8")
    assert main(["validate", str(path), "--max-input-mb", "0"]) == 2
    assert "--max-input-mb" in capsys.readouterr().err
    with pytest.raises(ValueError):
        ReadLimits(0)


def test_the_measuring_child_really_sees_memory(tmp_path: Path) -> None:
    """The peak reported is the command's own: a child that takes 300 MB shows it."""
    script = tmp_path / "hog.py"
    script.write_text("x = bytearray(300 * 1024 * 1024)\nx[::4096] = b'1' * len(x[::4096])\n")
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(ADDRESS_SPACE_CAP), sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    peak_mb = int(done.stdout.rpartition("PEAK_KB ")[2]) / 1024
    assert done.returncode == 0 and peak_mb > 300
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss > 0


def test_a_job_file_sets_the_limit_and_raw_csv(tmp_path: Path) -> None:
    (tmp_path / "l.csv").write_text("phone,text\n77012345678,hi\n", encoding="utf-8")
    job = tmp_path / "job.toml"
    job.write_text(
        'name = "x"\ninput = "l.csv"\noutput = "r.csv"\nraw_csv = true\n[read]\nmax_input_mb = 7\n',
        encoding="utf-8",
    )
    options = send_options(load_job(job), ApiOptions())
    assert options.read.max_input_mb == 7 and options.raw_csv
    job.write_text('name = "x"\ninput = "l.csv"\noutput = "r.csv"\n[read]\nmax_input_mb = 0\n')
    with pytest.raises(ConfigError, match=r"'read\.max_input_mb' must be at least 1"):
        load_job(job)


def test_a_list_piped_in_is_bounded_like_a_file(tmp_path: Path) -> None:
    big = b"phone,text\n" + b"77012345678,hello\n" * 70_000  # 1.2 MB
    done = subprocess.run(
        [sys.executable, "-m", "mobizon_batch", "validate", "-", "--max-input-mb", "1"],
        input=big,
        capture_output=True,
        timeout=120,
    )
    err = done.stderr.decode()
    assert done.returncode == 3, err
    assert "the list piped in is over the 1 MB limit" in err and "Traceback" not in err
