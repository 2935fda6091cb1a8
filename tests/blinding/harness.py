"""The differential blinding harness: two worlds that differ only by who is in which arm.

A *world* is a blinded copy of the demo study (its own slug) with three participants
P1, P2, P3 of one stratum, whose arms are forced by an allocation table. In world B the
arms are permuted so that each participant keeps the *group code* (`G1`...) they have in
world A but gets another arm: whatever a blind role is shown may then differ between the
worlds (or between the participants of a world) only if it depends on the arm.

Both worlds go through the same actions (enroll in the study's last language, the same
online sign-ups not yet participants, baseline, randomize, invitations that
fail, surveys saved and submitted, a safety alert, contact attempts, alternate contacts
and a missed-visit reason, links reissued and invitations resent through the API and
the console, reminders, withdrawal), and the same safety work (an
adverse event from each alert, a follow-up, a deadline reported, the closure; a deviation
recorded, and one the system proposed for a late staff-entered survey, confirmed).
Only a safety reviewer the study shows arms to acts by arm: the medical review's
causality says "not related" for the control arm (as a reviewer who knows the arm
would), so a review shown to a blind role makes the worlds differ. Every surface a role
can reach is then fetched, normalized (`normalize`) and compared:

- `ALERTED_SURFACES`: about one participant while its safety alert is open (the
  acknowledgement form), fetched once;
- `PARTICIPANT_SURFACES`: about one participant ({code}), fetched for each participant;
- `ACTION_SURFACES`: posts about one participant's survey ({code}, {tp}), for every
  timepoint of the definition and one that does not exist;
- `STUDY_SURFACES`: about the whole study, compared between the worlds (`ONCE_SURFACES`,
  the PDFs, in the last phase only: their text is compared);
- `/metrics`: the counters each world's run added (durations left out).

To cover a new page or endpoint, add its path template to one of the lists.
"""

from __future__ import annotations

import io
import json
import re
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.auth.models import User
from app.consent.models import Consent
from app.db.base import utcnow
from app.db.engine import Database
from app.db.sealed import keyed_hash
from app.db.server_key import sealing_keys_of
from app.demo import demo_definition
from app.join.models import Applicant
from app.participants.models import Participant
from app.retention.models import ContactAttempt
from app.scheduler.runner import run_pass
from app.studies import service as studies
from app.studies.models import Study
from app.studies.pseudonyms import group_codes
from app.surveys import service as surveys
from app.surveys.models import SurveyInstance
from app.texting.service import Inbound, record_reply
from tests.console.conftest import ORIGIN, Browser, csrf_of, link_for
from tests.helpers import BASELINE_ANSWERS, Api, bearer, study_noon

ARMS = ("listserv", "control", "bulletin_board")
STRATUM = "site=PHL|diagnosis=bipolar"
PARTICIPANTS = 3
BLIND_ROLES = ("coordinator", "admin", "statistician")
NO_SUCH_TIMEPOINT = "no_such_survey"
# Coordinators and admins are left out; the safety reviewer sees arms (a medical review
# needs them), and must change nothing the blind roles see.
BLIND_TO = ("unblinded_statistician", "safety_reviewer")

