"""The fast path of phone validation: everyday numbers without ``phonenumbers.parse``.

Why: ``parse`` takes tens of microseconds, too slow for a million rows.
``FastPath`` answers the everyday shapes (``7701…``, ``8701…``, ``+7 701…``)
with the library's own metadata and the same checks ``is_valid_number``
makes, but only where it can prove the library would pick the very same
number; everything else, and every rejection, goes back to ``phones``, which
asks the library itself.  ``tests/test_phones.py`` holds the two paths to the
same answers on tens of thousands of random numbers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import phonenumbers
from phonenumbers import PhoneMetadata

from mobizon_batch.errors import ConfigError

# The number types _number_type_helper tries before fixed line and mobile.
_SPECIAL_TYPES = (
    "premium_rate",
    "toll_free",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
)
_MIN_NSN, _MAX_NSN = 2, 17  # phonenumbers' _MIN_LENGTH_FOR_NSN / _MAX_LENGTH_FOR_NSN


class _Prefix:
    """A metadata pattern used with ``re.match`` (a prefix test).

    Most are plain digits ("8", "810", "0"): those are tested with
    ``str.startswith``, which gives the same answer several times faster.
    """

    __slots__ = ("end", "literal", "pattern")

    def __init__(self, pattern: str) -> None:
        #: ``end(text)``: where the match at the start of ``text`` ends, or None.
        self.end: Callable[[str], int | None]
        #: The digits when the pattern is plain digits, else the compiled pattern.
        self.literal: str | None = pattern if pattern.isdigit() else None
        self.pattern: re.Pattern[str] | None = None
        if pattern.isdigit():
            size = len(pattern)

            def literal_end(text: str) -> int | None:
                return size if text.startswith(pattern) else None

            self.end = literal_end
        else:
            compiled = self.pattern = re.compile(pattern)

            def pattern_end(text: str) -> int | None:
                match = compiled.match(text)
                return None if match is None else match.end()

            self.end = pattern_end


def _prefix(pattern: str | None) -> _Prefix | None:
    return _Prefix(pattern) if pattern else None


class _Desc:
    """A PhoneNumberDesc as ``_is_number_matching_desc`` uses it."""

    __slots__ = ("lengths", "pattern")

    def __init__(self, desc: Any) -> None:
        self.lengths: frozenset[int] = (
            frozenset(desc.possible_length or ()) if desc else frozenset()
        )
        self.pattern: str | None = (desc.national_number_pattern or None) if desc else None

    def applies(self, length: int) -> bool:
        """False when the length alone rules the description out."""
        return self.pattern is not None and (not self.lengths or length in self.lengths)


class _Region:
    """One region's metadata, reduced to what validation needs."""

    def __init__(self, code: str) -> None:
        meta: Any = PhoneMetadata.metadata_for_region(code)
        self.code = code
        self.leading = _prefix(meta.leading_digits)
        self.general = _Desc(meta.general_desc)
        self.general_lengths = frozenset(meta.general_desc.possible_length or ())
        self.local_lengths = frozenset(meta.general_desc.possible_length_local_only or ())
        types = [_Desc(getattr(meta, name)) for name in _SPECIAL_TYPES]
        types.append(_Desc(meta.fixed_line))
        if not meta.same_mobile_and_fixed_line_pattern:
            types.append(_Desc(meta.mobile))
        self.types = tuple(types)
        self.idd = _prefix(meta.international_prefix)
        self.national_prefix = _prefix(meta.national_prefix_for_parsing)
        self.transform = meta.national_prefix_transform_rule or ""
        self._general_by_length: dict[int, re.Pattern[str] | None] = {}
        self._known_by_length: dict[int, re.Pattern[str] | None] = {}

    def general_matches(self, digits: str) -> bool:
        """``_is_number_matching_desc(digits, general_desc)``."""
        pattern = self.general_pattern(len(digits))
        return pattern is not None and pattern.fullmatch(digits) is not None

    def general_pattern(self, length: int) -> re.Pattern[str] | None:
        """The general description's pattern for numbers of this length (None: none match)."""
        pattern = self._general_by_length.get(length, _UNSET)
        if pattern is _UNSET:
            applies = self.general.applies(length)
            pattern = re.compile(self.general.pattern or "") if applies else None
            self._general_by_length[length] = pattern
        return pattern  # type: ignore[no-any-return]

    def type_known(self, nsn: str) -> bool:
        """``_number_type_helper(nsn, metadata) != UNKNOWN``, in one regex call.

        The general description must match and so must one of the type
        descriptions that allow this length: a lookahead anchored at the end
        checks the first, an alternation the second.
        """
        pattern = self.known_pattern(len(nsn))
        return pattern is not None and pattern.fullmatch(nsn) is not None

    def known_pattern(self, length: int) -> re.Pattern[str] | None:
        """The pattern ``type_known`` uses for national numbers of this length."""
        pattern = self._known_by_length.get(length, _UNSET)
        if pattern is _UNSET:
            pattern = self._known_pattern(length)
            self._known_by_length[length] = pattern
        return pattern  # type: ignore[no-any-return]

    def _known_pattern(self, length: int) -> re.Pattern[str] | None:
        if not self.general.applies(length):
            return None
        alternatives = [f"(?:{t.pattern})" for t in self.types if t.applies(length)]
        if not alternatives:
            return None
        return re.compile(f"(?=(?:{self.general.pattern})\\Z)(?:{'|'.join(alternatives)})")


