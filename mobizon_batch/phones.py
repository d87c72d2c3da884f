"""Phone numbers: clean what people type, validate with phonenumbers, keep digits.

Why so much care: a wrong number costs money and reaches a stranger, so a
number is only ever accepted when the ``phonenumbers`` library says it is
valid (or, with ``--accept-possible``, possible) — never guessed.  What we add
on top is the tidying the library does not do for spreadsheets: Excel's
``77012345678.0`` and ``7.7012345678E+10``, a leading ``00``, stray
invisible characters, and the national forms of the default region
(``8 701 234 56 78`` in Kazakhstan).

How a cell is read, in order:

1. invisible characters and surrounding spaces are dropped; an empty cell
   has no number;
2. scientific notation is repaired only when it is exact (every digit is
   there); ``7,70146E+10`` lost digits and is refused;
3. a trailing ``.0`` is dropped; ``+``, spaces, dashes, dots, slashes and
   parentheses are dropped; a leading ``+`` or ``00`` marks an international
   number; any other character makes the cell invalid;
4. an international number is parsed as such; any other digit string is
   parsed in the default region first (``87012345678`` → ``77012345678``)
   and, if that is not a valid number, as an international number written
   without its ``+`` (``998901234567``).

The result is the E.164 number as digits only, which is what Mobizon expects.

Speed: ``phonenumbers.parse`` takes tens of microseconds, too slow for a
million rows.  ``phonefast.FastPath`` answers the everyday shapes (``7701…``,
``8701…``, ``+7 701…``) with the library's own metadata and the same checks
``is_valid_number`` makes, but only where it can prove the slow path would
pick the very same number; everything else, and every rejection, goes
through the library itself.  ``tests/test_phones.py`` holds the two paths
to the same answers on tens of thousands of random numbers.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumber, ValidationResult

from mobizon_batch.config import DEFAULT_REGION as DEFAULT_REGION
from mobizon_batch.errors import ConfigError, InputError
from mobizon_batch.phonebulk import BulkPath
from mobizon_batch.phonefast import FastPath

# Separators people put inside numbers; all of them are simply removed.
_SEPARATORS = re.compile(r"[\s\-.()/\u2010-\u2015\u2212\u00b7]+")
_ASCII_SEPARATORS = str.maketrans("", "", " \t\n\r\f\v-.()/")  # the same, faster, for ASCII
# Excel number formats leave "77012345678.0" (or ",00" in some locales).
_TRAILING_ZERO_FRACTION = re.compile(r"^(\+?\d{5,})[.,]0+$")
# "7.7012345678E+10", "7,70146E+10", "7E10": a number shown in scientific notation.
_SCIENTIFIC = re.compile(r"^\+?(\d)(?:[.,](\d*))?[eE]\+?(\d{1,3})$")
# Two or more numbers in one cell: "87012345678, 87022345678".
_SEVERAL = re.compile(r"\d[\d\s\-.()]{5,}\d\s*[,;/|]\s*\+?\d[\d\s\-.()]{5,}\d")

REASON_EMPTY = "no phone number"
REASON_NOT_A_NUMBER = "the phone number has characters that are not part of a number"
REASON_SEVERAL = "the cell holds more than one phone number"
REASON_LOST_DIGITS = (
    "the phone number was saved in scientific notation and lost digits "
    "(format the column as text in Excel and export again)"
)
REASON_NOT_WHOLE = "the phone number is not a whole number"
REASON_TOO_SHORT = "the phone number is too short"
REASON_TOO_LONG = "the phone number is too long"
REASON_BAD_COUNTRY = "the phone number has an unknown country code"
REASON_BAD_LENGTH = "the phone number has a length that no number of its country has"
REASON_LOCAL_ONLY = "the phone number lacks its area code"


def reason_not_valid(region: str | None) -> str:
    """The sentence for a number of a plausible shape in no assigned range.

    ``region`` is the default region the digits were also tried in, or None
    for a number written with ``+`` or ``00``.
    """
    checked = (
        f"checked as a {region} number and as an international one"
        if region
        else ("no such number range in its country")
    )
    return (
        f"the phone number is not valid ({checked}, "
        f"--accept-possible takes numbers of a plausible length)"
    )


@dataclass(frozen=True, slots=True)
class PhoneResult:
    """A cleaned number (digits only, international) or why there is none."""

    number: str | None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.number is not None


def check_region(region: str) -> str:
    """The region code in upper case, or ConfigError if phonenumbers does not know it."""
    code = region.strip().upper()
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise ConfigError(
            f"unknown region {region!r} for --region: give a two-letter country code "
            f"such as KZ, RU, UZ, UA or BR"
        )
    return code


def normalize_phone(
    raw: str, region: str = DEFAULT_REGION, *, accept_possible: bool = False
) -> PhoneResult:
    """Clean and validate one cell; see the module docstring for the rules."""
    number, reason = _normalizer(check_region(region), accept_possible)(raw)
    return PhoneResult(number or None, reason)


def normalize_phones(
    values: Iterable[str],
    region: str = DEFAULT_REGION,
    *,
    accept_possible: bool = False,
) -> tuple[list[str], list[str]]:
    """Numbers (``""`` when invalid) and reasons (``""`` when valid) for many cells.

    The everyday shapes are answered a column at a time (``phonebulk``);
    each remaining distinct cell is worked out once: lists repeat numbers,
    and the cache makes a repeated value cost one dictionary lookup.
    """
    code = check_region(region)
    solve = _normalizer(code, accept_possible)
    cells = values if isinstance(values, list) else list(values)
    numbers: list[str] = _bulk(code).numbers(cells).tolist()
    reasons = [""] * len(cells)
    cache: dict[str, tuple[str, str]] = {}
    for position in [i for i, number in enumerate(numbers) if not number]:
        raw = cells[position]
        answer = cache.get(raw)
        if answer is None:
            answer = cache[raw] = solve(raw)
        numbers[position], reasons[position] = answer
    return numbers, reasons


@lru_cache(maxsize=32)
def _bulk(region: str) -> BulkPath:
    return BulkPath(FastPath(region))


def parse_optout_text(lines: Iterable[str], region: str = DEFAULT_REGION) -> set[str]:
    """Every number found in these lines (one or more cells a line, any format).

    Why lenient: an opt-out list protects people from messages they refused,
    so erring towards "opted out" is the safe side.  Each cell (split on
    ``, ; | tab``, quotes removed) is tried whole, where numbers that are
    merely *possible* count too, then word by word, where only valid numbers
    count (so a date beside a number is not taken for one).  Header words
    simply match nothing.
    """
    code = check_region(region)
    solve, strict = _normalizer(code, True), _normalizer(code, False)
    found: set[str] = set()
    for line in lines:
        for cell in re.split(r"[,;|\t]", line):
            text = cell.strip().strip("\"'").strip()
            if not text:
                continue
            number, _ = solve(text)
            if number:
                found.add(number)
                continue
            for word in text.split():  # "77012345678 2024-03-01": valid numbers only
                number, _ = strict(word)
                if number:
                    found.add(number)
    return found


def optout_numbers(lines: Sequence[str], region: str, *, source_name: str) -> frozenset[str]:
    """The normalized numbers of an opt-out list's lines (``parse_optout_text``), checked.

    No lines, or a lone header line, is an empty list.  More than that but
    not a single number in it is an InputError: it is far more likely the
    wrong file than a list of people who all unsubscribed, and sending to
    people who opted out is the one mistake an opt-out list exists to prevent.
    ``source_name`` names the file in that message.
    """
    numbers = parse_optout_text(lines, region)
    filled = [line for line in lines if line.strip()]
    if not numbers and (len(filled) > 1 or any(ch.isdigit() for line in filled for ch in line)):
        raise InputError(
            f"the opt-out list {source_name} has no phone number in it: check that it is "
            f"the right file (one number a line, or a CSV with a phone column)"
        )
    return frozenset(numbers)


# ------------------------------------------------------------------ cleaning


def clean_phone(raw: str) -> tuple[str, bool] | str:
    """``(digits, international)`` for a cell, or the reason it is no number.

    ``international`` is True when the cell said so with ``+`` or ``00``.
    """
    if raw.isdigit() and raw.isascii() and not raw.startswith("00"):
        return raw, False  # the everyday case, already clean
    text = raw.strip()
    if not text.isascii():
        text = _ascii_digits(text).strip()
    if not text:
        return REASON_EMPTY
    scientific = _SCIENTIFIC.match(text) if "e" in text or "E" in text else None
    if scientific:
        return _from_scientific(scientific, international=text.startswith("+"))
    trailing = _TRAILING_ZERO_FRACTION.match(text) if "." in text or "," in text else None
    if trailing:
        text = trailing.group(1)
    international = False
    if text.startswith("+"):
        international = True
        text = text.lstrip("+")
    digits = text.translate(_ASCII_SEPARATORS) if text.isascii() else _SEPARATORS.sub("", text)
    if not digits:
        return REASON_EMPTY  # only punctuation, like the "-" or "+" of an empty form field
    if not digits.isdigit() or not digits.isascii():
        if _SEVERAL.search(raw):
            return REASON_SEVERAL
        return REASON_NOT_A_NUMBER
    if not international and digits.startswith("00"):
        international = True
        digits = digits[2:]
    if not digits:
        return REASON_TOO_SHORT
    return digits, international


def _ascii_digits(text: str) -> str:
    """Drop invisible format characters and turn any script's digits into ASCII."""
    out = []
    for ch in text:
        if ch.isdecimal():
            out.append(str(unicodedata.decimal(ch)))
        elif unicodedata.category(ch) != "Cf":  # zero-width spaces, direction marks, BOM
            out.append(ch)
    return "".join(out)


