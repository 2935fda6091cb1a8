"""The public sign-up through HTTP on SQLite and PostgreSQL: screening, contact, the
consent steps (quiz failed once), signing, enrollment with the baseline link; the
ineligible row; held sign-ups (duplicate, honeypot, too fast, busy); review; the
verification gate on randomization; attacker inputs."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.config import Settings
from app.consent.documents import document_sha256
from app.consent.models import Consent
from app.consent.service import reconsent_link
from app.db.base import utcnow
from app.db.engine import Database
from app.db.sealed import keyed_hash
from app.db.server_key import keys_of, sealing_keys_of
from app.demo import demo_definition, load_demo
from app.join import checks
from app.join.models import Applicant
from app.keys import Use
from app.main import create_app
from app.outbox.models import OutboxMessage
from app.participants.models import Contact, Participant
from app.scheduler.join_letters import accepted_letter
from app.studies import service as studies
from app.studies.definition import ConsentDocument, StudyDefinition
from tests.console.conftest import Browser, link_for
from tests.helpers import bearer, enrollment

SLUG = "join-test"
BUSY = "join-busy"  # one sign-up an hour from an address: the burst test's study
CLOSED = "join-closed"  # a study that does not open the link
CONSENT = {
    "documents": [
        {
            "version": "1.0",
            "texts": {
                "en": {
                    "title": "About the study",
                    "sections": [
                        {"heading": "What happens", "body": "You answer **surveys**."},
                        {"heading": "Your choice", "body": "You can leave at any time."},
                    ],
                    "quiz": [
                        {
                            "code": "leave",
                            "question": "Can you leave at any time?",
                            "options": [
                                {"value": "yes", "label": "Yes"},
                                {"value": "no", "label": "No"},
                            ],
                            "answer": "yes",
                            "feedback": "You can leave at any time, without a reason.",
                        }
                    ],
                }
            },
        }
    ]
}
# What the sign forms carry: the SHA-256 of the document shown (1.0, then the amended 2.0).
DOC = document_sha256(ConsentDocument.model_validate(CONSENT["documents"][0]), "en")
DOC2 = document_sha256(
    ConsentDocument.model_validate(CONSENT["documents"][0] | {"version": "2.0"}), "en"
)
ELIGIBLE = {"c-age_18_plus": "yes", "c-smi_diagnosis": "yes", "c-internet_access": "yes"}


@pytest.fixture(scope="module")
def app_parts(module_settings: Settings) -> Iterator[tuple[TestClient, Database, str]]:
    db = Database(module_settings)
    with db.begin() as session:
        token = load_demo(session).token
        document: dict[str, Any] = demo_definition() | {
            "slug": SLUG,
            "languages": ["en"],  # the demo's Spanish translations do not cover CONSENT
            "translations": {},
            "consent_versions": ["1.0"],
            "consent": CONSENT,
            "join": {
                "enabled": True,
                "sites": ["PHL"],
                "ineligible_text": "Call 988.",
                "per_address_per_hour": 20,
            },
        }
        busy = document | {"slug": BUSY, "join": document["join"] | {"per_address_per_hour": 1}}
        closed = document | {"slug": CLOSED, "join": {"enabled": False}}
        for made in (document, busy, closed):
            study = studies.create_study(
                session, definition=StudyDefinition.model_validate(made), actor=None
            )
            studies.add_site(session, study=study, code="PHL", name="Philadelphia", actor=None)
            studies.add_site(session, study=study, code="PIT", name="Pittsburgh", actor=None)
            studies.activate_study(session, study=study, actor=None)
    with TestClient(create_app(module_settings), client=("203.0.113.9", 5000)) as client:
        yield client, db, token
    db.dispose()


def _stamp(db: Database, *, seconds_ago: int = 60, slug: str = SLUG) -> str:
    with db.session(write=False) as session:
        key = keys_of(session).derived(Use.survey_link)
    return checks.stamp(key, slug=slug, shown_at=utcnow() - timedelta(seconds=seconds_ago))


def _screen(client: TestClient, db: Database, slug: str = SLUG, **fields: str) -> Any:
    body = {**ELIGIBLE, "s-diagnosis": "bipolar", "shown": _stamp(db, slug=slug), "website": ""}
    return client.post(f"/join/{slug}", data=body | fields, follow_redirects=False)


def _count(db: Database, model: Any, *where: Any) -> int:
    with db.session(write=False) as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def test_the_screening_page_asks_each_question_with_its_honeypot_and_stamp(app_parts):  # type: ignore[no-untyped-def]
    client, _db, _token = app_parts
    shown = client.get(f"/join/{SLUG}")
    assert shown.status_code == 200
    assert shown.headers["cache-control"] == "no-store"
    html = shown.text
    assert 'name="c-age_18_plus"' in html and 'name="s-diagnosis"' in html
    # Each criterion in the participant's words (its `question`), not the staff wording.
    assert "Are you 18 or older?" in html and "Participant is 18 or older" not in html
    # The demo's own link, in Spanish: its questions' translations.
    spanish = client.get("/join/peer-support?lang=es").text
    assert "¿Tiene 18 años o más?" in spanish and "El participante tiene" not in spanish
    assert 'name="website"' in html and 'tabindex="-1"' in html and 'name="shown"' in html
    assert "Pittsburgh" not in html  # the join link takes PHL only
    assert client.get(f"/join/{SLUG}/PIT").status_code == 404
    assert client.get(f"/join/{CLOSED}").status_code == 404  # not opened


def test_an_eligible_person_consents_after_failing_the_quiz_once_and_starts_baseline(app_parts):  # type: ignore[no-untyped-def]
    client, db, admin = app_parts
    screened = _screen(client, db)
    assert screened.status_code == 303, screened.text
    contact_url = screened.headers["location"]
    token = re.fullmatch(r"/join/a/([\w-]+)/contact", contact_url)[1]  # type: ignore[index]
    base = f"/join/a/{token}"
    wrong = client.post(contact_url, data={"name": "", "email": "nope"})
    assert wrong.status_code == 422 and "There is a problem" in wrong.text
    assert "<title>Error: " in wrong.text
    sent = client.post(
        contact_url,
        data={"name": "Ana María López", "email": "ana@example.org", "phone": "215 555 0100"},
        follow_redirects=False,
    )
    assert sent.status_code == 303 and sent.headers["location"] == f"{base}/consent/1"
    first = client.get(f"{base}/consent/1")
    assert first.status_code == 200 and "<strong>surveys</strong>" in first.text
    assert first.headers["referrer-policy"] == "no-referrer"
    assert f"{base}/quiz" in client.get(f"{base}/consent/2").text
    failed = client.post(f"{base}/quiz", data={"q-leave": "no"})
    assert failed.status_code == 200 and "without a reason" in failed.text
    passed = client.post(f"{base}/quiz", data={"q-leave": "yes"})
    assert "Check your answers" in passed.text and "ana@example.org" in passed.text
    shown = client.post(f"{base}/sign", data={"step": "show", "document": DOC, "q-leave": "yes"})
    assert shown.status_code == 200 and 'name="typed_name"' in shown.text
    unsigned = client.post(
        f"{base}/sign",
        data={"step": "sign", "document": DOC, "q-leave": "yes", "typed_name": "Someone Else"},
    )
    assert unsigned.status_code == 422 and unsigned.text.count('class="error-message"') == 2
    signed = client.post(
        f"{base}/sign",
        data={
            "step": "sign",
            "document": DOC,
            "q-leave": "yes",
            "typed_name": "ana maría  LÓPEZ",
            "agree": "yes",
        },
        follow_redirects=False,
    )
    assert signed.headers["location"] == f"{base}/done", signed.text
    done = client.get(f"{base}/done")
    assert "Start your first survey" in done.text
    baseline = re.search(r'href="(/s/[\w-]+)"', done.text)[1]  # type: ignore[index]
    assert client.get(baseline).status_code == 200
    with db.session(write=False) as session:
        applicant = session.scalars(
            select(Applicant).where(Applicant.email_index.is_not(None))
        ).first()
        assert applicant is not None
        assert (applicant.state, applicant.quiz_attempts, applicant.needs_call) == (
            "enrolled",
            2,
            False,
        )
        participant = session.get_one(Participant, applicant.participant_id)
        assert (participant.source, participant.created_by, participant.needs_verification) == (
            "join",
            None,
            True,
        )
        code = participant.code
    # Randomization waits for the coordinator's check of the self-reported diagnosis.
    blocked = client.post(
        f"/api/v1/studies/{SLUG}/participants/{code}/randomize", headers=bearer(admin)
    )
    assert blocked.status_code == 409 and "not-verified" in blocked.text
    verified = client.post(
        f"/api/v1/studies/{SLUG}/participants/{code}/verify", headers=bearer(admin)
    )
    assert verified.status_code == 200, verified.text
    again = client.post(f"/api/v1/studies/{SLUG}/participants/{code}/verify", headers=bearer(admin))
    assert again.status_code == 409


def test_an_ineligible_person_is_counted_and_never_told_the_reason(app_parts):  # type: ignore[no-untyped-def]
    client, db, _ = app_parts
    before = _count(db, Participant, Participant.status == "ineligible")
    # From an address of its own: the others' eligible screenings are not re-screenings.
    elsewhere = TestClient(client.app, client=("198.51.100.20", 5000))
    page = _screen(elsewhere, db, **{"c-age_18_plus": "no"})
    assert page.status_code == 200 and "Call <a" in page.text
    assert "18" not in page.text
    assert _count(db, Participant, Participant.status == "ineligible") == before + 1


def test_bots_and_repeat_sign_ups_are_held_without_being_told(app_parts):  # type: ignore[no-untyped-def]
    client, db, admin = app_parts
    before = _count(db, Participant)
    honeypot = _screen(client, db, website="http://spam.example")
    too_fast = _screen(client, db, shown=_stamp(db, seconds_ago=1))
    forged = _screen(client, db, shown="123.abc")
    ineligible_bot = _screen(client, db, website="x", **{"c-age_18_plus": "no"})
    for response in (honeypot, too_fast, forged):
        assert response.status_code == 303  # on to contact details, like anyone
    assert ineligible_bot.status_code == 200
    assert _count(db, Participant) == before  # a bot's screening is not assessed
    holds = {}
    with db.session(write=False) as session:
        for applicant in session.scalars(
            select(Applicant).where(Applicant.hold_reasons.is_not(None))
        ):
            holds[applicant.id] = applicant.hold_reasons
    assert ["honeypot"] in holds.values() and ["too_fast"] in holds.values()
    # A repeat email is held after signing; the person sees the same neutral page.
    first = _screen(client, db).headers["location"]
    client.post(first, data={"name": "Sam Roe", "email": "repeat@example.org"})
    contact = _screen(client, db).headers["location"]
    base = contact.rsplit("/", 1)[0]
    client.post(contact, data={"name": "Pat Doe", "email": "REPEAT@example.org "})
    client.post(
        f"{base}/sign",
        data={
            "step": "sign",
            "document": DOC,
            "q-leave": "yes",
            "typed_name": "Pat Doe",
            "agree": "yes",
        },
    )
    done = client.get(f"{base}/done")
    assert "will be in touch" in done.text and "Start your first survey" not in done.text
    listed = client.get(f"/api/v1/studies/{SLUG}/applicants", headers=bearer(admin)).json()
    held = next(a for a in listed["items"] if a["name"] == "Pat Doe")
    assert held["hold_reasons"] == ["duplicate_email"] and held["state"] == "held"
    short = client.post(
        f"/api/v1/studies/{SLUG}/applicants/{held['id']}/reject",
        json={"reason": "no"},
        headers=bearer(admin),
    )
    assert short.status_code == 422
    accepted = client.post(
        f"/api/v1/studies/{SLUG}/applicants/{held['id']}/accept", headers=bearer(admin)
    )
    assert accepted.status_code == 200 and accepted.json()["state"] == "enrolled", accepted.text
    twice = client.post(
        f"/api/v1/studies/{SLUG}/applicants/{held['id']}/accept", headers=bearer(admin)
    )
    assert twice.status_code == 409
    pit = client.post(
        "/api/v1/users",
        json={
            "email": "pit-coordinator@example.org",
            "name": "Pit",
            "role": "coordinator",
            "sites": [{"study": SLUG, "site": "PIT"}],
        },
        headers=bearer(admin),
    ).json()["token"]
    other = next(a for a in listed["items"] if a["id"] != held["id"])
    hidden = client.post(
        f"/api/v1/studies/{SLUG}/applicants/{other['id']}/reject",
        json={"reason": "Looks like a bot"},
        headers=bearer(pit),
    )
    assert hidden.status_code == 404
    rejected = client.post(
        f"/api/v1/studies/{SLUG}/applicants/{other['id']}/reject",
        json={"reason": "Looks like a bot"},
        headers=bearer(admin),
    )
    assert rejected.status_code == 200 and rejected.json()["state"] == "rejected"


def test_a_sign_up_repeating_an_enrolled_phone_in_another_form_is_held(app_parts):  # type: ignore[no-untyped-def]
    """Participants' numbers are kept (and hashed) in E.164 now, and were kept as typed
    before: a sign-up typing either person's number in any form is held."""
    client, db, admin = app_parts
    contact = {"name": "Lee Poe", "email": "lee@example.org", "phone": "215-555-0131"}
    enrolled = client.post(
        f"/api/v1/studies/{SLUG}/participants",
        json=enrollment(contact=contact),
        headers=bearer(admin),
    )
    assert enrolled.status_code == 201, enrolled.text
    older = client.post(
        f"/api/v1/studies/{SLUG}/participants",
        json=enrollment(contact=contact | {"email": "old@example.org", "phone": "215-555-0132"}),
        headers=bearer(admin),
    ).json()["code"]
    with db.begin() as session:  # as enrolled before this release: hashed as typed
        row = session.scalars(
            select(Contact).join(Participant).where(Participant.code == older)
        ).one()
        row.phone = "215-555-0132"
        row.phone_index = keyed_hash(sealing_keys_of(session), "phone", "215-555-0132")
    for n, typed in enumerate(["215-555-0131", "+1 (215) 555-0132"]):
        step = _screen(client, db).headers["location"]
        email = f"again{n}@example.org"
        client.post(step, data={"name": "Lee Poe", "email": email, "phone": typed})
        with db.session(write=False) as session:
            index = keyed_hash(sealing_keys_of(session), "email", email)
            held = session.scalars(select(Applicant).where(Applicant.email_index == index)).all()
        assert [a.hold_reasons for a in held] == [["duplicate_phone"]], typed


