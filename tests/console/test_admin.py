"""The console's administration pages: users and their tokens, a study from its
definition file, set-up (sites, simulation, activation, lock) and the audit trail."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import yaml
from sqlalchemy import select, update

from app.audit.models import AuditRecord
from app.auth import service as auth
from app.db.engine import Database
from app.demo import demo_definition
from app.users import sign_in
from tests.console.conftest import ORIGIN, Browser, csrf_of
from tests.helpers import STUDY, bearer

TOKEN = re.compile(r'value="(td_[\w-]+)"')
FORBIDDEN = "You cannot do this"


def _user_id(db: Database, email: str) -> int:
    with db.session(write=False) as session:
        user = auth.find_user(session, email=email)
        assert user is not None
        return user.id


def _definition(slug: str, **changes: Any) -> dict[str, Any]:
    document = demo_definition()
    document["slug"] = slug
    document.update(changes)
    return document


def _send(browser: Browser, path: str, data: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    """Post a form with the session's token (the same on every page of the session)."""
    return browser.post(path, data, csrf_from="/console")


def _upload(browser: Browser, name: str, content: bytes, **extra: Any):  # type: ignore[no-untyped-def]
    page = browser.get("/console/admin/studies/new")
    data = {"csrf_token": csrf_of(page.text), **extra}
    return browser.client.post(
        "/console/admin/studies",
        data=data,
        files={"definition": (name, content, "application/octet-stream")},
        headers=ORIGIN,
    )


def _audit_seqs(html: str) -> list[int]:
    return [int(seq) for seq in re.findall(r'<th scope="row" class="num">(\d+)</th>', html)]


# --- who may -----------------------------------------------------------------------------


def test_every_admin_page_refuses_a_coordinator_and_a_statistician(signed_in, api, db):
    pages = [
        "/console/admin/users",
        "/console/admin/users/new",
        "/console/admin/users/1",
        "/console/admin/studies/new",
        f"/console/studies/{STUDY}/setup",
        "/console/admin/audit",
    ]
    posts = [
        ("/console/admin/users", {"email": "x@example.org", "name": "X", "role": "admin"}),
        ("/console/admin/users/1/deactivate", {"reason": "no"}),
        ("/console/admin/users/1/revoke", {}),
        ("/console/admin/users/1/tokens", {}),
        (f"/console/studies/{STUDY}/setup/sites", {"code": "NYC", "name": "New York"}),
        (f"/console/studies/{STUDY}/setup/lock", {"understood": "yes"}),
    ]
    for browser in (signed_in("coordinator", "PHL"), signed_in("statistician")):
        for path in pages:
            shown = browser.get(path)
            assert shown.status_code == 403, path
            assert FORBIDDEN in shown.text, path
        for path, data in posts:
            refused = _send(browser, path, data)
            assert refused.status_code == 403, path
        uploaded = _upload_as(browser, yaml.safe_dump(_definition("sneaky")).encode())
        assert uploaded.status_code == 403
    admin = bearer(api.admin_token)
    assert api.client.get("/api/v1/studies/sneaky", headers=admin).status_code == 404
    study = api.client.get(f"/api/v1/studies/{STUDY}", headers=admin).json()
    assert study["status"] == "enrolling" and len(study["sites"]) == 2
    with db.session(write=False) as session:
        assert auth.find_user(session, email="x@example.org") is None
        assert auth.get_user(session, user_id=1).deactivated_at is None


def _upload_as(browser: Browser, content: bytes):  # type: ignore[no-untyped-def]
    # A role without the page gets no form: the post carries the token of another page.
    token = csrf_of(browser.get("/console").text)
    return browser.client.post(
        "/console/admin/studies",
        data={"csrf_token": token},
        files={"definition": ("study.yaml", content, "application/yaml")},
        headers=ORIGIN,
    )


# --- users -------------------------------------------------------------------------------


