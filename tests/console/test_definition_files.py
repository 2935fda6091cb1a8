"""One reader of study-definition files: the console's upload, `trialdesk studies create`
and the API (for what JSON can say) accept or refuse the same file alike."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.demo import demo_definition
from tests.console.conftest import ORIGIN, csrf_of
from tests.helpers import bearer
from tests.test_cli import trialdesk


def _definition(slug: str) -> dict[str, Any]:
    return demo_definition() | {"slug": slug}


def _nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


def _bomb() -> bytes:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    return "\n".join(lines).encode()


def _files(slug: str) -> dict[str, tuple[str, bytes, bool]]:
    """name: (file name, content, accepted), one slug per channel so each can create."""
    with_nul = _definition(slug) | {"title": "Peer\x00support"}
    too_deep = _definition(slug) | {"description": _nested(40)}
    return {
        "json": (f"{slug}.json", json.dumps(_definition(f"{slug}-j")).encode(), True),
        "yaml": (f"{slug}.yaml", yaml.safe_dump(_definition(f"{slug}-y")).encode(), True),
        "nul in JSON": (f"{slug}.json", json.dumps(with_nul).encode(), False),
        "too deep": (f"{slug}.json", json.dumps(too_deep).encode(), False),
        "alias bomb": (f"{slug}.yaml", _bomb(), False),
        "larger than 1 MB": (
            f"{slug}.json",
            json.dumps(_definition(slug)).encode() + b" " * (1024 * 1024),
            False,
        ),
    }


def _console(admin: Any, name: str, content: bytes) -> bool:
    page = admin.get("/console/admin/studies/new")
    sent = admin.client.post(
        "/console/admin/studies",
        data={"csrf_token": csrf_of(page.text)},
        files={"definition": (name, content, "application/octet-stream")},
        headers=ORIGIN,
    )
    assert sent.status_code in (303, 422), sent.text
    return sent.status_code == 303


def _cli(settings: Any, tmp_path: Path, name: str, content: bytes) -> bool:
    path = tmp_path / name
    path.write_bytes(content)
    result = trialdesk(settings, "studies", "create", str(path))
    assert result.returncode in (0, 1), result.stderr
    return result.returncode == 0


def _api(api: Any, name: str, content: bytes) -> bool | None:
    """The API takes JSON bodies: a YAML file is sent as the JSON of its document (when
    it has one that JSON can say); None when the API has nothing to compare."""
    if name.endswith(".json"):
        body = content
    elif any(isinstance(event, yaml.AliasEvent) for event in yaml.parse(content)):
        return None  # aliases: JSON has none to compare (expanded, more than any body)
    else:
        try:
            body = json.dumps(yaml.safe_load(content)).encode()
        except (yaml.YAMLError, UnicodeDecodeError):
            return None
    headers = bearer(api.admin_token) | {"Content-Type": "application/json"}
    sent = api.client.post("/api/v1/studies", content=body, headers=headers)
    assert sent.status_code in (201, 413, 422), sent.text
    return sent.status_code == 201


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_console_cli_and_api_accept_or_refuse_a_definition_file_alike(
    signed_in: Any, api: Any, settings: Any, tmp_path: Path
) -> None:
    admin = signed_in("admin")
    outcomes = {}
    for channel in ("console", "cli", "api"):
        for case, (name, content, _) in _files(f"doc-{channel}").items():
            if channel == "console":
                outcomes[case, channel] = _console(admin, name, content)
            elif channel == "cli":
                outcomes[case, channel] = _cli(settings, tmp_path, name, content)
            else:
                outcomes[case, channel] = _api(api, name, content)
    for case, (_, _, accepted) in _files("doc").items():
        got = {channel: outcomes[case, channel] for channel in ("console", "cli", "api")}
        expected = {channel: accepted for channel in got if got[channel] is not None}
        assert {k: v for k, v in got.items() if v is not None} == expected, case
