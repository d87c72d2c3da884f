"""The report in its readers' language: Russian or English words for sheets, labels, headers.

Why a table of words rather than a translation library: the report has
a few dozen fixed words, the figures beside them are numbers, and the
results file's own column names stay as documented whatever the language
(scripts read them); only what people read in the report changes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from mobizon_batch.config import REPORT_LANGUAGES
from mobizon_batch.resultfile import locate_columns

LANGUAGES = REPORT_LANGUAGES

_RU: dict[str, str] = {
    # sheets
    "Summary": "Сводка",
    "Messages": "Сообщения",
    "Problems": "Проблемы",
    # summary sheet
    "Delivery report": "Отчёт о доставке",
    "Generated": "Создан",
    "Key figures": "Главные цифры",
    "Rows in the file": "Строк в файле",
    "Sent": "Отправлено",
    "Delivered (DELIVRD)": "Доставлено (DELIVRD)",
    "Delivery rate among sent": "Доля доставленных среди отправленных",
    "Final status known": "Окончательный статус известен",
    "Still in progress": "Ещё в пути",
    "Problems (see the Problems sheet)": "Проблемы (см. лист «Проблемы»)",
    "Segments billed (seg_num)": "Сегментов оплачено (seg_num)",
    "Segments estimated (sent and planned rows)": "Сегментов по оценке (отправленные и плановые)",
    "By send status": "По статусу отправки",
    "By status": "По статусу доставки",
    "By country": "По стране",
    "By operator": "По оператору",
    "rows": "строк",
    "share of rows": "доля строк",
    "share of sent": "доля отправленных",
    "Messages by status": "Сообщения по статусам",
    "messages": "сообщения",
    "status": "статус",
    "(not checked)": "(не проверено)",
    "(unknown)": "(неизвестно)",
    "(blank)": "(пусто)",
    # problems
    "invalid": "не отправлено: ошибка в строке",
    "failed": "отклонено API",
    "unknown": "исход неизвестен",
    "undelivered": "не доставлено",
    "rejected": "отклонено оператором",
    "expired": "истёк срок",
    "deleted": "удалено",
    "not found": "не найдено",
}
_RU_COLUMNS: dict[str, str] = {
    "row": "Строка",
    "problem": "Проблема",
    "reason": "Причина",
    "recipient": "Получатель",
    "send_status": "Статус отправки",
    "message_id": "ID сообщения",
    "campaign_id": "ID кампании",
    "text_sent": "Отправленный текст",
    "segments": "Сегменты",
    "error_code": "Код ошибки",
    "error": "Ошибка",
    "sent_at": "Принято API",
    "status": "Статус доставки",
    "status_final": "Статус окончательный",
    "seg_num": "Сегментов оплачено",
    "start_send_ts": "Начало отправки",
    "status_update_ts": "Статус обновлён",
    "status_checked_at": "Статус проверен",
}


def default_language(environ: Mapping[str, str] | None = None) -> str:
    """``ru`` when the locale is Russian or Kazakh (LC_ALL, LC_MESSAGES, LANG), else ``en``."""
    env = os.environ if environ is None else environ
    for variable in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = env.get(variable, "").strip()
        if value:
            return "ru" if value.lower().startswith(("ru", "kk")) else "en"
    return "en"


def check_language(lang: str) -> str:
    """The language code, or ValueError naming the ones there are."""
    code = lang.strip().lower()
    if code not in LANGUAGES:
        raise ValueError(f"{lang!r} is not a report language: use {' or '.join(LANGUAGES)}")
    return code


def word(text: str, lang: str) -> str:
    """``text`` in ``lang`` (English is the text itself; an unknown word stays as it is)."""
    return _RU.get(text, text) if lang == "ru" else text


def header_names(columns: Sequence[str], lang: str, *, front: Sequence[str] = ()) -> list[str]:
    """The header a report sheet shows: our columns in ``lang``, the input's as they are.

    ``front`` names columns put in front by the report (row, problem, reason).
    """
    if lang != "ru":
        return list(columns)
    ours = {name: canonical for canonical, name in locate_columns(columns).items()}
    shown = []
    for position, name in enumerate(columns):
        canonical = name if position < len(front) else ours.get(name)
        shown.append(_RU_COLUMNS.get(canonical, name) if canonical else name)
    return shown