def test_a_new_users_token_is_shown_once_and_works_on_the_api(signed_in, api):
    admin = signed_in("admin")
    form = admin.get("/console/admin/users/new")
    assert form.status_code == 200
    assert "<title>Create a user — Trialdesk</title>" in form.text
    assert f'value="{STUDY}:PHL"' in form.text and f'value="{STUDY}:PIT"' in form.text

    created = _send(
        admin,
        "/console/admin/users",
        {
            "email": "Nora@Example.org",
            "name": "Nora Diaz",
            "role": "coordinator",
            "sites": "peer-support:PIT",
        },
    )
    assert created.status_code == 200, created.text
    assert created.headers["Cache-Control"] == "no-store"
    assert "shown only once" in created.text
    token = TOKEN.search(created.text).group(1)  # type: ignore[union-attr]

    me = api.client.get("/api/v1/users/me", headers=bearer(token))
    assert me.status_code == 200
    assert me.json()["email"] == "nora@example.org" and me.json()["role"] == "coordinator"
    assert me.json()["sites"] == [{"study": STUDY, "site": "PIT"}]

    listed = admin.get("/console/admin/users")
    assert listed.status_code == 200 and "<title>Users — Trialdesk</title>" in listed.text
    row = re.search(r"<tr><th scope=\"row\"><a [^>]+>nora@example.org</a>.*?</tr>", listed.text)
    assert row is not None
    assert "Nora Diaz" in row.group(0) and f"{STUDY}:PIT" in row.group(0)
    assert "coordinator" in row.group(0) and "active" in row.group(0)
    user_page = admin.get(
        re.search(r'href="(/console/admin/users/\d+)">nora', listed.text).group(1)
    )  # type: ignore[union-attr]
    assert user_page.status_code == 200 and "Nora Diaz" in user_page.text
    assert token not in listed.text and token not in user_page.text


def test_a_user_form_with_mistakes_is_shown_again_with_each_error_and_stores_nothing(signed_in, db):
    admin = signed_in("admin")
    typed = {"email": "not an address", "name": "", "role": ""}
    sent = _send(admin, "/console/admin/users", typed)
    assert sent.status_code == 422
    assert "<title>Error: Create a user — Trialdesk</title>" in sent.text
    assert "There is a problem" in sent.text
    for field, message in (
        ("email", "Enter an email address like name@example.org"),
        ("name", "Enter the user&#39;s name (up to 200 characters)"),
        ("role", "Choose the user&#39;s role"),
    ):
        assert f'<a href="#{field}">{message}</a>' in sent.text
        assert (
            f'id="{field}-error"><span class="visually-hidden">Error:</span> {message}' in sent.text
        )
    assert 'value="not an address"' in sent.text

    sites_for_admin = {
        "email": "ann@example.org",
        "name": "Ann",
        "role": "admin",
        "sites": "peer-support:PHL",
    }
    sent = _send(admin, "/console/admin/users", sites_for_admin)
    assert sent.status_code == 422
    assert 'id="sites-error"' in sent.text and "not limited to sites" in sent.text
    assert 'value="ann@example.org"' in sent.text and 'value="Ann"' in sent.text
    assert re.search(r'value="admin" checked', sent.text)
    assert re.search(r'value="peer-support:PHL" checked', sent.text)

    taken = {"email": admin.email, "name": "Again", "role": "statistician"}
    sent = _send(admin, "/console/admin/users", taken)
    assert sent.status_code == 422 and "A user with this email address exists already" in sent.text
    with db.session(write=False) as session:
        assert auth.find_user(session, email="ann@example.org") is None
        assert auth.find_user(session, email="not an address") is None


def test_a_new_token_works_and_revoking_refuses_every_token_and_signs_the_user_out(
    signed_in, api, db
):
    admin = signed_in("admin")
    coordinator = signed_in("coordinator", "PHL")
    page = f"/console/admin/users/{_user_id(db, coordinator.email)}"

    issued = _send(admin, f"{page}/tokens")
    assert issued.status_code == 200 and issued.headers["Cache-Control"] == "no-store"
    token = TOKEN.search(issued.text).group(1)  # type: ignore[union-attr]
    assert api.client.get("/api/v1/users/me", headers=bearer(token)).status_code == 200
    assert coordinator.get("/console").status_code == 200

    revoked = _send(admin, f"{page}/revoke")
    assert revoked.status_code == 303 and revoked.headers["location"] == f"{page}?done=revoked"
    assert api.client.get("/api/v1/users/me", headers=bearer(token)).status_code == 401
    assert coordinator.get("/console").headers["location"].startswith("/console/sign-in")
    assert "Every API token of the user is revoked" in admin.get(revoked.headers["location"]).text


