"""The public sign-up as an attacker meets it, on SQLite and PostgreSQL: tokens kept out
of request logs, IPv6 counted by its /64, no consent copy for a program's sign-up until
a coordinator accepts it, a re-screening after an ineligible one held, a person fixing
a form error keeping their stamp, signatures bound to the document shown, and
re-consent links that end with their version or the person's taking part."""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.config import Settings
from app.consent.models import Consent
from app.consent.service import copy_key, reconsent_link
from app.db.engine import Database
from app.demo import demo_definition, load_demo
from app.join.models import Applicant
from app.main import create_app
from app.outbox.models import OutboxMessage
from app.participants.models import Participant
from app.studies import service as studies
from app.studies.definition import StudyDefinition
from tests.helpers import bearer
from tests.join.test_flow import CONSENT, DOC, DOC2, ELIGIBLE, _stamp

SLUG = "join-harden"
ONE = "join-harden-one"  # one sign-up an hour from an address
HOME = ("203.0.113.50", 5000)
_PHONES = itertools.count(4100)


@pytest.fixture(scope="module")
def app_parts(module_settings: Settings) -> Iterator[tuple[TestClient, Database, str]]:
    db = Database(module_settings)
    with db.begin() as session:
        token = load_demo(session).token
        document: dict[str, Any] = demo_definition() | {
            "slug": SLUG,
            "languages": ["en"],
            "translations": {},
            "consent_versions": ["1.0"],
            "consent": CONSENT,
            "join": {"enabled": True, "sites": ["PHL"], "per_address_per_hour": 20},
        }
        one = document | {"slug": ONE, "join": document["join"] | {"per_address_per_hour": 1}}
        for made in (document, one):
            study = studies.create_study(
                session, definition=StudyDefinition.model_validate(made), actor=None
            )
            studies.add_site(session, study=study, code="PHL", name="Philadelphia", actor=None)
            studies.activate_study(session, study=study, actor=None)
    with TestClient(create_app(module_settings), client=HOME) as client:
        yield client, db, token
    db.dispose()


def _from(client: TestClient, host: str) -> TestClient:
    """The same application, seen from another network address."""
    return TestClient(client.app, client=(host, 5000))


def _screen(client: TestClient, db: Database, slug: str = SLUG, **fields: str) -> Any:
    body = {**ELIGIBLE, "s-diagnosis": "bipolar", "shown": _stamp(db, slug=slug), "website": ""}
    return client.post(f"/join/{slug}", data=body | fields, follow_redirects=False)


def _applicant_at_consent(client: TestClient, db: Database, name: str, **fields: str) -> str:
    """A sign-up with contact details given: the base of its steps."""
    contact = _screen(client, db, **fields).headers["location"]
    email = name.lower().replace(" ", ".") + "@example.org"
    phone = f"215 555 {next(_PHONES)}"  # each their own: a repeat would be held
    client.post(contact, data={"name": name, "email": email, "phone": phone})
    return str(contact.removesuffix("/contact"))


def _sign(client: TestClient, base: str, name: str, document: str = DOC) -> Any:
    form = {"step": "sign", "document": document, "q-leave": "yes"}
    return client.post(
        f"{base}/sign", data=form | {"typed_name": name, "agree": "yes"}, follow_redirects=False
    )


def _newest(db: Database) -> Applicant:
    with db.session(write=False) as session:
        found = session.scalars(select(Applicant).order_by(Applicant.id.desc())).first()
        assert found is not None
        return found


def _copy_queued(db: Database, applicant_id: int) -> bool:
    with db.session(write=False) as session:
        consent = session.scalars(select(Consent).where(Consent.applicant_id == applicant_id)).one()
        key = copy_key(consent.id)
        return (
            session.scalars(select(OutboxMessage).where(OutboxMessage.dedupe_key == key)).first()
            is not None
        )


def test_personal_links_tokens_never_reach_the_request_log(app_parts, caplog):  # type: ignore[no-untyped-def]
    client, db, _ = app_parts
    base = _applicant_at_consent(client, db, "Log Reader")
    token = base.rsplit("/", 1)[1]
    invitation = "/consent/1." + "A" * 43
    with caplog.at_level(logging.INFO, logger="trialdesk.http"):
        caplog.clear()
        for path in (f"{base}/contact", f"{base}/no-such-step", f"{invitation}/consent/1"):
            client.get(path)
    paths = [r.path for r in caplog.records if r.name == "trialdesk.http"]  # type: ignore[attr-defined]
    assert len(paths) == 3 and all("…" in p for p in paths), paths
    assert not any(token in p or "A" * 43 in p for p in paths)


def test_addresses_of_one_ipv6_64_are_counted_together(app_parts):  # type: ignore[no-untyped-def]
    client, db, _ = app_parts
    _screen(_from(client, "2001:db8:77:1::1"), db, ONE)
    assert _newest(db).hold_reasons is None
    _screen(_from(client, "2001:db8:77:1:ffff:abcd::9"), db, ONE)  # the same /64
    assert _newest(db).hold_reasons == ["busy_address"]
    _screen(_from(client, "2001:db8:77:2::1"), db, ONE)  # the next /64: someone else
    assert _newest(db).hold_reasons is None


