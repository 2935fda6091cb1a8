"""Every file the console hands out: never kept by a cache (`no-store`), and every CSV
safe to open in a spreadsheet; the unblinded export wants a reason of 10 characters."""

from __future__ import annotations

import io
import zipfile

from fastapi.responses import HTMLResponse

from app.console import admin as console_admin
from app.console import router as console
from app.console import signin as console_signin
from app.exports.downloads import REASON_MIN_LENGTH
from tests.exports.test_spreadsheet_safe import (
    STUDY,
    assert_codebook_says_so,
    assert_jobs_escaped,
    assert_package_safe,
    assert_spreadsheet_safe,
    load_csv_study,
)
from tests.helpers import bearer

S = f"/console/studies/{STUDY}"
REASON = "DMC interim review"


def _is_download(route) -> bool:  # type: ignore[no-untyped-def]
    """A console route answering something else than a page."""
    if not route.path.startswith("/console") or not hasattr(route, "response_class"):
        return False
    return getattr(route.response_class, "value", route.response_class) is not HTMLResponse


def test_every_console_download_is_no_store_and_every_csv_spreadsheet_safe(api, signed_in):
    load_csv_study(api)
    statistician = signed_in("statistician", study=STUDY)
    unblinded = signed_in("unblinded_statistician", study=STUDY)
    coordinator = signed_in("coordinator", "PHL", study=STUDY)
    fetched: dict[str, object] = {}

    def download(response, path: str, *, attachment: bool = True):  # type: ignore[no-untyped-def]
        assert response.status_code == 200, (path, response.text[:500])
        assert response.headers["cache-control"] == "no-store", path
        if attachment:
            assert response.headers["content-disposition"].startswith("attachment;"), path
        fetched[path] = response
        return response

    for shape in ("long", "wide"):
        for fmt in ("csv", "json"):
            path = f"{S}/exports/blinded?format={fmt}&shape={shape}"
            got = download(statistician.get(path), path)
            if fmt == "csv":
                assert_jobs_escaped(got.text)
        path = f"{S}/exports/codebook?shape={shape}"
        assert_codebook_says_so(download(statistician.get(path), path).text)
        for fmt in ("csv", "json"):
            form = {"reason": REASON, "format": fmt, "shape": shape}
            got = unblinded.post(f"{S}/exports/unblinded", form, csrf_from=f"{S}/exports")
            download(got, f"{S}/exports/unblinded {fmt} {shape}")
            if fmt == "csv":
                assert_jobs_escaped(got.text)
    package = download(statistician.get(f"{S}/exports/package"), f"{S}/exports/package")
    assert_package_safe(zipfile.ZipFile(io.BytesIO(package.content)).read)
    worklist = download(coordinator.get(f"{S}/worklist?format=csv"), f"{S}/worklist")
    assert_spreadsheet_safe(worklist.text)
    consort = f"{S}/reports/consort.svg"
    download(statistician.get(consort), consort, attachment=False)
    dsmb = f"{S}/reports/dsmb.pdf?part=open"
    assert download(statistician.get(dsmb), dsmb).content.startswith(b"%PDF-")

    # Every console route that answers something else than a page was fetched above.
    routes = [*console.router.routes, *console_admin.router.routes, *console_signin.router.routes]
    downloads = {r.path for r in routes if _is_download(r)}
    covered = {p.split("?")[0].split(" ")[0].replace(STUDY, "{slug}") for p in fetched}
    assert downloads <= covered, downloads - covered


def test_console_pages_are_no_store_too(api, signed_in):
    load_csv_study(api)
    statistician = signed_in("statistician", study=STUDY)
    for path in ("/console", f"{S}/exports", f"{S}/reports"):
        page = statistician.get(path)
        assert page.status_code == 200, path
        assert page.headers["cache-control"] == "no-store", path


def test_the_unblinded_export_wants_a_reason_of_ten_characters(api, signed_in):
    load_csv_study(api)
    unblinded = signed_in("unblinded_statistician", study=STUDY)
    short = "x" * (REASON_MIN_LENGTH - 1)
    # What a reader cannot see (zero-width and control characters, combining marks) or
    # that says nothing (no letter at all) is no reason either.
    unseen = ("\u200b" * 11, "\u0301" * 11, "\ufeff" * 10, "\x01" * 11, "." * 11, "1" * 12)
    for reason in ("", "   ", short, f"  {short}  ", *unseen):
        refused = unblinded.post(
            f"{S}/exports/unblinded", {"reason": reason, "format": "csv"}, csrf_from=f"{S}/exports"
        )
        assert refused.status_code == 422, reason
        assert "at least 10 visible characters" in refused.text
        assert 'id="reason-error"' in refused.text  # the field's own error
        api_refused = api.client.get(
            f"/api/v1/studies/{STUDY}/exports/unblinded",
            params={"reason": reason},
            headers=bearer(api.admin_token),
        )
        assert api_refused.status_code == 422, reason
        assert [e["loc"][-1] for e in api_refused.json()["errors"]] == ["reason"]
    ten = "x" * REASON_MIN_LENGTH
    accepted = unblinded.post(
        f"{S}/exports/unblinded", {"reason": ten, "format": "csv"}, csrf_from=f"{S}/exports"
    )
    assert accepted.status_code == 200
    api_accepted = api.client.get(
        f"/api/v1/studies/{STUDY}/exports/unblinded",
        params={"reason": ten},
        headers=bearer(api.admin_token),
    )
    assert api_accepted.status_code == 200
