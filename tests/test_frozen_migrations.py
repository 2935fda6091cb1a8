"""Revisions never change: they import no application code, and the frozen copies they
run (migrations/frozen/) give the same answers as the application did when the
revisions were written.

The expected values below were computed once, from app/keys.py and
app/studies/pseudonyms.py at commit 2c25631 (the code the revisions of 2026-11-30
imported), and are never recomputed: if a frozen copy's output moves, these fail.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from app.config import Settings
from app.db import schema
from app.db.engine import make_engine
from app.db.schema import alembic_config, migrations_folder
from tests import pg
from trialdesk_migrations.frozen import server_key as frozen_server_key
from trialdesk_migrations.frozen.db_20261125 import UTCDateTime, utcnow
from trialdesk_migrations.frozen.keys_20261130 import Keys, Use, WrongKey
from trialdesk_migrations.frozen.pseudonyms_20261130 import pseudonym

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"

SERVER_KEY = b"trialdesk known-answer server key 0123456789"
FINGERPRINT = "8deb76f687ea6348c08b4d12d002c052c96e20a21a61e7eeb20d8dc42acff1d6"
DERIVED = {
    Use.study_secret: "a3a11217699e3b50775c559e0f19421d9fc53469845c754a1a10dcc6b41ba06d",
    Use.blinding_key: "896635dabf897758e290b244858ad268b14f8eda4b98dab0c755297ba383d573",
    Use.idempotency: "7e76c743dcda6b6c6e7d14d233b42c4444100c81657eda6aeec70fc5be818299",
    Use.survey_link: "91bcc8541f5b7b5767e3273914aa9a25816d7998a658e6744c7e609f7f0c4e68",
    Use.fingerprint: "ef05c42c2e4bcdf6df0908910f49cd246bf0dfac1a4b7bc01544fd903f150f80",
    Use.console: "c5e8861a492abf6351a004daa61376334a2cfb8025580a170cc8244e7eb9e354",
}
CONTEXT = "peer-support"
NONCE = bytes(range(12))
SECRET = bytes(range(32))
BLINDING_KEY = bytes(range(32, 64))
# Sealed by app/keys.py at 2c25631 with NONCE (os.urandom held fixed for the computation).
SEALED_SECRET_FIXED_NONCE = bytes.fromhex(
    "01000102030405060708090a0bc2e63276c73f5033dafad259c705aee7fb928a2d42d0b8910c75376e664426"
    "119030acd5378237795e78b7daf1ac747d"
)
SEALED_BLINDING_KEY_FIXED_NONCE = bytes.fromhex(
    "01000102030405060708090a0b2c14e0b7b50dea3b6ff6cc8f8b7912db8461968684b4e598e26881da1edc4a"
    "de1e0c1f63fdc20b950eb5d8c43ed4c875"
)
# Sealed by app/keys.py at 2c25631 as the application sealed then: a random nonce.
SEALED_BY_THE_APP = {
    (Use.study_secret, b"S" * 32): bytes.fromhex(
        "0162268008240731f46edb5cccf28a6563c9d77adb3030662f2766a5446974ec377737028368f1fb4304"
        "cc3b6bfcd1ec1ea711eba4ac7417fa7cc81b34"
    ),
    (Use.blinding_key, b"B" * 32): bytes.fromhex(
        "01a31b3c22254077d9f6f1342dbf25a16eb17ea5ed16ff4465cc20a96537fe31eb0442d100c92c4d37ff"
        "44f0b767afcd725a5d19768189684caca53930"
    ),
}
# pseudonym(BLINDING_KEY, code) by app/studies/pseudonyms.py at 2c25631.
PSEUDONYMS = {
    "PS-PHL-0001": "PHW5VEMJC64ID",
    "PS-BOS-0042": "P46DG2GM3KE3M",
    "Ünïcødé-7": "PC4XBRC27XSW3",
}


# --- no revision imports the application ---------------------------------------------


def _imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
        ):
            names.update(
                arg.value
                for arg in node.args
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str)
            )
    return names


def _frozen_files() -> list[Path]:
    files = sorted([*(MIGRATIONS / "versions").glob("*.py"), *(MIGRATIONS / "frozen").glob("*.py")])
    assert len(files) > 10, f"revisions not found in {MIGRATIONS}"
    return files


def test_the_import_finder_sees_every_kind_of_import(tmp_path):
    path = tmp_path / "revision.py"
    path.write_text(
        "import app.db.base\n"
        "def upgrade():\n"
        "    from app.keys import Keys\n"
        "    importlib.import_module('app.config')\n"
    )
    assert _imported_modules(path) == {"app.db.base", "app.keys", "app.config"}


@pytest.mark.parametrize("path", _frozen_files(), ids=lambda path: path.name)
def test_no_revision_and_no_frozen_copy_imports_the_application(path):
    imported = _imported_modules(path)
    application = sorted(name for name in imported if name == "app" or name.startswith("app."))
    assert not application, (
        f"{path.name} imports {application}: copy what it needs into migrations/frozen/ "
        "(a new module with today's date) and import that"
    )


def test_revisions_import_frozen_code_only_from_the_frozen_package():
    for path in sorted((MIGRATIONS / "versions").glob("*.py")):
        ours = {name for name in _imported_modules(path) if name.startswith("trialdesk_")}
        assert all(name.startswith("trialdesk_migrations.frozen.") for name in ours), path.name


def test_the_installed_migrations_are_this_folder():
    assert migrations_folder().resolve() == MIGRATIONS
    assert frozen_server_key.SERVER_KEY == schema.SERVER_KEY


# --- known answers -----------------------------------------------------------------


def test_key_derivation_and_fingerprint_give_the_known_answers():
    keys = Keys(SERVER_KEY)
    assert keys.fingerprint == FINGERPRINT
    assert {use: keys.derived(use).hex() for use in Use} == DERIVED


def test_sealing_with_a_known_nonce_gives_the_known_answers():
    keys = Keys(SERVER_KEY)
    assert keys.seal(Use.study_secret, SECRET, context=CONTEXT, nonce=NONCE) == (
        SEALED_SECRET_FIXED_NONCE
    )
    assert keys.seal(Use.blinding_key, BLINDING_KEY, context=CONTEXT, nonce=NONCE) == (
        SEALED_BLINDING_KEY_FIXED_NONCE
    )
    assert keys.open(Use.study_secret, SEALED_SECRET_FIXED_NONCE, context=CONTEXT) == SECRET
    sealed = keys.seal(Use.study_secret, SECRET, context=CONTEXT)
    assert sealed[1:13] != NONCE and keys.open(Use.study_secret, sealed, context=CONTEXT) == SECRET


def test_the_frozen_code_opens_what_the_application_sealed_at_the_revisions_time():
    keys = Keys(SERVER_KEY)
    for (use, plaintext), sealed in SEALED_BY_THE_APP.items():
        assert keys.open(use, sealed, context=CONTEXT) == plaintext


@pytest.mark.parametrize(
    "change",
    ["another key", "another use", "another context", "one bit flipped", "cut short"],
)
def test_the_frozen_code_refuses_what_does_not_open(change):
    sealed = SEALED_BY_THE_APP[(Use.study_secret, b"S" * 32)]
    keys, use, context = Keys(SERVER_KEY), Use.study_secret, CONTEXT
    if change == "another key":
        keys = Keys(SERVER_KEY + b"!")
    elif change == "another use":
        use = Use.blinding_key
    elif change == "another context":
        context = "peer-support-2"
    elif change == "one bit flipped":
        sealed = sealed[:-1] + bytes([sealed[-1] ^ 1])
    else:
        sealed = sealed[:20]
    with pytest.raises(WrongKey):
        keys.open(use, sealed, context=context)


def test_pseudonyms_give_the_known_answers():
    assert {code: pseudonym(BLINDING_KEY, code) for code in PSEUDONYMS} == PSEUDONYMS


def test_the_frozen_column_type_stores_utc_and_refuses_naive_times():
    from datetime import datetime, timedelta, timezone

    from sqlalchemy.dialects import postgresql, sqlite

    column = UTCDateTime(timezone=True)
    local = datetime(2026, 11, 30, 18, 30, tzinfo=timezone(timedelta(hours=1)))
    assert column.process_bind_param(local, sqlite.dialect()) == datetime(2026, 11, 30, 17, 30)
    assert column.process_bind_param(local, postgresql.dialect()).utcoffset() == timedelta(0)
    with pytest.raises(ValueError, match="naive"):
        column.process_bind_param(datetime(2026, 11, 30), sqlite.dialect())
    assert utcnow().utcoffset() == timedelta(0)


# --- the revisions run the frozen code ---------------------------------------------

BEFORE_SEALING = "3f9d2c7a1e54"
SEALING = "9a4b7e2c5d10"
BLINDING_KEYS = "c7d2e8f1a903"


@pytest.fixture
def empty_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    request.getfixturevalue("pg_template")  # skips or fails as the PostgreSQL policy says
    name = pg.create_database("trialdesk_frz")
    yield pg.database_url(name)
    pg.drop_database(name)


def test_the_revisions_seal_with_the_frozen_code_and_the_given_key(empty_url):
    config = alembic_config(empty_url, server_key=SERVER_KEY)
    command.upgrade(config, BEFORE_SEALING)
    engine = make_engine(Settings(database_url=empty_url, secret_key="x" * 32))
    try:
        with engine.begin() as connection:
            _a_study_with_a_participant(connection)
        command.upgrade(config, BLINDING_KEYS)
        with engine.connect() as connection:
            fingerprint = connection.execute(sa.text("SELECT fingerprint FROM server_key")).one()
            sealed_secret = connection.execute(sa.text("SELECT secret FROM studies")).scalar_one()
            sealed_key = connection.execute(
                sa.text("SELECT sealed FROM blinding_keys")
            ).scalar_one()
            alias = connection.execute(sa.text("SELECT pseudonym FROM participants")).scalar_one()
        keys = Keys(SERVER_KEY)
        assert fingerprint == (FINGERPRINT,)
        assert keys.open(Use.study_secret, bytes(sealed_secret), context=CONTEXT) == SECRET
        blinding_key = keys.open(Use.blinding_key, bytes(sealed_key), context=CONTEXT)
        assert len(blinding_key) == 32
        assert alias == pseudonym(blinding_key, "PS-PHL-0001")

        command.downgrade(config, BEFORE_SEALING)  # opens the secrets again
        with engine.connect() as connection:
            secret = connection.execute(sa.text("SELECT secret FROM studies")).scalar_one()
        assert bytes(secret) == SECRET
    finally:
        engine.dispose()


def test_a_revision_that_needs_the_key_asks_the_environment_when_the_caller_gave_none(
    empty_url, monkeypatch
):
    config = alembic_config(empty_url)  # no server key: env.py finds the settings' one
    command.upgrade(config, BEFORE_SEALING)
    engine = make_engine(Settings(database_url=empty_url, secret_key="x" * 32))
    try:
        with engine.begin() as connection:
            _a_study_with_a_participant(connection)
        monkeypatch.setenv("TRIALDESK_SECRET_KEY", SERVER_KEY.decode())
        command.upgrade(config, SEALING)
        with engine.connect() as connection:
            fingerprint = connection.execute(sa.text("SELECT fingerprint FROM server_key")).one()
        assert fingerprint == (FINGERPRINT,)
    finally:
        engine.dispose()


def _a_study_with_a_participant(connection: sa.Connection) -> None:
    """One study, site, user and participant, as the schema before sealing has them."""
    now = "CURRENT_TIMESTAMP"
    connection.execute(
        sa.text(
            "INSERT INTO users (id, email, name, role, created_at) "
            f"VALUES (1, 'admin@example.org', 'Admin', 'admin', {now})"
        )
    )
    connection.execute(
        sa.text(
            "INSERT INTO studies (id, slug, title, status, definition, secret, code_prefix, "
            f"created_at) VALUES (1, '{CONTEXT}', 'Peer support', 'active', '{{}}', :secret, "
            f"'PS', {now})"
        ),
        {"secret": SECRET},
    )
    connection.execute(
        sa.text(
            "INSERT INTO sites (id, study_id, code, name, last_participant_number, created_at) "
            f"VALUES (1, 1, 'PHL', 'Philadelphia', 1, {now})"
        )
    )
    connection.execute(
        sa.text(
            "INSERT INTO participants (id, study_id, site_id, code, status, screening, "
            f"screened_at, created_by) VALUES (1, 1, 1, 'PS-PHL-0001', 'enrolled', '{{}}', "
            f"{now}, 1)"
        )
    )
