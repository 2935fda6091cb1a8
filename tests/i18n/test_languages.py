"""A participant's survey pages and emails in their language (SPEC 10), over HTTP and a
real SMTP server: the language list on the first page, the Spanish page (fixed texts
from the catalog, the study's items from its translations, dates in Spanish words), a
validation message in Spanish, the language recorded with the answers, and the
invitation in Spanish; and an Arabic page laid out right to left."""

from __future__ import annotations

import re
from datetime import date

from fastapi import Request
from sqlalchemy import select

from app.scheduler.runner import run_pass
from app.surveys.models import SurveyInstance
from app.surveys.tokens import token_hash
from app.web.pages import page
from tests.smtp import body
from tests.surveys.test_pages import WHO5, _csrf, _post

SPANISH_TITLE = "Estudio de Apoyo entre Pares en Línea"


def _enroll(api) -> tuple[str, str]:
    coordinator = api.user("coordinator", "PHL")
    contact = {"name": "Ana Ejemplo", "email": "ana@example.org"}
    code = api.enroll(coordinator, contact=contact)
    return code, api.survey_token(code)


def test_a_participant_who_chooses_spanish_gets_spanish_pages_and_emails(api, mailer, inbox, db):
    _code, token = _enroll(api)
    intro = api.client.get(f"/s/{token}").text
    assert '<html lang="en" dir="ltr"' in intro
    # The other language, named in itself, as a plain link.
    link = re.search(r'<a class="link" href="([^"]+)" lang="es" hreflang="es">Español</a>', intro)
    assert link and link.group(1) == f"/s/{token}/language/es"
    chosen = api.client.get(link.group(1), follow_redirects=False)
    assert chosen.status_code == 303 and chosen.headers["location"] == f"/s/{token}"
    assert chosen.headers["referrer-policy"] == "no-referrer"
    # A language the study does not offer changes nothing.
    api.client.get(f"/s/{token}/language/ar", follow_redirects=False)

    intro = api.client.get(f"/s/{token}").text
    assert '<html lang="es" dir="ltr"' in intro
    assert f"<title>Antes de empezar — {SPANISH_TITLE}</title>" in intro
    assert "<h1>Encuesta inicial</h1>" in intro
    assert "Se tarda unos 10 minutos, en 2 partes." in intro
    assert re.search(r"hasta el <strong>\w+, \d+ de \w+ de \d{4}</strong>", intro)
    assert 'hreflang="en">English</a>' in intro
    first = api.client.get(f"/s/{token}?part=1").text
    assert "<title>Parte 1 de 2 — Índice de Bienestar OMS-5 (WHO-5)</title>" in first
    assert "Me he sentido alegre y de buen humor" in first and "Todo el tiempo" in first
    assert "Saltar al contenido principal" in first

    refused = _post(api, token, _csrf(first), 1, "next", WHO5 | {"who5_1": ""})
    assert refused.status_code == 422
    assert "<title>Error: Parte 1 de 2" in refused.text and "Hay un problema" in refused.text
    assert "Elija una respuesta en «Me he sentido alegre y de buen humor»" in refused.text
    assert _post(api, token, _csrf(first), 1, "save", WHO5).status_code == 200
    with db.session(write=False) as session:
        instance = session.scalars(
            select(SurveyInstance).where(SurveyInstance.token_hash == token_hash(token))
        ).one()
        assert instance.language == "es"

    run_pass(mailer)
    [invitation] = inbox.to("ana@example.org")
    assert invitation["Subject"] == f"Su encuesta está lista: {SPANISH_TITLE}"
    text = body(invitation)
    assert f"Su encuesta inicial del estudio «{SPANISH_TITLE}» está lista." in text
    assert "Este enlace es solo para usted." in text and "coordinador del estudio" in text
    assert not re.search(
        r"January|February|March|April|May|June|July|August|"
        r"September|October|November|December",
        text,
    )


def test_an_arabic_page_is_laid_out_right_to_left():
    request = Request({"type": "http", "method": "GET", "path": "/s/x", "headers": []})
    text = ("This survey is not open yet", ("You do not need to fill in this survey",))
    shown = page(
        request,
        "survey/status.html",
        {"heading": text[0], "paragraphs": text[1], "study_title": "دراسة"},
        language="ar",
    ).body.decode()
    assert '<html lang="ar" dir="rtl">' in shown
    assert "انتقل إلى المحتوى الرئيسي" in shown  # the skip link, from the Arabic catalog
    assert "إذا كانت لديك أسئلة، فتواصل مع منسق دراستك." in shown


def test_dates_are_written_in_the_pages_language():
    from app.i18n.dates import long_date

    day = date(2027, 4, 12)
    assert long_date(day, "en") == "Monday 12 April 2027"
    assert long_date(day, "es") == "lunes, 12 de abril de 2027"
    assert "أبريل" in long_date(day, "ar")
