"""Terminal output: progress bars, the lines a command prints, Ctrl-C during a send.

``TerminalObserver`` is how a use case's progress reaches the screen; the
``print_*`` functions render result objects.  Lines for people go to stdout
(none with ``--quiet``); warnings and errors go to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from tqdm import tqdm

from mobizon_batch.campaign_pass import CampaignProgress, Quote
from mobizon_batch.cli.exits import EXIT_INTERRUPTED
from mobizon_batch.rowchecks import INVISIBLE_NAMES
from mobizon_batch.runs.common import JobObserver
from mobizon_batch.vocabulary import SendState

if TYPE_CHECKING:
    from mobizon_batch.prepare import Plan
    from mobizon_batch.runs.common import SendStart
    from mobizon_batch.runs.preflight import PreFlight
    from mobizon_batch.send import SendProgress
    from mobizon_batch.status import RefreshResult


def say(args: argparse.Namespace, line: str) -> None:
    """A line for people: stdout, or nothing with --quiet."""
    if not getattr(args, "quiet", False):
        print(line)


def format_money(amount: Decimal) -> str:
    """``1234.5600`` → ``1,234.56``: two decimals, thousands separated."""
    return f"{amount.quantize(Decimal('0.01')):,}"


def format_duration(seconds: float) -> str:
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours}h"] if hours else []
    parts += [f"{minutes}m"] if minutes else []
    return "".join(parts) + (f"{secs}s" if secs or not parts else "")


def can_ask(args: argparse.Namespace) -> bool:
    """True when a person is there to answer: a terminal on both ends and no ``--yes``.

    A cron job, a pipe or a job file (whose options have no ``yes``) never
    waits for an answer.
    """
    if getattr(args, "yes", True):
        return False
    return sys.stdin.isatty() and sys.stdout.isatty()


def ask_to_send(args: argparse.Namespace) -> bool:
    """``Send? [y/N]`` when a person can answer (``can_ask``); True (no question) otherwise.

    Anything but y, yes (or да) — end of input included — is no.
    """
    if not can_ask(args):
        return True
    # The question goes to stdout here: input() would put it on stderr when no
    # line-editing library is loaded, and a terminal logged by ``script`` or a
    # pty would then show the answer before the question.
    print("Send? [y/N] ", end="", flush=True)
    try:
        answer = sys.stdin.readline()
    except (EOFError, OSError):
        return False
    if not answer:  # end of input: no
        return False
    return answer.strip().lower() in ("y", "yes", "д", "да")


def preflight_line(figures: PreFlight) -> str:
    """``About to send 5,000 rows (10,000 segments); balance 1,234.00 KZT …``."""
    line = (
        f"About to send {figures.rows:,} rows ({figures.segments:,} segments); balance "
        f"{format_money(figures.balance)} {figures.currency} ({figures.host})"
    )
    if figures.price is not None:
        line += f"; price {format_money(figures.price)} {figures.currency}"
    if figures.waiting:
        line += f"; {figures.waiting:,} rows wait for their send window"
    return line


@contextlib.contextmanager
def json_output(args: argparse.Namespace) -> Iterator[TextIO]:
    """With ``--json``, lines for people go to stderr and stdout keeps one JSON object.

    Yields the stream the JSON object goes to (stdout as it was).
    """
    stream = sys.stdout
    if not getattr(args, "json", False):
        yield stream
        return
    with contextlib.redirect_stdout(sys.stderr):
        yield stream


def print_json(stream: TextIO, facts: Mapping[str, Any]) -> None:
    """One JSON object on one line (non-ASCII as it is, numbers as numbers)."""
    print(json.dumps(facts, ensure_ascii=False, default=str), file=stream, flush=True)


def progress_bar(args: argparse.Namespace, total: int, description: str) -> tqdm[Any]:
    """A bar on stderr; none with --quiet, or when stderr is not a terminal (cron, pipes)."""
    return tqdm(
        total=total,
        desc=description,
        unit=" rows",
        unit_scale=True,
        file=sys.stderr,
        disable=True if getattr(args, "quiet", False) else None,
        leave=False,
        mininterval=0.5,
    )


def count_bar(args: argparse.Namespace, unit: str, description: str) -> tqdm[NoReturn]:
    """A bar whose total is learned on the way; hidden as ``progress_bar``'s is."""
    return tqdm(
        total=0,
        unit=unit,
        desc=description,
        file=sys.stderr,
        disable=True if getattr(args, "quiet", False) else None,
        leave=False,
    )


