"""The quick CSV reader (pandas' C tokenizer) gives exactly what the csv module gives.

Every file is read twice through ``read_table``: as it is (the quick reader
is taken when it can be sure) and with the quick reader switched off (the
csv module, row by row).  The tables must be the same — cells, column
names, line numbers, row problems — and the quick reader must actually
have been taken on the regular files, or the comparison proves nothing.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from mobizon_batch.errors import InputError
from mobizon_batch.table import csvfast, csvfile, read_table
from mobizon_batch.table.csvfast import scan_lines
from mobizon_batch.table.limits import ReadLimits


def _read_both(
    path: Path, monkeypatch: pytest.MonkeyPatch, **options: Any
) -> tuple[Any, Any, bool]:
    """(quick table or error, careful table or error, whether the quick reader answered)."""
    answered: list[bool] = []
    real = csvfast.read_columns

    def spy(*args: Any, **kwargs: Any) -> Any:
        found = real(*args, **kwargs)
        answered.append(found is not None)
        return found

    monkeypatch.setattr(csvfile, "read_columns", spy)
    quick = _outcome(path, options)
    monkeypatch.setattr(csvfile, "read_columns", lambda *args, **kwargs: None)
    careful = _outcome(path, options)
    monkeypatch.setattr(csvfile, "read_columns", real)
    return quick, careful, any(answered)


def _outcome(path: Path, options: dict[str, Any]) -> Any:
    try:
        table = read_table(path, **options)
    except InputError as exc:
        return ("error", str(exc))
    return (
        table.frame.columns.tolist(),
        table.frame.astype(object).values.tolist(),
        table.source_lines.tolist(),
        dict(table.row_problems),
        table.header_line,
        table.encoding,
        table.delimiter,
        dict(table.repeated),
        [str(dtype) for dtype in table.frame.dtypes],
    )


REGULAR = {
    "plain": b"phone,text\n77011234567,hello\n77011234568,bye\n",
    "crlf": b"phone,text\r\n77011234567,hello\r\n77011234568,bye\r\n",
    "no final line end": b"phone,text\n77011234567,hello\n77011234568,bye",
    "blank lines between": b"phone,text\n\n77011234567,hello\n  \n,\n77011234568,bye\n\n\n",
    "quoted commas and quotes": b'phone,text\n77011234567,"a, b ""c"""\n"7701",x"y"z\n',
    "short rows": b"phone,text,name\n77011234567,hello\n77011234568,bye,Ann\n7701\n",
    "trailing delimiter, empty": b"phone,text\n77011234567,hello,\n77011234568,bye,\n",
    "semicolons": b"phone;text\n77011234567;a,b\n77011234568;c\n",
    "tabs": b"phone\ttext\n77011234567\thello there\n",
    "bom": b"\xef\xbb\xbfphone,text\n77011234567,hello\n",
    "cyrillic": 'телефон,текст\n77011234567,"Привет, мир"\n'.encode(),
    "cp1251": "телефон;текст\n77011234567;Привет\n".encode("cp1251"),
    "repeated and blank names": b"phone,text,phone,\n7701,a,7702,x\n7703,b,7704,y\n",
    "unnamed empty column": b"phone,,text\n7701,,a\n7702,,b\n",
    "zero byte": b"phone,text\n7701,a\x00b\n7702,c\n",
    "spaces around": b"phone,text\n 7701 , hello \n",
    "quote after value": b'phone,text\n7701,"ab"cd\n',
}

IRREGULAR = {
    "quoted line break": b'phone,text\n7701,"line one\nline two"\n7702,b\n',
    "quoted crlf": b'phone,text\r\n7701,"a\r\nb"\r\n7702,b\r\n',
    "quote never closed": b'phone,text\n7701,"never closed\n7702,b\n7703,c\n',
    "more fields than the header": b"phone,text\n7701,a,extra\n7702,b\n",
    "a later row longer": b"phone,text\n7701,a\n7702,b,extra\n",
    "header over two lines": b'"pho\nne",text\n7701,a\n',
    "utf-16": "phone,text\n7701,a\n".encode("utf-16"),
    "lone cr": b"phone,text\r77011234567,hello\r;7701,bye\r",
    "a stray cr in a cell": b"phone,text\r\n7701,a\rb\r\n",
}

#: read the same either way; whether the quick reader answers does not matter
EITHER = {
    "header only": b"phone,text\n",
    "header and blank rows only": b"phone,text\n\n , \n",
    # the careful reader finds the UTF-8 broken and reads the file again as cp1251
    "broken utf-8 far down": b"phone,text\n" + b"7701,a\n" * 3000 + b"7702,\xff\xfe\n",
    "title above the header, no header check": b"Export of 2026\n\nphone,text\n7701,a\n",
}


