"""Which column of a list holds the phones, and which the texts.

Why its own module: people name these columns in three languages and a dozen
ways (``Телефон``, ``Phone number``, ``Ұялы телефон``), and guessing wrong
would send the wrong text or to the wrong people.  The rules here look only
at the names, never at the cells, and refuse to pick between two columns
that both fit equally well: the flag that settles it is cheap.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import Literal

from mobizon_batch.errors import ConfigError, InputError


def _name_key(name: str) -> str:
    """Compare column names loosely: case, ё/е, spaces, _ - . : № # don't matter."""
    text = name.casefold().replace("ё", "е")
    return re.sub(r"[\s_\-.:№#/()]+", " ", text).strip()


def _keys(*names: str) -> frozenset[str]:
    return frozenset(_name_key(n) for n in names)


# Exact names, strongest first; then words or fragments a longer name may contain.
PHONE_NAMES = (
    _keys(
        "phone", "phones", "phone number", "phonenumber", "phone no", "tel", "tel no",
        "telephone", "telephone number", "mobile", "mobile phone", "mobile number",
        "cell", "cell phone", "cellphone", "msisdn", "recipient", "recipients",
        "recipient phone", "whatsapp", "телефон", "телефоны", "тел", "номер телефона",
        "телефонный номер", "мобильный", "мобильный телефон", "моб телефон", "моб",
        "сотовый", "сотовый телефон", "получатель", "номер получателя",
        "телефон получателя", "телефон нөмірі", "телефон номері", "ұялы телефон", "ұялы",
        "алушы", "алушы телефоны",
    ),
    _keys("number", "номер", "нөмір", "to", "contact", "контакт", "байланыс"),
)  # fmt: skip
PHONE_FRAGMENTS = ("phone", "телефон", "mobile", "msisdn", "recipient", "получател", "ұялы")
PHONE_WORDS = frozenset({"tel", "тел", "mob", "моб", "cell"})

TEXT_NAMES = (
    _keys(
        "text", "message", "sms", "sms text", "message text", "text message", "msg", "body",
        "текст", "сообщение", "смс", "текст сообщения", "текст смс", "смс текст",
        "sms текст", "мәтін", "хабарлама", "хабар", "хабарлама мәтіні", "смс мәтіні",
        "sms мәтіні",
    ),
    _keys("content", "содержание", "содержимое", "мазмұны"),
)  # fmt: skip
TEXT_FRAGMENTS = ("text", "message", "sms", "смс", "текст", "сообщени", "мәтін", "хабарлама")
TEXT_WORDS = frozenset({"msg"})

ColumnKind = Literal["phone", "text"]
#: longer than this, a cell is not taken for a column name when the header is looked for
_NAME_LENGTH = 40


def detect_column(
    columns: Sequence[str], kind: ColumnKind, *, exclude: Iterable[str] = ()
) -> str | None:
    """The column that most likely holds phones (or texts), or None.

    Tiers: a well-known exact name (``Телефон``), then a weaker exact name
    (``Номер``), then a name containing a telling word (``Телефон клиента``).
    Several columns in the best tier is an InputError: picking one would be
    a guess, and the flag to settle it is cheap.
    """
    names, fragments, words = (
        (PHONE_NAMES, PHONE_FRAGMENTS, PHONE_WORDS)
        if kind == "phone"
        else (TEXT_NAMES, TEXT_FRAGMENTS, TEXT_WORDS)
    )
    skip = set(exclude)
    candidates = [c for c in columns if c not in skip]
    tiers: list[list[str]] = [
        *([c for c in candidates if _name_key(c) in tier] for tier in names),
        [
            c
            for c in candidates
            if any(f in _name_key(c) for f in fragments) or words & set(_name_key(c).split())
        ],
    ]
    for found in tiers:
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            flag = "--phone-column" if kind == "phone" else "--text-column"
            listed = ", ".join(repr(c) for c in found)
            raise InputError(
                f"several columns could hold the {kind}s ({listed}): pick one with {flag} NAME"
            )
    return None


def header_check(wanted: Sequence[str] = ()) -> Callable[[Sequence[str]], bool]:
    """A test for "this record is the header": it names the columns the plan needs.

    With names given (``--phone-column``, ``--text-column``, the template's
    placeholders) the record must hold each of them; without, it must have
    a column this module recognises as the phones.  A title row above the
    header ("Выгрузка клиентов из CRM на 28.11.2026") has neither.
    """
    keys = [_name_key(name) for name in wanted if name.strip()]

    def check(cells: Sequence[str]) -> bool:
        names = [cell.strip() for cell in cells if cell.strip()]
        if len(names) < 2:
            return False
        if keys:
            present = {_name_key(name) for name in names}
            return all(key in present for key in keys)
        try:
            found = detect_column(names, "phone")
        except InputError:  # two phone-like names: still a header
            return True
        # A column name is short; a long cell that mentions a phone is a text.
        return found is not None and len(found) <= _NAME_LENGTH

    return check


def find_column(columns: Sequence[str], wanted: str, *, what: str) -> str:
    """The column a flag or placeholder names: exactly, else ignoring case and spacing."""
    if wanted in columns:
        return wanted
    loose = [c for c in columns if _name_key(c) == _name_key(wanted)]
    if len(loose) == 1:
        return loose[0]
    listed = ", ".join(repr(c) for c in columns)
    if loose:
        raise ConfigError(f"{what} {wanted!r} matches several columns: {listed}")
    raise ConfigError(f"{what} {wanted!r} is not a column of the list; its columns are: {listed}")
