"""The Mobizon wire format without the HTTP: bodies, envelopes, numbers, secrets.

Why apart from ``client``: these are pure functions of text and values, used
by the client on every call and by other modules (the send pass parses
timestamps, the command line redacts its logs); keeping them here leaves
``client`` with the one job of speaking HTTP and translating its failures.

Bodies are PHP ``http_build_query`` style (``params[validity]=1440``,
``ids[0]=1&ids[1]=2``), percent-encoded as PHP's ``urlencode`` does; the
answer is ``{"code", "data", "message"}``; the live service sends numbers as
strings, so every numeric field is coerced by ``to_int``/``to_decimal``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote_plus

from mobizon_batch.vocabulary import TIMESTAMP_FORMAT

log = logging.getLogger(__name__)

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
REDACTED = "<redacted>"
# Shorter "secrets" (test keys) are not replaced as plain text: replacing "k"
# would mangle every message.  Real keys are 40 or 70 characters.
MIN_SECRET_LENGTH = 6

_API_KEY_IN_TEXT = re.compile(r"(apiKey=)[^&\s'\"]*", re.IGNORECASE)


def encode_form(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Flatten params the way PHP's ``http_build_query`` does.

    Nested mappings become ``outer[inner]``, sequences ``name[0]``, ``name[1]``;
    ``None`` is left out (as PHP leaves out null), booleans become 1/0 and
    datetimes the API's ``YYYY-MM-DD HH:MM:SS``.  Percent-encoding is left to
    ``build_query``.
    """
    pairs: list[tuple[str, str]] = []

    def walk(key: str, value: Any) -> None:
        if value is None:
            return
        if isinstance(value, Mapping):
            for inner, item in value.items():
                walk(f"{key}[{inner}]", item)
        elif isinstance(value, list | tuple):
            for index, item in enumerate(value):
                walk(f"{key}[{index}]", item)
        elif isinstance(value, bool):
            pairs.append((key, "1" if value else "0"))
        elif isinstance(value, datetime):
            pairs.append((key, value.strftime(TIMESTAMP_FORMAT)))
        else:
            pairs.append((key, str(value)))

    for name, value in params.items():
        walk(str(name), value)
    return pairs


def php_quote(text: str) -> str:
    """PHP ``urlencode``: like ``quote_plus``, but ``~`` too becomes ``%7E``.

    The docs (and PHP, which the official SDK uses) leave only letters, digits
    and ``- _ .`` as they are; Python's ``quote_plus`` also spares ``~``.  The
    service decodes either, but byte-identical bodies leave nothing to chance.
    """
    return quote_plus(text, safe="").replace("~", "%7E")


def build_query(params: Mapping[str, Any]) -> str:
    """``params`` as PHP's ``http_build_query`` writes them (the body we POST)."""
    return "&".join(f"{php_quote(key)}={php_quote(value)}" for key, value in encode_form(params))


def parse_envelope(body: bytes) -> tuple[int, Any, str] | None:
    """``(code, data, message)`` when ``body`` is the API envelope, else None.

    ``code`` may itself arrive as a string; anything that is not a JSON object
    with an integer-like ``code`` (an HTML error page, a cut-off body) is not
    an envelope.
    """
    try:
        document = json.loads(body)
    except ValueError:
        return None
    if not isinstance(document, dict) or "code" not in document:
        return None
    code = to_int(document["code"])
    if code is None:
        return None
    message = document.get("message")
    return code, document.get("data"), message if isinstance(message, str) else ""


def to_int(value: Any) -> int | None:
    """An integer from an int or a numeric string (``"11111111"``, ``"1.0"``), else None."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit():
            return int(text)
        number = to_decimal(text)
        if number is not None and number == number.to_integral_value():
            return int(number)
    return None


def to_decimal(value: Any) -> Decimal | None:
    """A Decimal from a number or numeric string (``"0.0600"``), else None."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def to_datetime(value: Any) -> datetime | None:
    """The API's ``YYYY-MM-DD HH:MM:SS`` (account-local, no zone) as a naive datetime.

    Null, blank and the all-zero date mean "not yet" and give None.
    """
    if not isinstance(value, str) or not value.strip() or value.startswith("0000"):
        return None
    try:
        return datetime.strptime(value.strip(), TIMESTAMP_FORMAT)
    except ValueError:
        log.debug("unparseable timestamp from the API: %r", value)
        return None


def redact(text: str, secret: str) -> str:
    """``text`` with ``secret`` and any ``apiKey=...`` value replaced by a marker."""
    if len(secret) >= MIN_SECRET_LENGTH:
        text = text.replace(secret, REDACTED)
    return _API_KEY_IN_TEXT.sub(rf"\g<1>{REDACTED}", text)


class RedactingFilter(logging.Filter):
    """A logging filter that removes secrets from every record it passes.

    Installed on the command line's log handler so that even third-party debug
    logs (urllib3 logs each request line, query string included) cannot leak
    the key.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        for secret in self.secrets:
            message = redact(message, secret)
        record.msg, record.args = redact(message, ""), None
        return True


__all__ = [
    "FORM_CONTENT_TYPE",
    "REDACTED",
    "RedactingFilter",
    "build_query",
    "encode_form",
    "parse_envelope",
    "php_quote",
    "redact",
    "to_datetime",
    "to_decimal",
    "to_int",
]
