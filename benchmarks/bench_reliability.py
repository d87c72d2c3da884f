"""Never twice, never lost: the send command against an API that behaves as the docs allow.

    python benchmarks/bench_reliability.py            # the figures quoted in the README
    python benchmarks/bench_reliability.py --quick    # smaller lists, for a smoke run
    python benchmarks/bench_reliability.py --only lag ids

Each scenario runs the real command (a separate process) against the emulator
on loopback, with one of the behaviours the API docs do not rule out switched
on, and counts what a recipient would notice:

``duplicates``   messages beyond the first a recipient got with one text
``wrong``        rows whose ``message_id`` is not a message this list's send
                 created (an older one adopted: that recipient got nothing)
``missing``      rows marked sent whose recipient got nothing in this send
``unknown``      rows left ``unknown`` (allowed: counted and explained)
``list``         Message/List calls the sends made

Scenarios:

crash       300 rows, one text, sent to day1.csv; 2 hours later the same list
            to day2.csv (``--allow-resend``), killed during its first batch
            (``--rate 2``), then run again; the account clock is 3.5 h ahead
lag         500 rows, 5 % answers lost after the message was made, Message/List
            shows a message only 10 s (``--lag``) after it was made, default ``--settle``
ids         the same with message ids that do not grow with time
spaces      the same with texts holding double spaces, stored normalized
second-file the same list sent again to another results file
two-journals one results file sent by two processes at once, each with its own
            ``--journal``

Everything is a count, not a time: there is no PASS/MISS floor but zero.
"""

from __future__ import annotations

import argparse
import csv
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mobizon_batch.emulator import MobizonEmulator

KEY = "bench-key-0123456789abcdef0123456789abcdef"
SENDS = frozenset({"message/sendsmsmessage"})


@dataclass
class Outcome:
    duplicates: int = 0
    wrong: int = 0
    missing: int = 0
    unknown: int = 0
    list_calls: int = 0
    exit_codes: list[int] = field(default_factory=list)

    def line(self, name: str) -> str:
        verdict = "PASS" if self.duplicates == self.wrong == self.missing == 0 else "MISS"
        return (
            f"{name:<13} duplicates {self.duplicates:>4}  wrong {self.wrong:>4}  "
            f"missing {self.missing:>4}  unknown {self.unknown:>4}  list {self.list_calls:>5}  "
            f"exit {','.join(map(str, self.exit_codes)):<8} {verdict}"
        )


def write_list(path: Path, count: int, text: Callable[[int], str]) -> list[str]:
    phones = [f"7701{n:07d}" for n in range(count)]
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["phone", "text"])
        for n, phone in enumerate(phones):
            writer.writerow([phone, text(n)])
    return phones


