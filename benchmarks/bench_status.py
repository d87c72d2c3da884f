"""Benchmark: the status pass on 100,000 rows against the emulator, beside a naive loop.

What it compares, in one run, against one emulator:
- ours: ``refresh_statuses`` — distinct pending ids, 100 per GetSMSStatus call;
- naive: one GetSMSStatus call per id, as a first script would do it.  Asking
  100,000 ids one by one takes long, so the naive loop runs on a sample
  (``--sample``, default 2,000 ids) and its time is extrapolated linearly to
  all rows; both the measured and the extrapolated figures are printed.

The emulator runs in its own process (``python -m mobizon_batch emulator``) so
that client and server do not share a GIL; its URL is read from its first
line of output.  The 100,000 messages are created inside the emulator at
start (``--preload``, a documented test-support hook) instead of being sent
through HTTP, and their statuses are made to stay non-final (``--status-step``
of a day) so that every row is asked about.  ``--latency-ms`` adds a delay to
every answer, to see the effect of a real network.  Last, it times the whole
``status`` command on a 100,000-row CSV (read, refresh, write back) and the
``report`` command on the result.  Timings are printed, never asserted.

Run:  .venv/bin/python benchmarks/bench_status.py [--rows 100000] [--sample 2000]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from mobizon_batch.cli import main as cli_main
from mobizon_batch.client import MobizonClient
from mobizon_batch.status import refresh_statuses
from mobizon_batch.table import write_table

KEY = "bench-key-0123456789"


def start_emulator(rows: int, latency_ms: float) -> tuple[subprocess.Popen[str], str, range]:
    """Start the emulator process; return it, its URL and the preloaded ids."""
    command = [
        sys.executable,
        "-m",
        "mobizon_batch",
        "emulator",
        "--port",
        "0",
        "--api-key",
        KEY,
        "--preload",
        str(rows),
        "--status-step",
        "86400",
        "--latency-ms",
        str(latency_ms),
    ]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    url = process.stdout.readline().strip().rsplit(" ", 1)[-1]
    ids: range | None = None
    for line in process.stdout:
        match = re.search(r"preloaded (\d+) messages: ids (\d+)-(\d+)", line)
        if match:
            ids = range(int(match[2]), int(match[3]) + 1)
            break
    if not url.startswith("http://127.0.0.1:") or ids is None or len(ids) != rows:
        process.kill()
        raise SystemExit(f"the emulator did not start as expected (got {url!r})")
    return process, url, ids


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--sample", type=int, default=2_000, help="ids the naive loop asks")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="emulator answer delay")
    args = parser.parse_args()

    started = time.perf_counter()
    process, url, ids = start_emulator(args.rows, args.latency_ms)
    print(
        f"emulator: {url}, {len(ids):,} messages preloaded in "
        f"{time.perf_counter() - started:.1f} s, latency {args.latency_ms:g} ms"
    )
    try:
        frame = pd.DataFrame(
            {
                "recipient": [f"7701{i % 10_000_000:07d}" for i in range(len(ids))],
                "send_status": "sent",
                "message_id": [str(i) for i in ids],
            }
        )
        with MobizonClient(KEY, url) as client:
            client.get_sms_status([ids[0]])  # warm the connection for both sides

            began = time.perf_counter()
            result = refresh_statuses(frame, client)
            ours = time.perf_counter() - began
            assert result.asked == len(ids) and result.updated == len(ids)

            sample = list(ids)[:: max(len(ids) // max(args.sample, 1), 1)][: args.sample]
            began = time.perf_counter()
            for message_id in sample:
                client.get_sms_status([message_id])
            naive_sample = time.perf_counter() - began

        # The whole command on a file: read 100k rows, refresh, write back; then the report.
        with tempfile.TemporaryDirectory() as folder:
            results = Path(folder) / "results.csv"
            write_table(frame[["recipient", "send_status", "message_id"]], results)
            os.environ.update(MOBIZON_API_URL=url, MOBIZON_API_KEY=KEY)
            began = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                code = cli_main(["status", str(results), "--rate", "0", "--quiet"])
            command = time.perf_counter() - began
            assert code == 0, code
            began = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                code = cli_main(["report", str(results), "-o", str(Path(folder) / "r.xlsx")])
            report = time.perf_counter() - began
            assert code == 0, code
    finally:
        process.terminate()
        process.wait(timeout=10)

    naive_total = naive_sample / len(sample) * len(ids)
    print()
    print(f"{'':32}{'calls':>10}{'wall time':>14}{'ids/s':>12}")
    print(
        f"{'ours (100 ids a call)':32}{result.calls:>10,}{ours:>12.2f} s{len(ids) / ours:>12,.0f}"
    )
    print(
        f"{f'naive, measured on {len(sample):,} ids':32}{len(sample):>10,}"
        f"{naive_sample:>12.2f} s{len(sample) / naive_sample:>12,.0f}"
    )
    print(
        f"{f'naive, extrapolated to {len(ids):,}':32}{len(ids):>10,}"
        f"{naive_total:>12.2f} s{len(ids) / naive_total:>12,.0f}"
    )
    print()
    print(
        f"calls: {len(ids) / result.calls:.0f}x fewer; "
        f"wall time: naive (extrapolated) / ours = {naive_total / ours:.1f}x"
    )
    print(f"'status' command on a {len(ids):,}-row CSV (read, refresh, write): {command:.2f} s")
    print(f"'report' command on the same file (summary, workbook with 3 sheets): {report:.2f} s")
    print(
        f"ours per call: {ours / result.calls * 1000:.2f} ms; "
        f"naive per call: {naive_sample / len(sample) * 1000:.2f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    raise SystemExit(main())
