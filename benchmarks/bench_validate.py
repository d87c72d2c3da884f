"""How close is ``mobizon-batch validate`` to the least any tool reading the same list must do?

    python benchmarks/bench_validate.py                    # both goals, medians of 3
    python benchmarks/bench_validate.py --only csv --rows 100000 --repeat 5

Two goals, each measured side by side in one run, every job in a fresh
Python process (so that its peak memory is its own), the jobs interleaved
so that they see the same noise, medians reported:

1. CSV: ``validate FILE -o REPORT.csv --quiet`` of a 1,000,000-row list
   (unique fake Kazakh mobile numbers in the three spellings lists mix, a
   name, a Cyrillic text) against the pandas floor, ``read_csv(dtype=str)``
   + ``to_csv`` of the same file.  Goal: at most 3x its time and 2x its peak
   memory.  Times are measured inside each process, after its imports:
   pandas on both sides (the floor needs it before it can start), the
   rest of what ``validate`` loads (phonenumbers, our modules) inside ours.
2. XLSX: ``validate FILE.xlsx --quiet`` of a 100,000-row workbook (phones
   stored as numbers and as text) against a fresh process running
   ``pandas.read_excel(engine="calamine", dtype=str)`` on it.  Goal: at most
   3x, whole processes (start-up and imports included) on both sides.  The
   reader the tool had before (openpyxl, read-only) is timed too, for the
   record.

The machine this runs on may be shared: compare the ratios, not seconds.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL_CSV_TIME = 3.0
GOAL_CSV_MEMORY = 2.0
GOAL_XLSX_TIME = 3.0

PREFIXES = ["700", "701", "702", "705", "707", "708", "747", "771", "775", "776", "777", "778"]
NAMES = ["Айгерим", "Ерлан", "Данияр", "Алия", "Нурлан", "Светлана", "Иван", "Мария", "Асель"]
TEXTS = [
    "Здравствуйте, {n}! Ваш заказ №{k} готов к выдаче.",
    "{n}, скидка 20% на всё до воскресенья! Ждём вас в магазине.",
    "Уважаемый(ая) {n}, ваш баланс пополнен на {k} тг. Спасибо!",
]


def rows_of(count: int, seed: int = 7) -> list[tuple[str, str, str]]:
    """``count`` unique numbers: 60% 7701…, 25% 8701…, 15% +7 (701) 234-56-78."""
    rng = random.Random(seed)
    seen: set[str] = set()
    out = []
    for _ in range(count):
        while True:
            national = f"{rng.choice(PREFIXES)}{rng.randrange(10**7):07d}"
            if national not in seen:
                seen.add(national)
                break
        shape = rng.random()
        if shape < 0.6:
            phone = "7" + national
        elif shape < 0.85:
            phone = "8" + national
        else:
            n = national
            phone = f"+7 ({n[:3]}) {n[3:6]}-{n[6:8]}-{n[8:]}"
        name = rng.choice(NAMES)
        out.append((phone, name, rng.choice(TEXTS).format(n=name, k=rng.randrange(100_000))))
    return out


def generate_csv(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["phone", "name", "text"])
        writer.writerows(rows_of(rows))


def generate_xlsx(path: Path, rows: int) -> None:
    """Digits-only phones are stored as numbers (as Excel does), the others as text."""
    import pandas as pd

    from mobizon_batch.table import write_table

    data = rows_of(rows, seed=11)
    phones = pd.Series([int(p) if p.isdigit() else p for p, _, _ in data], dtype=object)
    frame = pd.DataFrame(
        {
            "phone": phones,
            "name": pd.Series([n for _, n, _ in data], dtype="str"),
            "text": pd.Series([t for _, _, t in data], dtype="str"),
        }
    )
    write_table(frame, path, sheet_name="list")


CPU_AT_START = [0.0]


def start() -> float:
    """The job starts (after its imports): note the CPU time used so far, return the clock."""
    CPU_AT_START[0] = time.process_time()
    return time.perf_counter()


def peak_rss_mb() -> float:
    """This process's peak RSS.  VmHWM, not ru_maxrss: the latter survives exec on
    Linux, so a child would report the parent's peak if that was higher."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# ------------------------------------------------------------- the jobs