def test_a_person_fixing_a_form_error_keeps_the_stamp_of_the_page_first_shown(app_parts):  # type: ignore[no-untyped-def]
    client, db, _ = app_parts
    first = _stamp(db, seconds_ago=30, slug=SLUG)
    again = _screen(client, db, shown=first, **{"c-age_18_plus": ""})
    assert again.status_code == 422 and f'value="{first}"' in again.text
    forged = _screen(client, db, shown="1.forged", **{"c-age_18_plus": ""})
    found = re.search(r'name="shown" value="([^"]+)"', forged.text)
    assert found and found[1] != "1.forged"  # a bad stamp is replaced by one of now
    fixed = _screen(client, db, shown=first)  # sent at once: the 30 seconds count
    assert fixed.status_code == 303 and _newest(db).hold_reasons is None


def test_an_eligible_screening_right_after_an_ineligible_one_is_held(app_parts):  # type: ignore[no-untyped-def]
    client, db, _ = app_parts
    retrying = _from(client, "192.0.2.77")
    assert _screen(retrying, db, **{"c-age_18_plus": "no"}).status_code == 200
    assert _screen(retrying, db).status_code == 303  # told nothing
    assert _newest(db).hold_reasons == ["rescreened"]
    _screen(_from(client, "192.0.2.78"), db)
    assert _newest(db).hold_reasons is None
    from app.console.applicants import HOLD_WORDS

    assert "network address" in HOLD_WORDS["rescreened"]


def test_a_programs_sign_up_gets_its_consent_copy_only_once_accepted(app_parts):  # type: ignore[no-untyped-def]
    client, db, admin = app_parts
    person = _applicant_at_consent(client, db, "Real Person")
    assert _sign(client, person, "Real Person").status_code == 303
    assert _copy_queued(db, _newest(db).id)
    bot = _applicant_at_consent(client, db, "Spam Target", website="http://spam.example")
    assert _sign(client, bot, "Spam Target").headers["location"] == f"{bot}/done"
    held = _newest(db)
    assert held.state == "held" and not _copy_queued(db, held.id)
    accepted = client.post(
        f"/api/v1/studies/{SLUG}/applicants/{held.id}/accept", headers=bearer(admin)
    )
    assert accepted.status_code == 200, accepted.text
    assert _copy_queued(db, held.id)


def test_an_amendment_between_quiz_and_signature_sends_the_person_back_to_read(app_parts):  # type: ignore[no-untyped-def]
    client, db, admin = app_parts
    base = _applicant_at_consent(client, db, "Slow Reader")
    section = client.get(f"{base}/consent/1").text
    assert f"/consent/2?document={DOC}" in section
    checked = client.post(f"{base}/quiz", data={"q-leave": "yes", "document": DOC})
    assert f'name="document" value="{DOC}"' in checked.text
    version = CONSENT["documents"][0] | {"version": "2.0"}
    amended = client.post(
        f"/api/v1/studies/{SLUG}/consent-versions", json=version, headers=bearer(admin)
    )
    assert amended.status_code == 201, amended.text
    stale = _sign(client, base, "Slow Reader", DOC)
    assert stale.headers["location"] == f"{base}/consent/1?updated=1"
    unbound = _sign(client, base, "Slow Reader", "")
    assert unbound.headers["location"] == f"{base}/consent/1?updated=1"
    with db.session(write=False) as session:
        applicant_id = session.scalars(select(Applicant.id).order_by(Applicant.id.desc())).first()
        assert (
            session.scalars(select(Consent).where(Consent.applicant_id == applicant_id)).first()
            is None
        )
    told = client.get(stale.headers["location"]).text
    assert "The information has been updated. Please read it again." in told
    assert f"?document={DOC2}" in told
    # An old page's link leads back to the start as well.
    assert client.get(f"{base}/consent/2?document={DOC}", follow_redirects=False).status_code == 303
    assert _sign(client, base, "Slow Reader", DOC2).headers["location"] == f"{base}/done"


def test_a_re_consent_link_ends_with_its_version_or_the_persons_taking_part(app_parts):  # type: ignore[no-untyped-def]
    client, db, admin = app_parts
    with db.session(write=False) as session:
        rows = session.execute(
            select(Participant, Applicant.name)
            .join(Applicant, Applicant.participant_id == Participant.id)
            .where(Participant.status == "enrolled")
            .order_by(Participant.id)
        ).all()
        joined = [p for p, name in rows if name in ("Real Person", "Spam Target")]
        assert len(joined) == 2
        staying, codes = joined[1], [p.code for p in joined]
        old = reconsent_link(session, "", staying.id, "1.0")
        links = [reconsent_link(session, "", p.id, "2.0") for p in joined]
    ended = client.get(old)
    assert ended.status_code == 404 and "This link is no longer valid" in ended.text
    made_up = client.get("/consent/1." + "A" * 43)
    assert "Page not found" in made_up.text
    check = client.get(f"{links[1]}/check")  # no: the quiz comes first
    assert check.status_code == 200 and "Can you leave" in check.text
    shown = client.post(f"{links[1]}/quiz", data={"q-leave": "yes", "document": DOC2})
    assert "Check your answers" in shown.text and "Spam Target" in shown.text
    assert "spam.target@example.org" not in shown.text and "215 555" not in shown.text
    withdrawn = client.post(
        f"/api/v1/studies/{SLUG}/participants/{codes[0]}/withdraw",
        json={"reason": "moved away"},
        headers=bearer(admin),
    )
    assert withdrawn.status_code == 200, withdrawn.text
    assert "This link is no longer valid" in client.get(links[0]).text
    assert client.get(links[1], follow_redirects=False).status_code == 303
    locked = client.post(f"/api/v1/studies/{SLUG}/lock", headers=bearer(admin))
    assert locked.status_code == 200, locked.text
    assert "This link is no longer valid" in client.get(links[1]).text
