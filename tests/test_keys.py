"""The server key: rings of keys and sealed values, key files, escrow, the recovery
procedure of docs/keys.md (through the real CLI), and rotation while a server runs."""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import stat
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from app import keyfile
from app.audit.models import AuditRecord
from app.cli import app as cli
from app.config import Settings
from app.db.engine import Database
from app.demo import load_demo
from app.keys import Keys, Use, WrongKey, fingerprint_of
from app.main import create_app
from tests import pg
from tests.console.conftest import ORIGIN, Browser, csrf_of, link_for
from tests.helpers import STUDY, Api, bearer, enrollment
from tests.live import running_servers

runner = CliRunner()
PASSPHRASE = "a long escrow passphrase, kept apart"
A = b"server-key-a-0123456789abcdef-0123456789abcdef"
B = b"server-key-b-0123456789abcdef-0123456789abcdef"
BASE = f"/api/v1/studies/{STUDY}"


# --- rings and sealed values -------------------------------------------------------------
def test_a_ring_seals_with_its_current_key_and_opens_with_any_key_it_holds():
    old = Keys(A)
    sealed_old = old.seal(Use.study_secret, b"secret", context="s")
    ring = Keys(B, older=[A])
    assert ring.fingerprint == fingerprint_of(B) and ring.fingerprints == [
        fingerprint_of(A),
        fingerprint_of(B),
    ]
    assert ring.open(Use.study_secret, sealed_old, context="s") == b"secret"
    sealed_new = ring.seal(Use.study_secret, b"secret", context="s")
    assert sealed_new[1:5] == bytes.fromhex(fingerprint_of(B)[:8])  # names its key
    with pytest.raises(WrongKey, match="does not hold"):
        old.open(Use.study_secret, sealed_new, context="s")
    with pytest.raises(WrongKey):
        ring.open(Use.study_secret, sealed_new, context="another")  # bound to its place
    with pytest.raises(WrongKey):
        ring.open(Use.blinding_key, sealed_new, context="s")  # and to its use
    tampered = bytearray(sealed_new)
    tampered[-1] ^= 1
    with pytest.raises(WrongKey):
        ring.open(Use.study_secret, bytes(tampered), context="s")


def test_values_sealed_before_rings_existed_still_open():
    keys = Keys(A)
    nonce = os.urandom(12)
    body = AESGCM(keys.derived(Use.idempotency)).encrypt(nonce, b"answer", b"idempotency\x00c")
    version_1 = b"\x01" + nonce + body
    assert keys.open(Use.idempotency, version_1, context="c") == b"answer"
    assert Keys(B, older=[A]).open(Use.idempotency, version_1, context="c") == b"answer"
    with pytest.raises(WrongKey):
        Keys(B).open(Use.idempotency, version_1, context="c")


def test_a_value_of_a_key_not_held_makes_the_ring_read_its_source_once():
    sealed = Keys(B).seal(Use.blinding_key, b"k", context="s")
    reads: list[int] = []

    def reload() -> list[bytes]:
        reads.append(1)
        return [A, B]

    keys = Keys(A, reload=reload)
    assert keys.open(Use.blinding_key, sealed, context="s") == b"k"
    assert keys.open(Use.blinding_key, sealed, context="s") == b"k"
    assert len(reads) == 1
    assert keys.fingerprint == fingerprint_of(A)  # the database, not the file, says which seals
    assert keys.use_current(fingerprint_of(B)) and keys.fingerprint == fingerprint_of(B)


def test_keyed_hashes_can_be_tried_with_every_key_of_a_ring():
    ring = Keys(B, older=[A])
    each = ring.derived_each(Use.idempotency)
    assert each == [Keys(B).derived(Use.idempotency), Keys(A).derived(Use.idempotency)]


def test_stable_keys_are_pinned_across_keys():
    keys = Keys(B)
    keys.pin({use: Keys(A).derived(use) for use in (Use.survey_link, Use.console)})
    assert keys.derived(Use.survey_link) == Keys(A).derived(Use.survey_link)
    assert keys.derived(Use.study_secret) == Keys(B).derived(Use.study_secret)