def job_pandas_csv(source: str, output: str) -> None:
    import pandas as pd

    started = start()
    frame = pd.read_csv(source, dtype=str, keep_default_na=False)
    frame.to_csv(output, index=False)
    report(started)


def job_validate(source: str, output: str) -> None:
    import pandas  # noqa: F401  - imported before the clock starts, as the floor's job does

    from mobizon_batch.cli import main

    started = start()
    argv = ["validate", source, "--quiet"] + (["-o", output] if output != "-" else [])
    code = main(argv)
    if code != 0:
        raise SystemExit(f"validate exited with {code}")
    report(started)


def job_pandas_xlsx(source: str, output: str) -> None:
    import pandas as pd

    started = start()
    pd.read_excel(source, engine="calamine", dtype=str)
    report(started)


def job_openpyxl_xlsx(source: str, output: str) -> None:
    """The reader before: openpyxl in read-only mode, every cell through cell_text."""
    import openpyxl

    from mobizon_batch.table import cell_text

    started = start()
    workbook = openpyxl.load_workbook(source, read_only=True, data_only=True)
    rows = [
        [cell_text(v) for v in row] for row in workbook.worksheets[0].iter_rows(values_only=True)
    ]
    workbook.close()
    assert rows
    report(started)


def job_calamine_read(source: str, output: str) -> None:
    """The reader now: read_table (python-calamine), the same cells."""
    from mobizon_batch.table import read_table

    started = start()
    read_table(source)
    report(started)


JOBS = {
    "pandas_csv": job_pandas_csv,
    "validate": job_validate,
    "validate_xlsx": job_validate,  # without -o: reading and judging only
    "pandas_xlsx": job_pandas_xlsx,
    "openpyxl_xlsx": job_openpyxl_xlsx,
    "calamine_read": job_calamine_read,
}


def report(started: float) -> None:
    print(
        json.dumps(
            {
                "seconds": time.perf_counter() - started,
                "cpu_seconds": time.process_time() - CPU_AT_START[0],
                "peak_rss_mb": peak_rss_mb(),
            }
        )
    )