# Surfaces about one participant ({slug}, {code}).
PARTICIPANT_SURFACES: list[tuple[str, str]] = [
    ("api", "/api/v1/studies/{slug}/participants/{code}"),
    ("console", "/console/studies/{slug}/participants/{code}"),
    # After randomizing: the arm is named only to roles that may see it.
    ("console", "/console/studies/{slug}/participants/{code}?done=randomized"),
    # The record after its other actions (the notices), with the grid, answers, alerts.
    ("console", "/console/studies/{slug}/participants/{code}?done=acknowledged"),
    ("console", "/console/studies/{slug}/participants/{code}?done=withdrawn"),
    # The confirmation before randomizing, with the stratum.
    ("console", "/console/studies/{slug}/participants/{code}/randomize"),
    # One survey with its answers: a shared timepoint, one with an arm-limited
    # instrument, and one only some arms have (staff entry: tests/blinding/test_staff_entry.py).
    ("api", "/api/v1/studies/{slug}/participants/{code}/surveys/baseline"),
    ("api", "/api/v1/studies/{slug}/participants/{code}/surveys/month_1"),
    ("api", "/api/v1/studies/{slug}/participants/{code}/surveys/group_check"),
    ("api", "/api/v1/studies/{slug}/participants/{code}/surveys/recall"),
    # The console's leaving form (the kinds allowed now), and its staff data entry and
    # correction pages at the same timepoints (a blind role: 404 alike for group_check).
    ("console", "/console/studies/{slug}/participants/{code}/withdraw"),
    # The new adverse-event form, and the participant's event (opened from the alert:
    # `{event}`, its id), with its versions and deadlines.
    ("console", "/console/studies/{slug}/participants/{code}/events/new"),
    ("console", "/console/studies/{slug}/events/{event}"),
    ("api", "/api/v1/studies/{slug}/events/{event}"),
    ("api", "/api/v1/studies/{slug}/events?participant={code}"),
    # The participant's deviations: the one staff recorded (`{deviation}`) and the one
    # the system proposed for its late recall survey (`{proposal}`), then confirmed.
    ("api", "/api/v1/studies/{slug}/deviations/{deviation}"),
    ("api", "/api/v1/studies/{slug}/deviations/{proposal}"),
    ("api", "/api/v1/studies/{slug}/deviations?participant={code}"),
    ("console", "/console/studies/{slug}/deviations/{deviation}"),
    ("console", "/console/studies/{slug}/deviations/{proposal}"),
    ("console", "/console/studies/{slug}/participants/{code}/deviations/new"),
    ("console", "/console/studies/{slug}/participants/{code}/surveys/baseline/enter"),
    ("console", "/console/studies/{slug}/participants/{code}/surveys/month_1/enter"),
    ("console", "/console/studies/{slug}/participants/{code}/surveys/group_check/enter"),
    ("console", "/console/studies/{slug}/participants/{code}/surveys/recall/enter"),
    ("console", "/console/studies/{slug}/participants/{code}/surveys/baseline/correct"),
    ("console", "/console/studies/{slug}/participants/{code}/surveys/baseline/correct?item=who5_1"),
    ("console", "/console/studies/{slug}/participants/{code}/surveys/month_1/correct"),
    ("console", "/console/studies/{slug}/participants/{code}/surveys/group_check/correct"),
    # Remote enrollment: the participant's consents and the first one's PDF
    # (`{consent}`, its id; 0 when none): coordinators' and admins', 403 or 404 alike for
    # a statistician whatever the arm.
    ("api", "/api/v1/studies/{slug}/participants/{code}/consents"),
    ("api", "/api/v1/studies/{slug}/participants/{code}/consents/{consent}.pdf"),
    # SPEC 11: the contact log and the alternate contacts (`log_contacts`).
    ("api", "/api/v1/studies/{slug}/participants/{code}/contacts"),
    ("api", "/api/v1/studies/{slug}/participants/{code}/alternate-contacts"),
    # The participant's incentives (SPEC 11): earned for the timepoints every arm has.
    ("api", "/api/v1/studies/{slug}/incentives?participant={code}"),
    ("console", "/console/studies/{slug}/incentives?participant={code}"),
]
# About one participant while its safety alert is open ({slug}, {code}, {alert}): the
# record with the acknowledgement form, the new-event form the alert fills in, and the
# form sent without a choice or note (422, the form again; nothing stored).
ALERTED_SURFACES: list[tuple[str, str]] = [
    ("console", "/console/studies/{slug}/participants/{code}"),
    ("console", "/console/studies/{slug}/participants/{code}/events/new?alert={alert}"),
    ("post", "/console/studies/{slug}/participants/{code}/alerts/{alert}/acknowledge"),
]
# Posts about one participant's survey ({slug}, {code}, {tp}).
ACTION_SURFACES: list[tuple[str, str]] = [
    ("api", "/api/v1/studies/{slug}/participants/{code}/surveys/{tp}/reissue"),
    ("api", "/api/v1/studies/{slug}/participants/{code}/surveys/{tp}/resend"),
    ("console", "/console/studies/{slug}/participants/{code}/surveys/{tp}/reissue"),
    ("console", "/console/studies/{slug}/participants/{code}/surveys/{tp}/resend"),
    # Staff data entry with nothing entered (a save), and a correction that names no
    # question (422, nothing stored).
    ("console", "/console/studies/{slug}/participants/{code}/surveys/{tp}/enter"),
    ("console", "/console/studies/{slug}/participants/{code}/surveys/{tp}/correct"),
    # A missed-visit reason (`ACTION_BODIES`): 409 unless missed, 404 for a timepoint a
    # blind role does not see, whether or not the participant's arm has it.
    ("api", "/api/v1/studies/{slug}/participants/{code}/surveys/{tp}/missed-reason"),
]
# The body an action surface posts (none: an empty post).
ACTION_BODIES: dict[str, dict[str, str]] = {
    "/api/v1/studies/{slug}/participants/{code}/surveys/{tp}/missed-reason": {
        "reason": "unreachable"
    },
}
# Surfaces about the whole study ({slug}).
STUDY_SURFACES: list[tuple[str, str]] = [
    ("api", "/api/v1/studies/{slug}"),
    ("api", "/api/v1/studies/{slug}/participants"),
    ("api", "/api/v1/studies/{slug}/schedule"),
    ("api", "/api/v1/studies/{slug}/schedule?status=open"),
    ("api", "/api/v1/studies/{slug}/schedule?status=missed"),
    ("api", "/api/v1/studies/{slug}/schedule?status=overdue"),
    ("api", "/api/v1/studies/{slug}/participants?status=randomized"),
    ("api", "/api/v1/studies/{slug}/alerts?open=false"),
    ("api", "/api/v1/studies/{slug}/events"),
    ("api", "/api/v1/studies/{slug}/safety/due"),
    ("api", "/api/v1/studies/{slug}/deviations"),
    ("api", "/api/v1/studies/{slug}/deviations?state=proposed"),
    ("api", "/api/v1/studies/{slug}/reports/dsmb?part=open&format=json"),
    ("api", "/api/v1/studies/{slug}/reports/dsmb?part=open&format=html"),
    ("api", "/api/v1/studies/{slug}/reports/dsmb?part=closed"),  # 403 for blind roles
    ("api", "/api/v1/studies/{slug}/reports/ctgov-adverse-events"),  # 403 or 409
    ("api", "/api/v1/studies/{slug}/messages"),
    # Texts the participants sent (`text_in`), with their times to respond: SPEC 11.
    ("api", "/api/v1/studies/{slug}/sms/replies"),
    ("api", "/api/v1/studies/{slug}/allocations"),
    ("api", "/api/v1/studies/{slug}/reports/consort"),  # with the online sign-ups
    ("api", "/api/v1/studies/{slug}/reports/consort?format=svg"),
    # The sign-ups held for review (`sign_up_online`): 403 for a statistician.
    ("api", "/api/v1/studies/{slug}/applicants"),
    ("api", "/api/v1/studies/{slug}/calls"),  # SPEC 11: who is due for a call
    ("api", "/api/v1/studies/{slug}/reports/retention"),
    ("api", "/api/v1/studies/{slug}/reports/balance"),
    ("api", "/api/v1/studies/{slug}/exports/blinded?format=csv&shape=long"),
    ("api", "/api/v1/studies/{slug}/exports/blinded?format=csv&shape=wide"),
    ("api", "/api/v1/studies/{slug}/exports/blinded?format=json&shape=long"),
    ("api", "/api/v1/studies/{slug}/exports/codebook?format=json"),
    ("api", "/api/v1/studies/{slug}/exports/codebook?format=csv"),
    ("api", "/api/v1/studies/{slug}/exports/package"),
    ("api", "/api/v1/studies/{slug}/exports/blinded?table=adverse_events&format=csv"),
    ("api", "/api/v1/studies/{slug}/exports/blinded?table=adverse_events&format=json"),
    ("api", "/api/v1/studies/{slug}/exports/blinded?table=deviations&format=csv"),
    ("api", "/api/v1/studies/{slug}/exports/codebook?format=json&table=adverse_events"),
    ("api", "/api/v1/studies/{slug}/exports/codebook?format=csv&table=deviations"),
    ("api", "/api/v1/studies/{slug}/exports/blinded?format=dta&shape=long"),
    ("api", "/api/v1/studies/{slug}/exports/blinded?format=sav&shape=wide"),
    ("api", "/api/v1/studies/{slug}/exports/participants?format=csv"),
    ("api", "/api/v1/studies/{slug}/exports/participants?format=json"),
    ("api", "/api/v1/studies/{slug}/exports/participants?format=dta"),
    ("api", "/api/v1/studies/{slug}/exports/participants?format=sav"),
    ("api", "/api/v1/studies/{slug}/exports/unblinded?reason=checking+the+blind"),
    # The incentives ledger, the year's totals, the reconciliation, the vendor files and
    # the cards.
    ("api", "/api/v1/studies/{slug}/incentives"),
    ("api", "/api/v1/studies/{slug}/incentives?state=issued"),
    ("api", "/api/v1/studies/{slug}/incentives/totals"),
    ("api", "/api/v1/studies/{slug}/incentives/reconciliation"),
    ("api", "/api/v1/studies/{slug}/incentives/vendor-files"),
    ("api", "/api/v1/studies/{slug}/gift-cards/summary"),
    ("console", "/console/studies/{slug}/incentives"),
    # Engagement (loaded by arm: `load_engagement_by_arm`): refused to every blind role,
    # its load included; the reports and exports above must not move with it.
    ("api", "/api/v1/studies/{slug}/engagement/summary"),
    ("api", "/api/v1/studies/{slug}/exports/unblinded/engagement?reason=checking+the+blind"),
    ("upload", "/api/v1/studies/{slug}/engagement"),
    ("api", "/api/v1/studies/{slug}/audit"),
    ("api", "/api/v1/studies/{slug}/audit/head"),
    ("console", "/console/studies/{slug}"),
    ("console", "/console/studies/{slug}/reports"),
    ("console", "/console/studies/{slug}/events"),
    ("console", "/console/studies/{slug}/deviations"),
    ("console", "/console/studies/{slug}/reports/dsmb"),
    ("console", "/console/studies/{slug}/reports/dsmb?part=closed"),
    ("console", "/console/studies/{slug}/reports/consort.svg"),
    ("console", "/console/studies/{slug}/participants"),
    ("console", "/console/studies/{slug}/worklist"),
    ("console", "/console/studies/{slug}/worklist?status=open"),
    ("console", "/console/studies/{slug}/worklist?format=csv"),
    ("console", "/console/studies/{slug}/worklist?timepoint=group_check"),
    ("console", "/console/studies/{slug}/worklist?timepoint=month_1&sort=participant"),
    ("console", "/console/studies/{slug}/participants?status=randomized"),
    ("console", "/console/studies/{slug}/enroll"),
    ("console", "/console/studies/{slug}/exports"),
    ("console", "/console/studies/{slug}/exports/blinded?format=csv&shape=long"),
    ("console", "/console/studies/{slug}/exports/codebook"),
    ("console", "/console/studies/{slug}/exports/package"),
    ("console", "/console/studies/{slug}/exports/blinded?format=sav&shape=long"),
    ("console", "/console/admin/audit?study={slug}"),
]
# The DSMB report's open part as a PDF (its text and metadata but the creation date):
# fetched in one phase only, they are slow to make.
ONCE_SURFACES: list[tuple[str, str]] = [
    ("api", "/api/v1/studies/{slug}/reports/dsmb?part=open&format=pdf"),
    ("console", "/console/studies/{slug}/reports/dsmb.pdf"),
]
# Surfaces still compared and reported, but not yet held to the rule, each with why.
KNOWN_LEAKS: dict[str, str] = {}

DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?")
DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
CLOCK = re.compile(r"\b\d{1,2}:\d{2}(:\d{2})?( ?[AP]M| UTC)?\b")
TOKEN = re.compile(r"/s/[A-Za-z0-9_-]{20,}")
CSRF = re.compile(r'(name="(?:csrf_token|form_id)" value=")[^"]+"')
PSEUDONYM = re.compile(r"\bP[A-Z2-7]{8,}\b")
HEX = re.compile(r"\b[0-9a-f]{32,}\b")
JSON_IDS = re.compile(r'"(id|seq|subject_id|event|alert)":\s*\d+')
# Numbered in the order events are opened and deviations recorded or proposed.
EVENT_NUMBERS = re.compile(r"\b(AE|PD)-\d+\b")
PATH_IDS = re.compile(
    r"/(alerts|users|messages|events|deviations|alternate-contacts|incentives|replies)/\d+"
)
ELEMENT_IDS = re.compile(r"\b(note|alert|outcome|reason)-\d+")
HIDDEN_IDS = re.compile(r'(name="(?:alert|event)" value=")\d+"')  # a form's row id
CODE = re.compile(r"PS-PHL-\d{4}")
# How long an alert has been open: the wall clock of each world's run, not the arm.
OPEN_FOR = re.compile(r"\bopen (less than a minute|\d+ (minute|hour|day)s?)\b")


def normalize(text: str, *, slug: str, code: str | None = None) -> str:
    """The answer with what legitimately differs between worlds and participants
    replaced: the study's slug, the participant's own code (the others stay), times,
    dates, how long an alert has been open, link tokens, CSRF tokens and form ids,
    pseudonyms, hashes, row ids, adverse-event and deviation numbers."""
    out = text.replace(slug, "{slug}")
    if code is not None:
        out = out.replace(code, "{code}")
    out = TOKEN.sub("/s/{token}", out)
    out = CSRF.sub(r'\1{csrf}"', out)
    out = DATETIME.sub("{time}", out)
    out = DATE.sub("{date}", out)
    out = CLOCK.sub("{clock}", out)
    out = OPEN_FOR.sub("open {for}", out)
    out = PSEUDONYM.sub("{pseudonym}", out)
    out = HEX.sub("{hex}", out)
    out = JSON_IDS.sub(r'"\1": {id}', out)
    out = ELEMENT_IDS.sub(r"\1-{id}", out)
    out = HIDDEN_IDS.sub(r'\1{id}"', out)
    out = EVENT_NUMBERS.sub(r"\1-{n}", out)
    return PATH_IDS.sub(r"/\1/{id}", out)


HEADERS_THAT_MATTER = ("content-type", "location", "content-disposition", "retry-after")


LINK = re.compile(r"http://testserver(/s/[A-Za-z0-9_-]{20,})")


def answer(
    response: httpx.Response,
    *,
    slug: str,
    code: str | None = None,
    follow: TestClient | None = None,
    rows_unordered: bool = False,
) -> str:
    """Status, the headers that matter and the body of an answer, normalized (a zip:
    each member); with `follow`, each survey link in it is opened and its page added."""
    head = [str(response.status_code)]
    head += [f"{h}: {response.headers[h]}" for h in HEADERS_THAT_MATTER if h in response.headers]
    body = response.content
    kind = response.headers.get("content-type", "")
    if body[:2] == b"PK":
        with zipfile.ZipFile(io.BytesIO(body)) as archive:
            text = "\n".join(
                f"== {name}\n{_readable(name, archive.read(name))}"
                for name in sorted(archive.namelist())
            )
    elif "stata" in kind or "spss" in kind:
        text = _readable("file.dta" if "stata" in kind else "file.sav", body)
    elif body[:5] == b"%PDF-":
        text = _pdf_text(body)
    else:
        text = body.decode(errors="replace")
    if follow is not None:
        for path in LINK.findall(text):
            opened = follow.get(path)
            head.append(f"link opens: {opened.status_code}\n{opened.text}")
    out = normalize("\n".join([*head, text]), slug=slug, code=code)
    return _rows_sorted(out) if rows_unordered else out