# --- key files and escrow ----------------------------------------------------------------
def test_the_key_file_is_a_private_ring_and_an_old_one_line_file_still_reads(tmp_path):
    path = tmp_path / "config" / "keys" / "x.key"
    keyfile.write(path, [A, B], note="database: /x.db")
    assert keyfile.read(path) == [A, B]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "config").stat().st_mode) == 0o700
    text = path.read_text()
    assert f"key {fingerprint_of(B)[:8]} {B.decode()}" in text and "/x.db" in text
    with pytest.raises(FileExistsError):
        keyfile.write(path, [B], replace=False)
    old = tmp_path / "old.db.key"
    old.write_text(A.decode() + "\n")
    assert keyfile.read(old) == [A]
    assert keyfile.read(tmp_path / "none.key") is None


def test_two_processes_creating_the_key_file_at_once_get_the_same_key(tmp_path):
    path = tmp_path / "keys" / "new.key"
    start = threading.Barrier(8)
    found: list[list[bytes]] = []

    def create() -> None:
        start.wait()
        found.append(keyfile.read_or_create(path))

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(found) == 8 and all(keys == found[0] for keys in found)


def test_an_escrow_opens_with_its_passphrase_only_and_names_its_key():
    content = keyfile.export_escrow([A, B], PASSPHRASE, n=2**14)
    document = json.loads(content)
    assert document["fingerprint"] == fingerprint_of(B)
    assert document["kdf"]["name"] == "scrypt" and document["kdf"]["n"] == 2**14
    assert A.decode() not in content.decode() and B.decode() not in content.decode()
    assert keyfile.import_escrow(content, PASSPHRASE) == [A, B]
    with pytest.raises(keyfile.KeyFileError, match="wrong passphrase"):
        keyfile.import_escrow(content, PASSPHRASE + "!")
    altered = json.dumps({**document, "fingerprint": "0" * 64}).encode()
    with pytest.raises(keyfile.KeyFileError, match="wrong passphrase"):  # the header is sealed
        keyfile.import_escrow(altered, PASSPHRASE)
    greedy = json.dumps({**document, "kdf": {**document["kdf"], "n": 2**30}}).encode()
    with pytest.raises(keyfile.KeyFileError, match="out of range"):
        keyfile.import_escrow(greedy, PASSPHRASE)
    for junk in (b"", b"[]", b'{"format": "trialdesk-key-escrow"}', b"\xff" * 10):
        with pytest.raises(keyfile.KeyFileError):
            keyfile.import_escrow(junk, PASSPHRASE)
    with pytest.raises(keyfile.KeyFileError, match="12 characters"):
        keyfile.export_escrow([A], "short")
    composed = keyfile.export_escrow([A], "caf\u00e9 cr\u00e8me br\u00fbl\u00e9e", n=2**14)
    assert keyfile.import_escrow(composed, "cafe\u0301 cre\u0300me bru\u0302le\u0301e") == [A]


# --- the recovery procedure of docs/keys.md ---------------------------------------------
def _env(settings: Settings) -> dict[str, str]:
    env = {"TRIALDESK_DATABASE_URL": settings.database_url, "TRIALDESK_SCHEDULER": "false"}
    if settings.secret_key is not None:
        env["TRIALDESK_SECRET_KEY"] = settings.secret_key.get_secret_value()
    if settings.key_file is not None:
        env["TRIALDESK_KEY_FILE"] = str(settings.key_file)
    return env


def _cli(settings: Settings, *args: str, input: str | None = None) -> tuple[int, str]:
    done = runner.invoke(cli, list(args), env=_env(settings), input=input)
    return done.exit_code, done.output


def _people(api: Api, n: int) -> list[str]:
    coordinator = api.user("coordinator", "PHL", "PIT")
    codes = []
    for i in range(n):
        code = api.enroll(coordinator, site=("PHL", "PIT")[i % 2], name=f"Person Number{i}")
        assert api.randomize(coordinator, code).status_code == 200
        codes.append(code)
    return codes