def measure(kind: str, source: Path, output: str) -> dict[str, float]:
    """Run one job in a fresh interpreter: its own time and peak RSS, and the whole process's."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(source), output],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_seconds"] = time.perf_counter() - started
    return result


def medians(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


def verdict(figure: float, goal: float) -> str:
    return "PASS" if figure <= goal else "MISS"


def side_by_side(
    kinds: list[str], source: Path, folder: Path, repeat: int
) -> dict[str, dict[str, float]]:
    runs: dict[str, list[dict[str, float]]] = {kind: [] for kind in kinds}
    for attempt in range(repeat):
        for kind in kinds:  # interleaved: all see the same noise
            output = str(folder / f"out-{kind}.csv")
            result = measure(kind, source, output if kind != "validate_xlsx" else "-")
            runs[kind].append(result)
            print(
                f"  run {attempt + 1} {kind:<14} {result['seconds']:7.2f} s in process "
                f"({result['cpu_seconds']:6.2f} s CPU), "
                f"{result['process_seconds']:7.2f} s whole process, "
                f"peak RSS {result['peak_rss_mb']:6.0f} MB",
                flush=True,
            )
    return {kind: medians(results) for kind, results in runs.items()}


def csv_goal(folder: Path, rows: int, repeat: int) -> bool:
    source = folder / f"list-{rows}.csv"
    if not source.exists():
        generate_csv(source, rows)
    print(f"\n1. validate -o of a {rows:,}-row CSV ({source.stat().st_size / 1e6:.0f} MB)")
    got = side_by_side(["pandas_csv", "validate"], source, folder, repeat)
    floor, ours = got["pandas_csv"], got["validate"]
    time_ratio = ours["seconds"] / floor["seconds"]
    cpu_ratio = ours["cpu_seconds"] / floor["cpu_seconds"]
    memory_ratio = ours["peak_rss_mb"] / floor["peak_rss_mb"]
    print(f"   medians of {repeat}:")
    print(
        f"   floor  pandas read_csv + to_csv  {floor['seconds']:6.2f} s "
        f"({floor['cpu_seconds']:.2f} s CPU)  "
        f"{floor['peak_rss_mb']:5.0f} MB  (whole process {floor['process_seconds']:.2f} s)"
    )
    print(
        f"   ours   validate -o REPORT.csv    {ours['seconds']:6.2f} s "
        f"({ours['cpu_seconds']:.2f} s CPU)  "
        f"{ours['peak_rss_mb']:5.0f} MB  (whole process {ours['process_seconds']:.2f} s)"
    )
    print(
        f"   goal time   <= {GOAL_CSV_TIME:.1f}x the floor: {time_ratio:5.2f}x  "
        f"{verdict(time_ratio, GOAL_CSV_TIME)}"
    )
    print(
        f"   goal CPU    <= {GOAL_CSV_TIME:.1f}x the floor: {cpu_ratio:5.2f}x  "
        f"{verdict(cpu_ratio, GOAL_CSV_TIME)}  (CPU seconds: steadier on a shared machine)"
    )
    print(
        f"   goal memory <= {GOAL_CSV_MEMORY:.1f}x the floor: {memory_ratio:5.2f}x  "
        f"{verdict(memory_ratio, GOAL_CSV_MEMORY)}"
    )
    return time_ratio <= GOAL_CSV_TIME and memory_ratio <= GOAL_CSV_MEMORY


def xlsx_goal(folder: Path, rows: int, repeat: int) -> bool:
    source = folder / f"list-{rows}.xlsx"
    if not source.exists():
        generate_xlsx(source, rows)
    print(f"\n2. validate of a {rows:,}-row XLSX ({source.stat().st_size / 1e6:.1f} MB)")
    kinds = ["pandas_xlsx", "validate_xlsx", "openpyxl_xlsx", "calamine_read"]
    got = side_by_side(kinds, source, folder, repeat)
    floor, ours = got["pandas_xlsx"], got["validate_xlsx"]
    ratio = ours["process_seconds"] / floor["process_seconds"]
    print(f"   medians of {repeat}, whole processes:")
    print(
        f"   floor  pandas.read_excel(engine='calamine', dtype=str)  {floor['process_seconds']:6.2f} s"
    )
    print(
        f"   ours   validate FILE.xlsx                              {ours['process_seconds']:6.2f} s"
    )
    print(
        f"   goal   <= {GOAL_XLSX_TIME:.1f}x the floor: {ratio:5.2f}x  {verdict(ratio, GOAL_XLSX_TIME)}"
    )
    before, after = got["openpyxl_xlsx"], got["calamine_read"]
    print(
        f"   reading alone (in process): openpyxl (before) {before['seconds']:.2f} s, "
        f"python-calamine (now) {after['seconds']:.2f} s — "
        f"{before['seconds'] / after['seconds']:.1f}x faster"
    )
    return ratio <= GOAL_XLSX_TIME


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="CSV rows")
    parser.add_argument("--xlsx-rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; medians count")
    parser.add_argument("--only", choices=["csv", "xlsx"])
    parser.add_argument("--keep", type=Path, help="generate into (and keep) this folder")
    parser.add_argument(
        "--child", nargs=3, metavar=("KIND", "SOURCE", "OUT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:
        kind, source, output = args.child
        JOBS[kind](source, output)
        return 0
    print(f"python {sys.version.split()[0]}; medians of {args.repeat} interleaved runs")
    ok = True
    with tempfile.TemporaryDirectory(prefix="bench-validate-") as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        if args.only in (None, "csv"):
            ok &= csv_goal(folder, args.rows, args.repeat)
        if args.only in (None, "xlsx"):
            ok &= xlsx_goal(folder, args.xlsx_rows, args.repeat)
    print("\nall goals met" if ok else "\nSOME GOALS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