def _readable(name: str, content: bytes) -> str:
    """A file as text: a Stata or SPSS file read back (its variables, labels, value labels,
    missing-value codes and rows as CSV; not its time stamp), any other decoded."""
    if not name.endswith((".dta", ".sav")):
        return content.decode()
    import tempfile
    from pathlib import Path

    import pyreadstat

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_bytes(content)
        read = pyreadstat.read_dta if name.endswith(".dta") else pyreadstat.read_sav
        frame, meta = read(str(path), user_missing=True)
    head = [
        f"variables {meta.column_names}",
        f"labels {meta.column_labels}",
        f"value labels {sorted(meta.variable_value_labels.items())}",
        f"types {sorted(meta.readstat_variable_types.items())}",
        f"missing {getattr(meta, 'missing_user_values', None) or meta.missing_ranges}",
    ]
    return "\n".join([*head, frame.to_csv(index=False)])


def _pdf_text(content: bytes) -> str:
    """A PDF as text: its metadata but the creation and modification dates (the time it
    was made), its page count and each page's text."""
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(content))
    dated = ("/CreationDate", "/ModDate")
    meta = sorted((k, str(v)) for k, v in (reader.metadata or {}).items() if k not in dated)
    pages = [page.extract_text() for page in reader.pages]
    return "\n".join([f"metadata {meta}", f"{len(pages)} pages", *pages])


def _rows_sorted(text: str) -> str:
    """A dataset's rows in a canonical order: they come sorted by pseudonym, and each
    world's blinding key makes other pseudonyms (each line, and each object of a JSON
    array, sorted)."""
    lines = []
    for line in text.splitlines():
        if line.startswith("[{") and line.endswith("}]"):
            line = json.dumps(sorted(json.dumps(row) for row in json.loads(line)))
        lines.append(line.rstrip(",").lstrip("["))
    return "\n".join(sorted(lines))


def definition(slug: str, *, arm_visible_to: tuple[str, ...] = BLIND_TO) -> dict[str, Any]:
    """A blinded copy of the demo study: coordinators and admins blind, randomized from
    a table, with the arm-limited `group_experience` instrument at a shared timepoint
    and at a timepoint of its own: open from the randomization (`month_1`,
    `group_check`), already missed (`recall`, `group_recall`) and still scheduled
    (`month_12`, `group_late`)."""
    d = demo_definition() | {"slug": slug, "code_prefix": "PS"}
    d["blinding"] = {"arm_visible_to": list(arm_visible_to)}
    d["randomization"] = d["randomization"] | {"method": "table"}
    del d["randomization"]["block_sizes"]
    d["recruitment"] = {"target": 10, "per_site": {"PHL": 10}}

    def tp(code: str, day: int, instruments: list[str], close_after: int = 28) -> dict[str, Any]:
        return {
            "code": code,
            "anchor": "randomization",
            "day": day,
            "open_before": 0,
            "close_after": close_after,
            "instruments": instruments,
        }

    # Paid for every timepoint all arms have (group_check, group_recall and group_late
    # are the group arms' own: paying for them is refused).
    d["incentives"] = {
        "per_timepoint": {"baseline": 25, "month_1": 25, "recall": 20, "month_12": 25},
        "on_time_bonus": 5,
    }
    d["schedule"] = [
        d["schedule"][0],  # baseline
        tp("month_1", 0, ["who5", "phq9", "group_experience"]),
        tp("group_check", 0, ["group_experience"]),
        # Windows that closed before the randomization: missed at once.
        tp("recall", -30, ["who5", "group_experience"], close_after=7),
        tp("group_recall", -30, ["group_experience"], close_after=7),
        tp("month_12", 365, ["who5", "phq9", "group_experience"]),
        tp("group_late", 365, ["group_experience"]),
    ]
    return d


def timepoints(slug: str) -> list[str]:
    return [t["code"] for t in definition(slug)["schedule"]] + [NO_SUCH_TIMEPOINT]


@dataclass
class World:
    """One blinded study, its participants (in order) and their arms."""

    slug: str
    arms: list[str] = field(default_factory=list)
    codes: list[str] = field(default_factory=list)
    groups: dict[str, str] = field(default_factory=dict)  # arm → group code
    consents: dict[str, int] = field(default_factory=dict)  # code → first consent's id


@dataclass
class Staff:
    """The blind roles: an API token and a console browser each."""

    tokens: dict[str, str]
    browsers: dict[str, Browser]
    participant: TestClient  # a browser that opens the survey links staff are given
    metrics: TestClient  # on the host: may read /metrics


def create_world(
    api: Api, db: Database, slug: str, *, arm_visible_to: tuple[str, ...] = BLIND_TO
) -> World:
    """The study as a draft with its site (its blinding key, hence its groups, fixed)."""
    admin = bearer(api.admin_token)
    document = definition(slug, arm_visible_to=arm_visible_to)
    made = api.client.post("/api/v1/studies", json=document, headers=admin)
    assert made.status_code == 201, made.text
    site = api.client.post(
        f"/api/v1/studies/{slug}/sites", json={"code": "PHL", "name": "Philadelphia"}, headers=admin
    )
    assert site.status_code == 201, site.text
    with db.session(write=False) as session:
        study = session.scalars(select(Study).where(Study.slug == slug)).one()
        # The arms in the definition's order, as the exports deal them (not `ARMS`).
        arms = [a["code"] for a in document["arms"]]
        groups = group_codes(studies.blinding_key_of(session, study), arms)
    return World(slug, groups=groups)


def start_world(api: Api, world: World, arms: list[str]) -> None:
    """Load the table that gives the participants these arms, in order; activate."""
    world.arms = arms
    rows = "".join(f"{STRATUM},{i},{arm}\n" for i, arm in enumerate(arms, start=1))
    loaded = api.client.put(
        f"/api/v1/studies/{world.slug}/allocation-table",
        content="stratum,sequence,arm\n" + rows,
        headers={**bearer(api.admin_token), "content-type": "text/csv"},
    )
    assert loaded.status_code == 200, loaded.text
    started = api.client.post(
        f"/api/v1/studies/{world.slug}/activate", headers=bearer(api.admin_token)
    )
    assert started.status_code == 200, started.text


def twin_worlds(api: Api, db: Database) -> tuple[World, World]:
    """World A (P1 listserv, P2 control, P3 bulletin board) and world B, whose
    participants keep their group codes but not their arms."""
    a = create_world(api, db, "blind-a")
    for attempt in range(20):
        b = create_world(api, db, f"blind-b{attempt}")
        if b.groups != a.groups:
            break
    else:  # pragma: no cover - 20 equal random deals of three arms
        raise AssertionError("no second blinding key deals the groups differently")
    start_world(api, a, list(ARMS))
    by_group = {code: arm for arm, code in b.groups.items()}
    start_world(api, b, [by_group[a.groups[arm]] for arm in ARMS])
    assert a.arms != b.arms
    return a, b