def test_the_recovery_procedure_restores_a_backup_with_the_escrowed_key(settings, tmp_path):
    # The first machine: some data, a backup, the key exported for escrow.
    db = Database(settings)
    with db.begin() as session:
        token = load_demo(session).token
    with TestClient(create_app(settings)) as client:
        api = Api(client, admin_token=token)
        codes = _people(api, 4)
    db.dispose()
    archive, escrow = tmp_path / "backup.tar", tmp_path / "escrow.json"
    assert _cli(settings, "backup", str(archive))[0] == 0
    typed = f"{PASSPHRASE}\n{PASSPHRASE}\n"  # asked twice on a terminal
    code, output = _cli(settings, "keys", "export", str(escrow), input=typed)
    assert code == 0, output
    assert stat.S_IMODE(escrow.stat().st_mode) == 0o600
    assert json.loads(escrow.read_text())["fingerprint"] == Keys(settings.server_key).fingerprint

    # Lost: the database and its key. The new machine has an empty database of its own.
    target = _lose_everything(settings, tmp_path)
    code, output = _cli(target, "restore", str(archive))
    assert code == 1 and "keys import" in output  # the backup alone is not enough
    code, output = _cli(target, "keys", "import", str(escrow), input="not the passphrase\n")
    assert code == 1 and "wrong passphrase" in output
    assert target.key_file_path is not None and not target.key_file_path.exists()

    code, output = _cli(target, "keys", "import", str(escrow), input=PASSPHRASE + "\n")
    assert code == 0, output
    code, output = _cli(target, "restore", str(archive))
    assert code == 0, output
    code, output = _cli(target, "verify", "--study", STUDY)
    assert code == 0, output
    with TestClient(create_app(Settings(**_fields(target)))) as client:
        listed = client.get(f"{BASE}/participants?limit=100", headers=bearer(token))
        assert listed.status_code == 200, listed.text
        assert sorted(p["code"] for p in listed.json()["items"]) == sorted(codes)
        shown = client.get(f"{BASE}/participants/{codes[0]}", headers=bearer(token)).json()
        assert shown["contact"]["name"] == "Person Number0"
    if target.sqlite_path is None:
        pg.drop_database(target.database_url.rsplit("/", 1)[1])


def _lose_everything(settings: Settings, tmp_path: Path) -> Settings:
    """Delete the database and its key; the settings of an empty database elsewhere,
    whose key file (TRIALDESK_KEY_FILE on the new machine) does not exist yet."""
    new_key_file = tmp_path / "new-machine" / "keys" / "server.key"
    if settings.sqlite_path is not None:
        key_file = settings.key_file_path
        assert key_file is not None
        key_file.unlink()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{settings.sqlite_path}{suffix}").unlink(missing_ok=True)
        url = f"sqlite:///{tmp_path / 'new-machine' / 'data' / 'trialdesk.db'}"
        return Settings(database_url=url, key_file=new_key_file, scheduler=False)
    pg.drop_database(settings.database_url.rsplit("/", 1)[1])
    name = pg.create_database("trialdesk_recovered")
    return Settings(database_url=pg.database_url(name), key_file=new_key_file, scheduler=False)


def _fields(settings: Settings) -> dict[str, object]:
    return {
        "database_url": settings.database_url,
        "secret_key": settings.secret_key,
        "key_file": settings.key_file,
        "base_url": "http://testserver",
        "scheduler": False,
    }


def test_keys_where_names_the_key_file_and_export_refuses_to_overwrite(settings, tmp_path):
    code, output = _cli(settings, "keys", "where")
    assert code == 0
    if settings.secret_key is None:
        assert output.strip().splitlines()[-1] == str(settings.key_file_path)
    else:
        assert "TRIALDESK_SECRET_KEY" in output
    taken = tmp_path / "taken.json"
    taken.write_text("x")
    phrase = tmp_path / "phrase"
    phrase.write_text(PASSPHRASE)
    code, output = _cli(settings, "keys", "export", str(taken), "--passphrase-file", str(phrase))
    assert code == 1 and taken.read_text() == "x"


# --- rotation ----------------------------------------------------------------------------
@pytest.fixture
def keyed(database_url: str, tmp_path: Path) -> Settings:
    """Settings whose keys are in a key file, on both backends (SQLite: the default one)."""
    key_file = None if database_url.startswith("sqlite") else tmp_path / "keys" / "server.key"
    return Settings(
        database_url=database_url, key_file=key_file, base_url="http://testserver", scheduler=False
    )


@pytest.fixture
def served(keyed: Settings) -> Iterator[tuple[Api, Database]]:
    """A running app (it is never restarted during the test) with the demo study."""
    db = Database(keyed)
    with db.begin() as session:
        token = load_demo(session).token
    with TestClient(create_app(keyed)) as client:
        yield Api(client, admin_token=token), db
    db.dispose()


def _groups(api: Api, statistician: str) -> dict[str, str]:
    got = api.client.get(
        f"{BASE}/exports/blinded",
        params={"format": "csv", "shape": "wide"},
        headers=bearer(statistician),
    )
    assert got.status_code == 200, got.text
    return {r["pseudonym"]: r["group"] for r in csv.DictReader(io.StringIO(got.text))}