def read_rows(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def send_args(source: Path, results: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "mobizon_batch",
        "send",
        str(source),
        "-o",
        str(results),
        "-q",
        "--phone-column",
        "phone",
        "--text-column",
        "text",
        *extra,
    ]


def environment(emulator: MobizonEmulator) -> dict[str, str]:
    return {**os.environ, "MOBIZON_API_KEY": KEY, "MOBIZON_API_URL": emulator.url}


def supports(flag: str) -> bool:
    """Whether this version's send command knows ``flag`` (the figures compare versions)."""
    help_text = subprocess.run(
        [sys.executable, "-m", "mobizon_batch", "send", "--help"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return flag in help_text


def judge(emulator: MobizonEmulator, results: list[Path], before: set[int]) -> Outcome:
    """Count what recipients would notice, from the emulator's own record."""
    messages = emulator.messages()
    new = [m for m in messages if m.id not in before]
    per_recipient = Counter(m.to for m in new)
    outcome = Outcome(duplicates=sum(n - 1 for n in per_recipient.values() if n > 1))
    new_ids = {m.id for m in new}
    for path in results:
        for row in read_rows(path):
            status = row.get("send_status", "")
            outcome.unknown += status == "unknown"
            if status == "sent":
                message_id = int(row["message_id"])
                outcome.wrong += message_id not in new_ids
                outcome.missing += per_recipient[row["recipient"]] == 0
    outcome.list_calls = len(emulator.calls("message/list"))
    return outcome


def lossy(size: int, folder: Path, text: Callable[[int], str], **knobs: object) -> Outcome:
    """``size`` rows, 5 % lost answers after the message was made, one knob on."""
    with MobizonEmulator(api_key=KEY, fault_methods=SENDS, fault_drop_after=0.05, **knobs) as emu:
        source = folder / "list.csv"
        write_list(source, size, text)
        results = folder / "results.csv"
        run = subprocess.run(
            send_args(source, results, "--rate", "50"),
            env=environment(emu),
            capture_output=True,
            text=True,
            check=False,
        )
        outcome = judge(emu, [results], set())
        outcome.exit_codes.append(run.returncode)
        return outcome


def crash(size: int, folder: Path) -> Outcome:
    text = "Your order is ready: show this message at the desk."
    resend = ["--allow-resend"] if supports("--allow-resend") else []
    with MobizonEmulator(api_key=KEY, clock_offset=3.5 * 3600, latency=0.05) as emu:
        source = folder / "list.csv"
        write_list(source, size, lambda n: text)
        env = environment(emu)
        day1 = subprocess.run(
            send_args(source, folder / "day1.csv", "--rate", "0"), env=env, check=False
        )
        emu.shift_messages(2 * 3600)  # day 1 was two hours ago
        before = {m.id for m in emu.messages()}
        emu.reset_calls()
        day2 = folder / "day2.csv"
        process = subprocess.Popen(
            send_args(source, day2, "--rate", "2", *resend),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while not emu.calls("message/sendsmsmessage") and time.monotonic() < deadline:
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        process.wait()
        rerun = subprocess.run(
            send_args(source, day2, "--rate", "0", *resend), env=env, check=False
        )
        outcome = judge(emu, [day2], before)
        outcome.exit_codes += [day1.returncode, rerun.returncode]
        return outcome


def second_file(size: int, folder: Path) -> Outcome:
    with MobizonEmulator(api_key=KEY) as emu:
        source = folder / "list.csv"
        write_list(source, size, lambda n: f"Code {n:05d}")
        env = environment(emu)
        first = subprocess.run(send_args(source, folder / "day1.csv"), env=env, check=False)
        emu.reset_calls()
        again = subprocess.run(send_args(source, folder / "day1-typo.csv"), env=env, check=False)
        outcome = judge(emu, [folder / "day1-typo.csv"], set())
        outcome.exit_codes += [first.returncode, again.returncode]
        return outcome


def two_journals(size: int, folder: Path) -> Outcome:
    with MobizonEmulator(api_key=KEY, latency=0.01) as emu:
        source = folder / "list.csv"
        write_list(source, size, lambda n: f"Code {n:05d}")
        env = environment(emu)
        results = folder / "results.csv"
        processes = [
            subprocess.Popen(
                send_args(source, results, "--journal", str(folder / f"j{n}.sqlite")),
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for n in range(2)
        ]
        codes = [p.wait() for p in processes]
        outcome = judge(emu, [results], set())
        outcome.exit_codes += codes
        return outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller lists")
    parser.add_argument("--only", nargs="*", help="scenario names")
    parser.add_argument(
        "--lag", type=float, default=10.0, help="the list's lag in the lag scenario (seconds)"
    )
    args = parser.parse_args()
    big, small = (150, 100) if args.quick else (500, 300)
    scenarios: dict[str, Callable[[Path], Outcome]] = {
        "crash": lambda f: crash(small, f),
        "lag": lambda f: lossy(big, f, lambda n: f"Code {n:05d}", list_lag=args.lag),
        "ids": lambda f: lossy(big, f, lambda n: f"Code {n:05d}", random_ids=True),
        "spaces": lambda f: lossy(
            big, f, lambda n: f"Code  {n:05d}:  see you ", normalize_whitespace=True
        ),
        "second-file": lambda f: second_file(small, f),
        "two-journals": lambda f: two_journals(400, f),
    }
    for name, scenario in scenarios.items():
        if args.only and name not in args.only:
            continue
        with tempfile.TemporaryDirectory() as folder:
            print(scenario(Path(folder)).line(name), flush=True)


if __name__ == "__main__":
    main()
