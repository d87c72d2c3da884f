"""How close is ``mobizon-batch report`` to reading the results and writing them to XLSX?

    python benchmarks/bench_report.py                 # 100,000 rows, medians of 3
    python benchmarks/bench_report.py --rows 20000 --repeat 5

A results file with statuses is generated (input columns, our result and
status columns; Kazakh and Russian numbers of many operators; sent,
delivered, undelivered, failed and invalid rows), then measured side by
side in one run, each job in a fresh Python process, interleaved, medians
reported:

* the floor: pandas ``read_csv(dtype=str)`` of the file plus XlsxWriter in
  ``constant_memory`` mode writing the same rows to one sheet — the least
  any tool must do to turn the file into a workbook (XlsxWriter is only
  needed for this benchmark: ``pip install xlsxwriter``);
* ``mobizon-batch report RESULTS -o REPORT.xlsx``: the summary (statuses,
  countries and operators of every sent number), the Summary sheet with its
  chart, every row on Messages, and the Problems sheet.

Goal: at most 1.5x the floor (times inside each process, after imports).
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL = 1.5

KZ = ["700", "701", "702", "705", "707", "708", "747", "771", "775", "776", "777", "778"]
RU = ["903", "905", "909", "910", "912", "915", "916", "919", "925", "926", "950", "999"]
COLUMNS = [
    "phone",
    "name",
    "text",
    "recipient",
    "send_status",
    "message_id",
    "campaign_id",
    "segments",
    "error_code",
    "error",
    "sent_at",
    "status",
    "status_final",
    "seg_num",
    "start_send_ts",
    "status_update_ts",
    "status_checked_at",
]


def generate(path: Path, rows: int, seed: int = 5) -> None:
    rng = random.Random(seed)
    stamp = "2026-11-28 10:{:02d}:{:02d}"
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for n in range(rows):
            national = rng.choice(KZ + RU) + f"{rng.randrange(10**7):07d}"
            recipient = "7" + national
            text = f"Здравствуйте! Ваш заказ №{n} готов."
            roll = rng.random()
            moment = stamp.format(n // 60 % 60, n % 60)
            if roll < 0.02:
                writer.writerow(
                    [
                        "8" + national[:5],
                        "Имя",
                        text,
                        "",
                        "invalid",
                        "",
                        "",
                        1,
                        "",
                        "the phone number is too short",
                    ]
                    + [""] * 7
                )
                continue
            if roll < 0.03:
                writer.writerow(
                    ["8" + national, "Имя", text, recipient, "failed", "", "", 1, 2, "bad text", ""]
                    + [""] * 6
                )
                continue
            status = rng.choices(
                ["DELIVRD", "UNDELIV", "EXPIRED", "ACCEPTD", "REJECTD"], [85, 7, 2, 5, 1]
            )[0]
            final = "TRUE" if status != "ACCEPTD" else "FALSE"
            writer.writerow(
                [
                    "8" + national,
                    "Имя",
                    text,
                    recipient,
                    "sent",
                    41_000_000 + n,
                    "",
                    1,
                    "",
                    "",
                    moment,
                    status,
                    final,
                    1,
                    moment,
                    moment,
                    moment,
                ]
            )


def job_floor(source: str, output: str) -> None:
    import pandas as pd
    import xlsxwriter

    started = time.perf_counter()
    frame = pd.read_csv(source, dtype=str, keep_default_na=False)
    workbook = xlsxwriter.Workbook(output, {"constant_memory": True})
    sheet = workbook.add_worksheet("Messages")
    sheet.write_row(0, 0, list(frame.columns))
    for number, row in enumerate(frame.itertuples(index=False, name=None), start=1):
        sheet.write_row(number, 0, row)
    workbook.close()
    print(json.dumps({"seconds": time.perf_counter() - started}))


def job_report(source: str, output: str) -> None:
    from mobizon_batch.cli import main

    started = time.perf_counter()
    code = main(["report", source, "-o", output])
    if code != 0:
        raise SystemExit(f"report exited with {code}")
    print(json.dumps({"seconds": time.perf_counter() - started}))


def measure(kind: str, source: Path, output: Path) -> float:
    done = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(source), str(output)],
        check=True,
        capture_output=True,
        text=True,
    )
    seconds: float = json.loads(done.stdout.strip().splitlines()[-1])["seconds"]
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; medians count")
    parser.add_argument("--keep", type=Path, help="generate into (and keep) this folder")
    parser.add_argument(
        "--child", nargs=3, metavar=("KIND", "SOURCE", "OUT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:
        kind, source, output = args.child
        (job_floor if kind == "floor" else job_report)(source, output)
        return 0
    try:
        import xlsxwriter  # noqa: F401
    except ImportError:
        print("the floor needs XlsxWriter: pip install xlsxwriter")
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-report-") as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        source = folder / f"results-{args.rows}.csv"
        if not source.exists():
            generate(source, args.rows)
        print(
            f"3. report of a {args.rows:,}-row results file with statuses "
            f"({source.stat().st_size / 1e6:.0f} MB); medians of {args.repeat} interleaved runs"
        )
        runs: dict[str, list[float]] = {"floor": [], "report": []}
        for attempt in range(args.repeat):
            for kind in runs:
                seconds = measure(kind, source, folder / f"out-{kind}.xlsx")
                runs[kind].append(seconds)
                print(f"  run {attempt + 1} {kind:<7} {seconds:6.2f} s", flush=True)
    floor, ours = statistics.median(runs["floor"]), statistics.median(runs["report"])
    ratio = ours / floor
    print(f"   floor  pandas read_csv + XlsxWriter constant_memory  {floor:6.2f} s")
    print(f"   ours   mobizon-batch report -o REPORT.xlsx         {ours:6.2f} s")
    verdict = "PASS" if ratio <= GOAL else "MISS"
    print(f"   goal   <= {GOAL:.1f}x the floor: {ratio:5.2f}x  {verdict}")
    return 0 if ratio <= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