def test_attacker_inputs_get_a_page_and_store_nothing(app_parts):  # type: ignore[no-untyped-def]
    client, db, _ = app_parts
    before = _count(db, Applicant)
    for body in (
        {"c-age_18_plus": "maybe"},
        {"s-diagnosis": "\u202e" * 500},
        {"s-diagnosis": "bipolar\x00"},
    ):
        response = _screen(client, db, **body)
        assert response.status_code == 422 and "There is a problem" in response.text
    huge = client.post(f"/join/{SLUG}", data={"x": "a" * 200_000})
    assert huge.status_code == 413
    assert client.get("/join/a/" + "x" * 43).status_code == 404
    assert client.get("/join/a/" + "x" * 5000).status_code == 404
    assert _count(db, Applicant) == before
    contact = _screen(client, db).headers["location"]
    for body in (
        {"name": "x" * 5000, "email": "a@b.cc"},
        {"name": "Ana", "email": "a@b..com"},
        {"name": "Ana", "email": "a@b.cc", "phone": "call me"},
        {"name": ["Ana", "Bob"], "email": "x@localhost.test"},
    ):
        refused = client.post(contact, data=body)
        assert refused.status_code == 422 and "There is a problem" in refused.text
    assert _count(db, Applicant, Applicant.name.is_not(None), Applicant.email_index.is_(None)) == 0
    quiz = contact.rsplit("/", 1)[0] + "/quiz"
    assert (
        client.post(quiz, data={"q-leave": "yes"}, follow_redirects=False)
        .headers["location"]
        .endswith("/contact")
    )  # no consent step before contact details