_UNSET: Any = object()


class _Country:
    """A country calling code and its regions, as ``is_valid_number`` sees them."""

    def __init__(self, code: int, regions: Sequence[str]) -> None:
        self.code = code
        self.prefix = str(code)
        self.regions = tuple(_Region(r) for r in regions)
        main = phonenumbers.region_code_for_country_code(code)
        self.main = next(r for r in self.regions if r.code == main)
        self.single = self.regions[0] if len(self.regions) == 1 else None

    def is_valid(self, nsn: str) -> bool:
        """``is_valid_number(PhoneNumber(code, int(nsn)))`` for an nsn without leading 0."""
        if self.single is not None:
            return self.single.type_known(nsn)
        for region in self.regions:  # _region_code_for_number_from_list
            if region.leading is not None:
                if region.leading.end(nsn) is not None:
                    return region.type_known(nsn)
            elif region.type_known(nsn):
                return True
        return False

    def general_matches(self, digits: str) -> bool:
        return any(r.general_matches(digits) for r in self.regions)


_COUNTRIES: dict[int, _Country | None] = {}


def _country(code: int) -> _Country | None:
    """The validator for a calling code (None: leave it to the library), built once."""
    try:
        return _COUNTRIES[code]
    except KeyError:
        pass
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(code)
    country = None
    # Non-geographic codes ("001") and regions without metadata: leave to the library.
    if (
        regions
        and "001" not in regions
        and all(PhoneMetadata.metadata_for_region(r) is not None for r in regions)
    ):
        country = _Country(code, regions)
    _COUNTRIES[code] = country
    return country


def _split_country_code(digits: str) -> tuple[int, str] | None:
    """``_extract_country_code``: the shortest leading 1-3 digits that are a code."""
    if not digits or digits[0] == "0":
        return None
    for size in (1, 2, 3):
        code = int(digits[:size])
        if code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            return code, digits[size:]
    return None


class FastPath:
    """The answer of ``phones._slow`` for everyday shapes, without ``phonenumbers.parse``.

    It returns a number only when every step ``parse`` would take is known
    to leave the digits as they are (no international or national prefix to
    strip, no leading zero, no ambiguity between the national and the
    international reading) and the number passes the same checks as
    ``is_valid_number``.  Otherwise it returns None and the caller asks the
    library, so the fast path can be incomplete but never different.

    Called once per distinct number, so the hot path avoids calls it can
    (``str.startswith`` for literal prefixes, attributes kept in locals).
    """

    def __init__(self, region: str) -> None:
        home: Any = PhoneMetadata.metadata_for_region(region)
        self.home_code: int = home.country_code
        country = _country(self.home_code)
        if country is None:  # pragma: no cover - every region has a geographic code
            raise ConfigError(f"region {region} has no geographic calling code")
        self.home = country
        self.region = next(r for r in country.regions if r.code == region)

    def number(self, digits: str, international: bool) -> str | None:
        if international:
            split = _split_country_code(digits)
            if split is None or len(digits) <= _MIN_NSN:
                return None
            code, nsn = split
            return self._checked(code, nsn)
        home, region = self.home, self.region
        if region.idd is not None and region.idd.end(digits) is not None:
            return None
        if digits.startswith(home.prefix) and not region.general_matches(digits):
            # Written with the country code but no "+": parse strips the code,
            # or reads a national number no region of this code accepts and
            # the international reading follows; both give the same number.
            nsn = digits[len(home.prefix) :]
            if home.general_matches(digits):
                return None
            national_prefix = region.national_prefix
            if national_prefix is not None and (
                national_prefix.end(digits) is not None or national_prefix.end(nsn) is not None
            ):
                return None
            return self._checked(home.code, nsn)
        return self._national(digits)

    def _national(self, digits: str) -> str | None:
        """The national reading: strip the national prefix as parse would."""
        region = self.region
        nsn = digits
        prefix_end = region.national_prefix.end(digits) if region.national_prefix else None
        if prefix_end is not None:
            if region.transform:
                return None  # carrier codes and rewrites: leave to the library
            nsn = digits[prefix_end:]
            if region.general_matches(digits) and not region.general_matches(nsn):
                return None
            if len(nsn) not in region.general_lengths or len(nsn) in region.local_lengths:
                return None
        return self._checked(self.home_code, nsn)

    def _checked(self, code: int, nsn: str) -> str | None:
        if not _MIN_NSN <= len(nsn) <= _MAX_NSN or nsn[0] == "0":
            return None
        country = self.home if code == self.home_code else _country(code)
        if country is None:
            return None
        main_prefix = country.main.national_prefix
        if main_prefix is not None and main_prefix.end(nsn) is not None:
            return None
        if not country.is_valid(nsn):
            return None
        return country.prefix + nsn
