"""Settings: a command-line flag beats the environment, which beats a job file,
which beats the default.

Why one module: cron jobs, job files and interactive use all configure the
same few things, and a user who wonders "which URL did it use?" should find
one rule, here, rather than a lookup spread over the commands.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar
from urllib.parse import urlsplit

from mobizon_batch.errors import ConfigError

DEFAULT_API_URL = "https://api.mobizon.kz"
ENV_API_KEY = "MOBIZON_API_KEY"
ENV_API_URL = "MOBIZON_API_URL"
ENV_WEBHOOK_SECRET = "MOBIZON_WEBHOOK_SECRET"

# The defaults the command line shows in its help.  They live here, at the
# ground, so that building the parser (``--help``) loads none of the modules
# that use them, and with them pandas, requests or phonenumbers; those
# modules take them from here under their old names.
#: seconds to wait for each API answer
DEFAULT_TIMEOUT = 30.0
#: API calls per second of the commands that only read (status, list)
DEFAULT_READ_RATE = 10.0
#: texts longer than this many segments are invalid
DEFAULT_MAX_SEGMENTS = 6
#: country of numbers written without a country code
DEFAULT_REGION = "KZ"
#: how far back the history guard looks for the same texts already sent
DEFAULT_HISTORY_WINDOW = timedelta(hours=24)
#: the languages the report workbook can be written in
REPORT_LANGUAGES = ("en", "ru")
#: share of answers the demo's emulator loses after sending
DEMO_LOST_ANSWERS = 0.15
#: the default for ``--max-input-mb``: what a list of a million rows needs, with room
DEFAULT_MAX_INPUT_MB = 500

T = TypeVar("T")


def first_given(*values: T | None, default: T) -> T:
    """The first value that is not None, in precedence order, else ``default``."""
    for value in values:
        if value is not None:
            return value
    return default


def normalize_api_url(value: str) -> str:
    """``api.mobizon.kz`` → ``https://api.mobizon.kz``; keeps an explicit scheme.

    Only http and https are accepted, without a query or fragment, and the
    trailing slash is dropped so that ``/service/...`` can be appended.
    """
    text = value.strip()
    if not text:
        raise ConfigError(f"{ENV_API_URL} is empty: give a domain such as api.mobizon.kz")
    if "://" not in text:
        text = "https://" + text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"the API address {value!r} is not usable: give a domain such as "
            f"api.mobizon.kz or a URL such as http://127.0.0.1:8080"
        )
    if parts.query or parts.fragment:
        raise ConfigError(f"the API address {value!r} must not carry a query or fragment")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise ConfigError(f"the API address {value!r} has a bad port") from exc
    return text.rstrip("/")


@dataclass(frozen=True)
class ApiSettings:
    """Where the API is and the key to use. ``repr`` never shows the key."""

    api_key: str
    api_url: str

    def __repr__(self) -> str:
        return f"ApiSettings(api_key=<redacted>, api_url={self.api_url!r})"


def api_settings(
    *,
    url_flag: str | None = None,
    job_url: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> ApiSettings:
    """Resolve the key and URL. The key comes only from the environment.

    Why no ``--api-key`` flag: a key on a command line is visible to every
    user of the machine in the process list, and lands in shell history and
    crontabs.  ``MOBIZON_API_KEY`` keeps it out of both.
    """
    env = os.environ if environ is None else environ
    key = env.get(ENV_API_KEY, "").strip()
    if not key:
        raise ConfigError(
            f"no API key: set {ENV_API_KEY} to the key from the Mobizon panel "
            f"(Settings → API), or run 'mobizon-batch demo' to try the tool offline"
        )
    return ApiSettings(api_key=key, api_url=api_url_setting(url_flag, job_url, env))


def api_url_setting(
    url_flag: str | None = None,
    job_url: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> str:
    """The API URL alone, by the same precedence (a dry run needs it, but no key)."""
    env = os.environ if environ is None else environ
    url = first_given(url_flag, env.get(ENV_API_URL) or None, job_url, default=DEFAULT_API_URL)
    return normalize_api_url(url)


# ---------------------------------------------------------------- durations

_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_DURATION_UNITS = (86400, 3600, 60, 1)


def parse_duration(text: str) -> float:
    """``90s``, ``15m``, ``2h``, ``1h30m``, ``1d`` → seconds.

    Why a unit is required: ``--wait 2`` could mean two seconds or two hours,
    and guessing wrong either spins or blocks a nightly job; so a bare number
    is refused along with anything else that is not days, hours, minutes and
    seconds in that order.
    """
    value = text.strip().lower()
    match = _DURATION.fullmatch(value)
    if not value or match is None or not any(match.groups()):
        raise ConfigError(f"{text!r} is not a duration: write it like 90s, 15m, 2h, 1h30m or 1d")
    return float(
        sum(
            int(part) * unit
            for part, unit in zip(match.groups(), _DURATION_UNITS, strict=True)
            if part
        )
    )