def test_deactivating_needs_a_reason_and_signs_the_user_out_at_once(signed_in, db):
    admin = signed_in("admin")
    coordinator = signed_in("coordinator", "PHL")
    page = f"/console/admin/users/{_user_id(db, coordinator.email)}"

    no_reason = _send(admin, f"{page}/deactivate", {"reason": "  "})
    assert no_reason.status_code == 422
    assert no_reason.text.count("Enter why the user is deactivated") == 2
    assert coordinator.get("/console").status_code == 200

    done = _send(admin, f"{page}/deactivate", {"reason": "Left the study team"})
    assert done.status_code == 303
    signed_out = coordinator.get("/console/studies/peer-support/participants")
    assert signed_out.status_code == 303
    assert signed_out.headers["location"].startswith("/console/sign-in")
    shown = admin.get(done.headers["location"])
    assert "deactivated" in shown.text and "Left the study team" in shown.text
    assert "Deactivate the user" not in shown.text


def test_the_last_active_admin_cannot_be_deactivated(signed_in, db):
    admin = signed_in("admin")
    demo_admin = f"/console/admin/users/{_user_id(db, 'admin@demo.trialdesk.org')}"
    assert _send(admin, f"{demo_admin}/deactivate", {"reason": "gone"}).status_code == 303
    mine = f"/console/admin/users/{_user_id(db, admin.email)}"
    refused = _send(admin, f"{mine}/deactivate", {"reason": "leaving"})
    assert refused.status_code == 409
    assert "This cannot be done now" in refused.text and "last active admin" in refused.text
    assert admin.get("/console").status_code == 200


# --- a study from its definition file ------------------------------------------------------


def test_a_bad_definition_lists_its_problems_by_path_and_stores_nothing(signed_in, api):
    admin = signed_in("admin")
    randomization = dict(_definition("x")["randomization"], block_sizes=[0, 3])
    bad = _definition("bad-study", randomization=randomization, arms=[])
    sent = _upload(admin, "bad-study.yaml", yaml.safe_dump(bad).encode())
    assert sent.status_code == 422
    assert "<title>Error: Create a study — Trialdesk</title>" in sent.text
    assert "There is a problem" in sent.text
    summary = sent.text.split('id="error-summary-title"', 1)[1].split("</ul>", 1)[0]
    assert '<a href="#definition"><code class="path">randomization.block_sizes.0</code>:' in summary
    assert '<code class="path">arms</code>' in summary
    assert 'id="definition-error"' in sent.text and "bad-study.yaml" in sent.text
    headers = bearer(api.admin_token)
    assert api.client.get("/api/v1/studies/bad-study", headers=headers).status_code == 404

    unreadable = _upload(admin, "study.yaml", b"slug: [unclosed\n")
    assert unreadable.status_code == 422 and "The file is not valid YAML" in unreadable.text
    not_json = _upload(admin, "study.json", b"{'slug': 1}")
    assert not_json.status_code == 422 and "The file is not valid JSON" in not_json.text
    taken = _upload(admin, "again.json", json.dumps(_definition(STUDY)).encode())
    assert taken.status_code == 422 and '<code class="path">slug</code>' in taken.text