def test_a_burst_from_one_address_is_held_then_turned_away(app_parts):  # type: ignore[no-untyped-def]
    client, db, _ = app_parts
    # The study takes one sign-up an hour from an address; ten times that is refused.
    answers = [_screen(client, db, BUSY).status_code for _ in range(11)]
    assert answers == [303] * 10 + [429]
    last = _screen(client, db, BUSY)
    assert last.status_code == 429 and "try again" in last.text
    assert last.headers["retry-after"] == "600"
    with db.session(write=False) as session:
        newest = session.scalars(select(Applicant).order_by(Applicant.id.desc())).first()
        assert newest is not None and newest.hold_reasons == ["busy_address"]
    assert _count(db, Applicant, Applicant.address_hash == newest.address_hash) >= 10


def test_a_coordinator_accepts_a_held_sign_up_and_verifies_the_diagnosis_in_the_console(  # type: ignore[no-untyped-def]
    app_parts,
):
    client, db, admin = app_parts
    contact = _screen(client, db, website="bot?").headers["location"]
    base = contact.rsplit("/", 1)[0]
    client.post(contact, data={"name": "Lee Held", "email": "lee@example.org"})
    client.post(
        f"{base}/sign",
        data={
            "step": "sign",
            "document": DOC,
            "q-leave": "yes",
            "typed_name": "Lee Held",
            "agree": "yes",
        },
    )
    email = "join-console@example.org"
    client.post(
        "/api/v1/users",
        json={
            "email": email,
            "name": "C",
            "role": "coordinator",
            "sites": [{"study": SLUG, "site": "PHL"}],
        },
        headers=bearer(admin),
    )
    browser = Browser(client, email)
    assert browser.open_link(link_for(db, email)).status_code == 303
    queue = browser.get(f"/console/studies/{SLUG}/applicants")
    assert queue.status_code == 200 and "Lee Held" in queue.text
    assert "Filled in a field people never see" in queue.text
    listed = client.get(f"/api/v1/studies/{SLUG}/applicants", headers=bearer(admin)).json()
    held = next(a for a in listed["items"] if a["name"] == "Lee Held")
    path = f"/console/studies/{SLUG}/applicants/{held['id']}"
    refused = browser.post(
        f"{path}/reject", {"reason": "x"}, csrf_from=f"/console/studies/{SLUG}/applicants"
    )
    assert refused.status_code == 422 and "Error: " in refused.text
    accepted = browser.post(f"{path}/accept", csrf_from=f"/console/studies/{SLUG}/applicants")
    assert accepted.status_code == 303
    with db.session(write=False) as session:
        letter = accepted_letter(session, client.app.state.settings, held["id"])
    assert not isinstance(letter, str) and letter.to == ["lee@example.org"]
    assert "http://testserver/s/" in letter.body and SLUG not in letter.subject
    code = client.get(f"/api/v1/studies/{SLUG}/applicants?state=enrolled", headers=bearer(admin))
    participant = next(a["participant"] for a in code.json()["items"] if a["id"] == held["id"])
    record = f"/console/studies/{SLUG}/participants/{participant}"
    assert "Verify diagnosis" in browser.get(record).text
    verified = browser.post(f"{record}/verify", csrf_from=record)
    assert verified.status_code == 303
    assert "Verify diagnosis" not in browser.get(record).text