def _sealed_values(db: Database) -> list[tuple[Use, str, bytes]]:
    with db.engine.connect() as connection:
        studies = connection.execute(sa.text("SELECT slug, secret FROM studies")).all()
        blinding = connection.execute(
            sa.text(
                "SELECT s.slug, b.sealed FROM blinding_keys b JOIN studies s ON s.id = b.study_id"
            )
        ).all()
        answers = connection.execute(
            sa.text(
                "SELECT scope, key, response_body FROM idempotency_keys "
                "WHERE response_body IS NOT NULL"
            )
        ).all()
    return [
        *((Use.study_secret, slug, bytes(v)) for slug, v in studies),
        *((Use.blinding_key, slug, bytes(v)) for slug, v in blinding),
        *((Use.idempotency, f"{s}:{k}", base64.b64decode(v)) for s, k, v in answers),
    ]


def test_rotation_reseals_everything_while_the_server_keeps_serving(keyed, served):
    api, db = served
    coordinator = api.user("coordinator", "PHL", "PIT")
    statistician = api.user("statistician")
    codes = _people(api, 3)
    waiting = api.enroll(coordinator, name="Pat Waiting")  # baseline not done: link open
    link = api.survey_line(waiting)["link"]
    still_waiting = api.enroll(coordinator, name="Pat Still")
    still_link = api.survey_line(still_waiting)["link"]
    headers = {**bearer(coordinator), "Idempotency-Key": "enroll-robin"}
    first = api.client.post(f"{BASE}/participants", json=enrollment(name="Robin"), headers=headers)
    assert first.status_code == 201
    groups = _groups(api, statistician)
    browser = _signed_in_browser(api, db)
    form_page = browser.get(f"/console/studies/{STUDY}/participants/{codes[0]}")
    assert form_page.status_code == 200
    unused_link = link_for(db, browser.email)
    old_keys = keyed.server_keys
    before = _sealed_values(db)
    assert before and all(Keys(old_keys[-1]).open(u, v, context=c) for u, c, v in before)

    code, output = _cli(keyed, "keys", "rotate")
    assert code == 0, output

    # The same server, not restarted: it seals with the new key from its next write...
    later = api.enroll(coordinator, name="After Rotation")
    assert api.randomize(coordinator, later).status_code == 200  # the study secret opens
    # ...and every sealed thing reads back.
    ring = keyfile.read(Settings(**_fields(keyed)).key_file_path)  # type: ignore[arg-type]
    assert ring is not None and len(ring) == 1 and ring != old_keys[-1:]
    new = Keys(ring[0])
    after = _sealed_values(db)
    assert len(after) == len(before)  # enrolling without an Idempotency-Key stores none
    for use, context, value in after:
        assert new.open(use, value, context=context)
        with pytest.raises(WrongKey):
            Keys(old_keys[-1]).open(use, value, context=context)
    replay = api.client.post(f"{BASE}/participants", json=enrollment(name="Robin"), headers=headers)
    assert replay.status_code == 201 and replay.json() == first.json()
    assert groups.items() < _groups(api, statistician).items()  # the blinding key is the same
    assert api.survey_line(waiting)["link"] == link  # the participant page shows the same link
    assert api.client.get(link.removeprefix("http://testserver")).status_code == 200
    api.complete_survey(waiting)  # the link emailed before the rotation works to the end
    assert api.randomize(coordinator, waiting).status_code == 200
    assert browser.get("/console").status_code == 200  # the console session goes on
    signed_out = browser.client.post(  # with a form loaded before the rotation
        "/console/sign-out", data={"csrf_token": csrf_of(form_page.text)}, headers=ORIGIN
    )
    assert signed_out.status_code == 303, signed_out.text
    assert browser.open_link(unused_link).status_code == 303  # a sign-in link sent before
    with db.engine.connect() as connection:
        secret = connection.execute(sa.text("SELECT secret FROM studies")).scalar_one()
        recorded = connection.execute(sa.text("SELECT fingerprint FROM server_key")).scalar_one()
    assert bytes(secret)[1:5] == bytes.fromhex(new.fingerprint[:8]) and recorded == new.fingerprint
    with db.session(write=False) as session:
        changes = (
            session.scalars(sa.select(AuditRecord).where(AuditRecord.action == "keys.rotated"))
            .one()
            .changes
        )  # sealed at rest: read through the model, as the API does
    assert changes["fingerprint"] == {
        "old": fingerprint_of(old_keys[-1]),
        "new": new.fingerprint,
    }
    assert ring[0].decode() not in json.dumps(changes) and old_keys[-1].decode() not in str(changes)
    code, output = _cli(keyed, "verify", "--study", STUDY)
    assert code == 0, output

    # A restart reads the new key alone, and still shows the links made before.
    with TestClient(create_app(Settings(**_fields(keyed)))) as client:
        restarted = Api(client, admin_token=api.admin_token)
        shown = client.get(f"{BASE}/participants/{later}", headers=bearer(api.admin_token))
        assert shown.status_code == 200 and shown.json()["contact"]["name"] == "After Rotation"
        assert restarted.survey_line(still_waiting)["link"] == still_link
        assert client.get(still_link.removeprefix("http://testserver")).status_code == 200