def blind_staff(
    api: Api, db: Database, client: TestClient, worlds: list[World], metrics: TestClient
) -> Staff:
    """A coordinator of PHL in every world, an admin and a statistician: each blind."""
    tokens: dict[str, str] = {}
    browsers: dict[str, Browser] = {}
    for role in BLIND_ROLES:
        email = f"{role}-{uuid.uuid4().hex[:8]}@example.org"
        sites = [{"study": w.slug, "site": "PHL"} for w in worlds] if role == "coordinator" else []
        made = api.client.post(
            "/api/v1/users",
            json={"email": email, "name": role.title(), "role": role, "sites": sites},
            headers=bearer(api.admin_token),
        )
        assert made.status_code == 201, made.text
        tokens[role] = made.json()["token"]
        browser = Browser(client, email)
        assert browser.open_link(link_for(db, email)).status_code == 303
        browsers[role] = browser
    return Staff(tokens, browsers, TestClient(client.app, follow_redirects=False), metrics)


def _token(db: Database, slug: str, code: str, timepoint: str) -> str | None:
    """The participant's current link token (the participant has it from the email)."""
    with db.session(write=False) as session:
        instance = session.scalars(
            select(SurveyInstance)
            .join(Study, Study.id == SurveyInstance.study_id)
            .where(
                Study.slug == slug,
                SurveyInstance.participant_code == code,
                SurveyInstance.timepoint == timepoint,
            )
        ).first()
        return surveys.link_token(session, instance) if instance else None


def _instruments(db: Database, slug: str, code: str, timepoint: str) -> list[str]:
    with db.session(write=False) as session:
        found = session.scalars(
            select(SurveyInstance.instruments)
            .join(Study, Study.id == SurveyInstance.study_id)
            .where(
                Study.slug == slug,
                SurveyInstance.participant_code == code,
                SurveyInstance.timepoint == timepoint,
            )
        ).first()
        return list(found or [])


def address(world: World, index: int) -> str:
    """The email address of the world's participant (with `emails`)."""
    return f"{world.slug}-{index + 1}@example.org"


def token_of(db: Database, world: World, index: int, timepoint: str) -> str | None:
    """The current link token of a participant's survey (None: no such survey)."""
    return _token(db, world.slug, world.codes[index], timepoint)


GROUP_ANSWERS = {"gx_frequency": 3, "gx_helpful": 4, "gx_supported": True}
# The baseline raises the PHQ-9 item 9 safety alert for everyone.
ALERTING_BASELINE = BASELINE_ANSWERS | {"phq9_9": 1}


def enroll_and_randomize(
    api: Api, db: Database, world: World, coordinator: str, *, emails: bool = False
) -> None:
    """Enroll the participants (without `emails`, no address: every invitation fails),
    complete their baselines (a safety alert each) and randomize them in order."""
    for i in range(PARTICIPANTS):
        body = {
            "site": "PHL",
            "screening": {"age_18_plus": True, "smi_diagnosis": True, "internet_access": True},
            "consent": {"version": "1.0"},
            "strata": {"diagnosis": "bipolar"},
            "contact": {"name": "Pat Doe", "phone": "215-555-0100"}
            | ({"email": address(world, i)} if emails else {}),
        }
        made = api.client.post(
            f"/api/v1/studies/{world.slug}/participants", json=body, headers=bearer(coordinator)
        )
        assert made.status_code == 201, made.text
        world.codes.append(made.json()["code"])
    speak(db, world)
    for code in world.codes:
        token = _token(db, world.slug, code, "baseline")
        done = api.client.post(
            f"/api/v1/surveys/{token}/submit", json={"answers": ALERTING_BASELINE}
        )
        assert done.status_code == 200, done.text
    for code in world.codes:
        done = api.client.post(
            f"/api/v1/studies/{world.slug}/participants/{code}/randomize",
            headers=bearer(coordinator),
        )
        assert done.status_code == 200, done.text


# Use of the intervention by arm, as the platforms would report it: the bulletin board's
# members post and reply, the listserv's read its emails, the control arm logs in once.
ENGAGEMENT_BY_ARM: dict[str, list[tuple[str, int]]] = {
    "bulletin_board": [("post", 5), ("reply", 7), ("login", 12)],
    "listserv": [("email_read", 9)],
    "control": [("login", 1)],
}


def load_engagement_by_arm(api: Api, world: World, unblinded: str) -> None:
    """Load each participant's engagement by their arm (by an unblinded statistician,
    whom the worlds show arms): what blind roles are shown must not move with it."""
    at = utcnow().isoformat()
    rows = [
        f"{world.slug}-{code}-{kind},{code},{at},{kind},{count}"
        for code, arm in zip(world.codes, world.arms, strict=True)
        for kind, count in ENGAGEMENT_BY_ARM[arm]
    ]
    loaded = api.client.post(
        f"/api/v1/studies/{world.slug}/engagement",
        content="event_id,participant,at,kind,count\n" + "\n".join(rows) + "\n",
        headers={**bearer(unblinded), "content-type": "text/csv"},
    )
    assert loaded.status_code == 200, loaded.text
    assert loaded.json()["accepted"] == len(rows), loaded.text


def speak(db: Database, world: World) -> None:
    """The participants chose the study's last language (as on the join page): their
    survey pages, opened from the links staff are given, and the exports' `language`
    come in it. Their consents' ids are noted (`World.consents`)."""
    with db.begin() as session:
        study = session.scalars(select(Study).where(Study.slug == world.slug)).one()
        language = studies.definition_of(study).languages[-1]
        people = session.scalars(
            select(Participant).where(
                Participant.study_id == study.id, Participant.code.in_(world.codes)
            )
        ).all()
        for person in people:
            person.language = language
            first = session.scalars(
                select(Consent.id).where(Consent.participant_id == person.id).order_by(Consent.id)
            ).first()
            world.consents[person.code] = first or 0


# The same sign-ups in every world (`sign_up_online`): one still consenting, one signed
# and held as a duplicate, one held as a robot, one rejected by a coordinator.
SIGN_UPS: list[tuple[str, list[str] | None]] = [
    ("consent", None),
    ("held", ["duplicate_email"]),
    ("held", ["honeypot", "too_fast"]),
    ("rejected", ["duplicate_phone"]),
]


