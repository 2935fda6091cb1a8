"""Participant codes, issued by the system: per site, enrolled participants in one
series without gaps (`PS-PHL-0007`), screenings that do not enroll in another
(`PS-PHL-S0003`). Each number is taken under its counter row's lock, so two
screenings at once never get the same code."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.participants.models import ScreeningNumber
from app.studies.models import Site


def next_code(session: Session, *, prefix: str, site: Site, eligible: bool) -> str:
    """The code of a new screening: the site's next participant number when the person
    enrolls (`PS-PHL-0007`), else the next number of the site's screening series
    (`PS-PHL-S0003`), so that enrolled codes run without gaps."""
    if eligible:
        return f"{prefix}-{site.code}-{_next_participant_number(session, site=site):04d}"
    return f"{prefix}-{site.code}-S{_next_screening_number(session, site=site):04d}"


def _next_screening_number(session: Session, *, site: Site) -> int:
    """The site's next screening number; the upsert takes the counter row's lock."""
    insert: Any = (
        postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    )
    statement = insert(ScreeningNumber).values(site_id=site.id, last_number=1)
    return int(
        session.execute(
            statement.on_conflict_do_update(
                index_elements=["site_id"],
                set_={"last_number": ScreeningNumber.last_number + 1},
            ).returning(ScreeningNumber.last_number)
        ).scalar_one()
    )


def _next_participant_number(session: Session, *, site: Site) -> int:
    """The site's next participant number, counted under the site row's lock."""
    return session.execute(
        update(Site)
        .where(Site.id == site.id)
        .values(last_participant_number=Site.last_participant_number + 1)
        .returning(Site.last_participant_number)
        .execution_options(synchronize_session=False)
    ).scalar_one()