def test_an_upload_is_one_file_of_at_most_a_megabyte(signed_in, api):
    admin = signed_in("admin")
    large = b"# padding\n" * (1024 * 1024 // 10) + yaml.safe_dump(_definition("big")).encode()
    too_large = _upload(admin, "big.yaml", large)
    assert too_large.status_code == 422 and "Choose a file of 1 MB or less" in too_large.text
    nothing = _upload(admin, "", b"")
    assert nothing.status_code == 422 and "Choose a study definition file" in nothing.text
    extra = _upload(admin, "x.yaml", yaml.safe_dump(_definition("extra")).encode(), note="hi")
    assert extra.status_code == 422 and "Send the definition file alone" in extra.text
    page = admin.get("/console/admin/studies/new")
    two = admin.client.post(
        "/console/admin/studies",
        data={"csrf_token": csrf_of(page.text)},
        files=[
            ("definition", ("a.yaml", b"a: 1", "text/yaml")),
            ("other", ("b.yaml", b"b", "text/yaml")),
        ],
        headers=ORIGIN,
    )
    assert two.status_code == 400
    no_token = admin.client.post(
        "/console/admin/studies",
        files={
            "definition": ("x.yaml", yaml.safe_dump(_definition("forged")).encode(), "text/yaml")
        },
        headers=ORIGIN,
    )
    assert no_token.status_code == 403
    headers = bearer(api.admin_token)
    for slug in ("big", "extra", "forged"):
        assert api.client.get(f"/api/v1/studies/{slug}", headers=headers).status_code == 404


def test_aliases_cannot_expand_a_small_file_into_a_huge_document(signed_in):
    admin = signed_in("admin")
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    sent = _upload(admin, "bomb.yaml", "\n".join(lines).encode())
    assert sent.status_code == 422 and "too large once its aliases" in sent.text


# --- set-up: sites, simulation, activation, lock --------------------------------------------


def _draft(admin: Browser, slug: str) -> str:
    """Create a draft from the demo's definition (YAML with aliases); its set-up page."""
    created = _upload(admin, f"{slug}.yaml", yaml.safe_dump(_definition(slug)).encode())
    assert created.status_code == 303, created.text
    assert created.headers["location"] == f"/console/studies/{slug}/setup?done=created"
    return f"/console/studies/{slug}/setup"


def test_a_draft_gets_sites_and_a_simulation_that_shows_its_figures(signed_in, api):
    admin = signed_in("admin")
    setup = _draft(admin, "pilot")
    page = admin.get(f"{setup}?done=created")
    assert page.status_code == 200 and "<title>Set-up — " in page.text
    assert "The study is created as a draft." in page.text and ">draft<" in page.text
    assert (
        api.client.get("/api/v1/studies/pilot", headers=bearer(api.admin_token)).json()["status"]
        == "draft"
    )

    no_site = _send(admin, f"{setup}/simulate", {"participants": "30", "runs": "2"})
    assert no_site.status_code == 422 and "Add a site first" in no_site.text

    bad_site = _send(admin, f"{setup}/sites", {"code": "N Y", "name": ""})
    assert bad_site.status_code == 422 and "Enter a site code of 1 to 12 letters" in bad_site.text
    assert 'value="N Y"' in bad_site.text
    for code in ("BOS", "NYC"):
        added = _send(admin, f"{setup}/sites", {"code": code, "name": f"{code} clinic"})
        assert added.status_code == 303
    again = _send(admin, f"{setup}/sites", {"code": "bos", "name": "Boston again"})
    assert again.status_code == 422 and "has a site BOS already" in again.text

    typo = _send(admin, f"{setup}/simulate", {"participants": "lots", "runs": "5", "seed": ""})
    assert typo.status_code == 422 and 'value="lots"' in typo.text
    assert "Enter a whole number of participants from 1 to 10,000" in typo.text
    figures = _send(admin, f"{setup}/simulate", {"participants": "60", "runs": "5", "seed": "7"})
    assert figures.status_code == 200, figures.text
    assert "Participants per arm, over the simulated trials" in figures.text
    for arm in ("listserv", "bulletin_board", "control"):
        assert f'<th scope="row">{arm}</th><td class="num">20.0</td>' in figures.text
    assert "Next allocation guessed" in figures.text
    assert (
        "BOS|diagnosis=bipolar" in figures.text
        or "BOS" in figures.text.split("within each stratum")[1]
    )
    again = _send(admin, f"{setup}/simulate", {"participants": "60", "runs": "5", "seed": "7"})
    assert _figures(again.text) == _figures(figures.text)  # the seed repeats them


def _figures(html: str) -> str:
    return html.split('id="figures"', 1)[1].split("<h2", 1)[0]


def test_activation_publishes_the_api_commitment_and_the_lock_reveals_the_secret(signed_in, api):
    admin = signed_in("admin")
    setup = _draft(admin, "pilot")
    assert _send(admin, f"{setup}/sites", {"code": "BOS", "name": "Boston"}).status_code == 303
    unchecked = _send(admin, f"{setup}/activate", {})
    assert unchecked.status_code == 422
    assert "Confirm that you have checked the design" in unchecked.text
    assert ">draft<" in unchecked.text

    activated = _send(admin, f"{setup}/activate", {"checked": "yes"})
    assert activated.status_code == 303
    page = admin.get(activated.headers["location"])
    headers = bearer(api.admin_token)
    study = api.client.get("/api/v1/studies/pilot", headers=headers).json()
    assert study["status"] == "enrolling" and re.fullmatch(r"[0-9a-f]{64}", study["commitment"])
    assert f'value="{study["commitment"]}"' in page.text
    assert "Lock the study" in page.text and "Activate the study" not in page.text

    unconfirmed = _send(admin, f"{setup}/lock", {})
    assert unconfirmed.status_code == 422
    assert api.client.get("/api/v1/studies/pilot", headers=headers).json()["status"] == "enrolling"
    locked = _send(admin, f"{setup}/lock", {"understood": "yes"})
    assert locked.status_code == 303
    page = admin.get(locked.headers["location"])
    study = api.client.get("/api/v1/studies/pilot", headers=headers).json()
    assert study["status"] == "locked" and study["secret"]
    assert (
        f'value="{study["secret"]}"' in page.text and f'value="{study["commitment"]}"' in page.text
    )
    assert "Add the site" not in page.text


# --- the audit trail -----------------------------------------------------------------------


def test_audit_filters_narrow_the_rows_and_the_chain_verifies(signed_in, db):
    admin = signed_in("admin")
    everything = admin.get("/console/admin/audit")
    assert (
        everything.status_code == 200
        and "<title>Audit trail — Trialdesk</title>" in everything.text
    )
    seqs = _audit_seqs(everything.text)
    assert seqs == sorted(seqs) and len(seqs) > 5
    assert "user.created" in everything.text and "site.created" in everything.text

    created = admin.get("/console/admin/audit?action=user.created")
    assert 0 < len(_audit_seqs(created.text)) < len(seqs)
    assert "site.created" not in created.text.split("<tbody>", 1)[1]
    by_study = admin.get(f"/console/admin/audit?study={STUDY}&action=site.created")
    rows = by_study.text.split("<tbody>", 1)[1]
    assert len(_audit_seqs(by_study.text)) == 2 and f"site {STUDY}:PHL" in rows
    by_entity = admin.get(f"/console/admin/audit?entity={STUDY}:PIT")
    assert len(_audit_seqs(by_entity.text)) == 1
    by_actor = admin.get(f"/console/admin/audit?actor={admin.email.upper()}")
    assert by_actor.status_code == 200 and "user.signed_in" in by_actor.text
    assert {a for a in re.findall(r"<td>([\w.@-]+@example.org)</td>", by_actor.text)} == {
        admin.email
    }
    later = admin.get(f"/console/admin/audit?after={seqs[4]}")
    assert _audit_seqs(later.text)[0] == seqs[5]
    assert admin.get("/console/admin/audit?action=nonsense").status_code == 422

    intact = admin.get("/console/admin/audit?verify=1")
    with db.session(write=False) as session:
        count = len(session.scalars(select(AuditRecord.seq)).all())
    assert f"The chain is intact ({count:,} records)." in intact.text

    with db.engine.begin() as connection:  # what the triggers forbid, done behind them
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql("ALTER TABLE audit_records DISABLE TRIGGER USER")
        else:
            connection.exec_driver_sql("DROP TRIGGER audit_records_no_update")
        connection.execute(update(AuditRecord).where(AuditRecord.seq == 3).values(actor="edited"))
    broken = admin.get("/console/admin/audit?verify=1")
    assert "The chain is broken" in broken.text and "Record 3:" in broken.text
    assert "intact" not in broken.text


def test_a_long_trail_goes_a_hundred_records_a_page(signed_in, db):
    admin = signed_in("admin")
    with db.begin() as session:
        user = auth.find_user(session, email=admin.email)
        assert user is not None
        for _ in range(120):  # one audit record each
            sign_in.issue_link(session, user=user, lifetime=timedelta(minutes=1), actor_label="t")
    first = admin.get("/console/admin/audit?action=user.sign_in_link_issued")
    seqs = _audit_seqs(first.text)
    assert len(seqs) == 100  # of 121
    page = admin.get("/console/admin/audit")
    assert len(_audit_seqs(page.text)) == 100
    following = re.search(r'href="/console/admin/audit\?(after=\d+)">Next page', page.text)
    assert following is not None
    second = admin.get(f"/console/admin/audit?{following.group(1)}")
    assert _audit_seqs(second.text)[0] == _audit_seqs(page.text)[-1] + 1