def sign_up_online(db: Database, world: World) -> None:
    """People who screened themselves through the public link and are not participants
    (as the join flow leaves them): CONSORT counts some, the applicants' queue lists them.
    Ids and tokens differ by world; nothing else does."""
    now = utcnow()
    with db.begin() as session:
        study = session.scalars(select(Study).where(Study.slug == world.slug)).one()
        site = next(s for s in study.sites if s.code == "PHL")
        for n, (state, holds) in enumerate(SIGN_UPS, start=1):
            session.add(
                Applicant(
                    study_id=study.id,
                    site_id=site.id,
                    token_hash=uuid.uuid4().hex * 2,
                    state=state,
                    language="en",
                    screening={"age_18_plus": True, "smi_diagnosis": True, "internet_access": True},
                    strata={"diagnosis": "bipolar"},
                    ineligible_reasons=None,
                    name=f"Applicant {n}",
                    email=f"applicant-{n}@example.org",
                    hold_reasons=holds,
                    created_at=now,
                    updated_at=now,
                )
            )


def text_in(db: Database, world: World) -> None:
    """Each participant texts the study (their automatic answers stay queued): the texts
    head the worklist and the replies' list, the same whatever the arm."""
    now = utcnow()
    with db.begin() as session:
        study = session.scalars(select(Study).where(Study.slug == world.slug)).one()
        for code in world.codes:
            person = session.scalars(
                select(Participant).where(
                    Participant.study_id == study.id, Participant.code == code
                )
            ).one()
            text = Inbound(uuid.uuid4().hex, "+12155550100", "Can someone call me back?")
            record_reply(session, text=text, participant=person, now=now)


def answer_surveys(api: Api, db: Database, world: World) -> None:
    """Each participant saves part of month 1 (it stays open) and submits the group
    check where they have one."""
    for code in world.codes:
        token = _token(db, world.slug, code, "month_1")
        saved = api.client.put(f"/api/v1/surveys/{token}/answers", json={"who5_1": 3})
        assert saved.status_code == 200, saved.text
        check = _token(db, world.slug, code, "group_check")
        if check is not None:
            done = api.client.post(
                f"/api/v1/surveys/{check}/submit", json={"answers": GROUP_ANSWERS}
            )
            assert done.status_code == 200, done.text


# What a coordinator completes an adverse event opened from an alert with (not serious:
# the same for every participant, related and unexpected).
EVENT_FROM_ALERT = {
    "AESEV": "moderate",
    "AESER": False,
    "AEREL": "possible",
    "AEEXPECT": False,
    "AEOUT": "recovering",
    "AEACN": "none",
    "unanticipated": True,
}


def open_events(api: Api, world: World, coordinator: str) -> None:
    """Each participant's safety alert is acknowledged by opening an adverse event from
    it (prefilled; an unanticipated problem, so a reporting deadline applies)."""
    base = f"/api/v1/studies/{world.slug}"
    alerts = api.client.get(f"{base}/alerts", headers=bearer(coordinator)).json()["items"]
    for code in world.codes:
        alert = next(a["id"] for a in alerts if a["participant"] == code)
        done = api.client.post(
            f"{base}/alerts/{alert}/acknowledge",
            json={"outcome": "event", "event": EVENT_FROM_ALERT},
            headers=bearer(coordinator),
        )
        assert done.status_code == 200, done.text


def local_today() -> date:
    """Today in the study's time zone (the day a deviation or a report is dated)."""
    return datetime.now(ZoneInfo(demo_definition()["timezone"])).date()


def safety_reviewer(api: Api) -> str:
    """A safety reviewer (every site; the harness study shows them arms): their token."""
    made = api.client.post(
        "/api/v1/users",
        json={
            "email": f"safety-reviewer-{uuid.uuid4().hex[:8]}@example.org",
            "name": "Safety Reviewer",
            "role": "safety_reviewer",
            "sites": [],
        },
        headers=bearer(api.admin_token),
    )
    assert made.status_code == 201, made.text
    return str(made.json()["token"])


WHO5_ANSWERS = {f"who5_{i}": 2 for i in range(1, 6)}
DEVIATION = {
    "category": "consent_error",
    "description": "The second page of the consent form was not initialled.",
    "important": False,
    "corrective_action": "Initialled at the next contact.",
}


def record_deviations(api: Api, world: World, coordinator: str) -> None:
    """Each participant: a deviation staff record, and its missed recall survey entered
    by staff today, after its window (a timepoint every arm has): the system proposes
    a deviation for each (PD-4..6 after the recorded PD-1..3)."""
    base = f"/api/v1/studies/{world.slug}"
    today = local_today().isoformat()
    for code in world.codes:
        made = api.client.post(
            f"{base}/participants/{code}/deviations",
            json=DEVIATION | {"occurred_on": today},
            headers=bearer(coordinator),
        )
        assert made.status_code == 201, made.text
        done = api.client.post(
            f"{base}/participants/{code}/surveys/recall/submit",
            json={"answers": WHO5_ANSWERS, "interviewed_on": today},
            headers=bearer(coordinator),
        )
        assert done.status_code == 200, done.text
    proposed = api.client.post(f"{base}/deviations/propose", headers=bearer(coordinator))
    assert proposed.json() == {"proposed": PARTICIPANTS}, proposed.text


def log_contacts(api: Api, db: Database, world: World, coordinator: str) -> None:
    """Each participant (SPEC 11): a contact attempt about a shared survey with a next
    step today (due for a call), an alternate contact, and a reason for the missed
    `recall` survey (a timepoint every arm has; staff enter it later). Then the group
    arms' participants are reached about `group_check` (`reach_about_group_check`)."""
    base = f"/api/v1/studies/{world.slug}"
    today = local_today().isoformat()
    for code in world.codes:
        calls = [
            (
                "contacts",
                {
                    "method": "phone",
                    "outcome": "left_message",
                    "note": "Asked them to call back.",
                    "next_step_on": today,
                    "timepoint": "month_1",
                },
                201,
            ),
            (
                "alternate-contacts",
                {
                    "name": "Ann Lee",
                    "relation": "sister",
                    "phone": "215-898-5000",
                    "permission_on": today,
                },
                201,
            ),
            ("surveys/recall/missed-reason", {"reason": "unreachable", "note": "No answer."}, 200),
        ]
        for where, body, status in calls:
            made = api.client.post(
                f"{base}/participants/{code}/{where}", json=body, headers=bearer(coordinator)
            )
            assert made.status_code == status, made.text
    reach_about_group_check(db, world)


