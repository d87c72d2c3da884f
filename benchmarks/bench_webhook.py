"""Benchmark: how many webhook events the receiver accepts per second, and how fast it answers.

What it measures, in one run: the ``webhook`` command runs in its own process
(so the senders do not share its GIL), with a fresh store on this machine's
disk; ``--senders`` threads POST signed ``sms-delivery-report`` events to it
at once, each on a new connection (as a webhook sender does), a share of them
again with the same eventId (``--repeat``, Mobizon's redeliveries).  Every
answer must be a 200 and every distinct event must be in the store
afterwards, or the run counts as failed.

It prints events accepted per second and the answer times (p50, p99, max)
against Mobizon's budget: an answer later than 5 s counts as a failure and
the event is sent again, so p99 must stay far under it.  Each event is
committed to disk (fsync) before its answer, so the figures include the
disk.  Times are printed, never asserted.

Run:  .venv/bin/python benchmarks/bench_webhook.py [--events 4000] [--senders 16]
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

SECRET = "bench-webhook-secret-0123456789"
BUDGET = 5.0  # seconds: Mobizon counts a later answer as a failed delivery
#: A floor for throughput: 50 events/s is 180,000 delivery reports an hour.
RATE_FLOOR = 50.0


def start_receiver(store: Path, threads: int) -> tuple[subprocess.Popen[str], str]:
    command = [
        sys.executable,
        "-m",
        "mobizon_batch",
        "webhook",
        "--listen",
        "127.0.0.1:0",
        "--store",
        str(store),
        "--path",
        "/mobizon/events",
        "--threads",
        str(threads),
    ]
    env = dict(os.environ, MOBIZON_WEBHOOK_SECRET=SECRET)
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
    )
    assert process.stderr is not None
    line = process.stderr.readline()
    found = re.search(r"http://\S+", line)
    if not found:
        process.kill()
        raise SystemExit(f"the receiver did not start: {line.strip()}")
    # Keep reading its log (one line an event) so that the pipe never fills up.
    threading.Thread(target=process.stderr.read, daemon=True).start()
    return process, found.group(0)


def event(event_id: int, attempt: int) -> bytes:
    created = "2026-11-29 06:00:00"
    sign = hashlib.sha1(f"{event_id}|{attempt}|{created}|{SECRET}".encode()).hexdigest()
    return json.dumps(
        {
            "eventId": event_id,
            "eventType": "sms-delivery-report",
            "eventCreateTs": created,
            "webhookId": 1,
            "attempt": attempt,
            "data": {
                "campaignId": 7300000 + event_id,
                "messageId": 41000000 + event_id,
                "segNum": 1,
                "statusUpdateTs": created,
                "status": "DELIVRD",
                "to": f"7701{event_id:07d}",
            },
            "sign": sign,
        }
    ).encode()


def run_senders(url: str, bodies: list[bytes], senders: int) -> tuple[float, list[float], int]:
    """POST every body from ``senders`` threads; return wall time, answer times, non-200s."""
    parts = urlsplit(url)
    times: list[float] = []
    failures = 0
    lock = threading.Lock()
    next_index = iter(range(len(bodies)))

    def sender() -> None:
        nonlocal failures
        mine: list[float] = []
        bad = 0
        while True:
            with lock:
                index = next(next_index, None)
            if index is None:
                break
            started = time.perf_counter()
            connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
            try:
                connection.request(
                    "POST",
                    parts.path,
                    body=bodies[index],
                    headers={"Content-Type": "application/json"},
                )
                answer = connection.getresponse()
                answer.read()
                bad += answer.status != 200
            except OSError:
                bad += 1
            finally:
                connection.close()
            mine.append(time.perf_counter() - started)
        with lock:
            times.extend(mine)
            failures += bad

    threads = [threading.Thread(target=sender) for _ in range(senders)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, times, failures


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=4000, help="distinct events")
    parser.add_argument("--senders", type=int, default=16, help="concurrent sending threads")
    parser.add_argument("--repeat", type=float, default=0.1, help="share sent twice")
    parser.add_argument("--threads", type=int, default=8, help="receiver worker threads")
    args = parser.parse_args()

    bodies = [event(i, 1) for i in range(1, args.events + 1)]
    repeats = int(args.events * args.repeat)
    step = max(1, args.events // max(repeats, 1))
    bodies += [event(i, 2) for i in range(1, args.events + 1, step)][:repeats]

    with tempfile.TemporaryDirectory(prefix="bench-webhook-", dir=Path.cwd()) as folder:
        store = Path(folder) / "events.sqlite"
        process, url = start_receiver(store, args.threads)
        try:
            wall, times, failures = run_senders(url, bodies, args.senders)
        finally:
            process.terminate()
            code = process.wait(timeout=30)
        with sqlite3.connect(store) as db:
            distinct, deliveries = db.execute(
                "SELECT count(*), sum(deliveries) FROM events"
            ).fetchone()
        db.close()

    rate = len(bodies) / wall
    p50, p99 = statistics.median(times), percentile(times, 0.99)
    worst = max(times)
    complete = failures == 0 and distinct == args.events and deliveries == len(bodies)
    print(f"receiver: the webhook command, {args.threads} worker threads, store on {Path.cwd()}")
    print(
        f"sent {len(bodies)} events ({args.events} distinct, {len(bodies) - args.events} "
        f"redelivered) from {args.senders} concurrent senders in {wall:.2f} s"
    )
    print(
        f"stored {distinct} distinct events, {deliveries} deliveries counted; "
        f"non-200 answers: {failures}; exit on SIGTERM: {code}"
    )
    print(
        f"throughput: {rate:,.0f} events/s   floor {RATE_FLOOR:.0f}/s   "
        f"ratio {rate / RATE_FLOOR:.1f}x   {'PASS' if rate >= RATE_FLOOR else 'MISS'}"
    )
    print(
        f"answer time: p50 {p50 * 1000:.1f} ms   p99 {p99 * 1000:.1f} ms   "
        f"max {worst * 1000:.1f} ms"
    )
    print(
        f"p99 vs Mobizon's {BUDGET:.0f} s budget: {p99 / BUDGET:.4f} of it   "
        f"{'PASS' if p99 < BUDGET else 'MISS'}"
    )
    print(f"every event answered 200 and stored once: {'PASS' if complete else 'MISS'}")
    return 0 if complete and code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
