"""`/docs` and `/redoc` load everything from this server: no CDN, no font service."""

from __future__ import annotations

import re

import pytest

URL = re.compile(r"""(?:src|href|url)\s*[=:(]\s*['"]?([^'")\s>]+)""", re.IGNORECASE)
EXTERNAL = re.compile(r"(https?:)?//", re.IGNORECASE)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_api_documentation_is_served_without_a_cdn(client, page):
    html = client.get(page)
    assert html.status_code == 200
    assert html.headers["content-type"].startswith("text/html")
    assert not EXTERNAL.search(html.text), "an address of another host"
    assets = {u for u in URL.findall(html.text) if u.startswith("/static/docs/")}
    assert len(assets) >= 2  # the script and the stylesheet or icon
    for asset in assets:
        loaded = client.get(asset)
        assert loaded.status_code == 200, asset
        assert len(loaded.content) > 1000, asset
    # The document the page renders is this server's, and answers.
    assert "/openapi.json" in html.text
    assert client.get("/openapi.json").status_code == 200


def test_swagger_ui_does_not_ask_an_outside_validator(client):
    assert "validatorUrl" in client.get("/docs").text
    assert '"validatorUrl": null' in client.get("/docs").text
