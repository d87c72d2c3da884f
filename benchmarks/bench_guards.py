"""What do the input limits and the CSV formula rule cost, next to the work they guard?

    python benchmarks/bench_guards.py                  # 300,000 rows
    python benchmarks/bench_guards.py --rows 100000 --repeat 5

Side by side in one process, interleaved so both see the same noise:

* reading a CSV list: ``read_table`` with its limits (size, longest line)
  against the CSV reader alone;
* reading an XLSX list saved with shared strings, as Excel saves one:
  ``read_table`` with its limits (central directory, the shared strings
  streamed) against the XLSX reader alone;
* writing a results CSV: ``write_table`` neutralising formulas against
  ``write_table(raw_csv=True)``; the list holds a few hostile cells, as real
  ones might, so the slow path runs on a column or two.

Each ratio is guarded / unguarded; the floor it must stay under is printed
with PASS or MISS.  Use the ratios, not the seconds: the machine may be
shared (and raise ``--repeat`` when it is busy).  The guards' own work is
also timed alone, which busy machines blur less.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from mobizon_batch.table import ReadLimits, read_table, write_table
from mobizon_batch.table.csvfile import read_csv
from mobizon_batch.table.limits import check_csv, check_workbook
from mobizon_batch.table.sniff import read_head
from mobizon_batch.table.writing import _neutral_cells
from mobizon_batch.table.xlsxfile import read_xlsx

#: How much slower a guarded step may be than the unguarded one.
FLOORS = {"read CSV": 1.10, "read XLSX": 1.10, "write CSV": 1.25}


def make_frame(rows: int) -> pd.DataFrame:
    rng = random.Random(7)
    phones = [f"+7 70{rng.randrange(10)} {rng.randrange(10**7):07d}" for _ in range(rows)]
    names = [rng.choice(["Айгерим", "Ерлан", "Алия", "Иван"]) for _ in range(rows)]
    for index in range(0, rows, max(1, rows // 20)):
        names[index] = '=HYPERLINK("http://example.invalid","x")'
    texts = [f"Здравствуйте! Ваш код {n % 99991}." for n in range(rows)]
    return pd.DataFrame({"phone": phones, "name": names, "text": texts}, dtype="str")


def write_shared_strings_workbook(frame: pd.DataFrame, path: Path) -> None:
    """As Excel saves a list: every text in the shared strings part, cells refer to them.

    Written by hand: openpyxl's fast writer (and ours) put texts inline.
    """
    import zipfile
    from xml.sax.saxutils import escape

    index: dict[str, int] = {}
    rows = []
    for number, row in enumerate([list(frame.columns), *frame.itertuples(index=False)], 1):
        cells = "".join(
            f'<c r="{"ABC"[col]}{number}" t="s"><v>{index.setdefault(value, len(index))}</v></c>'
            for col, value in enumerate(row)
        )
        rows.append(f'<row r="{number}">{cells}</row>')
    main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    pkg = "http://schemas.openxmlformats.org/package/2006/relationships"
    kinds = "application/vnd.openxmlformats-officedocument.spreadsheetml"
    parts = {
        "[Content_Types].xml": '<Types xmlns="http://schemas.openxmlformats.org/package/2006/'
        'content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-'
        'package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
        f'<Override PartName="/xl/workbook.xml" ContentType="{kinds}.sheet.main+xml"/>'
        f'<Override PartName="/xl/worksheets/sheet1.xml" ContentType="{kinds}.worksheet+xml"/>'
        f'<Override PartName="/xl/sharedStrings.xml" ContentType="{kinds}.sharedStrings+xml"/>'
        "</Types>",
        "_rels/.rels": f'<Relationships xmlns="{pkg}"><Relationship Id="r1" Type="{rel}/'
        'officeDocument" Target="xl/workbook.xml"/></Relationships>',
        "xl/workbook.xml": f'<workbook xmlns="{main}" xmlns:r="{rel}"><sheets><sheet '
        'name="list" sheetId="1" r:id="r1"/></sheets></workbook>',
        "xl/_rels/workbook.xml.rels": f'<Relationships xmlns="{pkg}"><Relationship Id="r1" '
        f'Type="{rel}/worksheet" Target="worksheets/sheet1.xml"/><Relationship Id="r2" '
        f'Type="{rel}/sharedStrings" Target="sharedStrings.xml"/></Relationships>',
        "xl/worksheets/sheet1.xml": f'<worksheet xmlns="{main}"><sheetData>{"".join(rows)}'
        "</sheetData></worksheet>",
        "xl/sharedStrings.xml": f'<sst xmlns="{main}" uniqueCount="{len(index)}">'
        + "".join(f"<si><t>{escape(text)}</t></si>" for text in index)
        + "</sst>",
    }
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in parts.items():
            archive.writestr(name, text)


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; the best counts")
    args = parser.parse_args()
    frame = make_frame(args.rows)
    with tempfile.TemporaryDirectory(prefix="bench-guards-") as scratch:
        folder = Path(scratch)
        source_csv, source_xlsx = folder / "list.csv", folder / "list.xlsx"
        write_table(frame, source_csv, raw_csv=True)
        write_shared_strings_workbook(frame, source_xlsx)
        limits = ReadLimits()
        pairs: dict[str, tuple[Callable[[], object], Callable[[], object]]] = {
            "read CSV": (
                lambda: read_table(source_csv),
                lambda: read_csv(source_csv, read_head(source_csv), None, None),
            ),
            "read XLSX": (
                lambda: read_table(source_xlsx),
                lambda: read_xlsx(source_xlsx, None),
            ),
            "write CSV": (
                lambda: write_table(frame, folder / "out.csv"),
                lambda: write_table(frame, folder / "out.csv", raw_csv=True),
            ),
        }
        best: dict[str, list[float]] = {name: [float("inf")] * 2 for name in pairs}
        for _ in range(args.repeat):
            for name, (guarded, plain) in pairs.items():
                for side, action in enumerate((guarded, plain)):
                    best[name][side] = min(best[name][side], timed(action))
        columns = [frame[name].tolist() for name in frame.columns]
        checks = {
            "CSV limits alone": timed(lambda: check_csv(source_csv, limits)),
            "XLSX limits alone": timed(lambda: check_workbook(source_xlsx, limits)),
            "CSV formula rule alone": timed(lambda: [_neutral_cells(c) for c in columns]),
        }
        sizes = {"CSV": source_csv.stat().st_size, "XLSX": source_xlsx.stat().st_size}
    print(f"{args.rows:,} rows; CSV {sizes['CSV'] / 1e6:.0f} MB, XLSX {sizes['XLSX'] / 1e6:.0f} MB")
    print(f"{'':<12}{'guarded s':>11}{'plain s':>10}{'ratio':>8}{'floor':>8}")
    ok = True
    for name, (guarded_s, plain_s) in best.items():
        ratio = guarded_s / plain_s
        passed = ratio <= FLOORS[name]
        ok = ok and passed
        verdict = "PASS" if passed else "MISS"
        print(
            f"{name:<12}{guarded_s:>11.3f}{plain_s:>10.3f}{ratio:>7.2f}x"
            f"{FLOORS[name]:>7.2f}x  {verdict}"
        )
    for name, seconds in checks.items():
        print(f"{name}: {seconds:.3f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