def _signed_in_browser(api: Api, db: Database) -> Browser:
    email = "rota@example.org"
    api.user("coordinator", "PHL", email=email)
    browser = Browser(api.client, email)  # type: ignore[arg-type]
    assert browser.open_link(link_for(db, email)).status_code == 303
    return browser


def test_rotation_with_the_key_in_the_environment_takes_the_new_key_given(settings, tmp_path):
    env_settings = Settings(
        database_url=settings.database_url,
        secret_key="the-old-key-in-the-environment-0123456789",
        scheduler=False,
        base_url="http://testserver",
    )
    db = Database(env_settings)
    with db.begin() as session:
        token = load_demo(session).token
    db.dispose()
    with TestClient(create_app(env_settings)) as client:
        codes = _people(Api(client, admin_token=token), 2)
    code, output = _cli(env_settings, "keys", "rotate")
    assert code == 1 and "--new-key-file" in output
    new_key = tmp_path / "new.key"
    new_key.write_text("the-new-key-for-the-environment-0123456789\n")
    code, output = _cli(env_settings, "keys", "rotate", "--new-key-file", str(new_key))
    assert code == 0, output
    assert "restart the servers" in output

    with pytest.raises(Exception, match="not the one"), TestClient(create_app(env_settings)):
        pass  # the old key no longer starts it
    swapped = Settings(**{**_fields(env_settings), "secret_key": new_key.read_text().strip()})
    with TestClient(create_app(swapped)) as client:
        shown = client.get(f"{BASE}/participants/{codes[1]}", headers=bearer(token))
        assert shown.status_code == 200 and shown.json()["contact"]["name"] == "Person Number1"
    assert _cli(swapped, "verify", "--study", STUDY)[0] == 0


@pytest.mark.slow
def test_a_live_server_process_keeps_answering_while_keys_rotate(keyed, tmp_path):
    db = Database(keyed)
    with db.begin() as session:
        token = load_demo(session).token
    db.dispose()
    env = _env(keyed) | {"TRIALDESK_KEY_FILE": str(keyed.key_file_path)}
    failures: list[str] = []
    halfway, stop = threading.Event(), threading.Event()

    def keep_enrolling(url: str) -> None:
        with httpx.Client(base_url=url, timeout=60, headers=bearer(token)) as client:
            n = 0
            while not stop.is_set() or n < 10:
                n += 1
                headers = {"Idempotency-Key": f"live-{n}"}
                made = client.post(f"{BASE}/participants", json=enrollment(), headers=headers)
                again = client.post(f"{BASE}/participants", json=enrollment(), headers=headers)
                if made.status_code != 201 or again.json() != made.json():
                    failures.append(f"{made.status_code} {made.text[:200]}")
                if n == 5:
                    halfway.set()

    with running_servers(env) as (url,):
        writer = threading.Thread(target=keep_enrolling, args=(url,))
        writer.start()
        assert halfway.wait(timeout=120)
        code, output = _cli(keyed, "keys", "rotate")
        stop.set()
        writer.join(timeout=300)
        with httpx.Client(base_url=url, timeout=60, headers=bearer(token)) as client:
            later = client.post(f"{BASE}/participants", json=enrollment())
    assert code == 0, output
    assert failures == []
    assert later.status_code == 201, later.text
    ring = keyfile.read(Settings(**_fields(keyed)).key_file_path)  # type: ignore[arg-type]
    assert ring is not None and len(ring) == 1
    db = Database(Settings(**_fields(keyed)))
    sealed = _sealed_values(db)
    db.dispose()
    assert len(sealed) >= 12  # the answers of the Idempotency-Keys, made before and during
    for use, context, value in sealed:  # nothing was sealed with the retired key meanwhile
        assert Keys(ring[0]).open(use, value, context=context)