def cost_line(quote: Quote) -> str:
    """``Cost: 15,000.00 KZT for 1,500 messages (1,500 segments) in 1 campaign; balance …``."""
    campaigns = f"{quote.campaigns:,} campaign" + ("s" if quote.campaigns != 1 else "")
    return (
        f"Cost: {format_money(quote.cost)} {quote.currency} for {quote.messages:,} messages "
        f"({quote.segments:,} segments) in {campaigns}; balance "
        f"{format_money(quote.balance)} {quote.currency}"
    )


class TerminalObserver(JobObserver):
    """Shows a use case's progress: bars on stderr, the plan and the send's first line.

    ``show_plan`` says whether the plan summary is printed when the rows are
    judged (``validate`` prints it itself, after deciding on ``--quiet``).
    """

    def __init__(self, args: argparse.Namespace, *, show_plan: bool = True) -> None:
        self.args = args
        self.show_plan = show_plan
        self._bar: tqdm[Any] | None = None
        #: the bar of a status pass or a list export, set while one runs
        self.status_bar: tqdm[NoReturn] | None = None
        #: True while a status pass waits for final statuses (the bar counts rows then)
        self.waiting = False
        self.rounds = 0
        #: True once the send bar got its first snapshot
        self._counting = False

    def checking(self, rows: int) -> None:
        self._bar = progress_bar(self.args, rows, "checking rows")

    def checked(self, rows: int) -> None:
        if self._bar is not None:
            self._bar.update(rows)

    def planned(self, plan: Plan) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self.show_plan and not getattr(self.args, "quiet", False):
            print_plan_summary(plan)

    def ready_to_send(self, ready: SendStart) -> None:
        say(
            self.args,
            f"Balance: {format_money(ready.balance)} {ready.currency} ({ready.host}). "
            f"To send: {ready.to_do:,} rows"
            + (f", {ready.segments:,} segments" if ready.segments else "")
            + (f" ({ready.already_sent:,} already sent)" if ready.already_sent else ""),
        )
        if ready.deferred_to is not None:
            say(
                self.args,
                f"Deferred to {ready.deferred_to:%Y-%m-%d %H:%M:%S} on the account's clock: "
                f"{ready.account_zone}.",
            )

    def confirm_send(self, figures: PreFlight) -> bool:
        if not can_ask(self.args):
            return True
        print(preflight_line(figures))
        return ask_to_send(self.args)

    def write_failed(self, error: Exception) -> None:
        print(f"\nwarning: {error}; sending goes on", file=sys.stderr)

    @contextlib.contextmanager
    def sending(self, request_stop: Callable[[], None]) -> Iterator[None]:
        bar = tqdm(
            total=0,
            desc="sending",
            unit=" msg",
            file=sys.stderr,
            disable=True if getattr(self.args, "quiet", False) else None,
            mininterval=0.5,
            dynamic_ncols=True,
        )
        self._bar = bar
        self._counting = False
        try:
            with stop_on_signals(request_stop):
                yield
        finally:
            bar.close()
            self._bar = None

    def sent(self, progress: SendProgress) -> None:
        bar = self._bar
        if bar is None:
            return
        if bar.total != progress.total:
            bar.total = progress.total
        if not self._counting:
            # The first snapshot of a resumed run already counts the rows earlier
            # runs settled: they start the bar, they are not this run's speed.
            self._counting = True
            bar.initial = bar.n = bar.last_print_n = progress.done
            bar.start_t = bar.last_print_t = time.time()
        bar.n = progress.done
        bar.set_postfix_str(
            f"sent {progress.sent:,} · failed {progress.failed:,} · unknown {progress.unknown:,}",
            refresh=False,
        )
        bar.refresh() if bar.n >= bar.total else bar.update(0)

    def staged(self, progress: CampaignProgress) -> None:
        bar = self._bar
        if bar is not None:
            bar.set_description_str("staging", refresh=False)
            bar.total = progress.total
            bar.n = progress.done
            bar.refresh()

    def priced(self, quote: Quote) -> None:
        say(self.args, cost_line(quote))

    def confirm_cost(self, quote: Quote) -> bool:
        """Campaign mode's ``Send? [y/N]`` at the price just shown (only where ``can_ask``).

        Ctrl-C there means "no": the send pass's own handler would only ask the
        pass to stop, and leave the question waiting.
        """
        if not can_ask(self.args):
            return True
        if self._bar is not None:
            self._bar.clear()  # the question must not share its line with the bar
        if getattr(self.args, "quiet", False):
            print(cost_line(quote))  # --quiet left it out: the question needs it
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            return ask_to_send(self.args)
        except KeyboardInterrupt:
            print()
            return False
        finally:
            signal.signal(signal.SIGINT, previous)

    def status_call(self, result: RefreshResult) -> None:
        if self.status_bar is not None and not self.waiting:
            self.status_bar.total = result.to_ask
            self.status_bar.n = result.asked
            self.status_bar.refresh()

    def status_round(self, result: RefreshResult) -> None:
        self.rounds += 1
        quiet = getattr(self.args, "quiet", False)
        if not quiet and not sys.stderr.isatty():  # no bar off a terminal: a line a round
            print(
                f"round {self.rounds}: {result.final:,} of {result.with_id:,} rows final, "
                f"{result.calls:,} calls",
                file=sys.stderr,
                flush=True,
            )
        if self.status_bar is not None:
            self.status_bar.total = result.with_id
            self.status_bar.n = result.final
            self.status_bar.set_postfix_str(f"round {self.rounds}, {result.calls} calls")

    def saved_partly(self, path: Path) -> None:
        print(f"Saved the statuses received so far to {path}", file=sys.stderr)

    def listed(self, rows: int, total: int) -> None:
        if self.status_bar is not None:
            self.status_bar.total = total
            self.status_bar.n = rows
            self.status_bar.refresh()


