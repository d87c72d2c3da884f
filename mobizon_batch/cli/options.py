"""Option groups shared by several commands, argparse type functions, and their readers.

The ``add_*`` functions add flags; the ``*_from_args`` functions turn the
parsed flags into the option objects the use cases take.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias, TypeVar

from mobizon_batch.config import (
    DEFAULT_MAX_INPUT_MB,
    DEFAULT_MAX_SEGMENTS,
    DEFAULT_READ_RATE,
    DEFAULT_REGION,
    DEFAULT_TIMEOUT,
    parse_duration,
)
from mobizon_batch.errors import ConfigError
from mobizon_batch.runs import checks

if TYPE_CHECKING:
    from mobizon_batch.prepare import PlanOptions
    from mobizon_batch.runs.common import ApiOptions, ReadOptions

#: what ``add_subparsers`` returns, which every ``add_<command>`` takes
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
T = TypeVar("T", int, float)


def _checked(
    parse: Callable[[str], T], check: Callable[[T, str], T], name: str
) -> Callable[[str], T]:
    """An argparse type: parse the text, then check the value (its sentence names the text).

    ``name`` is what argparse calls the type when the text does not parse.
    """

    def convert(text: str) -> T:
        value = parse(text)
        try:
            return check(value, text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = name
    return convert


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


non_negative = _checked(_number, checks.non_negative, "_non_negative")
positive = _checked(_number, checks.positive, "_positive")
rate = _checked(_number, checks.rate, "_rate")
positive_int = _checked(int, checks.at_least_one, "_positive_int")
non_negative_int = _checked(int, checks.non_negative, "_non_negative_int")
validity = _checked(int, checks.validity, "_validity")


def money(text: str) -> Decimal:
    """An amount above 0, as a Decimal (``--max-cost``, the emulator's ``--balance``)."""
    try:
        return checks.amount(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a fraction between 0 and 1")
    return value


def port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text} is not a port (0 to 65535)")
    return value


def duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def positive_duration(text: str) -> float:
    seconds = duration(text)
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be longer than zero")
    return seconds


def add_api_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--api-url",
        metavar="URL",
        help="API address (default: $MOBIZON_API_URL, else https://api.mobizon.kz); "
        "a bare domain means https",
    )
    parser.add_argument(
        "--timeout",
        type=positive,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help="how long to wait for each answer (default: 30)",
    )


def api_options_from_args(args: argparse.Namespace) -> ApiOptions:
    from mobizon_batch.runs.common import ApiOptions

    return ApiOptions(api_url=args.api_url, timeout=args.timeout)


def add_read_options(parser: argparse.ArgumentParser) -> None:
    """Options of the commands that only read from the API."""
    add_api_options(parser)
    parser.add_argument(
        "--rate",
        type=rate,
        default=DEFAULT_READ_RATE,
        metavar="PER_SECOND",
        help=f"API calls per second at most (default: {DEFAULT_READ_RATE:g}; 0: no limit); "
        "halved for a while whenever the API says it is too fast",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def add_plan_options(parser: argparse.ArgumentParser) -> None:
    """The flags that say how to read a list and judge its rows (validate, send).

    Also adds ``-q/--quiet`` (no progress bar), which every command that
    reads a list shares.  ``plan_options_from_args`` and
    ``read_options_from_args`` turn them into what the use cases take.
    """
    parser.add_argument(
        "input", metavar="INPUT", help="the list: a .csv, .txt or .xlsx file, or - for stdin"
    )
    reading = parser.add_argument_group("reading the list")
    reading.add_argument(
        "--encoding",
        metavar="NAME",
        help="text encoding of a CSV (default: detected among UTF-8, UTF-16, Windows-1251, "
        "KOI8-R and CP866)",
    )
    reading.add_argument(
        "--delimiter",
        metavar="CHAR",
        help="CSV delimiter: , ; | or tab (default: detected)",
    )
    reading.add_argument(
        "--sheet",
        metavar="NAME|N",
        help="worksheet of an XLSX file, by name or by number from 1 (default: the first)",
    )
    reading.add_argument(
        "--header-row",
        type=positive_int,
        metavar="N",
        help="the line (CSV) or row (XLSX) with the column names (default: the first of "
        "the top lines that names the phone column; titles above it are skipped)",
    )
    reading.add_argument(
        "--max-input-mb",
        type=positive_int,
        default=DEFAULT_MAX_INPUT_MB,
        metavar="MB",
        help="refuse a CSV bigger than this, or a workbook that unpacks to more, before "
        f"reading it (default: {DEFAULT_MAX_INPUT_MB}; lines and cells may be 1/500 of it)",
    )
    columns = parser.add_argument_group("columns and texts")
    columns.add_argument(
        "--phone-column",
        metavar="NAME",
        help="column with the numbers (default: detected from names such as phone, телефон)",
    )
    columns.add_argument(
        "--text-column",
        metavar="NAME",
        help="column with the texts (default: detected from names such as text, текст)",
    )
    columns.add_argument(
        "--template",
        metavar="TEXT",
        help="build each text from columns instead: 'Hello {name}, your code is {code}' "
        "({{ and }} for literal braces)",
    )
    checks_group = parser.add_argument_group("checks")
    checks_group.add_argument(
        "--region",
        default=DEFAULT_REGION,
        metavar="CC",
        help=f"country of numbers written without a country code (default: {DEFAULT_REGION})",
    )
    checks_group.add_argument(
        "--accept-possible",
        action="store_true",
        help="accept numbers of a plausible length that the numbering data does not know yet",
    )
    checks_group.add_argument(
        "--max-segments",
        type=positive_int,
        default=DEFAULT_MAX_SEGMENTS,
        metavar="N",
        help=f"texts longer than N segments are invalid (default: {DEFAULT_MAX_SEGMENTS})",
    )
    checks_group.add_argument(
        "--allow-duplicates",
        action="store_true",
        help="send the same text to the same number as often as the list says",
    )
    checks_group.add_argument(
        "--optout",
        metavar="FILE",
        type=Path,
        help="numbers that must get nothing (CSV or text, any number format)",
    )
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress bar and no summary lines (errors and warnings still print)",
    )


def plan_options_from_args(args: argparse.Namespace) -> PlanOptions:
    """PlanOptions from the flags ``add_plan_options`` added."""
    from mobizon_batch.prepare import PlanOptions  # pandas, phonenumbers: not for --help

    return PlanOptions(
        phone_column=args.phone_column,
        text_column=args.text_column,
        template=args.template,
        region=args.region,
        accept_possible=args.accept_possible,
        max_segments=args.max_segments,
        allow_duplicates=args.allow_duplicates,
        optout_path=args.optout,
    )


def read_options_from_args(args: argparse.Namespace) -> ReadOptions:
    from mobizon_batch.runs.common import ReadOptions

    return ReadOptions(
        encoding=args.encoding,
        delimiter=args.delimiter,
        sheet=args.sheet,
        header_row=args.header_row,
        max_input_mb=args.max_input_mb,
    )


def add_raw_csv(parser: argparse.ArgumentParser) -> None:
    """``--raw-csv``: the way out of formula neutralisation, for a file no person opens."""
    parser.add_argument(
        "--raw-csv",
        action="store_true",
        help="write CSV cells exactly as they are; by default a cell Excel would run as a "
        "formula (=…, @…, +/- then anything but a number) gets a ' in front",
    )


# argparse names a type in "invalid <name> value"; these are the names users have seen.
fraction.__name__, port.__name__, duration.__name__ = "_fraction", "_port", "_duration"
positive_duration.__name__ = "_positive_duration"