def test_a_rotation_stopped_half_way_is_finished_by_running_it_again(keyed, served, monkeypatch):
    from app import rotation

    api, db = served
    headers = {**bearer(api.admin_token), "Idempotency-Key": "before-the-crash"}
    first = api.client.post(f"{BASE}/participants", json=enrollment(), headers=headers)
    assert first.status_code == 201

    def crash(session: object, rekeying: object) -> int:
        raise RuntimeError("the machine went down")

    steps = list(rotation.STEPS)
    monkeypatch.setattr(rotation, "STEPS", [steps[0], ("crash", crash), *steps[1:]])
    with pytest.raises(RuntimeError, match="went down"):
        rotation.rotate(Settings(**_fields(keyed)))
    path = Settings(**_fields(keyed)).key_file_path
    assert path is not None
    halfway = keyfile.read(path)
    assert halfway is not None and len(halfway) == 2  # both keys, until the rotation ends
    # Meanwhile the server reads values under either key, and seals under the new one.
    replay = api.client.post(f"{BASE}/participants", json=enrollment(), headers=headers)
    assert replay.status_code == 201 and replay.json() == first.json()
    assert api.randomize(api.admin_token, api.enroll(api.admin_token)).status_code == 200

    monkeypatch.setattr(rotation, "STEPS", steps)
    code, output = _cli(keyed, "keys", "rotate")
    assert code == 0, output
    final = keyfile.read(path)
    assert final is not None and len(final) == 1 and final[0] not in halfway
    for use, context, value in _sealed_values(db):
        assert Keys(final[0]).open(use, value, context=context)
    replay = api.client.post(f"{BASE}/participants", json=enrollment(), headers=headers)
    assert replay.status_code == 201 and replay.json() == first.json()
    assert _cli(keyed, "verify", "--study", STUDY)[0] == 0


def test_import_refuses_when_the_key_is_in_the_environment(settings, tmp_path):
    escrow = tmp_path / "escrow.json"
    escrow.write_bytes(keyfile.export_escrow([A], PASSPHRASE, n=2**14))
    phrase = tmp_path / "phrase"
    phrase.write_text(PASSPHRASE)
    in_env = Settings(database_url=settings.database_url, secret_key=A.decode())
    code, output = _cli(in_env, "keys", "import", str(escrow), "--passphrase-file", str(phrase))
    assert code == 1 and "TRIALDESK_SECRET_KEY" in output


