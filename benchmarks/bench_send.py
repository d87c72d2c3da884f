"""Send-pass benchmarks, measured side by side in one run against the emulator.

    python benchmarks/bench_send.py            # the figures quoted in the README
    python benchmarks/bench_send.py --quick    # smaller counts, for a smoke run

The emulator runs as a separate process (``mobizon-batch emulator``) so that
it does not share a GIL with the sender being measured. Only loopback is used.

(a) ``rate=50`` with 50 ms latency: the achieved rate over N messages, as a
    share of 50/s (target: at least 95%).
(b) no rate limit, 16 workers, 50 ms latency: our pass against a naive
    sequential loop (``for row in df.itertuples(): requests.post(...)``).
(c) 0 ms latency, 8 workers: our whole pass (journal, intents, retries,
    limiter) against a bare ``ThreadPoolExecutor`` + ``requests.Session`` loop
    — the ratio is our overhead (target: at least 0.8).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import requests

from mobizon_batch.client import MobizonClient
from mobizon_batch.journal import Journal, PlanEntry
from mobizon_batch.send import SendOptions, SendPass

KEY = "bench-key-0123456789abcdef0123456789abcdef"


@contextmanager
def emulator(latency_ms: float) -> Iterator[str]:
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


def rows(count: int, tag: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "phone": [f"7701{n:07d}" for n in range(count)],
            "text": [f"Тест {tag} {n}" for n in range(count)],
        }
    )


def our_pass(url: str, frame: pd.DataFrame, *, rate: float, workers: int) -> tuple[float, int]:
    """Seconds for SendPass over ``frame`` (journal registered first, not timed)."""
    with (
        tempfile.TemporaryDirectory() as folder,
        Journal(Path(folder) / "bench.journal.sqlite") as journal,
    ):
        journal.register(
            PlanEntry(f"k{n}", phone, text, "sendable", "", 1)
            for n, (phone, text) in enumerate(zip(frame["phone"], frame["text"], strict=True))
        )
        with MobizonClient(KEY, url, pool_size=workers) as client:
            send = SendPass(
                client, journal, SendOptions(rate=rate, workers=workers, settle_seconds=0)
            )
            started = time.perf_counter()
            summary = send.run()
            elapsed = time.perf_counter() - started
    return elapsed, summary.sent_now


def naive_loop(url: str, frame: pd.DataFrame) -> float:
    started = time.perf_counter()
    for row in frame.itertuples():
        requests.post(
            f"{url}/service/message/sendsmsmessage",
            params={"output": "json", "api": "v1", "apiKey": KEY},
            data={"recipient": row.phone, "text": row.text},
            timeout=30,
        ).raise_for_status()
    return time.perf_counter() - started


def bare_pool(url: str, frame: pd.DataFrame, workers: int) -> float:
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_maxsize=workers)
    session.mount("http://", adapter)

    def post(pair: tuple[str, str]) -> None:
        session.post(
            f"{url}/service/message/sendsmsmessage",
            params={"output": "json", "api": "v1", "apiKey": KEY},
            data={"recipient": pair[0], "text": pair[1]},
            timeout=30,
        ).raise_for_status()

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(post, zip(frame["phone"], frame["text"], strict=True)))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts")
    args = parser.parse_args()
    n_rate, n_naive, n_overhead = (200, 100, 1000) if args.quick else (1000, 400, 5000)

    print("mobizon-batch send-pass benchmarks (emulator in its own process, loopback only)\n")
    with emulator(latency_ms=50) as url:
        elapsed, sent = our_pass(url, rows(n_rate, "a"), rate=50, workers=8)
        achieved = sent / elapsed
        print(f"(a) --rate 50, 50 ms latency, {sent} messages in {elapsed:.2f} s")
        print(f"    achieved {achieved:.2f}/s = {achieved / 50:.1%} of 50/s (target >= 95%)\n")

        ours, sent = our_pass(url, rows(n_naive, "b"), rate=0, workers=16)
        naive = naive_loop(url, rows(n_naive, "b2"))
        print(f"(b) no limit, 16 workers, 50 ms latency, {n_naive} messages each")
        print(f"    ours {n_naive / ours:8.1f}/s ({ours:.2f} s)")
        print(f"    naive loop {n_naive / naive:8.1f}/s ({naive:.2f} s)")
        print(f"    ratio ours/naive = {naive / ours:.1f}x (expect well over 10x)\n")

    with emulator(latency_ms=0) as url:
        bare_pool(url, rows(200, "warm"), 8)  # warm both sides up
        bare = bare_pool(url, rows(n_overhead, "c1"), 8)
        ours, sent = our_pass(url, rows(n_overhead, "c2"), rate=0, workers=8)
        bare_again = bare_pool(url, rows(n_overhead, "c3"), 8)
        bare_best = min(bare, bare_again)
        print(f"(c) no latency, 8 workers, {n_overhead} messages each")
        print(f"    bare pool  {n_overhead / bare:8.1f}/s and {n_overhead / bare_again:8.1f}/s")
        print(f"    our pass   {n_overhead / ours:8.1f}/s (journal, intents, limiter, retries)")
        print(
            f"    ratio ours/bare = {bare_best / ours:.2f} against the faster bare run (target >= 0.8)"
        )


if __name__ == "__main__":
    main()
