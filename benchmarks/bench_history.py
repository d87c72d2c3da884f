"""The history guard's cost on a 100,000-row list, measured side by side in one run.

    python benchmarks/bench_history.py                 # the figures quoted in the README
    python benchmarks/bench_history.py --rows 20000    # a smaller run

The emulator runs as a separate process holding ``--rows`` messages sent a
moment ago (``--preload``, the documented test-support hook): recipients
7701xxxxxxx, text "Preloaded message".  The guard then checks a list of the
same size twice:

(a) the same recipients and text — every row is already sent; few distinct
    texts, so the guard asks by text;
(b) the same recipients, each with its own text — nothing is already sent;
    many texts, so the guard pages through the whole time window.

Floors, measured in the same run: Message/List returns at most 100 items a
call, so ``ceil(messages / 100)`` calls is the least any complete check can
make; and a bare loop that pages the same window with ``requests`` and only
decodes each answer is the least time.  PASS when the guard makes at most two
calls over the floor and takes at most twice the bare loop (our client types
every field of every item; the bare loop only decodes).  Each side is
measured twice, alternating, and the better time kept: the machine is shared.
For scale, the share of the time the list itself takes to send at the default
20/s is shown.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta

import requests

from mobizon_batch.client import MobizonClient
from mobizon_batch.history import Planned, guard

KEY = "bench-key-0123456789"
TEXT = "Preloaded message"


def start_emulator(rows: int) -> tuple[subprocess.Popen[str], str]:
    command = [
        *(sys.executable, "-m", "mobizon_batch", "emulator"),
        *("--port", "0", "--api-key", KEY, "--preload", str(rows)),
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
    for line in process.stdout:
        if "preloaded" in line:
            break
    if not url.startswith("http://127.0.0.1:"):
        process.kill()
        raise SystemExit(f"the emulator did not start as expected (got {url!r})")
    return process, url


def bare_paging(url: str, since: datetime, total: int) -> tuple[int, float]:
    """Page the window with nothing but requests: the least time a complete check takes."""
    session = requests.Session()
    began = time.perf_counter()
    calls = 0
    for page in range(math.ceil(total / 100)):
        response = session.post(
            f"{url}/service/message/list",
            params={"output": "json", "api": "v1", "apiKey": KEY},
            data={
                "criteria[campaignSentTsFrom]": since.strftime("%Y-%m-%d %H:%M:%S"),
                "pagination[pageSize]": "100",
                "pagination[currentPage]": str(page),
                "sort[campaignId]": "ASC",
            },
            timeout=60,
        )
        response.raise_for_status()
        items = response.json()["data"]["items"]  # the least a check must do: read them
        assert isinstance(items, list)
        calls += 1
    return calls, time.perf_counter() - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    started = time.perf_counter()
    process, url = start_emulator(args.rows)
    print(
        f"emulator: {url}, {args.rows:,} messages preloaded in {time.perf_counter() - started:.1f} s"
    )
    floor_calls = math.ceil(args.rows / 100)
    sending = args.rows / 20.0
    verdicts = []
    try:
        with MobizonClient(KEY, url, timeout=(10.0, 120.0)) as client:
            numbers = [f"7701{n:07d}" for n in range(args.rows)]
            same = [Planned(f"k{n}", number, TEXT) for n, number in enumerate(numbers)]
            own = [Planned(f"k{n}", number, f"Code {n}") for n, number in enumerate(numbers)]
            for label, rows in (
                ("(a) one text, all sent", same),
                (f"(b) {args.rows:,} texts, none", own),
            ):
                seconds = bare_seconds = math.inf
                for _ in range(2):
                    began = time.perf_counter()
                    report = guard(client, rows, window=timedelta(hours=24), offset=0.0)
                    seconds = min(seconds, time.perf_counter() - began)
                    assert report.since is not None
                    bare_calls, bare = bare_paging(url, report.since, args.rows)
                    bare_seconds = min(bare_seconds, bare)
                ok = report.calls <= floor_calls + 2 and seconds <= 2.0 * bare_seconds
                verdicts.append(ok)
                print(
                    f"{label}: {len(report.already):,} of {len(rows):,} rows already sent; "
                    f"{report.calls:,} List calls {report.query} (floor {floor_calls:,}), "
                    f"{seconds:.1f} s vs bare paging {bare_seconds:.1f} s "
                    f"({bare_calls:,} calls) = {seconds / bare_seconds:.2f}x; "
                    f"{100 * seconds / sending:.1f}% of sending the list at 20/s "
                    f"-> {'PASS' if ok else 'MISS'}"
                )
    finally:
        process.terminate()
        process.wait()
    return 0 if all(verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