def _from_scientific(match: re.Match[str], *, international: bool) -> tuple[str, bool] | str:
    """Exact scientific notation back to digits; refuse when digits were lost.

    ``7.7012345678E+10`` shows all eleven digits; ``7.70146E+10`` shows six,
    and the zeros that would pad it are a guess.  Guessing a phone number
    sends a message to a stranger, so that cell is invalid.
    """
    lead, fraction, exponent = match.group(1), match.group(2) or "", int(match.group(3))
    if len(fraction) > exponent:
        return REASON_NOT_WHOLE
    if len(fraction) < exponent:
        return REASON_LOST_DIGITS
    return lead + fraction, international


# ---------------------------------------------------------------- validation

Solver = Callable[[str], tuple[str, str]]


@lru_cache(maxsize=32)
def _normalizer(region: str, accept_possible: bool) -> Solver:
    """A function raw cell → (digits or "", reason or "") for this region."""
    fast = FastPath(region)

    def solve(raw: str) -> tuple[str, str]:
        cleaned = clean_phone(raw)
        if isinstance(cleaned, str):
            return "", cleaned
        digits, international = cleaned
        quick = fast.number(digits, international)
        if quick is not None:
            return quick, ""
        return _slow(digits, international, region, accept_possible)

    return solve


def _slow(digits: str, international: bool, region: str, accept_possible: bool) -> tuple[str, str]:
    """The reference answer, straight from phonenumbers.

    Candidates, in order: the national reading in the default region, then
    the same digits as an international number without its ``+`` (for an
    explicit ``+``/``00`` only the latter).  The first valid one wins; with
    ``accept_possible`` the first possible one after that.
    """
    candidates: list[PhoneNumber] = []
    first_error: str | None = None
    attempts = [("+" + digits, None)] if international else [(digits, region), ("+" + digits, None)]
    for text, parse_region in attempts:
        try:
            candidates.append(phonenumbers.parse(text, parse_region))
        except NumberParseException as exc:
            first_error = first_error or _parse_error_reason(exc)
    for candidate in candidates:
        if phonenumbers.is_valid_number(candidate):
            return _digits(candidate), ""
    if accept_possible:
        # IS_POSSIBLE only: the library's is_possible_number also passes a
        # local number without its area code, which no SMS can reach.
        for candidate in candidates:
            if (
                phonenumbers.is_possible_number_with_reason(candidate)
                == ValidationResult.IS_POSSIBLE
            ):
                return _digits(candidate), ""
    if not candidates:
        if len(digits) < 3:  # parse calls one or two digits "not a number"
            return "", REASON_TOO_SHORT
        return "", first_error or REASON_NOT_A_NUMBER
    return "", _possible_reason(candidates[0], None if international else region)


def _digits(number: PhoneNumber) -> str:
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164).lstrip("+")


def _parse_error_reason(exc: NumberParseException) -> str:
    kind = exc.error_type
    if kind == NumberParseException.INVALID_COUNTRY_CODE:
        return REASON_BAD_COUNTRY
    if kind in (NumberParseException.TOO_SHORT_NSN, NumberParseException.TOO_SHORT_AFTER_IDD):
        return REASON_TOO_SHORT
    if kind == NumberParseException.TOO_LONG:
        return REASON_TOO_LONG
    return REASON_NOT_A_NUMBER


def _possible_reason(number: PhoneNumber, region: str | None) -> str:
    result = phonenumbers.is_possible_number_with_reason(number)
    return {
        ValidationResult.TOO_SHORT: REASON_TOO_SHORT,
        ValidationResult.TOO_LONG: REASON_TOO_LONG,
        ValidationResult.INVALID_COUNTRY_CODE: REASON_BAD_COUNTRY,
        ValidationResult.INVALID_LENGTH: REASON_BAD_LENGTH,
        ValidationResult.IS_POSSIBLE_LOCAL_ONLY: REASON_LOCAL_ONLY,
    }.get(result, reason_not_valid(region))
