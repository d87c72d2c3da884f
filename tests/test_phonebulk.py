"""The column-at-a-time phone path gives the library's answers, shape by shape."""

from __future__ import annotations

import random

import phonenumbers
import pytest
from phonenumbers import PhoneNumberType

from mobizon_batch.phonebulk import _WIDTH as WIDTH
from mobizon_batch.phonebulk import BulkPath
from mobizon_batch.phonefast import FastPath
from mobizon_batch.phones import _normalizer, _slow, clean_phone, normalize_phones

REGIONS = ["KZ", "RU", "UZ", "UA", "BR", "US", "GB", "DE", "IT", "FR", "IN", "CN"]
PREFIXES = ["7", "8", "998", "380", "55", "0", "1", "44", "49", "39", "00", "810", "9", "07"]
MOBILE = ["700", "701", "702", "705", "707", "708", "747", "771", "775", "776", "777", "778"]


def _home(rng: random.Random, region: str) -> str:
    """A number of the region (its example numbers with other last digits), in a national
    spelling, with its country code, or with the national prefix."""
    example = phonenumbers.example_number_for_type(
        region, rng.choice([PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE])
    )
    nsn = str(example.national_number)
    nsn = nsn[:-4] + f"{rng.randrange(10**4):04d}"
    prefix = phonenumbers.PhoneMetadata.metadata_for_region(region).national_prefix or ""
    return rng.choice([nsn, str(example.country_code) + nsn, prefix + nsn])


def _digits(rng: random.Random, region: str) -> str:
    """A digit string of a plausible size, often led by a prefix numbers really have."""
    roll = rng.random()
    if roll < 0.3:
        return _home(rng, region)
    if roll < 0.45:  # everyday Kazakh and Russian mobiles
        national = rng.choice([*MOBILE, "916", "903", "926"]) + f"{rng.randrange(10**7):07d}"
        return rng.choice(["7", "8", ""]) + national
    size = rng.choice([3, 5, 8, 9, 10, 11, 12, 13, 14])
    digits = str(rng.randrange(10 ** (size - 1), 10**size))
    if roll < 0.8:
        digits = rng.choice(PREFIXES) + digits[: rng.choice([7, 8, 9, 10, 11])]
    return digits


def _spelled(rng: random.Random, digits: str) -> str:
    """The digits as people type them: plain, with +, grouped by spaces, dashes, brackets."""
    shape = rng.randrange(6)
    if shape == 0:
        return digits
    if shape == 1:
        return "+" + digits
    if shape == 2 and len(digits) >= 11:  # +7 (701) 234-56-78
        d = digits
        return f"+{d[:-10]} ({d[-10:-7]}) {d[-7:-4]}-{d[-4:-2]}-{d[-2:]}"
    if shape == 3 and len(digits) >= 11:  # 8 701 234 56 78
        d = digits
        return f"{d[:-10]} {d[-10:-7]} {d[-7:-4]} {d[-4:-2]} {d[-2:]}"
    if shape == 4:  # separators anywhere, sometimes doubled or leading
        out = []
        for ch in digits:
            if rng.random() < 0.25:
                out.append(rng.choice([" ", "-", "(", ")", "  ", " - "]))
            out.append(ch)
        return ("+" if rng.random() < 0.5 else "") + "".join(out)
    # shapes the bulk path leaves to clean_phone
    return rng.choice(
        [f" {digits} ", f"{digits}.0", f"00{digits}", f"+{digits}x", f"{digits}/1", "", "+", "()"]
    )


def _sample(region: str, seed: str, count: int) -> list[str]:
    rng = random.Random(f"{region}/{seed}")
    return [_spelled(rng, _digits(rng, region)) for _ in range(count)]


@pytest.mark.parametrize("region", REGIONS)
def test_bulk_answers_are_the_librarys(region: str) -> None:
    """Every number the bulk path gives is the one phonenumbers gives for that cell."""
    cells = _sample(region, "library", 6000)
    bulk = BulkPath(FastPath(region)).numbers(cells).tolist()
    answered = 0
    for cell, number in zip(cells, bulk, strict=True):
        if not number:
            continue
        answered += 1
        cleaned = clean_phone(cell)
        assert not isinstance(cleaned, str), cell
        assert number == _slow(*cleaned, region, False)[0], (cell, region)
    assert answered > 400  # the comparison really ran


@pytest.mark.parametrize("region", REGIONS)
def test_bulk_answers_wherever_the_fast_path_does(region: str) -> None:
    """On the shapes it reads, the bulk path is the fast path, row for row."""
    cells = [c for c in _sample(region, "fast", 6000) if c[:1] in "+0123456789"]
    bulk = BulkPath(FastPath(region)).numbers(cells).tolist()
    fast = FastPath(region)
    home = fast.home.prefix
    compared = 0
    for cell, number in zip(cells, bulk, strict=True):
        cleaned = clean_phone(cell)
        if isinstance(cleaned, str) or not all(ch in "+0123456789 ()-" for ch in cell):
            assert number == ""
            continue
        digits, international = cleaned
        if (
            cell.startswith("00")
            or (international and not digits.startswith(home))
            or len(cell) > WIDTH
        ):
            continue  # left to the one-by-one path on purpose
        assert number == (fast.number(digits, international) or ""), (cell, region)
        compared += 1
    assert compared > 1000


def test_everyday_kazakh_shapes_are_all_answered_in_bulk() -> None:
    rng = random.Random(3)
    nationals = [rng.choice(MOBILE) + f"{rng.randrange(10**7):07d}" for _ in range(3000)]
    cells = []
    for n in nationals:
        cells += ["7" + n, "8" + n, f"+7 ({n[:3]}) {n[3:6]}-{n[6:8]}-{n[8:]}", f"8 {n}", "+7" + n]
    bulk = BulkPath(FastPath("KZ")).numbers(cells).tolist()
    assert bulk == ["7" + n for n in nationals for _ in range(5)]


@pytest.mark.parametrize("region", ["KZ", "RU", "BR", "US"])
@pytest.mark.parametrize("accept_possible", [False, True])
def test_whole_columns_match_one_cell_at_a_time(region: str, accept_possible: bool) -> None:
    """Numbers and reasons of normalize_phones equal solving each cell on its own."""
    cells = _sample(region, str(accept_possible), 4000)
    cells += cells[:500]  # repeats
    numbers, reasons = normalize_phones(cells, region, accept_possible=accept_possible)
    solve = _normalizer(region, accept_possible)
    expected = [solve(cell) for cell in cells]
    assert numbers == [e[0] for e in expected]
    assert reasons == [e[1] for e in expected]
    assert any(numbers) and any(reasons)