def test_a_participant_re_consents_to_a_new_version_through_their_link(app_parts):  # type: ignore[no-untyped-def]
    client, db, admin = app_parts
    with db.session(write=False) as session:
        participant = session.scalars(
            select(Participant).where(
                Participant.source == "join", Participant.status != "ineligible"
            )
        ).first()
        assert participant is not None
        old = reconsent_link(session, "", participant.id, "1.0")
    # A sign-up held for review signs 1.0 before the amendment ...
    contact = _screen(client, db, website="late?").headers["location"]
    base = contact.rsplit("/", 1)[0]
    client.post(contact, data={"name": "Kim Late", "email": "kim.late@example.org"})
    sign = {"step": "sign", "document": DOC, "q-leave": "yes", "agree": "yes"}
    client.post(f"{base}/sign", data=sign | {"typed_name": "Kim Late"})
    version = CONSENT["documents"][0] | {"version": "2.0"}
    amended = client.post(
        f"/api/v1/studies/{SLUG}/consent-versions", json=version, headers=bearer(admin)
    )
    assert amended.status_code == 201, amended.text
    # ... and, accepted after it, is invited to 2.0 like everyone taking part was.
    listed = client.get(f"/api/v1/studies/{SLUG}/applicants", headers=bearer(admin)).json()
    late = next(a for a in listed["items"] if a["name"] == "Kim Late")
    accepted = client.post(
        f"/api/v1/studies/{SLUG}/applicants/{late['id']}/accept", headers=bearer(admin)
    )
    assert accepted.status_code == 200, accepted.text
    with db.session(write=False) as session:
        late_id = session.scalar(select(Applicant.participant_id).where(Applicant.id == late["id"]))
        keys = session.scalars(select(OutboxMessage.dedupe_key)).all()
    assert f"reconsent:{late_id}:2.0" in keys
    with db.session(write=False) as session:
        link = reconsent_link(session, "", participant.id, "2.0")
    assert client.get(old).status_code == 404  # a replaced version's link leads nowhere
    assert client.get(link + "x").status_code == 404
    first = client.get(link, follow_redirects=False)
    assert first.headers["location"] == f"{link}/consent/1"
    page = client.get(f"{link}/consent/1")
    assert page.status_code == 200 and page.headers["referrer-policy"] == "no-referrer"
    failed = client.post(f"{link}/quiz", data={"q-leave": "no"})
    assert "without a reason" in failed.text and 'name="attempts" value="1"' in failed.text
    passed = client.post(f"{link}/quiz", data={"q-leave": "yes", "attempts": "1"})
    assert "Check your answers" in passed.text and f"{link}/contact" not in passed.text
    wrong = client.post(
        f"{link}/sign",
        data={
            "step": "sign",
            "document": DOC2,
            "q-leave": "yes",
            "typed_name": "Nobody",
            "agree": "yes",
        },
    )
    assert wrong.status_code == 422
    with db.session(write=False) as session:
        name = session.get_one(Contact, participant.id).name
    signed = client.post(
        f"{link}/sign",
        data={
            "step": "sign",
            "document": DOC2,
            "q-leave": "yes",
            "attempts": "2",
            "typed_name": name,
            "agree": "yes",
        },
        follow_redirects=False,
    )
    assert signed.headers["location"] == f"{link}/done", signed.text
    assert "as before" in client.get(f"{link}/done").text
    with db.session(write=False) as session:
        again = session.get_one(Participant, participant.id)
        assert again.consent_version == "2.0"
        signed_versions = session.scalars(
            select(Consent.version).where(Consent.participant_id == participant.id)
        ).all()
    assert sorted(signed_versions) == ["1.0", "2.0"]
