"""The ``webhook`` use cases: serve the receiver; export the opt-outs it stored.

Why a use case of its own: the command line, a Python program and the tests
start the same receiver with the same refusals — no secret means no start
unless unsigned events were asked for explicitly, since an unsigned receiver
on a public URL lets anyone write statuses into tomorrow's results.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from mobizon_batch.config import ENV_WEBHOOK_SECRET
from mobizon_batch.errors import ConfigError
from mobizon_batch.phones import DEFAULT_REGION, parse_optout_text
from mobizon_batch.table import atomic_file, decode_text_file
from mobizon_batch.webhook_app import DEFAULT_MAX_BODY, Secret, WebhookApp, normalize_path
from mobizon_batch.webhook_server import WsgiServer
from mobizon_batch.webhook_store import EventStore, StoreCounts

SECRET_VARIABLE = ENV_WEBHOOK_SECRET
#: Mobizon's limit for the secret key field in the panel.
MAX_SECRET = 255


@dataclass(frozen=True)
class ReceiverOptions:
    """How to run the receiver. ``secret`` is never shown (``repr`` hides it)."""

    store: Path
    host: str = "127.0.0.1"
    port: int = 0
    path: str = "/"
    secret: str | None = field(default=None, repr=False)
    insecure_no_signature: bool = False
    threads: int = 8
    max_body: int = DEFAULT_MAX_BODY


class Receiver:
    """A receiver bound to its port and ready to ``serve``; closes its store when done."""

    def __init__(self, options: ReceiverOptions) -> None:
        secret = check_secret(options.secret, options.insecure_no_signature)
        self.options = options
        created = not options.store.exists()
        self.store = EventStore(options.store)
        try:
            self.app = WebhookApp(
                self.store, secret=secret, path=options.path, max_body=options.max_body
            )
            # waitress refuses a bigger body itself, before buffering it.
            self.server = WsgiServer(
                self.app,
                host=options.host,
                port=options.port,
                threads=options.threads,
                max_body=options.max_body,
            )
        except BaseException:
            self.store.close()
            if created:  # a receiver that never started leaves no empty store behind
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{options.store}{suffix}").unlink(missing_ok=True)
            raise

    @property
    def url(self) -> str:
        """Where events are to be POSTed (the path included)."""
        return self.server.url + normalize_path(self.options.path)

    def serve(self) -> StoreCounts:
        """Serve until ``stop()``; then close the store and say what it holds."""
        try:
            self.server.serve()
            return self.store.counts()
        finally:
            self.store.close()

    def stop(self) -> None:
        self.server.stop()

    @contextmanager
    def running(self) -> Iterator[Receiver]:
        """Serve in a background thread for the duration of a ``with`` block."""
        thread = threading.Thread(target=self.serve, daemon=True, name="webhook-receiver")
        thread.start()
        try:
            yield self
        finally:
            self.stop()
            thread.join(timeout=self.server.drain + 5)


def check_secret(secret: str | None, insecure_no_signature: bool) -> Secret | None:
    """The secret to check signatures with, or None when unsigned events were asked for."""
    if secret:
        if len(secret) > MAX_SECRET:
            raise ConfigError(
                f"{SECRET_VARIABLE} is longer than Mobizon's {MAX_SECRET} characters: "
                f"copy the secret key from the webhook's settings in the Mobizon panel"
            )
        if insecure_no_signature:
            raise ConfigError(
                f"--insecure-no-signature with {SECRET_VARIABLE} set: choose one "
                f"(signed events are the safe choice)"
            )
        return Secret(secret)
    if insecure_no_signature:
        return None
    raise ConfigError(
        f"no webhook secret: set {SECRET_VARIABLE} to the secret key of the webhook in the "
        f"Mobizon panel (or give --insecure-no-signature to accept unsigned events)"
    )


def unsubscribed_numbers(store: EventStore, region: str = DEFAULT_REGION) -> list[str]:
    """Phone numbers of the contacts who unsubscribed through Mobizon's forms.

    A ``MOBILE`` field counts, and so does any other field whose value reads
    as a phone number (a phone field of another type); e-mail addresses never
    do.  Erring towards "unsubscribed" is the safe side: a ``MOBILE`` value
    our rules cannot read is kept as it was sent.  Numbers come back as ``+``
    and the international digits (whatever region reads the list later, they
    mean the same number), in the order people unsubscribed.
    """
    found: dict[str, None] = {}
    for field_type, value in store.unsubscribed_values():
        kind = field_type.strip().upper()
        if kind == "EMAIL" or "@" in value:
            continue
        numbers = sorted(parse_optout_text([value], region))
        if numbers:
            found.update((f"+{number}", None) for number in numbers)
        elif kind == "MOBILE":
            found[value.strip()] = None
    return list(found)


@dataclass(frozen=True)
class OptoutExport:
    """What ``export_optout`` did: numbers in the store, and how many were new to the file."""

    path: Path
    in_store: int
    added: int


def export_optout(
    store_path: str | os.PathLike[str],
    output: str | os.PathLike[str],
    region: str = DEFAULT_REGION,
) -> OptoutExport:
    """Add the store's unsubscribed numbers to the opt-out list ``output`` (``--optout``).

    Why add and never replace: the list may hold numbers put there by hand
    or by another source, and dropping one would message someone who
    refused.  Numbers the file has already (in any spelling) are not added
    again; the rest go at the end, one a line.  Written atomically.
    """
    target = Path(output)
    if target.suffix.lower() in (".xlsx", ".xlsm", ".xls"):
        raise ConfigError(
            f"{target.name}: the opt-out list is written as text; give a .txt or .csv name"
        )
    with EventStore(store_path, create=False) as store:
        numbers = unsubscribed_numbers(store, region)
    # An empty file (an earlier export that found no one) is a list with no numbers.
    there = target.exists() and target.stat().st_size > 0
    existing_text = decode_text_file(target) if there else ""
    lines_there = existing_text.splitlines()
    known = parse_optout_text(lines_there, region)
    verbatim = {line.strip() for line in lines_there}

    def listed(number: str) -> bool:
        parsed = parse_optout_text([number], region)
        return parsed <= known if parsed else number in verbatim

    new = [n for n in numbers if not listed(n)]
    if new or not target.exists():
        lines = existing_text
        if lines and not lines.endswith("\n"):
            lines += "\n"
        lines += "".join(f"{number}\n" for number in new)
        with atomic_file(target) as temporary:
            Path(temporary).write_text(lines, encoding="utf-8")
    return OptoutExport(target, len(numbers), len(new))


__all__ = [
    "MAX_SECRET",
    "SECRET_VARIABLE",
    "OptoutExport",
    "Receiver",
    "ReceiverOptions",
    "check_secret",
    "export_optout",
    "unsubscribed_numbers",
]
