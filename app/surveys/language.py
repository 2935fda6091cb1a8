"""The language a participant's survey pages and emails are in (SPEC 10).

It is the participant's own choice (`participants.language`, set when they signed up
or on a survey's first page), if it is still one of the study's languages, else the
study's first language. Surveys sit below participants in the package layers, so the
one column is read and written here through a table clause of its own rather than the
participants' model.
"""

from __future__ import annotations

from sqlalchemy import column, select, table, update
from sqlalchemy.orm import Session

from app.studies.definition import StudyDefinition

_participants = table("participants", column("id"), column("language"))


def language_of(session: Session, *, participant_id: int, definition: StudyDefinition) -> str:
    """The language to show this participant (a language of the study)."""
    chosen = session.scalar(
        select(_participants.c.language).where(_participants.c.id == participant_id)
    )
    return chosen if chosen in definition.languages else definition.languages[0]


def choose_language(session: Session, *, participant_id: int, language: str) -> None:
    """Keep the participant's choice of language (a study language: checked by the
    caller). Not audited: a choice of how pages read is not research data."""
    session.execute(
        update(_participants).where(_participants.c.id == participant_id).values(language=language)
    )
