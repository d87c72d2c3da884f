"""Campaign mode against message mode: requests and wall time, side by side in one run.

    python benchmarks/bench_campaign.py            # 100,000 rows (the README figures)
    python benchmarks/bench_campaign.py --quick    # 10,000 rows, for a smoke run

Both modes talk to the same emulator, in its own process (``mobizon-batch
emulator``, loopback only), with 50 ms latency and the same account rate:
at most ``--rate`` calls a second per method (code 30 beyond), and message
mode sends at that rate (``--rate``).

* Campaign mode sends all N rows: one campaign, AddRecipients 500 at a time,
  verify (GetInfo), price (GetOwnBalance), one Send.
* Message mode is measured on a sample (``--sample`` rows, the same text and
  rate) and extrapolated linearly to N: it makes one SendSmsMessage per row,
  at a steady rate, so its time and requests grow in proportion to the rows.
  Sending all N rows at 50/s would take over half an hour to say the same.

Floors (the issue's): at least 100x fewer requests, staging at least 20x
faster than message mode's send pass.  Each line says PASS or MISS.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from mobizon_batch.campaign_pass import CampaignOptions, CampaignPass
from mobizon_batch.client import MobizonClient
from mobizon_batch.journal import Journal
from mobizon_batch.prepare import PlanOptions, build_plan
from mobizon_batch.send import SendOptions, SendPass
from mobizon_batch.table import read_table

KEY = "bench-key-0123456789abcdef0123456789abcdef"
TEXT = "Sale today: 20% off everything until Sunday. Show this SMS at the till."
REQUEST_FLOOR = 100.0
STAGING_FLOOR = 20.0


@contextmanager
def emulator(latency_ms: float, rate: float) -> Iterator[str]:
    """Start ``mobizon-batch emulator`` on a free loopback port; yield its URL."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mobizon_batch",
            "emulator",
            "--port",
            "0",
            "--api-key",
            KEY,
            "--latency-ms",
            str(latency_ms),
            "--rate",
            str(rate),
            "--balance",
            "100000000",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    url = process.stdout.readline().strip().rsplit(" ", 1)[-1]
    try:
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


class CountingClient(MobizonClient):
    """A client that counts the requests it makes, by method."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.counts: Counter[str] = Counter()

    def _call_once(self, base: str, module: str, method: str, params: Any) -> Any:
        self.counts[f"{module}/{method}".lower()] += 1
        return super()._call_once(base, module, method, params)


def write_list(folder: Path, count: int, start: int = 0) -> Path:
    path = folder / f"list-{start}-{count}.csv"
    pd.DataFrame(
        {"phone": [f"7701{n:07d}" for n in range(start, start + count)], "text": TEXT}
    ).to_csv(path, index=False)
    return path


def campaign_mode(url: str, folder: Path, count: int) -> dict[str, Any]:
    plan = build_plan(read_table(write_list(folder, count)), PlanOptions())
    with (
        Journal(folder / "campaign.journal.sqlite") as journal,
        CountingClient(KEY, url) as client,
    ):
        journal.register(plan.entries())
        send = CampaignPass(client, journal, plan, CampaignOptions(name="bench", settle_seconds=1))
        started = time.perf_counter()
        summary = send.run()
        elapsed = time.perf_counter() - started
    assert summary.counts["sent"] == count, summary
    return {
        "sent": count,
        "requests": sum(client.counts.values()),
        "adds": client.counts["campaign/addrecipients"],
        "staging": summary.staging_seconds,
        "wall": elapsed,
        "by_method": dict(client.counts),
    }


def message_mode(url: str, folder: Path, sample: int, rate: float) -> dict[str, Any]:
    plan = build_plan(read_table(write_list(folder, sample, start=5_000_000)), PlanOptions())
    with (
        Journal(folder / "message.journal.sqlite") as journal,
        CountingClient(KEY, url, pool_size=8) as client,
    ):
        journal.register(plan.entries())
        send = SendPass(client, journal, SendOptions(rate=rate, workers=8, settle_seconds=0))
        started = time.perf_counter()
        summary = send.run()
        elapsed = time.perf_counter() - started
    assert summary.counts["sent"] == sample, summary
    return {"sent": sample, "requests": sum(client.counts.values()), "wall": elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="10,000 rows instead of 100,000")
    parser.add_argument("--sample", type=int, default=1000, help="message-mode sample rows")
    parser.add_argument("--rate", type=float, default=50.0, help="account rate, calls/s/method")
    args = parser.parse_args()
    rows = 10_000 if args.quick else 100_000

    print(
        f"campaign mode vs message mode: {rows:,} rows, emulator with 50 ms latency and "
        f"{args.rate:g} calls/s per method (own process, loopback only)\n"
    )
    with tempfile.TemporaryDirectory() as name, emulator(50, args.rate) as url:
        folder = Path(name)
        campaign = campaign_mode(url, folder, rows)
        message = message_mode(url, folder, args.sample, args.rate)

    scale = rows / message["sent"]
    message_requests = message["requests"] * scale
    message_wall = message["wall"] * scale
    request_ratio = message_requests / campaign["requests"]
    staging_ratio = message_wall / campaign["staging"]
    print(f"{'':28}{'campaign mode':>16}{'message mode':>16}")
    print(
        f"{'rows':28}{rows:>16,}{rows:>16,}   (message mode: {message['sent']:,} sent, x{scale:g})"
    )
    print(f"{'requests':28}{campaign['requests']:>16,}{message_requests:>16,.0f}")
    print(f"{'  of which AddRecipients':28}{campaign['adds']:>16,}{'':>16}")
    print(f"{'staging / send pass (s)':28}{campaign['staging']:>16.1f}{message_wall:>16.1f}")
    print(f"{'whole pass (s)':28}{campaign['wall']:>16.1f}{message_wall:>16.1f}")
    print(f"\ncampaign requests by method: {campaign['by_method']}")
    verdict = "PASS" if request_ratio >= REQUEST_FLOOR else "MISS"
    print(f"requests: {request_ratio:,.0f}x fewer (floor {REQUEST_FLOOR:g}x) {verdict}")
    verdict = "PASS" if staging_ratio >= STAGING_FLOOR else "MISS"
    print(
        f"staging:  {staging_ratio:,.0f}x faster than message mode's pass (floor {STAGING_FLOOR:g}x) {verdict}"
    )


if __name__ == "__main__":
    main()
