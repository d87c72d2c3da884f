"""The built-in sample lists: the demo's input and the README's examples.

Why in the package: ``mobizon-batch demo`` must work after a plain
``pip install .``, where the repository's ``sample_data/`` folder is not
installed; the folder holds these same files, written by
``sample_data/make_samples.py`` from this module (a test keeps them equal).

recipients.csv          UTF-8, comma-separated
recipients-cp1251.csv   the list as Russian-locale Excel saves it: Windows-1251, ';'
                        (without the row in Kazakh, which that code page cannot hold)
recipients.xlsx         the same list in Excel, phones stored as numbers
optout.txt              numbers that asked not to be contacted, in mixed spellings

The numbers are in ranges the operators have assigned, but made up (0000 in
the middle); the demo sends them only to the built-in emulator.  The list
has a repeated row, three invalid rows and two opted-out numbers, so that
every verdict shows up.
"""

from __future__ import annotations

import csv
from pathlib import Path

from openpyxl import Workbook

HEADER = ["Телефон", "Имя", "Сообщение"]
ROWS = [
    ["+7 701 000 00 01", "Айгерим", "Айгерим, здравствуйте! Скидка 20% на всё до воскресенья."],
    ["8 (747) 000-00-02", "Ержан", "Ержан, здравствуйте! Скидка 20% на всё до воскресенья."],
    ["87770000003", "Мария", "Мария, здравствуйте! Скидка 20% на всё до воскресенья."],
    ["7 702 000 0004", "Дамир", "Дамир, ваш заказ №1042 готов к выдаче."],
    ["+7 (705) 000-00-05", "Алия", "Алия, ваш заказ №1043 готов к выдаче."],
    ["+7 916 000-00-06", "Иван", "Иван, напоминаем о записи завтра в 10:00."],
    ["+998 90 000 00 07", "Нодира", "Nodira, buyurtmangiz tayyor."],
    ["77070000008", "Асем", "Асем, сәлеметсіз бе! Жеңілдік 20% жексенбіге дейін."],
    ["8 701 000 00 09", "Арман", "Арман, здравствуйте! Скидка 20% на всё до воскресенья."],
    ["77710000010", "Olga", "Olga, your order #1044 is ready for pickup."],
    ["+7 701 000 00 01", "Айгерим", "Айгерим, здравствуйте! Скидка 20% на всё до воскресенья."],
    ["12345", "Ошибка", "Этот номер слишком короткий."],
    ["", "Без номера", "У этой строки нет номера."],
    ["77750000013", "Тимур", ""],
    ["7 747 000 00 14", "Сауле", "Сауле, ваш заказ №1045 готов к выдаче."],
    ["87760000015", "Канат", "Канат, напоминаем о записи завтра в 12:30."],
]
OPTOUT = ["+7 (747) 000-00-14", "8 776 000 00 15"]


def as_number(phone: str) -> int | str:
    """What Excel makes of a phone typed into a cell: digits become a number."""
    digits = "".join(ch for ch in phone if ch.isdigit())
    if phone.startswith("8") and len(digits) == 11:
        digits = "7" + digits[1:]
    return int(digits) if len(digits) >= 10 else phone


def _fits_cp1251(row: list[str]) -> bool:
    try:
        "".join(row).encode("cp1251")
    except UnicodeEncodeError:
        return False
    return True


def write_samples(folder: Path) -> dict[str, Path]:
    """Write the four sample files into ``folder``; return them by short name."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "csv": folder / "recipients.csv",
        "cp1251": folder / "recipients-cp1251.csv",
        "xlsx": folder / "recipients.xlsx",
        "optout": folder / "optout.txt",
    }
    with open(paths["csv"], "w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([HEADER, *ROWS])
    with open(paths["cp1251"], "w", encoding="cp1251", newline="") as handle:
        writer = csv.writer(handle, delimiter=";")
        # Windows-1251 has no Kazakh letters such as ә: such rows can't be saved in it.
        writer.writerows([HEADER, *[row for row in ROWS if _fits_cp1251(row)]])
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Клиенты"
    sheet.append(HEADER)
    for phone, name, text in ROWS:
        sheet.append([as_number(phone), name, text])
    book.save(paths["xlsx"])
    paths["optout"].write_text("\n".join(OPTOUT) + "\n", encoding="utf-8")
    return paths
