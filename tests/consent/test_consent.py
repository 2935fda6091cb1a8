"""Consent records (SPEC 10): an electronic signature with its PDF, audit record and
emailed copy; staff reading, countersigning and recording consents; an amendment and
the re-consent it asks for. One database per backend for the module; each test makes
participants of its own."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pypdf import PdfReader
from sqlalchemy import select, text

from app.auth.principal import Principal, Role
from app.config import Settings
from app.consent import service as consents
from app.consent.documents import document_sha256
from app.consent.models import Consent
from app.db.engine import Database
from app.demo import demo_definition, load_demo
from app.errors import StudyLocked
from app.main import create_app
from app.outbox.models import MessageKind, MessageStatus, OutboxMessage
from app.participants.models import Participant
from app.scheduler.dispatch import dispatch
from app.scheduler.mail import SmtpTransport
from app.studies.lifecycle import StudyStatus
from app.studies.models import Study
from app.studies.service import definition_of
from tests.helpers import Api, bearer, enrollment, study_today
from tests.smtp import Inbox, body, smtp_server

SLUG = "consent-trial"
S = f"/api/v1/studies/{SLUG}"


def text_of(language: str, title: str, leave: str) -> dict[str, Any]:
    return {
        "title": title,
        "sections": [{"heading": "1", "body": f"{leave}\n\n- one\n- two"}],
        "quiz": [
            {
                "code": "leave",
                "question": "?",
                "options": [{"value": "yes", "label": "Yes"}, {"value": "no", "label": "No"}],
                "answer": "yes",
                "feedback": leave,
            }
        ],
    }


def document(version: str, *, languages: tuple[str, ...] = ("en", "es")) -> dict[str, Any]:
    texts = {
        "en": text_of("en", f"Taking part (v{version})", "You may leave at any time."),
        "es": text_of("es", f"Participación (v{version})", "Puede retirarse en cualquier momento."),
    }
    return {"version": version, "texts": {k: texts[k] for k in languages}}


def definition() -> dict[str, Any]:
    d = demo_definition()
    d["slug"] = SLUG
    d["languages"] = ["en", "es"]
    d["consent_versions"] = ["1.0"]
    d["consent"] = {"documents": [document("1.0")], "countersign": True, "fda_regulated": True}
    return d


@dataclass
class Env:
    api: Api
    db: Database
    mail_db: Database
    inbox: Inbox
    coordinator: str  # of PHL
    other: str  # coordinator of PIT

    @property
    def client(self) -> TestClient:
        client = self.api.client
        assert isinstance(client, TestClient)
        return client

    def enroll(self, email: str | None = None, **consent: Any) -> tuple[str, int]:
        contact = {"name": "Ana", "email": email or f"{uuid.uuid4().hex[:8]}@example.org"}
        body = enrollment(contact=contact, consent={"version": "1.0", **consent})
        made = self.client.post(f"{S}/participants", json=body, headers=bearer(self.coordinator))
        assert made.status_code == 201, made.text
        code = made.json()["code"]
        with self.db.begin() as session:
            pid = session.scalars(select(Participant.id).where(Participant.code == code)).one()
        return code, pid

    def sign(
        self, pid: int, *, version: str = "1.0", language: str = "es", email: str = "x@e.org"
    ) -> int:
        with self.db.begin() as session:
            study = session.scalars(select(Study).where(Study.slug == SLUG)).one()
            doc = definition_of(study).consent.document(version)
            assert doc is not None
            participant = session.get_one(Participant, pid)
            consent = consents.sign_electronic(
                session,
                study=study,
                site_id=participant.site_id,
                document=doc,
                language=language,
                typed_name="José Núñez",
                quiz_answers={"leave": "yes", "junk": "x" * 5000},
                quiz_attempts=1,
                participant_id=pid,
                email=email,
                now=datetime.now(UTC),
            )
            consents.note_current_version(session, participant=participant)
            return consent.id

    def get(self, url: str, token: str | None = None) -> Any:
        return self.client.get(url, headers=bearer(token or self.coordinator))

    def post(self, url: str, json: Any = None, token: str | None = None) -> Any:
        return self.client.post(url, json=json, headers=bearer(token or self.coordinator))


@pytest.fixture(scope="module")
def env(module_settings: Settings) -> Iterator[Env]:
    db = Database(module_settings)
    with db.begin() as session:
        loaded = load_demo(session)
    inbox = Inbox()
    with smtp_server(inbox) as port, TestClient(create_app(module_settings)) as client:
        api = Api(client, admin_token=loaded.token)
        admin = bearer(loaded.token)
        assert client.post("/api/v1/studies", json=definition(), headers=admin).status_code == 201
        for site in ("PHL", "PIT"):
            made = client.post(f"{S}/sites", json={"code": site, "name": site}, headers=admin)
            assert made.status_code == 201, made.text
        assert client.post(f"{S}/activate", headers=admin).status_code == 200
        mail_db = Database(
            module_settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": port})
        )
        yield Env(
            api,
            db,
            mail_db,
            inbox,
            coordinator=api.user("coordinator", "PHL", study=SLUG),
            other=api.user("coordinator", "PIT", study=SLUG),
        )
        mail_db.dispose()
    db.dispose()


def send_mail(env: Env) -> None:
    dispatch(env.mail_db, SmtpTransport(env.mail_db.settings), now=datetime.now(UTC))


def pdf_text(data: bytes) -> str:
    return "".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def test_an_electronic_signature_is_bound_to_the_hash_sealed_audited_and_emailed(env: Env) -> None:
    email = f"{uuid.uuid4().hex[:8]}@example.org"
    _, pid = env.enroll(email)
    consent_id = env.sign(pid, email=email)
    with env.db.begin() as session:
        consent = session.get_one(Consent, consent_id)
        doc = definition_of(session.get_one(Study, consent.study_id)).consent.document("1.0")
        assert doc is not None
        assert consent.document_sha256 == document_sha256(doc, "es")
        assert consent.signed_name == "José Núñez" and consent.method == "electronic"
        assert consent.quiz == {"answers": {"leave": "yes"}, "attempts": 1, "right": 1}
        # Signing leaves the PDF to the sender of the copy (it takes a few hundred ms).
        assert consent.pdf is None
        consent = consents.ensure_pdf(session, consent_id=consent_id)
        assert consent is not None and consent.pdf is not None and consent.pdf_sha256
        raw = session.execute(
            text("SELECT signed_name, pdf FROM consents WHERE id = :id"), {"id": consent_id}
        ).one()
        assert "Núñez".encode() not in bytes(raw[0]) and b"%PDF" not in bytes(raw[1])[:16]
        copy = consent.pdf
        sha = consent.document_sha256
    shown = pdf_text(copy)
    for expected in ("José Núñez", "1.0", sha, "21 CFR 11.50", "Participación (v1.0)"):
        assert expected in shown.replace("\n", " "), expected
    trail = env.get(f"{S}/audit?limit=1000", env.api.admin_token).json()["items"]
    [signed] = [
        r for r in trail if r["action"] == "consent.signed" and r["entity_id"] == str(consent_id)
    ]
    [made] = [
        r for r in trail if r["action"] == "consent.pdf_made" and r["entity_id"] == str(consent_id)
    ]
    assert "Núñez" not in str(signed) and "Núñez" not in str(made)
    assert sha in str(signed) and str(consents.hashlib.sha256(copy).hexdigest()) in str(made)
    send_mail(env)
    [message] = [m for m in env.inbox.to(email) if m.get_content_type() == "multipart/mixed"]
    # The study's name in Spanish too (a folded header may carry a doubled space).
    subject = " ".join(str(message["Subject"]).split())
    assert subject == "Su consentimiento firmado: Estudio de Apoyo entre Pares en Línea"
    [attachment] = list(message.iter_attachments())
    assert attachment.get_content_type() == "application/pdf"
    assert "José Núñez" in pdf_text(attachment.get_content())
    assert "1.0" in body(message)


def test_a_copy_without_an_address_is_recorded_as_failed(env: Env) -> None:
    _, pid = env.enroll()
    consent_id = env.sign(pid, email="")
    with env.db.begin() as session:
        [message] = session.scalars(
            select(OutboxMessage).where(
                OutboxMessage.kind == MessageKind.consent_copy,
                OutboxMessage.subject_id == consent_id,
            )
        ).all()
        assert message.status == MessageStatus.failed


def test_staff_list_read_and_countersign_consents_of_their_sites_only(env: Env) -> None:
    code, pid = env.enroll()
    consent_id = env.sign(pid)
    listed = env.get(f"{S}/participants/{code}/consents")
    assert listed.status_code == 200, listed.text
    in_person, signed = listed.json()
    assert in_person["method"] == "in_person" and in_person["state"] == "superseded"
    assert in_person["obtained_on"] and in_person["obtained_by"]
    assert signed["id"] == consent_id and signed["state"] == "signed" and signed["pdf"]
    got = env.get(f"{S}/participants/{code}/consents/{consent_id}.pdf")
    assert got.status_code == 200 and got.headers["cache-control"] == "no-store"
    assert "José Núñez" in pdf_text(got.content)
    assert env.get(f"{S}/participants/{code}/consents", env.other).status_code == 404
    assert (
        env.get(f"{S}/participants/{code}/consents/{consent_id}.pdf", env.other).status_code == 404
    )
    assert (
        env.post(
            f"{S}/participants/{code}/consents/{consent_id}/countersign", token=env.other
        ).status_code
        == 404
    )
    done = env.post(f"{S}/participants/{code}/consents/{consent_id}/countersign")
    assert done.status_code == 200, done.text
    assert done.json()["state"] == "countersigned" and done.json()["countersigned_by"]
    again = env.post(f"{S}/participants/{code}/consents/{consent_id}/countersign")
    assert again.status_code == 409
    trail = env.get(f"{S}/audit?limit=1000", env.api.admin_token).json()["items"]
    actions = {r["action"] for r in trail if r["entity_id"] == str(consent_id)}
    assert {"consent.signed", "consent.pdf_read", "consent.countersigned"} <= actions


def test_a_consent_taken_in_person_has_its_day_and_who_obtained_it(env: Env) -> None:
    code, _ = env.enroll(obtained_on="2026-01-02")
    [first] = env.get(f"{S}/participants/{code}/consents").json()
    assert first["obtained_on"] == "2026-01-02" and first["state"] == "signed"
    tomorrow = (study_today() + timedelta(days=1)).isoformat()
    late = env.post(
        f"{S}/participants/{code}/consents", {"version": "1.0", "obtained_on": tomorrow}
    )
    assert late.status_code == 422 and "obtained_on" in late.text
    unknown = env.post(
        f"{S}/participants/{code}/consents", {"version": "9", "obtained_on": "2026-01-03"}
    )
    assert unknown.status_code == 422 and "version" in unknown.text
    made = env.post(
        f"{S}/participants/{code}/consents",
        {"version": "1.0", "obtained_on": "2026-01-03", "note": "re-read with the coordinator"},
    )
    assert made.status_code == 201, made.text
    assert made.json()["obtained_on"] == "2026-01-03" and made.json()["method"] == "in_person"
    assert (
        env.post(
            f"{S}/participants/{code}/consents",
            {"version": "1.0", "obtained_on": "2026-01-03"},
            env.other,
        ).status_code
        == 404
    )


def test_an_amendment_adds_a_version_and_asks_everyone_taking_part_to_re_consent(env: Env) -> None:
    email = f"{uuid.uuid4().hex[:8]}@example.org"
    code, pid = env.enroll(email)
    admin = env.api.admin_token
    missing = env.post(f"{S}/consent-versions", document("2.0", languages=("en",)), admin)
    assert missing.status_code == 422 and "texts.es" in missing.text
    sneaky = env.post(f"{S}/consent-versions", {**document("2.0"), "randomization": {}}, admin)
    assert sneaky.status_code == 422
    assert env.post(f"{S}/consent-versions", document("1.0"), admin).status_code == 422
    assert env.post(f"{S}/consent-versions", document("2.0"), env.coordinator).status_code == 403
    with env.db.begin() as session:
        before = session.scalars(select(Study).where(Study.slug == SLUG)).one()
        revision, plan = before.revision, definition_of(before).randomization
    done = env.post(f"{S}/consent-versions", document("2.0"), admin)
    assert done.status_code == 201, done.text
    assert done.json()["revision"] == revision + 1 and done.json()["invited"] >= 1
    with env.db.begin() as session:
        study = session.scalars(select(Study).where(Study.slug == SLUG)).one()
        active = definition_of(study).consent.active()
        assert active is not None and active.version == "2.0"
        assert definition_of(study).randomization == plan
        taking_part = session.scalars(
            select(Participant.id).where(
                Participant.study_id == study.id, Participant.status.in_(["enrolled", "randomized"])
            )
        ).all()
        invitations = session.scalars(
            select(OutboxMessage.subject_id).where(OutboxMessage.kind == MessageKind.reconsent)
        ).all()
        assert sorted(invitations) == sorted(taking_part)  # once each
        from app.consent_admin.amendments import invite

        assert invite(session, study=study, now=datetime.now(UTC)) == 0
    mine = env.get(f"{S}/consents/outstanding").json()
    assert mine["version"] == "2.0" and code in [x["code"] for x in mine["items"]]
    assert code not in [
        x["code"] for x in env.get(f"{S}/consents/outstanding", env.other).json()["items"]
    ]
    states = [c["state"] for c in env.get(f"{S}/participants/{code}/consents").json()]
    assert states[-1] == "requires_reconsent"
    send_mail(env)
    [invitation] = [m for m in env.inbox.to(email) if "/consent/" in body(m)]
    token = body(invitation).split("/consent/", 1)[1].split()[0]
    with env.db.begin() as session:
        from app.consent.tokens import is_token_of, participant_of
        from app.db.server_key import keys_of
        from app.keys import Use

        key = keys_of(session).derived(Use.survey_link)
        assert participant_of(token) == pid
        assert is_token_of(key, token, participant_id=pid, version="2.0")
        assert not is_token_of(key, token, participant_id=pid, version="1.0")
    env.sign(pid, version="2.0", language="en")
    assert code not in [x["code"] for x in env.get(f"{S}/consents/outstanding").json()["items"]]
    states = [c["state"] for c in env.get(f"{S}/participants/{code}/consents").json()]
    assert states[-1] == "signed" and set(states[:-1]) == {"superseded"}


def test_consents_change_only_for_people_taking_part_and_only_until_lock(env: Env) -> None:
    code, pid = env.enroll()
    consents_url = f"{S}/participants/{code}/consents"
    long_ago = env.post(consents_url, {"version": "1.0", "obtained_on": "1901-01-01"})
    assert long_ago.status_code == 422 and "check the year" in long_ago.text
    # An in-person consent is not countersigned: only the current electronic one is.
    [in_person] = env.get(consents_url).json()
    countersign = f"{consents_url}/{in_person['id']}/countersign"
    assert env.post(countersign).json()["type"].endswith(":not-countersignable")
    # An ineligible screening gives no consent.
    answers = {"age_18_plus": False, "smi_diagnosis": True, "internet_access": True}
    screening = enrollment(screening=answers, consent=None, contact=None, strata={})
    refused = env.client.post(f"{S}/participants", json=screening, headers=bearer(env.coordinator))
    assert refused.status_code == 201 and refused.json()["status"] == "ineligible"
    ineligible = refused.json()["code"]
    yesterday = (study_today() - timedelta(days=1)).isoformat()
    given = env.post(
        f"{S}/participants/{ineligible}/consents", {"version": "1.0", "obtained_on": yesterday}
    )
    assert given.status_code == 409 and given.json()["type"].endswith(":not-taking-part")
    # The signature's keyed hash binds name, time, meaning and document in the trail.
    consent_id = env.sign(pid)
    with env.db.begin() as session:
        mac = consents.signature_mac(session, session.get_one(Consent, consent_id))
    trail = env.get(f"{S}/audit?limit=1000", env.api.admin_token).json()["items"]
    [signed] = [
        r for r in trail if r["action"] == "consent.signed" and r["entity_id"] == str(consent_id)
    ]
    assert mac in str(signed)
    # After database lock nothing about consent changes (rolled back: the study stays open).
    with pytest.raises(StudyLocked), env.db.begin() as session:
        study = session.scalars(select(Study).where(Study.slug == SLUG)).one()
        study.status = StudyStatus.locked
        consents.record_in_person(
            session,
            study=study,
            site_id=study.sites[0].id,
            participant_id=pid,
            participant_code=code,
            version="1.0",
            obtained_on=None,
            actor=Principal(id=1, email="a@e.org", role=Role.admin, site_ids=frozenset()),
            now=datetime.now(UTC),
        )
