"""Which Mobizon campaigns carry a list: the grouping rules of campaign mode.

Why these rules: a campaign has one text (or one template), and a number can
be in a campaign once (a second add answers code 4, "duplicates excluded").
So the fewest campaigns that carry a list faithfully are:

* without ``--template``: one bulk campaign (type 2) per distinct final text;
* with ``--template``: one template campaign (type 3) whose placeholders are
  renamed to names Mobizon accepts (Latin letters, digits, ``_``, ``-``), each
  row's values passed with its number, and ``placeholdersFlag=3`` so a row
  whose data went missing is rejected (code 20) rather than sent with a hole;
* a number that occurs twice in one group (``--allow-duplicates``, or one
  person with two template rows) goes to a second campaign of that group —
  the n-th occurrence to the n-th campaign.

A list whose texts are mostly different and that has no template is refused
(``MAX_TEXT_CAMPAIGNS``): it would become one campaign per row — more
requests than message mode, and a panel full of one-message campaigns.  The
alternative, a template campaign whose only placeholder is the whole text,
rests on what the docs do not say (how long a placeholder value may be, how a
moderator treats a text with no fixed words); message mode is the documented
path for such lists, and the refusal names it.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime

from mobizon_batch.campaign_client import BULK, TEMPLATE
from mobizon_batch.columns import find_column
from mobizon_batch.errors import ConfigError
from mobizon_batch.prepare import Plan
from mobizon_batch.texts import Template

#: More distinct texts than this (without a template) and campaign mode refuses the list.
MAX_TEXT_CAMPAIGNS = 20
#: Mobizon's limit on a campaign name.
MAX_NAME = 255
_PLACEHOLDER_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_-]+)\}")
_TAG = re.compile(r"\[[0-9a-f]+-[0-9]+\]\s*$")
#: Mobizon's highest documented pace; faster --rate values are capped to it.
MAX_CAMPAIGN_RATE = 100.0


@dataclass(frozen=True, slots=True)
class Member:
    """One row as a campaign recipient: its number and, for templates, its values."""

    row_key: str
    recipient: str
    text: str
    values: tuple[tuple[str, str], ...] = ()

    def payload(self) -> str | dict[str, str]:
        """What AddRecipients is given for this row."""
        if not self.values:
            return self.recipient
        return {"recipient": self.recipient, **dict(self.values)}


@dataclass(frozen=True, slots=True)
class CampaignDraft:
    """A campaign to create: its type, its text, and the rows it carries."""

    group: str  # stable key of (type, text, round): what the campaign is for
    kind: int  # BULK or TEMPLATE
    text: str
    members: tuple[Member, ...]


def rate_to_limit(rate: float | None) -> tuple[int, int] | None:
    """``--rate`` (messages a second) as Mobizon's ``(rateLimit, ratePeriod)``.

    The shortest documented period (60 s, 3600 s, 86400 s) in which the rate
    is at least one whole message; None (or 0) leaves the pace to the provider.
    """
    if not rate or rate <= 0:
        return None
    rate = min(rate, MAX_CAMPAIGN_RATE)
    for period in (60, 3600, 86400):
        if rate * period >= 1:
            return round(rate * period), period
    return 1, 86400


def campaign_name(base: str, token: str, local_id: int) -> str:
    """The name a campaign gets: the user's (or derived) name and this journal's tag.

    The tag (journal token and the campaign's number in it) is how a campaign
    whose Create answer was lost is recognised in Campaign/List, and how a
    campaign is checked to be ours before it is sent or deleted.
    """
    tag = " " + name_tag(token, local_id)
    return base[: MAX_NAME - len(tag)].rstrip() + tag


def name_tag(token: str, local_id: int) -> str:
    """``[a1b2c3-7]``: the part of a campaign's name that says whose it is."""
    return f"[{token}-{local_id}]"


def tag_of(name: str) -> str:
    """The tag at the end of a campaign name made by ``campaign_name`` ("" if none)."""
    match = _TAG.search(name)
    return match.group(0) if match else ""


def default_name(source: str, today: datetime | None = None) -> str:
    """``customers.xlsx`` sent on 29 Nov 2026 → ``customers 2026-11-29``."""
    stem = re.sub(r"\.[A-Za-z0-9]{1,5}$", "", source.replace("\\", "/").rsplit("/", 1)[-1])
    return f"{stem or 'list'} {(today or datetime.now()):%Y-%m-%d}"


def template_text(template: Template) -> tuple[str, dict[str, str]] | None:
    """The template as Mobizon's campaign text, and column → placeholder name.

    None when Mobizon could not render it as we do: a literal brace in the
    text (Mobizon would take ``{word}`` for a placeholder of its own).
    """
    literals = [part.replace("\r\n", "\n") for part in template.literals]
    if any("{" in part or "}" in part for part in literals):
        return None
    literals[0] = literals[0].lstrip()
    literals[-1] = literals[-1].rstrip()
    names: dict[str, str] = {}
    taken: set[str] = {"recipient"}
    for index, field in enumerate(dict.fromkeys(template.fields), start=1):
        name = field if _PLACEHOLDER_NAME.match(field) and field.lower() not in taken else ""
        name = name or f"field{index}"
        while name.lower() in taken:
            name += "_"
        taken.add(name.lower())
        names[field] = name
    parts = [literals[0]]
    for field, literal in zip(template.fields, literals[1:], strict=True):
        parts.append("{" + names[field] + "}")
        parts.append(literal)
    return "".join(parts), names


def render_like_mobizon(text: str, values: Mapping[str, str]) -> str:
    """What Mobizon sends for a template text and one recipient's values."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)


def group_rows(plan: Plan, keys: Collection[str]) -> list[CampaignDraft]:
    """The campaigns that carry the plan's rows in ``keys`` (sendable, not yet staged).

    Raises ConfigError for a list campaign mode should not send (see the
    module docstring).
    """
    rows = plan.rows
    chosen = rows[rows["row_key"].isin(set(keys))]
    if chosen.empty:
        return []
    template = template_text(plan.template) if plan.template is not None else None
    columns = _template_columns(plan) if template is not None else {}
    groups: dict[tuple[int, str], list[Member]] = defaultdict(list)
    for index, key, recipient, text in zip(
        chosen.index, chosen["row_key"], chosen["recipient"], chosen["text"], strict=True
    ):
        member = Member(str(key), str(recipient), str(text))
        if template is not None and plan.template is not None and plan.template.fields:
            campaign_text, names = template
            values = {
                names[field]: _cell(plan, columns[field], index)
                for field in dict.fromkeys(plan.template.fields)
            }
            if render_like_mobizon(campaign_text, values) == member.text:
                member = Member(
                    member.row_key, member.recipient, member.text, tuple(values.items())
                )
                groups[(TEMPLATE, campaign_text)].append(member)
                continue
        groups[(BULK, member.text)].append(member)
    bulk_texts = sum(1 for kind, _ in groups if kind == BULK)
    if bulk_texts > MAX_TEXT_CAMPAIGNS and plan.template is not None:
        raise ConfigError(
            f"this template cannot become a Mobizon template campaign (a literal brace in its "
            f"text would read as a placeholder of Mobizon's), and its {bulk_texts:,} different "
            f"texts would each need a campaign: send this list with --mode message"
        )
    if bulk_texts > MAX_TEXT_CAMPAIGNS:
        raise ConfigError(
            f"campaign mode sends one campaign per distinct text, and these rows have "
            f"{bulk_texts:,} different texts (more than {MAX_TEXT_CAMPAIGNS}): give the texts "
            f"as --template 'TEXT with {{column}}' so one template campaign carries them, or "
            f"send this list with --mode message"
        )
    drafts = []
    for (kind, text), members in groups.items():
        for round_number, part in enumerate(_rounds(members), start=1):
            digest = hashlib.sha256(f"{kind}\0{text}\0{round_number}".encode()).hexdigest()
            drafts.append(CampaignDraft(digest[:16], kind, text, tuple(part)))
    return drafts


def _rounds(members: list[Member]) -> list[list[Member]]:
    """Split members so that no number is twice in one campaign (n-th occurrence → n-th)."""
    rounds: list[list[Member]] = []
    seen: dict[str, int] = defaultdict(int)
    for member in members:
        number = seen[member.recipient]
        seen[member.recipient] += 1
        if number == len(rounds):
            rounds.append([])
        rounds[number].append(member)
    return rounds


def _template_columns(plan: Plan) -> dict[str, str]:
    assert plan.template is not None
    columns = plan.table.columns
    return {
        field: find_column(columns, field, what="the template placeholder")
        for field in plan.template.fields
    }


def _cell(plan: Plan, column: str, index: object) -> str:
    """A template value as the plan used it (Windows line ends folded, outer spaces gone)."""
    value = plan.table.frame.at[index, column]
    return str(value).replace("\r\n", "\n").strip()
