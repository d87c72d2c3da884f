"""How fast is ``mobizon-batch validate`` next to pandas alone reading and writing the file?

    python benchmarks/bench_validate.py                 # 1,000,000 rows
    python benchmarks/bench_validate.py --rows 100000 --repeat 3

It generates a CSV (unique fake Kazakh mobile numbers in the three spellings
lists usually mix, a name, a Cyrillic text), then measures, each in a fresh
Python process so that peak memory is that job's alone:

* the pandas floor: ``pandas.read_csv(dtype=str)`` + ``DataFrame.to_csv`` of
  the same file — the least any tool that reads and rewrites it must do;
* ``mobizon-batch validate FILE -o REPORT.csv --quiet``: read, normalize and
  validate every number, count segments, dedupe, hash row keys, and write a
  report with every input column plus seven of its own.

Times exclude interpreter start and imports on both sides.  The machine this
runs on may be shared, so use ``--repeat`` and compare the ratios (measured
side by side in one run) rather than absolute seconds.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_RATIO = 10.0
TARGET_RSS_MB = 1536.0

PREFIXES = ["700", "701", "702", "705", "707", "708", "747", "771", "775", "776", "777", "778"]
NAMES = ["Айгерим", "Ерлан", "Данияр", "Алия", "Нурлан", "Светлана", "Иван", "Мария", "Асель"]
TEXTS = [
    "Здравствуйте, {n}! Ваш заказ №{k} готов к выдаче.",
    "{n}, скидка 20% на всё до воскресенья! Ждём вас в магазине.",
    "Уважаемый(ая) {n}, ваш баланс пополнен на {k} тг. Спасибо!",
]


def generate(path: Path, rows: int, seed: int = 7) -> None:
    """A list of ``rows`` unique numbers: 60% 7701…, 25% 8701…, 15% +7 (701) 234-56-78."""
    rng = random.Random(seed)
    seen: set[str] = set()
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["phone", "name", "text"])
        for _ in range(rows):
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
            text = rng.choice(TEXTS).format(n=name, k=rng.randrange(100_000))
            writer.writerow([phone, name, text])


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child_pandas(source: Path, output: Path) -> dict[str, float]:
    import pandas as pd

    started = time.perf_counter()
    frame = pd.read_csv(source, dtype=str, keep_default_na=False)
    frame.to_csv(output, index=False)
    return {"seconds": time.perf_counter() - started, "peak_rss_mb": peak_rss_mb()}


def child_validate(source: Path, output: Path) -> dict[str, float]:
    from mobizon_batch.cli import main

    started = time.perf_counter()
    code = main(["validate", str(source), "-o", str(output), "--quiet"])
    seconds = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"validate exited with {code}")
    return {"seconds": seconds, "peak_rss_mb": peak_rss_mb()}


def measure(kind: str, source: Path, output: Path) -> dict[str, float]:
    """Run one job in a fresh interpreter; it reports its own time and peak RSS."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(source), str(output)],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall_seconds"] = time.perf_counter() - started
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=1, help="runs of each; the best counts")
    parser.add_argument("--keep", type=Path, help="generate into (and keep) this folder")
    parser.add_argument(
        "--child", nargs=3, metavar=("KIND", "SOURCE", "OUTPUT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:
        kind, source, output = args.child
        job = child_pandas if kind == "pandas" else child_validate
        print(json.dumps(job(Path(source), Path(output))))
        return 0

    with tempfile.TemporaryDirectory(prefix="bench-validate-") as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        source = folder / f"list-{args.rows}.csv"
        if not source.exists():
            started = time.perf_counter()
            generate(source, args.rows)
            print(f"generated {source} in {time.perf_counter() - started:.1f} s")
        size_mb = source.stat().st_size / 1e6
        print(f"{args.rows:,} rows, {size_mb:.0f} MB, python {sys.version.split()[0]}")
        runs: dict[str, list[dict[str, float]]] = {"pandas": [], "validate": []}
        for attempt in range(args.repeat):
            for kind in ("pandas", "validate"):  # interleaved: both see the same noise
                result = measure(kind, source, folder / f"out-{kind}.csv")
                runs[kind].append(result)
                print(
                    f"  run {attempt + 1} {kind:<9} {result['seconds']:7.2f} s  "
                    f"peak RSS {result['peak_rss_mb']:7.0f} MB"
                )
    best = {kind: min(results, key=lambda r: r["seconds"]) for kind, results in runs.items()}
    floor, ours = best["pandas"], best["validate"]
    ratio = ours["seconds"] / floor["seconds"]
    print()
    print(f"{'':<28}{'seconds':>9}{'rows/s':>12}{'peak RSS MB':>13}")
    for label, result in (("pandas read_csv + to_csv", floor), ("mobizon-batch validate", ours)):
        rate = args.rows / result["seconds"]
        print(f"{label:<28}{result['seconds']:>9.2f}{rate:>12,.0f}{result['peak_rss_mb']:>13.0f}")
    print(
        f"ratio validate / pandas floor: time {ratio:.2f}x (target <= {TARGET_RATIO:.0f}x), "
        f"memory {ours['peak_rss_mb'] / floor['peak_rss_mb']:.2f}x"
    )
    ok = ratio <= TARGET_RATIO and ours["peak_rss_mb"] <= TARGET_RSS_MB
    print(f"peak RSS {ours['peak_rss_mb']:.0f} MB (target <= {TARGET_RSS_MB:.0f} MB)")
    print("targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
