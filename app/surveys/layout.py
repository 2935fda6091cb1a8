"""How a survey's questions are laid out for a participant (pure): the hints under a
question, the section headings, and where the study's crisis text sits.

The crisis text goes beside the questions an alert rule watches (PAGES.md: help for a
crisis sits next to the questions that may need it, not only at the end). A rule
watches an item directly, or every item of the score it names; the text is shown after
each item a rule names, and after the last item of a watched score on the page when no
item on it is named directly: once, rather than beside each of a score's questions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from app.i18n.catalogs import gettext
from app.studies.definition import Instrument, Item, ItemType, StudyDefinition


@dataclass(frozen=True)
class Watched:
    """The items safety alert rules look at: named directly, or through a score."""

    direct: frozenset[str]
    through_scores: frozenset[str]

    @property
    def every(self) -> frozenset[str]:
        return self.direct | self.through_scores


def watched_items(definition: StudyDefinition) -> Watched:
    """The items the study's alert rules watch."""
    scores = {s.code: s for i in definition.instruments for s in i.scores}
    direct = {rule.item for rule in definition.alerts if rule.item is not None}
    through = {
        item
        for rule in definition.alerts
        if rule.score is not None and rule.score in scores
        for item in scores[rule.score].items
    }
    return Watched(direct=frozenset(direct), through_scores=frozenset(through))


def crisis_after(items: Sequence[Item], watched: Watched) -> frozenset[str]:
    """The items of a page after which the crisis text is shown."""
    codes = [item.code for item in items]
    direct = [code for code in codes if code in watched.direct]
    if direct:
        return frozenset(direct)
    scored = [code for code in codes if code in watched.through_scores]
    return frozenset(scored[-1:])


def asks_about_safety(instruments: Sequence[Instrument], watched: Watched) -> bool:
    """Whether a survey of these instruments has a question an alert rule watches."""
    return any(item.code in watched.every for i in instruments for item in i.items)


def hints(item: Item) -> list[str]:
    """What is shown under a question: its own instructions, then how to type a number."""
    shown = [item.instructions] if item.instructions else []
    if item.type in (ItemType.integer, ItemType.number):
        whole = item.type is ItemType.integer
        low = f"{item.min:g}" if item.min is not None else None
        high = f"{item.max:g}" if item.max is not None else None
        if low is not None and high is not None:
            shown.append(
                gettext("Enter a whole number from %(min)s to %(max)s") % {"min": low, "max": high}
                if whole
                else gettext("Enter a number from %(min)s to %(max)s") % {"min": low, "max": high}
            )
        elif low is not None:
            shown.append(
                gettext("Enter a whole number, %(min)s or more") % {"min": low}
                if whole
                else gettext("Enter a number, %(min)s or more") % {"min": low}
            )
        elif high is not None:
            shown.append(
                gettext("Enter a whole number, %(max)s or less") % {"max": high}
                if whole
                else gettext("Enter a number, %(max)s or less") % {"max": high}
            )
    return shown


def any_optional(items: Sequence[Item]) -> bool:
    """Whether the page has a question that may be left out (only then is "(optional)"
    explained at its top)."""
    return any(not item.required for item in items)