def test_two_rotations_of_one_key_file_never_run_at_once(keyed, served):
    import fcntl

    from app import rotation

    path = Settings(**_fields(keyed)).key_file_path
    assert path is not None
    with open(path.with_name(path.name + ".lock"), "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as a rotation under way holds it
        with pytest.raises(rotation.RotationError, match="another rotation"):
            rotation.rotate(Settings(**_fields(keyed)))
    assert keyfile.read(path) == keyed.server_keys  # untouched
    assert rotation.rotate(Settings(**_fields(keyed))).key_file == path


@pytest.mark.parametrize("failures", [1, 2])
def test_a_rotation_whose_anchors_could_not_be_re_signed_keeps_the_old_key(
    keyed, served, monkeypatch, failures
):
    # The trail's step re-signs the anchors once it commits. If that write fails, the
    # rotation tries once more; if that fails too, retiring the old key would leave
    # verify failing for good, so the old key stays in the key file.
    from app import rotation
    from app.audit import anchors

    api, _ = served
    assert api.randomize(api.admin_token, api.enroll(api.admin_token)).status_code == 200
    left = {"failures": failures}
    replace = anchors.replace

    def disk_full_for_a_while(*args: Any, **kwargs: Any) -> None:
        if left["failures"] > 0:
            left["failures"] -= 1
            raise OSError(28, "No space left on device")
        replace(*args, **kwargs)

    monkeypatch.setattr(anchors, "replace", disk_full_for_a_while)
    path = Settings(**_fields(keyed)).key_file_path
    assert path is not None
    if failures == 1:
        rotation.rotate(Settings(**_fields(keyed)))
        final = keyfile.read(path)
        assert final is not None and len(final) == 1
        code, output = _cli(keyed, "verify", "--study", STUDY)
        assert code == 0, output
        return
    with pytest.raises(rotation.RotationError, match="old key stays"):
        rotation.rotate(Settings(**_fields(keyed)))
    kept = keyfile.read(path)
    assert kept is not None and len(kept) == 2  # nothing retired


@pytest.mark.parametrize("backend", ["postgresql"])  # row locks: SQLite has one writer
def test_a_change_made_while_the_research_data_is_re_sealed_is_never_overwritten(keyed, served):
    # The rotation reads a batch of rows and writes them back sealed under the new key;
    # a withdrawal committed in between must survive (the batch is read under a row
    # lock, so the writer waits for the batch's transaction instead).
    import time

    from app import rotation
    from app.participants.models import Participant

    api, db = served
    codes = _people(api, 2)
    writer_done = threading.Event()

    def withdraw_meanwhile() -> None:
        with db.begin() as session:
            person = session.scalars(
                sa.select(Participant).where(Participant.code == codes[0])
            ).one()
            person.withdrawal_reason = "WRITTEN DURING ROTATION"
        writer_done.set()

    writer = threading.Thread(target=withdraw_meanwhile)

    def in_the_batch(conn, cursor, statement, *args: object) -> None:  # type: ignore[no-untyped-def]
        if writer.is_alive() or writer_done.is_set():
            return
        if statement.startswith("SELECT participants.id, participants.withdrawal_reason"):
            writer.start()
            # Until the writer is done, or waits on the batch's row lock (bounded).
            deadline = time.monotonic() + 20
            with db.engine.connect() as probe:
                while time.monotonic() < deadline and not writer_done.is_set():
                    waiting = probe.execute(
                        sa.text(
                            "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                            "current_database() AND wait_event_type = 'Lock'"
                        )
                    ).scalar_one()
                    if waiting:
                        break
                    writer_done.wait(0.02)

    sa.event.listen(db.engine.__class__, "after_cursor_execute", in_the_batch)
    try:
        rotation.rotate(Settings(**_fields(keyed)))
    finally:
        sa.event.remove(db.engine.__class__, "after_cursor_execute", in_the_batch)
    writer.join(timeout=60)
    assert writer_done.is_set()
    with db.session(write=False) as session:
        person = session.scalars(sa.select(Participant).where(Participant.code == codes[0])).one()
        assert person.withdrawal_reason == "WRITTEN DURING ROTATION"


def test_engagement_reads_back_the_same_after_a_rotation(keyed, served):
    # Events name their participant by a keyed hash under the server key (SPEC 6a): the
    # rotation rebuilds those hashes, or each participant's use would read as none.
    api, db = served
    codes = _people(api, 2)
    now = datetime.now(UTC)
    rows = [
        json.dumps(
            {
                "event_id": f"use-{i}",
                "participant": codes[i % 2],
                "at": (now + timedelta(minutes=i + 1)).isoformat(),
                "kind": ("post", "login", "reply")[i % 3],
            }
        )
        for i in range(5)
    ]
    loaded = api.client.post(
        f"{BASE}/engagement",
        content="\n".join(rows),
        headers={**bearer(api.admin_token), "content-type": "application/x-ndjson"},
    )
    assert loaded.status_code == 200 and loaded.json()["accepted"] == 5, loaded.text

    def summary() -> list[dict[str, Any]]:
        got = api.client.get(f"{BASE}/engagement/summary", headers=bearer(api.admin_token))
        assert got.status_code == 200, got.text
        return got.json()["items"]

    def stored() -> set[str]:
        with db.engine.connect() as connection:
            query = sa.text("SELECT participant_key FROM engagement_events")
            return set(connection.execute(query).scalars())

    before, keys_before = summary(), stored()
    assert sum(p["events"] for p in before) == 5 and len(keys_before) == 2
    code, output = _cli(keyed, "keys", "rotate")
    assert code == 0, output
    assert len(stored()) == 2 and not stored() & keys_before  # rebuilt under the new key
    assert summary() == before  # the same server, not restarted
    with TestClient(create_app(Settings(**_fields(keyed)))) as client:  # and a restarted one
        got = client.get(f"{BASE}/engagement/summary", headers=bearer(api.admin_token))
        assert got.json()["items"] == before
