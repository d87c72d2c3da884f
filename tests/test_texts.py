"""Segment counting and templates."""

from __future__ import annotations

import pytest

from mobizon_batch.errors import ConfigError
from mobizon_batch.texts import _pack, count_segments, is_gsm7, parse_template

EMOJI = "\U0001f600"  # two UTF-16 units

# (text, encoding, units, segments)
SEGMENTS = [
    ("", "GSM-7", 0, 0),
    ("a", "GSM-7", 1, 1),
    ("a" * 160, "GSM-7", 160, 1),
    ("a" * 161, "GSM-7", 161, 2),
    ("a" * 306, "GSM-7", 306, 2),  # 153 × 2
    ("a" * 307, "GSM-7", 307, 3),
    ("a" * 459, "GSM-7", 459, 3),
    ("€" * 80, "GSM-7", 160, 1),  # extension characters count twice
    ("€" * 81, "GSM-7", 162, 2),
    ("a" * 159 + "^", "GSM-7", 161, 2),
    ("a" * 152 + "{" + "a" * 10, "GSM-7", 164, 2),  # the escape pair is not split
    ("a" * 158 + "|", "GSM-7", 160, 1),  # exactly 160 septets with an extension character
    ("[]{}\\~^|€", "GSM-7", 18, 1),
    ("Hello @ £ $ ¥ è é ù ì ò Ç Ø ø Å å Δ _ Φ Γ Λ Ω Π Ψ Σ Θ Ξ Æ æ ß É", "GSM-7", 63, 1),
    ("я" * 70, "UCS-2", 70, 1),
    ("я" * 71, "UCS-2", 71, 2),
    ("я" * 134, "UCS-2", 134, 2),  # 67 × 2
    ("я" * 135, "UCS-2", 135, 3),
    (EMOJI * 35, "UCS-2", 70, 1),  # an emoji counts 2
    (EMOJI * 35 + "a", "UCS-2", 71, 2),
    ("a" * 66 + EMOJI + "a" * 10, "UCS-2", 78, 2),  # the pair is not split
    ("a" * 67 + EMOJI * 34, "UCS-2", 135, 3),
    ("Привет, Ivan!", "UCS-2", 13, 1),  # mixed scripts: one Cyrillic letter → UCS-2
    ("Сәлеметсіз бе! Қош келдіңіз", "UCS-2", 27, 1),  # Kazakh
    ("a" * 69 + "ж", "UCS-2", 70, 1),
    ("“quotes”", "UCS-2", 8, 1),  # curly quotes are not GSM-7
    ("line\nbreak\r", "GSM-7", 11, 1),
]


@pytest.mark.parametrize(("text", "encoding", "units", "segments"), SEGMENTS)
def test_segments(text: str, encoding: str, units: int, segments: int) -> None:
    info = count_segments(text)
    assert (info.encoding, info.units, info.segments) == (encoding, units, segments)


def test_the_segment_table_is_big_enough() -> None:
    assert len(SEGMENTS) >= 20


@pytest.mark.parametrize(("text", "_encoding", "_units", "segments"), SEGMENTS)
def test_shortcuts_agree_with_the_packing_loop(
    text: str, _encoding: str, _units: int, segments: int
) -> None:
    """count_segments' arithmetic shortcuts give what character-by-character packing gives."""
    if is_gsm7(text):
        sizes = [2 if ch in "^{}\\[~]|€\f" else 1 for ch in text]
        assert _pack(sizes, 160, 153) == segments
    else:
        sizes = [2 if ord(ch) > 0xFFFF else 1 for ch in text]
        assert _pack(sizes, 70, 67) == segments


def test_template_fields_and_literals() -> None:
    template = parse_template("Здравствуйте, {name}! Код {{{ code }}}: {Имя клиента}")
    assert template.fields == ("name", "code", "Имя клиента")
    assert template.literals == ("Здравствуйте, ", "! Код {", "}: ", "")
    rendered = template.render({"name": "Айгерим", "code": "42", "Имя клиента": "А"})
    assert rendered == "Здравствуйте, Айгерим! Код {42}: А"


def test_template_without_placeholders_is_a_fixed_text() -> None:
    template = parse_template("Скидка 20% {{до воскресенья}}")
    assert template.fields == ()
    assert template.render({}) == "Скидка 20% {до воскресенья}"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("Hello {name", "unmatched '{' at character 7"),
        ("Hello name}", "unmatched '}' at character 11"),
        ("Hello {}", "empty placeholder"),
        ("Hello {  }", "empty placeholder"),
        ("   ", "the template is empty"),
    ],
)
def test_bad_templates_are_usage_errors(source: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_template(source)


def test_many_texts_at_once_count_as_one_at_a_time() -> None:
    """count_segments_many gives count_segments' answers on every kind of text and length."""
    import random

    from mobizon_batch.texts import GSM7_EXTENSION, count_segments_many

    rng = random.Random(1)
    latin = list("abcXYZ 019.,!")
    pools = [
        latin,
        latin + list(GSM7_EXTENSION),
        latin + list(GSM7_EXTENSION) + list("Здравствуйте") + ["😀", "é", "€", "\n", "\r"],
        [*latin, "Ж"],
        [*latin, "😀"],
    ]
    sizes = [0, 1, 5, 60, 69, 70, 71, 134, 135, 140, 152, 153, 154, 159, 160, 161, 306, 307, 400]
    texts = [
        "".join(rng.choice(pool) for _ in range(rng.choice(sizes)))
        for pool in pools
        for _ in range(3000)
    ]
    segments, encodings = count_segments_many(texts)
    expected = [count_segments(t) for t in texts]
    assert segments.tolist() == [e.segments for e in expected]
    assert encodings.tolist() == [e.encoding if e.units else "" for e in expected]
    assert {"GSM-7", "UCS-2", ""} == set(encodings.tolist())