def reach_about_group_check(db: Database, world: World) -> None:
    """An attempt that reached the participant about `group_check`, logged for those who
    have it (the group arms) as an admin a study shows arms to would log it: the worlds'
    admins are blind (refused that timepoint), so it is stored as the service stores it.
    Later than the coordinator's, without a next step: counted, it would take those
    participants off the calls, change their last attempt and lengthen their log."""
    with db.begin() as session:
        study = session.scalars(select(Study).where(Study.slug == world.slug)).one()
        admin = session.scalars(select(User.id).where(User.role == "admin")).first()
        having = session.scalars(
            select(SurveyInstance.participant_id).where(
                SurveyInstance.study_id == study.id, SurveyInstance.timepoint == "group_check"
            )
        ).all()
        assert 0 < len(having) < PARTICIPANTS, having
        keys = sealing_keys_of(session)
        for participant in session.scalars(select(Participant).where(Participant.id.in_(having))):
            session.add(
                ContactAttempt(
                    study_id=study.id,
                    site_id=participant.site_id,
                    participant_id=participant.id,
                    participant_code=participant.code,
                    method="phone",
                    outcome="reached",
                    timepoint="group_check",
                    timepoint_index=keyed_hash(keys, "timepoint", "group_check"),
                    made_at=utcnow(),
                    made_by=admin,
                )
            )


def pay_incentives(api: Api, world: World, coordinator: str) -> None:
    """Every entry earned (baselines with their bonus, late recalls) approved, then
    issued through the payment vendor's file."""
    base = f"/api/v1/studies/{world.slug}/incentives"
    earned = api.client.get(f"{base}?state=earned", headers=bearer(coordinator))
    assert len(earned.json()["items"]) == 3 * PARTICIPANTS, earned.text
    for entry in earned.json()["items"]:
        done = api.client.post(f"{base}/{entry['id']}/approve", headers=bearer(coordinator))
        assert done.status_code == 200, done.text
    paid = api.client.post(f"{base}/vendor-file", headers=bearer(coordinator))
    assert paid.json()["entries"] == 3 * PARTICIPANTS, paid.text


def review_by_arm(arm: str) -> dict[str, Any]:
    """What a reviewer who sees the arm records: a control participant's event cannot be
    related to an intervention they do not get (a blind role sees none of it)."""
    related = "not_related" if arm == "control" else "probable"
    return {"kind": "review", "AEREL": related, "note": f"Reviewed in the {arm} arm."}


def follow_up_and_review(
    api: Api, staff: Staff, world: World, coordinator: str, reviewer: str
) -> None:
    """Each event: a follow-up by the coordinator and the medical review by the safety
    reviewer (by arm: `review_by_arm`); each proposed deviation confirmed."""
    base = f"/api/v1/studies/{world.slug}"
    events = _events_of(staff, world)
    follow_up = {"kind": "follow_up", "AESEV": "mild", "note": "Called: feeling better."}
    for code, arm in zip(world.codes, world.arms, strict=True):
        for body, token in ((follow_up, coordinator), (review_by_arm(arm), reviewer)):
            done = api.client.post(
                f"{base}/events/{events[code]}/versions", json=body, headers=bearer(token)
            )
            assert done.status_code == 201, done.text
        # The reviewer, who sees arms, is answered the review: it is there to hide.
        assert done.json()["reviewed"] == {"AEREL": review_by_arm(arm)["AEREL"]}, done.text
    for ids in _deviations_of(staff, world).values():
        done = api.client.post(
            f"{base}/deviations/{ids['proposal']}/versions",
            json={"kind": "confirmation", "note": "Interviewed late: confirmed."},
            headers=bearer(coordinator),
        )
        assert done.status_code == 201, done.text


def report_and_close(api: Api, staff: Staff, world: World, coordinator: str) -> None:
    """Each event's deadline (an unanticipated problem: `irb_up`) reported, then the
    event closed."""
    base = f"/api/v1/studies/{world.slug}"
    today = local_today().isoformat()
    closure = {"kind": "closure", "AEOUT": "recovered", "AEENDTC": today, "note": "Resolved."}
    for event in _events_of(staff, world).values():
        reported = api.client.post(
            f"{base}/events/{event}/deadlines/irb_up/report",
            json={"reported_on": today, "reference": "IRB-2026-0042"},
            headers=bearer(coordinator),
        )
        assert reported.status_code == 200, reported.text
        closed = api.client.post(
            f"{base}/events/{event}/versions", json=closure, headers=bearer(coordinator)
        )
        assert closed.status_code == 201, closed.text


def scheduler(db: Database, *, days: int = 0) -> None:
    """A scheduler pass now, or at noon in the study `days` days on (invitations,
    reminders; they fail: no address): `utcnow() + days` could land a date further at
    night in New York when the days cross a change of daylight time."""
    run_pass(db, now=study_noon(days) if days else utcnow())


def withdraw_all(api: Api, world: World, coordinator: str, **leaving: str) -> None:
    """Every participant leaves (by default the plain withdrawal from follow-up; with
    `kind="intervention"` they stop the intervention only and stay randomized)."""
    for code in world.codes:
        done = api.client.post(
            f"/api/v1/studies/{world.slug}/participants/{code}/withdraw",
            json={"reason": "moved away", **leaving},
            headers=bearer(coordinator),
        )
        assert done.status_code == 200, done.text


Fetched = dict[tuple[str, ...], str]  # (role, surface, participant index) → answer


def _get(staff: Staff, role: str, kind: str, path: str) -> httpx.Response:
    if kind == "upload":  # an engagement file of one row (refused: nothing stored)
        headers = {"content-type": "text/csv", "Idempotency-Key": uuid.uuid4().hex}
        row = f"blind-{role},PS-PHL-0001,{utcnow().isoformat()},post"
        return staff.browsers[role].client.post(
            path,
            content=f"event_id,participant,at,kind\n{row}\n",
            headers=bearer(staff.tokens[role]) | headers,
        )
    if kind == "api":
        return staff.browsers[role].client.get(path, headers=bearer(staff.tokens[role]))
    return staff.browsers[role].get(path)


def _events_of(staff: Staff, world: World) -> dict[str, int]:
    """Each participant's adverse event (the one its alert opened), by code."""
    found = staff.browsers["coordinator"].client.get(
        f"/api/v1/studies/{world.slug}/events?limit=100",
        headers=bearer(staff.tokens["coordinator"]),
    )
    assert found.status_code == 200, found.text
    return {e["participant"]: e["id"] for e in reversed(found.json()["items"])}


def _deviations_of(staff: Staff, world: World) -> dict[str, dict[str, int]]:
    """Each participant's deviations by code: `deviation` (recorded by staff) and
    `proposal` (proposed by the system)."""
    found = staff.browsers["coordinator"].client.get(
        f"/api/v1/studies/{world.slug}/deviations?limit=100",
        headers=bearer(staff.tokens["coordinator"]),
    )
    assert found.status_code == 200, found.text
    out: dict[str, dict[str, int]] = {}
    for d in found.json()["items"]:
        out.setdefault(d["participant"], {})["proposal" if d["proposed"] else "deviation"] = d["id"]
    return out


