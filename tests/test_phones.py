"""Phone normalization: the table people's spreadsheets produce, and the fast path."""

from __future__ import annotations

import random
from pathlib import Path

import phonenumbers
import pytest

from mobizon_batch.errors import ConfigError, InputError
from mobizon_batch.phonefast import FastPath
from mobizon_batch.phones import (
    REASON_BAD_COUNTRY,
    REASON_BAD_LENGTH,
    REASON_EMPTY,
    REASON_LOST_DIGITS,
    REASON_NOT_A_NUMBER,
    REASON_NOT_WHOLE,
    REASON_SEVERAL,
    REASON_TOO_LONG,
    REASON_TOO_SHORT,
    _slow,
    check_region,
    clean_phone,
    normalize_phone,
    normalize_phones,
)
from mobizon_batch.prepare import load_optout

KZ = "77012345678"
RU = "79161234567"
UZ = "998901234567"
UA = "380501234567"
BR = "5511912345678"

# (cell, default region, expected digits or None)
VALID = [
    # Kazakhstan, in the spellings lists arrive in
    ("77012345678", "KZ", KZ),
    ("87012345678", "KZ", KZ),
    ("8 701 234 56 78", "KZ", KZ),
    ("+7 701 234 56 78", "KZ", KZ),
    ("+7 (701) 234-56-78", "KZ", KZ),
    ("8(701)234-56-78", "KZ", KZ),
    ("8-701-234-56-78", "KZ", KZ),
    ("8.701.234.56.78", "KZ", KZ),
    ("7012345678", "KZ", KZ),
    ("+77012345678", "KZ", KZ),
    ("007 701 234 5678", "KZ", KZ),
    ("77012345678.0", "KZ", KZ),
    ("7.7012345678E+10", "KZ", KZ),
    ("7,7012345678E+10", "KZ", KZ),
    ("7.7012345678e10", "KZ", KZ),
    (" \u00a077012345678\u200b ", "KZ", KZ),
    ("８７０１２３４５６７８", "KZ", KZ),
    ("+7 727 258 12 34", "KZ", "77272581234"),
    ("8 701 234 56 78", "RU", KZ),
    # Russia
    ("+7 916 123-45-67", "KZ", RU),
    ("89161234567", "KZ", RU),
    ("8 (916) 123-45-67", "RU", RU),
    ("79161234567", "RU", RU),
    ("9161234567", "RU", RU),
    # Uzbekistan
    ("+998 90 123 45 67", "KZ", UZ),
    ("998901234567", "KZ", UZ),
    ("90 123 45 67", "UZ", UZ),
    ("00998901234567", "KZ", UZ),
    ("8 10 998 90 123 45 67", "KZ", UZ),
    # Ukraine
    ("+380 50 123 4567", "KZ", UA),
    ("0501234567", "UA", UA),
    ("050 123 45 67", "UA", UA),
    ("380501234567", "KZ", UA),
    # Brazil
    ("+55 11 91234-5678", "KZ", BR),
    ("(11) 91234-5678", "BR", BR),
    ("011 91234 5678", "BR", BR),
    ("5511912345678", "KZ", BR),
    ("+55 (21) 98765-4321", "KZ", "5521987654321"),
]

INVALID = [
    ("", "KZ", REASON_EMPTY),
    ("   ", "KZ", REASON_EMPTY),
    ("-", "KZ", REASON_EMPTY),
    ("abc", "KZ", REASON_NOT_A_NUMBER),
    ("#N/A", "KZ", REASON_NOT_A_NUMBER),
    ("8 701 234 56 78 доб. 12", "KZ", REASON_NOT_A_NUMBER),
    ("87012345678, 87022345678", "KZ", REASON_SEVERAL),
    ("0", "KZ", REASON_TOO_SHORT),
    ("12345", "KZ", REASON_TOO_SHORT),
    ("+7 701 234", "KZ", REASON_TOO_SHORT),
    ("770123456789012345", "KZ", REASON_TOO_LONG),
    ("+7 701 234 56 78 9", "KZ", REASON_BAD_LENGTH),
    ("+999 123 456 789", "KZ", REASON_BAD_COUNTRY),
    ("7,70146E+10", "KZ", REASON_LOST_DIGITS),
    ("7.70146E+10", "KZ", REASON_LOST_DIGITS),
    ("7.7012345678E+11", "KZ", REASON_LOST_DIGITS),
    ("7.70123456789E+10", "KZ", REASON_NOT_WHOLE),
    ("0501234567", "KZ", "checked as a KZ number"),
    ("77991234567", "KZ", "not valid"),
    ("+7 799 123 45 67", "KZ", "no such number range"),
]


@pytest.mark.parametrize(("raw", "region", "expected"), VALID)
def test_valid_numbers_become_international_digits(raw: str, region: str, expected: str) -> None:
    result = normalize_phone(raw, region)
    assert result.number == expected, result.reason
    assert result.reason == ""
    assert result.ok