@pytest.mark.parametrize("name", sorted(REGULAR))
def test_regular_files_are_read_quickly_and_the_same(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "list.csv"
    path.write_bytes(REGULAR[name])
    quick, careful, answered = _read_both(path, monkeypatch)
    assert quick == careful
    assert answered, "the quick reader should have been sure of this file"


@pytest.mark.parametrize("name", sorted(IRREGULAR))
def test_irregular_files_go_to_the_careful_reader_and_read_the_same(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "list.csv"
    path.write_bytes(IRREGULAR[name])
    quick, careful, answered = _read_both(path, monkeypatch)
    assert quick == careful
    assert not answered, "the quick reader must not answer for this file"


@pytest.mark.parametrize("name", sorted(EITHER))
def test_other_files_read_the_same(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "list.csv"
    path.write_bytes(EITHER[name])
    quick, careful, _ = _read_both(path, monkeypatch)
    assert quick == careful


def test_a_title_above_the_header_is_skipped_quickly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "list.csv"
    path.write_bytes(b"Export of 2026-11-29\n\nphone,text\n77011234567,hello\n")
    quick, careful, answered = _read_both(path, monkeypatch, header_row=3)
    assert quick == careful
    assert quick[2] == [4]
    assert answered


def test_explicit_options_are_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "list.csv"
    path.write_bytes("title\nтелефон;текст\n77011234567;Привет\n".encode("cp1251"))
    quick, careful, answered = _read_both(
        path, monkeypatch, encoding="cp1251", delimiter=";", header_row=2
    )
    assert quick == careful
    assert answered


_PIECES = [
    "7701234567",
    "+7 (701) 234-56-78",
    "",
    " ",
    "a",
    "Привет",
    ",",
    ";",
    '"',
    '""',
    "\n",
    "\r\n",
    "\r",
    "x\x00y",
    "😀",
    "=1+2",
    "  spaced  ",
]


def _random_file(
    rng: random.Random,
    separator: str,
    pieces: list[str] = _PIECES,
    widths: tuple[int, ...] = (0, 1, 2, 3, 3, 3, 3, 4),
    endings: tuple[str, ...] = ("\n", "\r\n", "\r"),
) -> bytes:
    """A list with any of the pieces in its cells, quoted or not, rows of any width."""
    lines = [separator.join(["phone", "text", "name"])]
    for _ in range(rng.randrange(1, 40)):
        cells = []
        for _ in range(rng.choice(widths)):
            cell = "".join(rng.choice(pieces) for _ in range(rng.randrange(0, 3)))
            if rng.random() < 0.5:
                cell = '"' + cell.replace('"', '""') + '"'
            cells.append(cell)
        lines.append(separator.join(cells))
    ending = rng.choice(endings)
    text = ending.join(lines) + (ending if rng.random() < 0.7 else "")
    return text.encode("utf-8")


@pytest.mark.parametrize("seed", range(300))
def test_random_files_read_the_same_either_way(
    seed: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(seed)
    path = tmp_path / "list.csv"
    path.write_bytes(_random_file(rng, rng.choice([",", ";", "\t"])))
    quick, careful, _ = _read_both(path, monkeypatch)
    assert quick == careful


def test_random_files_often_take_the_quick_reader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On regular files the quick reader answers: the random test above covers it.

    Regular: no line end or lone quote in a cell, no cell with a delimiter
    left unquoted, no row wider than the header.
    """
    taken = 0
    for seed in range(100):
        rng = random.Random(seed)
        path = tmp_path / f"list{seed}.csv"
        pieces = [p for p in _PIECES if not set(p) & set('\n\r,"\x00')]  # NUL: binary
        data = _random_file(rng, ",", pieces, (0, 1, 2, 3), ("\n", "\r\n"))
        path.write_bytes(data)
        taken += _read_both(path, monkeypatch)[2]
    assert taken >= 90


def test_a_long_field_after_a_trailing_delimiter_is_refused_either_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A field over 16 MB is refused even when it is all spaces past the header's width.

    The quick reader drops a blank field past the header, but the csv
    module refuses the line before that (the header is judged on 30 rows,
    so the long line comes after them; ``--max-input-mb`` lets it in).
    """
    path = tmp_path / "list.csv"
    spaces = b" " * (csvfile._FIELD_LIMIT + 1)
    path.write_bytes(b"phone,text\n" + b"7701,a\n" * 40 + b"7702,b," + spaces + b"\n7703,c\n")
    quick, careful, _ = _read_both(path, monkeypatch, limits=ReadLimits(9000))
    assert careful == ("error", f"{path.name}, line 42: {_LONG_FIELD}")
    assert quick == careful


_LONG_FIELD = 'a field is longer than 16 MB, which usually means a quote (") is never closed'


@pytest.mark.parametrize(
    ("data", "lines"),
    [
        (b"", 0),
        (b"a", 1),
        (b"a\n", 1),
        (b"a\nb", 2),
        (b"a\r\nb\r\n", 2),
        (b"\n\n\r\n", 3),
        (b"a\rb\r", None),
        (b"a\r", None),
        (b"a\r\r\n", None),
    ],
)
def test_lines_are_counted_as_the_csv_module_counts_them(
    data: bytes, lines: int | None, tmp_path: Path
) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(data)
    scan = scan_lines(path)
    assert (scan.lines if scan else None) == lines


def test_a_crlf_split_between_chunks_counts_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(csvfast, "_CHUNK", 4)
    path = tmp_path / "f.csv"
    path.write_bytes(b"abc\r\ndef\r\ng")  # chunks: "abc\r", "\ndef", "\r\ng"
    scan = scan_lines(path)
    assert scan is not None and scan.lines == 3
    path.write_bytes(b"abc\rdef\r\ng")  # chunks: "abc\r", "def\r", "\ng"
    assert scan_lines(path) is None


def test_cells_are_text_as_read(tmp_path: Path) -> None:
    """No number, date or NA reading: ``007``, ``NA`` and ``1e5`` stay as written."""
    path = tmp_path / "list.csv"
    path.write_bytes(b"phone,text\n007,NA\n1e5,null\n")
    frame = read_table(path).frame
    assert frame.values.tolist() == [["007", "NA"], ["1e5", "null"]]
    assert all(isinstance(dtype, pd.StringDtype) for dtype in frame.dtypes)