def fetch_alerted(staff: Staff, world: World, label: str) -> Fetched:
    """Every surface of `ALERTED_SURFACES`, for each role and participant (the alerts
    open)."""
    out: Fetched = {}
    found = staff.browsers["coordinator"].client.get(
        f"/api/v1/studies/{world.slug}/alerts", headers=bearer(staff.tokens["coordinator"])
    )
    assert found.status_code == 200, found.text
    alerts = {a["participant"]: a["id"] for a in found.json()["items"]}
    for role in BLIND_ROLES:
        browser = staff.browsers[role]
        csrf = csrf_of(browser.get("/console").text)
        for kind, template in ALERTED_SURFACES:
            for i, code in enumerate(world.codes):
                path = template.format(slug=world.slug, code=code, alert=alerts[code])
                if kind == "post":  # no choice, no note: the form again, nothing stored
                    form = {"csrf_token": csrf, "outcome": "no_event", "note": ""}
                    response = browser.client.post(path, data=form, headers=ORIGIN)
                else:
                    response = _get(staff, role, kind, path)
                out[(label, f"alerted:{role}", template, str(i))] = answer(
                    response, slug=world.slug, code=code
                )
    return out


def fetch_participants(staff: Staff, world: World, label: str, phase: str) -> Fetched:
    """Every participant surface, for each role and participant."""
    out: Fetched = {}
    events = _events_of(staff, world)
    deviations = _deviations_of(staff, world)
    for role in BLIND_ROLES:
        for kind, template in PARTICIPANT_SURFACES:
            for i, code in enumerate(world.codes):
                ids = {"deviation": 0, "proposal": 0} | deviations.get(code, {})
                ids["consent"] = world.consents.get(code, 0)
                path = template.format(slug=world.slug, code=code, event=events.get(code, 0), **ids)
                response = _get(staff, role, kind, path)
                out[(label, f"{phase}:{role}", template, str(i))] = answer(
                    response, slug=world.slug, code=code, follow=staff.participant
                )
    return out


def act_on_surveys(staff: Staff, world: World, label: str, phase: str) -> Fetched:
    """Reissue and resend every timepoint's survey of each participant, through the API
    and the console, as each blind role (a statistician gets 403 alike); the answers."""
    out: Fetched = {}
    for role in BLIND_ROLES:
        browser = staff.browsers[role]
        csrf = csrf_of(browser.get("/console").text)  # the session's form token
        before = metrics(staff.metrics)
        for kind, template in ACTION_SURFACES:
            for tp in timepoints(world.slug):
                for i, code in enumerate(world.codes):
                    path = template.format(slug=world.slug, code=code, tp=tp)
                    if kind == "api":
                        key = {"Idempotency-Key": f"{label}-{role}-{tp}-{i}-{uuid.uuid4().hex}"}
                        response = browser.client.post(
                            path,
                            headers=bearer(staff.tokens[role]) | key,
                            json=ACTION_BODIES.get(template),
                        )
                    else:
                        response = browser.client.post(
                            path,
                            data={"csrf_token": csrf} | ACTION_BODIES.get(template, {}),
                            headers=ORIGIN,
                        )
                    after = metrics(staff.metrics)  # what this post added (and one scrape)
                    counted, before = added(before, after), after
                    out[(label, f"{phase}:{role}", template, tp, str(i))] = "\n".join(
                        [
                            answer(response, slug=world.slug, code=code, follow=staff.participant),
                            *(f"/metrics added {k} {v:g}" for k, v in sorted(counted.items())),
                        ]
                    )
    return out


def fetch_study(
    staff: Staff, world: World, label: str, phase: str, *, once: bool = False
) -> Fetched:
    """Every study-wide surface, for each role (with `once`, `ONCE_SURFACES` too)."""
    out: Fetched = {}
    for role in BLIND_ROLES:
        for kind, template in STUDY_SURFACES + (ONCE_SURFACES if once else []):
            response = _get(staff, role, kind, template.format(slug=world.slug))
            out[(label, f"{phase}:{role}", template)] = answer(
                response, slug=world.slug, rows_unordered="/exports/" in template
            )
    return out


METRIC = re.compile(r"^([a-z_]+(?:\{[^}]*\})?) ([0-9.e+-]+)$")
TIMED = ("_seconds", "_created")


def metrics(client: TestClient) -> dict[str, float]:
    """Trialdesk's counters in `/metrics` (durations, which vary, and the process's
    memory and garbage collector left out)."""
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    text = response.text
    out: dict[str, float] = {}
    for line in text.splitlines():
        found = METRIC.match(line)
        name = found.group(1).split("{")[0] if found else ""
        if found and name.startswith("trialdesk_") and not any(t in name for t in TIMED):
            out[found.group(1)] = float(found.group(2))
    return out


def added(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k, 0.0)}


@dataclass
class Comparison:
    """What was compared and what differed."""

    compared: int = 0
    differences: list[str] = field(default_factory=list)

    known: list[str] = field(default_factory=list)

    def same(self, what: str, left: str, right: str) -> None:
        self.compared += 1
        if left != right:
            found = f"{what}\n{_diff(left, right)}"
            leak = any(f" {surface}" in what.split(":", 1)[-1] for surface in KNOWN_LEAKS)
            (self.known if leak else self.differences).append(found)


def _diff(left: str, right: str) -> str:
    import difflib

    lines = difflib.unified_diff(left.splitlines(), right.splitlines(), lineterm="", n=1)
    return "\n".join(list(lines)[2:14])


def by_key(fetched: Fetched) -> Iterator[tuple[tuple[str, ...], str]]:
    yield from sorted(fetched.items())


def compare_participants(fetched: Fetched, comparison: Comparison) -> None:
    """Within a world, each participant's answers against the first participant's."""
    groups: dict[tuple[str, ...], dict[str, str]] = {}
    for key, text in fetched.items():
        if key[2] not in PER_PARTICIPANT:
            continue
        groups.setdefault(key[:-1], {})[key[-1]] = text
    for key, answers in sorted(groups.items()):
        first = answers["0"]
        for i, text in sorted(answers.items()):
            if i != "0":
                comparison.same(f"{' '.join(key)}: P1 vs P{int(i) + 1}", first, text)


def compare_worlds(a: Fetched, b: Fetched, comparison: Comparison) -> None:
    """Each answer of world A against the same answer in world B."""
    for key, text in by_key(a):
        other = b[("B", *key[1:])]
        comparison.same(f"{' '.join(key[1:])}: world A vs world B", text, other)


PER_PARTICIPANT = {t for _, t in ALERTED_SURFACES + PARTICIPANT_SURFACES + ACTION_SURFACES}
