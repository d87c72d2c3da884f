"""Bounds on option values, shared by the command line's flags and job files.

Why here: a job file no longer goes through the command line's parser, yet
``validity = 30`` in a job must be refused as ``--validity 30`` is, before
anything is sent.  Each check returns the value, or raises ``ValueError``
with the sentence to show; the caller names the flag or the key.  ``shown`` is the value as
the user wrote it, for the sentence.
"""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation


def finite(value: float, shown: str = "") -> float:
    shown = shown or f"{value:g}"
    if not math.isfinite(value) or abs(value) > 1e9:
        raise ValueError(f"{shown} is not a usable number")
    return value


def non_negative(value: float, shown: str = "") -> float:
    shown = shown or f"{value:g}"
    if finite(value, shown) < 0:
        raise ValueError(f"{shown} must not be negative")
    return value


def positive(value: float, shown: str = "") -> float:
    shown = shown or f"{value:g}"
    if finite(value, shown) <= 0:
        raise ValueError(f"{shown} must be more than 0")
    return value


def rate(value: float, shown: str = "") -> float:
    shown = shown or f"{value:g}"
    if 0 < non_negative(value, shown) < 0.01:
        raise ValueError(f"{shown}: use 0 for no limit, or at least 0.01 a second")
    return value


def at_least_one(value: int, shown: str = "") -> int:
    shown = shown or str(value)
    if value < 1:
        raise ValueError(f"{shown} must be at least 1")
    return value


def validity(value: int, shown: str = "") -> int:
    shown = shown or str(value)
    if not 60 <= value <= 1440:
        raise ValueError(f"{shown}: Mobizon accepts 60 to 1440 minutes")
    return value


def amount(value: Decimal | float | int | str, shown: str = "") -> Decimal:
    """A sum of money above 0 (``--max-cost``), as a Decimal."""
    shown = shown or str(value)
    try:
        number = Decimal(str(value).strip().replace(",", ""))
    except InvalidOperation:
        raise ValueError(f"{shown!r} is not an amount of money") from None
    if not number.is_finite() or number <= 0:
        raise ValueError(f"{shown}: give an amount above 0")
    return number