@contextlib.contextmanager
def stop_on_signals(request_stop: Callable[[], None]) -> Iterator[None]:
    """First Ctrl-C or SIGTERM: finish what is in flight and stop; a second: quit now.

    Quitting now ends the process on the spot, as a crash would, so that no
    request can still be on its way once the journal is released; the journal
    is crash-safe, and the next run settles the rows that were in flight.
    """
    signals: list[int] = []

    def stop(signum: int, frame: object) -> None:
        signals.append(signum)
        if len(signals) > 1:
            print(
                "\nquitting at once: run the same command again to settle the rows in flight",
                file=sys.stderr,
                flush=True,
            )
            os._exit(EXIT_INTERRUPTED)
        print(
            "\nstopping: finishing the requests in flight (press Ctrl-C again to quit at once)",
            file=sys.stderr,
        )
        request_stop()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def plan_facts(plan: Plan) -> dict[str, Any]:
    """The plan's counts as a JSON object (``validate --json``, ``send --json``)."""
    summary = plan.summary
    return {
        "input": plan.table.describe(),
        "header_line": plan.table.header_line,
        "rows": summary.rows,
        "sendable": summary.sendable,
        "invalid": summary.invalid,
        "duplicate": summary.duplicate,
        "opted_out": summary.opted_out,
        "invalid_by_reason": summary.invalid_by_reason,
        "segments": summary.segments,
        "gsm7_rows": summary.gsm7_rows,
        "ucs2_rows": summary.ucs2_rows,
    }


def print_plan_summary(plan: Plan, out: TextIO | None = None, examples: int = 5) -> None:
    """The plan in a few lines: counts by verdict, reasons, cost, first problems."""
    stream = out or sys.stdout
    summary, table = plan.summary, plan.table
    print(f"{table.describe()}: {summary.rows:,} rows", file=stream)
    if table.header_line > 1:
        print(
            f"  column names on line {table.header_line}; the lines above it were skipped",
            file=stream,
        )
    if plan.template is not None:
        print(f"  numbers from {plan.phone_column!r}, texts from the template", file=stream)
    else:
        print(f"  numbers from {plan.phone_column!r}, texts from {plan.text_column!r}", file=stream)
    print(f"  sendable   {summary.sendable:>12,}", file=stream)
    print(f"  invalid    {summary.invalid:>12,}", file=stream)
    for reason, count in summary.invalid_by_reason.items():
        print(f"    {count:>10,}  {reason}", file=stream)
    if sum(summary.invalid_by_reason.values()) > summary.invalid:
        print("    (a row can have more than one reason)", file=stream)
    print(f"  duplicate  {summary.duplicate:>12,}", file=stream)
    print(f"  opted out  {summary.opted_out:>12,}", file=stream)
    print(
        f"  segments to send: {summary.segments:,} "
        f"(GSM-7 rows: {summary.gsm7_rows:,}, UCS-2 rows: {summary.ucs2_rows:,})",
        file=stream,
    )
    saving = summary.lookalikes
    if saving.rows:
        shown = ", ".join(INVISIBLE_NAMES.get(ch, ch) for ch in saving.characters)
        print(
            f"  hint: {saving.rows:,} rows are UCS-2 only because of {shown}; written with "
            f"plain quotes, dashes and spaces they would take {saving.segments:,} fewer "
            f"segments",
            file=stream,
        )
    bad = plan.rows[plan.rows["verdict"] == SendState.INVALID].head(examples)
    if len(bad):
        print("First invalid rows:", file=stream)
        raw = table.frame[plan.phone_column].to_dict()
        for index, line, reason in zip(bad.index, bad["source_line"], bad["reason"], strict=True):
            print(f"  line {line} ({raw[index]!r}): {reason}", file=stream)