@pytest.mark.parametrize(("raw", "region", "reason"), INVALID)
def test_invalid_cells_say_why(raw: str, region: str, reason: str) -> None:
    result = normalize_phone(raw, region)
    assert result.number is None
    assert not result.ok
    assert reason in result.reason


def test_the_table_is_big_enough() -> None:
    assert len(VALID) + len(INVALID) >= 40


def test_accept_possible_takes_unknown_ranges_of_a_plausible_length() -> None:
    assert normalize_phone("77991234567").number is None
    assert normalize_phone("77991234567", accept_possible=True).number == "77991234567"
    # still not a number that is too short
    assert normalize_phone("7701234", accept_possible=True).number is None


def test_scientific_notation_is_never_guessed() -> None:
    assert clean_phone("7.70146E+10") == REASON_LOST_DIGITS
    assert clean_phone("7.7012345678E+10") == ("77012345678", False)


def test_unknown_region_is_a_usage_error() -> None:
    with pytest.raises(ConfigError, match="unknown region 'XX'"):
        normalize_phone("77012345678", "XX")
    assert check_region(" kz ") == "KZ"


def test_batch_matches_single_and_reuses_answers() -> None:
    cells = ["87012345678", "abc", "87012345678", "+998 90 123 45 67", ""]
    numbers, reasons = normalize_phones(cells, "KZ")
    assert numbers == [KZ, "", KZ, UZ, ""]
    assert reasons[1] == REASON_NOT_A_NUMBER
    assert reasons[4] == REASON_EMPTY
    assert [r == "" for r in reasons] == [bool(n) for n in numbers]


REGIONS = ["KZ", "RU", "UZ", "UA", "BR", "US", "GB", "DE", "IT", "FR", "IN", "CN"]
PREFIXES = ["7", "8", "998", "380", "55", "0", "1", "44", "49", "39", "00", "810", "9"]


def _random_digit_strings(rng: random.Random, count: int) -> list[str]:
    out = []
    for _ in range(count):
        size = rng.choice([8, 9, 10, 11, 12, 13])
        digits = str(rng.randrange(10 ** (size - 1), 10**size))
        if rng.random() < 0.4:
            digits = rng.choice(PREFIXES) + digits[: rng.choice([8, 9, 10, 11])]
        out.append(digits)
    return out


@pytest.mark.parametrize("region", REGIONS)
def test_fast_path_never_differs_from_the_library(region: str) -> None:
    """Wherever the fast path answers, phonenumbers gives the very same number."""
    rng = random.Random(region)
    fast = FastPath(region)
    answered = 0
    for digits in _random_digit_strings(rng, 2500):
        for international in (False, True):
            quick = fast.number(digits, international)
            if quick is None:
                continue
            answered += 1
            assert quick == _slow(digits, international, region, False)[0], (digits, international)
    assert answered > 100  # the comparison really ran


def test_fast_path_answers_the_everyday_shapes() -> None:
    fast = FastPath("KZ")
    for digits, international in [(KZ, False), ("87012345678", False), (KZ, True)]:
        assert fast.number(digits, international) == KZ


def test_fast_validity_matches_is_valid_number_exactly() -> None:
    """The validator behind the fast path agrees with the library on random numbers."""
    from mobizon_batch.phonefast import _country

    rng = random.Random(11)
    checked = valid = 0
    for code in (7, 998, 380, 55, 1, 44, 49, 39, 33, 91, 86, 61):
        country = _country(code)
        assert country is not None
        for _ in range(1500):
            nsn = str(rng.randrange(10**7, 10**11))[: rng.choice([8, 9, 10, 11])]
            number = phonenumbers.PhoneNumber(country_code=code, national_number=int(nsn))
            expected = phonenumbers.is_valid_number(number)
            assert country.is_valid(nsn) == expected, (code, nsn)
            checked += 1
            valid += expected
    assert valid > 500 and checked - valid > 500


def test_optout_file_in_any_format(tmp_path: Path) -> None:
    path = tmp_path / "stop.csv"
    path.write_text(
        "phone;comment\n"
        "+7 (701) 234-56-78;asked by phone\n"
        '"8 702 111 22 33";\n'
        "77051112233 2024-03-01\n"
        "not a number\n",
        encoding="cp1251",
    )
    assert load_optout(path) == {"77012345678", "77021112233", "77051112233"}


def test_optout_plain_text_and_empty_files(tmp_path: Path) -> None:
    plain = tmp_path / "stop.txt"
    plain.write_text("87012345678\n\n+998 90 123 45 67\n", encoding="utf-8")
    assert load_optout(plain) == {KZ, UZ}
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    assert load_optout(empty) == frozenset()
    header_only = tmp_path / "header.csv"
    header_only.write_text("phone\n", encoding="utf-8")
    assert load_optout(header_only) == frozenset()


def test_optout_without_numbers_is_refused(tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("name\nAlice\nBob\n", encoding="utf-8")
    with pytest.raises(InputError, match="no phone number in it"):
        load_optout(wrong)
    with pytest.raises(InputError, match="opt-out file not found"):
        load_optout(tmp_path / "missing.txt")
