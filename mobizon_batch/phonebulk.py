"""Phone validation a column at a time: ``FastPath``'s answers for a whole list at once.

Why: ``FastPath`` answers one number in a few microseconds, but its Python
steps (prefix tests, branches, slicing) still cost seconds on a
million-row list.  ``BulkPath`` takes the same steps in the same order on
whole arrays: the cells become a matrix of code points, so cleaning,
literal prefix tests, lengths and slicing are numpy operations; the
metadata patterns run as one C-level pass per pattern (``map`` over the
strings, only for the lengths a pattern allows); branches become masks.
It answers a row only where ``FastPath.number`` would answer it, with the
same number; every other row is left ``""`` for the caller to solve one by
one (``FastPath``, then phonenumbers itself).

Cells it reads: ASCII digits with spaces, dashes and parentheses, and an
optional leading ``+`` — the shapes ``clean_phone`` turns into digits by
simply dropping those characters.  Anything else (letters, dots, other
scripts' digits, ``00`` prefixes, scientific notation) is left to
``clean_phone``, and so are numbers written with ``+`` and another
country's code, and national prefixes with carrier codes.
``tests/test_phonebulk.py`` holds this path to the library's answers on
large random samples of every shape it reads.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import phonenumbers

from mobizon_batch.phonefast import _MAX_NSN, _MIN_NSN, FastPath, _Country, _Prefix

Mask = np.ndarray[Any, np.dtype[np.bool_]]
Strings = np.ndarray[Any, np.dtype[np.object_]]
Matrix = np.ndarray[Any, np.dtype[np.uint32]]
Rows = np.ndarray[Any, np.dtype[np.intp]]

_WIDTH = 32  # longer cells are left to clean_phone: no phone number is that long
_PLUS, _SPACE, _DASH, _OPEN, _CLOSE = (ord(c) for c in "+ -()")
_ZERO, _NINE = ord("0"), ord("9")


def _mask(test: Callable[[Any], Any], values: Iterable[Any], count: int) -> Mask:
    """``[bool(test(v)) for v in values]`` as a numpy mask, without a Python loop."""
    return np.fromiter(map(bool, map(test, values)), dtype=bool, count=count)


class _Digits:
    """Digit strings as a matrix of code points (zero-padded) and, on demand, as strings."""

    def __init__(self, matrix: Matrix) -> None:
        self.matrix = matrix
        self._strings: Strings | None = None

    def __len__(self) -> int:
        return len(self.matrix)

    @property
    def strings(self) -> Strings:
        if self._strings is None:
            count, width = self.matrix.shape
            if width == 0:
                self._strings = np.full(count, "", dtype=object)
            else:
                view = np.ascontiguousarray(self.matrix).view(f"<U{width}").reshape(count)
                self._strings = view.astype(object)
        return self._strings

    @property
    def lengths(self) -> np.ndarray[Any, np.dtype[np.int64]]:
        lengths: np.ndarray[Any, np.dtype[np.int64]] = np.count_nonzero(self.matrix, axis=1)
        return lengths.astype(np.int64)

    def take(self, mask: Mask | Rows) -> _Digits:
        taken = _Digits(self.matrix[mask])
        if self._strings is not None:
            taken._strings = self._strings[mask]
        return taken

    def starts_with(self, literal: str) -> Mask:
        size = len(literal)
        if size > self.matrix.shape[1]:
            return np.zeros(len(self), dtype=bool)
        codes = np.array([ord(c) for c in literal], dtype=np.uint32)
        found: Mask = np.all(self.matrix[:, :size] == codes, axis=1)
        return found

    def starts(self, prefix: _Prefix) -> Mask:
        """Rows the metadata prefix matches at the start."""
        if prefix.literal is not None:
            return self.starts_with(prefix.literal)
        assert prefix.pattern is not None
        return _mask(prefix.pattern.match, self.strings, len(self))

    def after(self, size: int) -> _Digits:
        return _Digits(self.matrix[:, size:])

    def after_prefix(self, prefix: _Prefix) -> _Digits:
        """What follows the prefix (every row is known to start with it)."""
        if prefix.literal is not None:
            return self.after(len(prefix.literal))
        assert prefix.pattern is not None
        pattern = prefix.pattern
        ends = np.array([_end(pattern.match(value)) for value in self.strings], dtype=np.intp)
        out = np.zeros_like(self.matrix)
        for end in np.unique(ends).tolist():
            rows = ends == end
            out[rows, : out.shape[1] - end] = self.matrix[rows, end:]
        return _Digits(out)

    def matching(self, pattern_for: Callable[[int], re.Pattern[str] | None]) -> Mask:
        """Rows that fully match the pattern their length calls for (None: no match)."""
        result = np.zeros(len(self), dtype=bool)
        lengths = self.lengths
        for length in np.unique(lengths).tolist():
            pattern = pattern_for(int(length))
            if pattern is None:
                continue
            rows = np.flatnonzero(lengths == length)
            result[rows] = _mask(pattern.fullmatch, self.strings[rows], len(rows))
        return result

    def with_prefix(self, prefix: str) -> Strings:
        """``prefix + digits`` for every row, as strings."""
        codes = np.array([ord(c) for c in prefix], dtype=np.uint32)
        head = np.broadcast_to(codes, (len(self), len(codes)))
        return _Digits(np.hstack([head, self.matrix])).strings


def _cleaned(cells: Sequence[str]) -> tuple[Rows, _Digits, Mask]:
    """The cells of the shapes read here: their rows, digits and whether ``+`` led them."""
    count = len(cells)
    lengths = np.fromiter(map(len, cells), dtype=np.int64, count=count)
    plain = np.fromiter(map(str.isdigit, cells), dtype=bool, count=count)
    plain &= np.fromiter(map(str.isascii, cells), dtype=bool, count=count)
    plain &= lengths <= _WIDTH
    rows = np.flatnonzero(plain)
    width = int(lengths[rows].max()) if len(rows) else 0
    matrix = _codes([cells[i] for i in rows.tolist()] if len(rows) != count else cells, width)
    mixed = np.flatnonzero(~plain & (lengths > 0) & (lengths <= _WIDTH))
    if not len(mixed):
        return rows, _Digits(matrix), np.zeros(len(rows), dtype=bool)
    width = int(lengths[mixed].max())
    codes = _codes([cells[i] for i in mixed.tolist()], width)
    digit = (codes >= _ZERO) & (codes <= _NINE)
    allowed = digit | (codes == _SPACE) | (codes == _DASH) | (codes == _OPEN)
    allowed |= (codes == _CLOSE) | (codes == 0)
    plus = codes[:, 0] == _PLUS
    allowed[:, 0] |= plus
    # Every character allowed, no NUL inside the cell (the padding is all there is), a digit.
    keep = allowed.all(axis=1) & (np.count_nonzero(codes, axis=1) == lengths[mixed])
    keep &= digit.any(axis=1)
    mixed, codes, digit, plus = mixed[keep], codes[keep], digit[keep], plus[keep]
    # Close up the digits to the left (drop the separators and the "+").
    closed = np.zeros_like(codes)
    where = np.nonzero(digit)
    closed[where[0], (np.cumsum(digit, axis=1, dtype=np.int8) - 1)[where]] = codes[where]
    width = max(matrix.shape[1], int(digit.sum(axis=1).max()) if len(mixed) else 0)
    both = np.zeros((len(rows) + len(mixed), width), dtype=np.uint32)
    both[: len(rows), : matrix.shape[1]] = matrix
    both[len(rows) :, : min(width, closed.shape[1])] = closed[:, :width]
    international = np.concatenate([np.zeros(len(rows), dtype=bool), plus])
    return np.concatenate([rows, mixed]), _Digits(both), international


def _end(match: re.Match[str] | None) -> int:
    assert match is not None  # every value starts with the prefix
    return match.end()


def _codes(cells: Sequence[str], width: int) -> Matrix:
    """The cells as a matrix of code points, zero-padded to ``width`` (cells fit in it)."""
    if not width:
        return np.zeros((len(cells), 0), dtype=np.uint32)
    return np.array(cells, dtype=f"<U{width}").view(np.uint32).reshape(len(cells), width)


def _valid(country: _Country, nsns: _Digits) -> Mask:
    """``country.is_valid`` for every national number, region by region as it decides."""
    if country.single is not None:
        return nsns.matching(country.single.known_pattern)
    valid = np.zeros(len(nsns), dtype=bool)
    open_rows = np.ones(len(nsns), dtype=bool)
    for region in country.regions:
        rows = np.flatnonzero(open_rows)
        if not len(rows):
            break
        subset = nsns.take(rows)
        if region.leading is not None:
            led = subset.starts(region.leading)
            valid[rows[led]] = subset.take(led).matching(region.known_pattern)
            open_rows[rows[led]] = False
        else:
            known = subset.matching(region.known_pattern)
            valid[rows[known]] = True
            open_rows[rows[known]] = False
    return valid


def _any_general(country: _Country, values: _Digits) -> Mask:
    result = np.zeros(len(values), dtype=bool)
    for region in country.regions:
        result |= values.matching(region.general_pattern)
    return result


class BulkPath:
    """``FastPath.number`` for many cells at once (see the module docstring)."""

    def __init__(self, fast: FastPath) -> None:
        self.fast = fast
        home = fast.home
        # _split_country_code takes the shortest code: the home code is only
        # what it finds if no shorter start of it is a code of its own.
        self.home_is_shortest = all(
            int(home.prefix[:size]) not in phonenumbers.COUNTRY_CODE_TO_REGION_CODE
            for size in range(1, len(home.prefix))
        )

    def numbers(self, cells: Sequence[str]) -> Strings:
        """For each cell, its number as ``FastPath`` answers it, or ``""`` (not answered)."""
        answers: Strings = np.full(len(cells), "", dtype=object)
        rows, digits, international = _cleaned(cells)
        if len(rows):
            domestic = ~international & ~digits.starts_with("00")
            self._international(rows[international], digits.take(international), answers)
            self._domestic(rows[domestic], digits.take(domestic), answers)
        return answers

    def _international(self, rows: Rows, digits: _Digits, out: Strings) -> None:
        """``+`` numbers of the home country code; other codes are left to the caller."""
        home = self.fast.home
        if not self.home_is_shortest or not len(rows):
            return
        take = digits.starts_with(home.prefix) & (digits.lengths > _MIN_NSN)
        self._checked(rows[take], digits.take(take).after(len(home.prefix)), out)

    def _domestic(self, rows: Rows, digits: _Digits, out: Strings) -> None:
        fast = self.fast
        home, region = fast.home, fast.region
        if region.idd is not None:
            keep = ~digits.starts(region.idd)
            rows, digits = rows[keep], digits.take(keep)
        # Written with the country code but no "+" (see FastPath.number).
        coded = digits.starts_with(home.prefix)
        coded_rows = np.flatnonzero(coded)
        coded[coded_rows] = ~digits.take(coded_rows).matching(region.general_pattern)
        with_code = digits.take(coded)
        nsns = with_code.after(len(home.prefix))
        ok = ~_any_general(home, with_code)
        prefix = region.national_prefix
        if prefix is not None:
            ok &= ~with_code.starts(prefix) & ~nsns.starts(prefix)
        self._checked(rows[coded][ok], nsns.take(ok), out)
        self._national(rows[~coded], digits.take(~coded), out)

    def _national(self, rows: Rows, digits: _Digits, out: Strings) -> None:
        """``FastPath._national``: strip the national prefix as parse would."""
        region = self.fast.region
        prefix = region.national_prefix
        if prefix is None:
            self._checked(rows, digits, out)
            return
        prefixed = digits.starts(prefix)
        self._checked(rows[~prefixed], digits.take(~prefixed), out)
        if region.transform or not prefixed.any():
            return  # carrier codes and rewrites: left to the caller
        with_prefix = digits.take(prefixed)
        nsns = with_prefix.after_prefix(prefix)
        ok = np.ones(len(nsns), dtype=bool)
        general = np.flatnonzero(with_prefix.matching(region.general_pattern))
        ok[general] = nsns.take(general).matching(region.general_pattern)
        lengths = nsns.lengths
        ok &= np.isin(lengths, sorted(region.general_lengths))
        ok &= ~np.isin(lengths, sorted(region.local_lengths))
        self._checked(rows[prefixed][ok], nsns.take(ok), out)

    def _checked(self, rows: Rows, nsns: _Digits, out: Strings) -> None:
        """``FastPath._checked`` for the home country: the answers go into ``out``."""
        if not len(rows):
            return
        home = self.fast.home
        lengths = nsns.lengths
        ok = (lengths >= _MIN_NSN) & (lengths <= _MAX_NSN) & ~nsns.starts_with("0")
        main_prefix = home.main.national_prefix
        if main_prefix is not None:
            ok[ok] = ~nsns.take(ok).starts(main_prefix)
        ok[ok] = _valid(home, nsns.take(ok))
        out[rows[ok]] = nsns.take(ok).with_prefix(home.prefix)
