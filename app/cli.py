"""The `trialdesk` command: set-up, users, studies, the server and verification."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from app.config import Settings
from app.db.schema import alembic_config

if TYPE_CHECKING:
    from app.db.engine import Database

app = typer.Typer(
    help="Trialdesk: randomized-trial management.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
db_app = typer.Typer(help="The database schema.", no_args_is_help=True)
users_app = typer.Typer(help="Staff users and their tokens.", no_args_is_help=True)
studies_app = typer.Typer(help="Study definitions.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
app.add_typer(studies_app, name="studies")
scheduler_app = typer.Typer(
    help="Invitations, reminders and alert emails (also run inside `serve`).",
    no_args_is_help=True,
)
app.add_typer(scheduler_app, name="scheduler")
keys_app = typer.Typer(
    help="The server key: where it is, escrow copies, rotation (docs/keys.md).",
    no_args_is_help=True,
)
app.add_typer(keys_app, name="keys")
engagement_app = typer.Typer(
    help="Use of the intervention, loaded from its platforms.", no_args_is_help=True
)
app.add_typer(engagement_app, name="engagement")


def _database() -> Database:
    from app.db.engine import Database

    return Database(Settings())


def _fail(message: str) -> None:
    typer.secho(message, err=True, fg=typer.colors.RED)
    raise typer.Exit(code=1)


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head")) -> None:
    """Create or migrate the database to the latest schema."""
    from alembic import command

    settings = Settings()
    command.upgrade(alembic_config(settings.database_url), revision)
    typer.echo(f"database at {revision}: {_safe_url(settings.database_url)}")
    if revision == "head":
        _anchor_audit_head(settings)


def _anchor_audit_head(settings: Settings) -> None:
    """Anchor the audit chain's head outside the database (a trail migrated from before
    anchors has none yet); nothing to do on a new database."""
    from app.audit.service import chain_head
    from app.config import ConfigurationError

    try:
        db = _database()
    except ConfigurationError:
        return  # no server key yet: the first write anchors
    try:
        with db.session(write=False) as session:
            anchor = chain_head(session).anchor  # anchors the head if it is not yet
    finally:
        db.dispose()
    if anchor is not None:
        typer.echo(f"audit trail anchored at record {anchor['seq']} in {settings.state_folder}")


@users_app.command("create")
def users_create(
    email: Annotated[str, typer.Option(help="the user's email (their login name)")],
    role: Annotated[
        str, typer.Option(help="admin, coordinator, statistician, unblinded_statistician")
    ],
    site: Annotated[
        list[str] | None, typer.Option(help="STUDY:SITE, repeatable (coordinators)")
    ] = None,
    name: Annotated[str | None, typer.Option(help="display name (default: the email)")] = None,
) -> None:
    """Create a user; the new API token is printed alone on the last line."""
    from pydantic import ValidationError

    from app.errors import DomainError
    from app.users import service
    from app.users.schemas import SiteAccess, UserCreate

    accesses = []
    for value in site or []:
        study, sep, code = value.partition(":")
        if not sep or not study or not code:
            _fail(f"--site takes STUDY:SITE, not {value!r}")
        accesses.append(SiteAccess(study=study, site=code))
    try:
        data = UserCreate(email=email, name=name or email, role=role, sites=accesses)
    except ValidationError as exc:
        _fail("\n".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()))
        return
    db = _database()
    try:
        with db.begin() as session:
            user, token = service.create_user(
                session,
                email=data.email,
                name=data.name,
                role=data.role,
                sites=data.sites,
                actor=None,
                token_lifetime=timedelta(days=db.settings.token_lifetime_days),
            )
            typer.echo(f"created {user.role} {user.email} (id {user.id})", err=True)
            typer.echo(f"token valid until {token.expires_at:%Y-%m-%d %H:%M} UTC", err=True)
    except DomainError as exc:
        _fail(str(exc))
    finally:
        db.dispose()
    typer.echo(token.token)


@users_app.command("sign-in-link")
def users_sign_in_link(
    email: Annotated[str, typer.Argument(help="the user's email")],
    valid_for: Annotated[
        str | None,
        typer.Option(
            "--valid-for",
            help="how long the link works, such as 30m, 24h or 7d (at most 7d; "
            "default: TRIALDESK_SIGN_IN_LINK_MINUTES)",
        ),
    ] = None,
) -> None:
    """Print a one-time sign-in link of the staff console for the user, on the server's
    base URL (TRIALDESK_BASE_URL, or .env), alone on the last line (used once; audited)."""
    from app.auth import service as auth
    from app.users import sign_in

    lifetime = _duration(valid_for) if valid_for is not None else None
    db = _database()
    settings = db.settings
    minutes = settings.sign_in_link_minutes if lifetime is None else lifetime
    try:
        with db.begin() as session:
            user = auth.find_user(session, email=email)
            if user is None or user.deactivated_at is not None:
                _fail(f"no active user {email.strip().lower()!r}")
                return
            _, token = sign_in.issue_link(
                session,
                user=user,
                lifetime=timedelta(minutes=minutes),
                actor_label="trialdesk users sign-in-link",
            )
    finally:
        db.dispose()
    typer.echo(f"sign-in link for {user.email}, valid {_minutes(minutes)}, once:", err=True)
    typer.echo(sign_in.sign_in_url(settings.base_url, token))


LONGEST_SIGN_IN_LINK = 7 * 24 * 60  # minutes: a week, for a newcomer's first link
_UNITS = {"m": 1, "h": 60, "d": 24 * 60}


def _duration(text: str) -> int:
    """Minutes of a duration such as 30m, 24h or 7d (1 minute to 7 days)."""
    value = text.strip().lower()
    number, unit = value[:-1], value[-1:]
    if unit not in _UNITS or not number.isascii() or not number.isdigit() or len(number) > 6:
        _fail(f"--valid-for: {text[:20]!r} is not a duration such as 30m, 24h or 7d")
    minutes = int(number) * _UNITS[unit]
    if not 1 <= minutes <= LONGEST_SIGN_IN_LINK:
        _fail("--valid-for: must be between 1 minute and 7 days")
    return minutes


def _minutes(minutes: int) -> str:
    if minutes % (24 * 60) == 0 and minutes > 24 * 60:
        return f"{minutes // (24 * 60)} days"
    if minutes % 60 == 0:
        return f"{minutes // 60} hour{'s' if minutes != 60 else ''}"
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


@studies_app.command("create")
def studies_create(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="YAML or JSON")],
    activate: Annotated[bool, typer.Option("--activate", help="open enrollment at once")] = False,
) -> None:
    """Load a study definition, as a draft unless --activate."""
    from app.errors import DomainError, InvalidInput
    from app.studies import service
    from app.studies.documents import MAX_DEFINITION_BYTES, read_definition_document
    from app.studies.validation import parse_definition

    with file.open("rb") as opened:  # no more than the reader takes: a larger file is refused
        content = opened.read(MAX_DEFINITION_BYTES + 1)
    try:
        data = read_definition_document(file.name, content)
    except InvalidInput as exc:
        _fail(f"{file}: {exc.problems[0].msg}")
        return
    db = _database()
    try:
        definition = parse_definition(data)
        with db.begin() as session:
            study = service.create_study(session, definition=definition, actor=None)
            if activate:
                service.activate_study(session, study=study, actor=None)
            typer.echo(f"study {study.slug}: {study.status}")
            if study.commitment:
                typer.echo(f"commitment {study.commitment}")
    except InvalidInput as exc:
        lines = [f"  {'.'.join(map(str, p.loc)) or '(document)'}: {p.msg}" for p in exc.problems]
        _fail(f"{file}: {exc.title}\n" + "\n".join(lines))
    except DomainError as exc:
        _fail(str(exc))
    finally:
        db.dispose()


@app.command()
def demo() -> None:
    """Load the demo study (activated, with its sites) and a demo admin; print its token."""
    from app.demo import load_demo

    settings = Settings()
    db = _database()
    try:
        with db.begin() as session:
            loaded = load_demo(session, token_lifetime=timedelta(days=settings.token_lifetime_days))
    finally:
        db.dispose()
    state = "loaded" if loaded.created_study else "already there"
    typer.echo(f"demo study {loaded.slug}: {state}; sites PHL, PIT", err=True)
    typer.echo(f"demo admin {loaded.admin_email}; API docs at {settings.base_url}/docs", err=True)
    typer.echo(loaded.token)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port")] = 8000,
    workers: Annotated[int, typer.Option(help="processes (use PostgreSQL for more than one)")] = 1,
    scheduler: Annotated[
        bool, typer.Option(help="send invitations, reminders and alerts every minute")
    ] = True,
    forwarded_allow_ips: Annotated[
        str | None,
        typer.Option(
            help="addresses or networks (comma-separated, * for any) of the reverse proxies "
            "whose X-Forwarded-For is believed; default TRIALDESK_FORWARDED_ALLOW_IPS, "
            "else none"
        ),
    ] = None,
) -> None:
    """Run the API with uvicorn (and the scheduler, unless --no-scheduler)."""
    import os

    from pydantic import ValidationError

    from app import server
    from app.config import ConfigurationError

    settings = Settings()
    try:
        settings.server_key  # noqa: B018 - refuse to start without a key, with a clear word
    except ConfigurationError as exc:
        _fail(str(exc))
    if not scheduler:
        os.environ["TRIALDESK_SCHEDULER"] = "false"  # read by the app in each worker
    elif settings.scheduler:
        typer.echo(_mail_words(settings), err=True)

    if forwarded_allow_ips is not None:
        try:
            Settings(forwarded_allow_ips=forwarded_allow_ips)
        except ValidationError as exc:
            _fail(f"--forwarded-allow-ips: {exc.errors()[0]['msg']}")
    trusted = settings.forwarded_allow_ips if forwarded_allow_ips is None else forwarded_allow_ips
    if "base_url" not in settings.model_fields_set:  # neither the environment nor .env
        os.environ["TRIALDESK_BASE_URL"] = own = _own_address(host, port)
        typer.echo(f"links point to {own} (set TRIALDESK_BASE_URL in .env to change)", err=True)
    server.run(host=host, port=port, workers=workers, forwarded_allow_ips=trusted)


def _own_address(host: str, port: int) -> str:
    """The server's address as a browser on this machine reaches it (links in emails and
    pages are built on it when no base URL is configured)."""
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _mail_words(settings: Settings) -> str:
    if settings.smtp_host:
        return f"emails go to the SMTP server {settings.smtp_host}:{settings.smtp_port}"
    return f"emails are written as files into {settings.mail_folder.resolve()}/"


def _when(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        _fail(f"--now: not an ISO date and time: {text!r}")
        raise
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


@scheduler_app.command("run-once")
def scheduler_run_once(
    now: Annotated[
        str | None,
        typer.Option(help="act as if it were this instant (ISO 8601; UTC unless it says)"),
    ] = None,
) -> None:
    """One pass: enqueue the invitations and reminders due, send what is due; print what
    was done (JSON)."""
    from app.scheduler.runner import run_pass

    at = _when(now)
    db = _database()
    try:
        db.check_server_key()
        report = run_pass(db, now=at)
    finally:
        db.dispose()
    typer.echo(_mail_words(db.settings), err=True)
    typer.echo(json.dumps(report.__dict__))


@scheduler_app.command("run")
def scheduler_run(
    interval: Annotated[
        float | None, typer.Option(help="seconds between passes (default: the setting)")
    ] = None,
) -> None:
    """A pass every interval until stopped (Ctrl-C or SIGTERM)."""
    import signal
    import threading

    from app.scheduler.runner import run_forever

    db = _database()
    stop = threading.Event()
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda *_: stop.set())
    typer.echo(_mail_words(db.settings), err=True)
    try:
        db.check_server_key()
        run_forever(db, interval_s=interval or db.settings.scheduler_interval_s, stop=stop)
    finally:
        db.dispose()


@app.command()
def verify(study: Annotated[str, typer.Option("--study", help="study slug")]) -> None:
    """Re-derive every allocation, check the keyed audit chain and its anchors outside
    the database, and replay the trail against the study's research data; exit 0 only
    when all hold."""
    from sqlalchemy import select

    from app.audit.service import verify_anchors, verify_chain
    from app.config import ConfigurationError
    from app.participants.replay import replay
    from app.participants.service import verify_allocations
    from app.randomization.service import count_allocations
    from app.studies.models import Study

    db = _database()
    differences = 0
    try:
        try:
            db.check_server_key()  # a wrong key is said as such, not read as tampering
        except ConfigurationError as exc:
            _fail(str(exc))
        with db.session(write=False) as session:
            row = session.scalars(select(Study).where(Study.slug == study)).first()
            if row is None:
                _fail(f"no study {study!r}")
                return
            findings = verify_allocations(session, study=row)
            breaks = verify_chain(session)
            anchored = verify_anchors(session)
            count = count_allocations(session, study_id=row.id)
            for finding in findings:
                typer.echo(f"ALLOCATION {finding.where}: {finding.problem}")
            for brk in breaks:
                typer.echo(f"AUDIT record {brk.seq}: {brk.problem}")
            for brk in anchored:
                typer.echo(f"ANCHOR record {brk.seq}: {brk.problem}")
            for difference in replay(session, study=row):  # streamed
                differences += 1
                typer.echo(f"DATA {difference.table} {difference.key}: {difference.problem}")
    finally:
        db.dispose()
    if findings or breaks or anchored or differences:
        _fail(
            f"verify failed: {len(findings)} allocation, {len(breaks)} audit, "
            f"{len(anchored)} anchor and {differences} data problems"
        )
    typer.echo(
        f"ok: {count} allocation{'' if count == 1 else 's'} re-derived, audit chain intact "
        "and anchored, "
        "research data as the trail says"
    )


@app.command("export")
def export_command(
    study: Annotated[str, typer.Option("--study", help="study slug")],
    out: Annotated[
        Path, typer.Option("--out", help="directory to write into (created; must be empty)")
    ],
) -> None:
    """Write the study's blinded data package (datapackage.json; the long, wide and
    participant files as CSV, Stata and SPSS; their codebooks; an R script) into a
    directory; audited like an export through the API. Shows progress on a terminal."""
    import sys

    from sqlalchemy import select

    from app.exports import service as exports
    from app.exports.downloads import package_exports
    from app.studies.models import Study

    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        _fail(f"{out} exists and is not an empty directory: choose another")
    db = _database()
    try:
        db.check_server_key()
        with db.begin() as session:
            row = session.scalars(select(Study).where(Study.slug == study)).first()
            if row is None:
                _fail(f"no study {study!r}")
                return
            long, wide, people = package_exports(session, study=row)
            parameters = {"format": "package", "via": "command line"}
            exports.started(session, long, parameters=parameters, actor=None)
            total = exports.count_participants(session, long)
        with typer.progressbar(length=2 * total, label=study, file=sys.stderr) as bar:
            show = bar.update if sys.stderr.isatty() else None
            written = exports.write_package(db, wide, long, people, out, progress=show)
    finally:
        db.dispose()
    typer.echo(f"{total} participants ({written.rows} rows) written to {out}/", err=True)
    typer.echo(str(out / "datapackage.json"))


@engagement_app.command("load")
def engagement_load(
    study: Annotated[str, typer.Argument(help="study slug")],
    file: Annotated[Path, typer.Argument(help="CSV with a header, or JSON lines", exists=True)],
    fmt: Annotated[
        str | None,
        typer.Option("--format", help="csv or jsonl (default: from the file's extension)"),
    ] = None,
) -> None:
    """Load engagement events (event_id, participant, at, kind, count) into a study,
    idempotent by event_id, as the API does; audited. Prints the counts as JSON and the
    rejected rows (line, problem) on standard error."""
    import json

    from sqlalchemy import select

    from app.db.base import utcnow
    from app.engagement import service as engagement
    from app.engagement.rows import FileFormat
    from app.errors import InvalidInput
    from app.studies.models import Study

    chosen = fmt or ("csv" if file.suffix.lower() == ".csv" else "jsonl")
    if chosen not in {f.value for f in FileFormat}:
        _fail(f"--format must be csv or jsonl, not {chosen!r}")
    db = _database()
    try:
        db.check_server_key()
        # A transaction per batch (`import_events` commits them), then the audit's.
        with db.session(write=True) as session, file.open("rb") as source:
            row = session.scalars(select(Study).where(Study.slug == study)).first()
            if row is None:
                _fail(f"no study {study!r}")
                return
            result = engagement.import_events(
                session, study=row, source=source, fmt=FileFormat(chosen), actor=None, now=utcnow()
            )
            session.commit()
    except InvalidInput as refused:
        _fail(f"{file}: {refused.detail}")
        return
    finally:
        db.dispose()
    for rejected in result.rejected:
        typer.echo(f"{file}:{rejected.line}: {rejected.problem}", err=True)
    counts = {
        "accepted": result.accepted,
        "duplicates": result.duplicates,
        "rejected": result.rejected_count,
        "lines": result.lines,
        "sha256": result.sha256,
    }
    typer.echo(json.dumps(counts))


@app.command("backup")
def backup_command(
    out: Annotated[Path, typer.Argument(help="the backup file to write (never overwritten)")],
) -> None:
    """Write a consistent copy of the live database (never its server key: see `keys export`)."""
    from app.backup import BackupError, backup

    try:
        manifest = backup(Settings(), out)
    except BackupError as exc:
        _fail(str(exc))
        return
    rows = sum(manifest.counts.values())
    typer.echo(f"backup of {len(manifest.counts)} tables, {rows} rows written to {out}")
    typer.echo(
        f"it does not carry the server key: restoring it needs the key of fingerprint "
        f"{manifest.fingerprint[:16]}... (escrow it with `trialdesk keys export`)",
        err=True,
    )


# API.md's `trialdesk restore IN` takes no reason; the re-anchoring record still says why
# it was made, or that nobody said.
NO_RESTORE_REASON = "no reason given (trialdesk restore without --reason)"


@app.command("restore")
def restore_command(
    archive: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="a backup file")],
    reason: Annotated[
        str | None,
        typer.Option(
            "--reason",
            help="why the backup is put back (audited; 10 characters or more; without it the "
            "record says no reason was given)",
        ),
    ] = None,
    key_escrow: Annotated[
        Path | None,
        typer.Option(
            exists=True, dir_okay=False, help="put this escrowed key back first (`keys import`)"
        ),
    ] = None,
    passphrase_file: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="the escrow's passphrase")
    ] = None,
) -> None:
    """Restore a backup into the (empty) database of TRIALDESK_DATABASE_URL, migrate it
    to this release's schema, and re-anchor its audit trail with an audited record of
    what was restored and why."""
    from app.backup import BackupError, restore

    if reason is None:
        typer.echo("no --reason given: the audit trail will say so", err=True)
        reason = NO_RESTORE_REASON
    elif len(reason.strip()) < 10:
        _fail("--reason: say why the backup is put back (10 characters or more)")
    if key_escrow is not None:
        _import_keys(Settings(), key_escrow, passphrase_file)
    try:
        manifest = restore(Settings(), archive, reason=reason.strip())
    except BackupError as exc:
        _fail(str(exc))
        return
    rows = sum(manifest.counts.values())
    typer.echo(
        f"restored {len(manifest.counts)} tables, {rows} rows, at revision {manifest.revision}"
    )
    typer.echo("audit trail re-anchored; then: trialdesk verify --study SLUG", err=True)


@keys_app.command("where")
def keys_where() -> None:
    """Say where the server key is kept (the key file's path, alone on the last line)."""
    settings = Settings()
    if settings.secret_key is not None:
        typer.echo("the server key is TRIALDESK_SECRET_KEY (the environment)")
        return
    path = settings.key_file_path
    if path is None:
        _fail("no server key: set TRIALDESK_SECRET_KEY or TRIALDESK_KEY_FILE")
        return
    from app.config import default_key_file, legacy_key_file

    database = settings.sqlite_path
    if database is not None and path == legacy_key_file(database).absolute():
        typer.secho(
            f"the key file is beside the database: move it to {default_key_file(database)} "
            "(or set TRIALDESK_KEY_FILE); see docs/keys.md",
            err=True,
            fg=typer.colors.YELLOW,
        )
    typer.echo(str(path))


@keys_app.command("export")
def keys_export(
    out: Annotated[Path, typer.Argument(help="the escrow file to write (never overwritten)")],
    passphrase_file: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="read the passphrase from this file"),
    ] = None,
) -> None:
    """Write the server key, encrypted with a passphrase, for escrow (keep the passphrase
    elsewhere). The passphrase: --passphrase-file, TRIALDESK_KEY_PASSPHRASE, or asked."""
    import os

    from app import keyfile

    settings = Settings()
    if settings.secret_key is not None:
        keys = [settings.secret_key.get_secret_value().encode()]
    else:
        path = settings.key_file_path
        found = keyfile.read(path) if path is not None else None
        if found is None:
            _fail(f"no key file to export ({path}): start the server or `db upgrade` first")
            return
        keys = found
    passphrase = _passphrase(passphrase_file, confirm=True)
    try:
        content = keyfile.export_escrow(keys, passphrase)
    except keyfile.KeyFileError as exc:
        _fail(str(exc))
        return
    try:
        descriptor = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        _fail(f"cannot write {out}: {exc.strerror}")
        return
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(content)
    fingerprint = json.loads(content)["fingerprint"]
    typer.echo(f"the server key {fingerprint[:16]}... is written to {out}, encrypted", err=True)
    typer.echo(str(out))


@keys_app.command("import")
def keys_import(
    escrow: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="an escrow file")],
    passphrase_file: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="read the passphrase from this file"),
    ] = None,
) -> None:
    """Put an escrowed server key back into the key file of this database (before a
    restore on a new machine); an existing key file is never overwritten."""
    _import_keys(Settings(), escrow, passphrase_file)


def _import_keys(settings: Settings, escrow: Path, passphrase_file: Path | None) -> None:
    from app import keyfile

    path = settings.key_file_path
    if settings.secret_key is not None or path is None:
        _fail(
            "the server key comes from TRIALDESK_SECRET_KEY (or none is set): unset it, or set "
            "TRIALDESK_KEY_FILE, to import an escrowed key into a key file"
        )
        return
    passphrase = _passphrase(passphrase_file, confirm=False)
    try:
        keys = keyfile.import_escrow(escrow.read_bytes(), passphrase)
        existing = keyfile.read(path)
        if existing is not None and existing != keys:
            _fail(f"a key file with other keys exists at {path}: move it away first")
            return
        if existing is None:
            keyfile.write(path, keys, replace=False, note=f"imported from {escrow.name}")
    except (keyfile.KeyFileError, OSError) as exc:
        _fail(str(exc))
        return
    typer.echo(f"the server key is in {path}", err=True)


def _passphrase(source: Path | None, *, confirm: bool) -> str:
    import os

    if source is not None:
        lines = source.read_text(encoding="utf-8").splitlines()
        return lines[0] if lines else ""
    from_env = os.environ.get("TRIALDESK_KEY_PASSPHRASE")
    if from_env:
        return from_env
    answer: str = typer.prompt("Passphrase", hide_input=True, confirmation_prompt=confirm)
    return answer


@keys_app.command("rotate")
def keys_rotate(
    new_key_file: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="with TRIALDESK_SECRET_KEY: a file holding the new key "
            "(or TRIALDESK_NEW_SECRET_KEY)",
        ),
    ] = None,
) -> None:
    """Re-seal every sealed value under a new server key, while the servers run. With a
    key file the new key is made here; with TRIALDESK_SECRET_KEY, restart the servers
    with the new key afterwards."""
    import os

    from app.rotation import RotationError, rotate

    new_key: bytes | None = None
    if new_key_file is not None:
        new_key = new_key_file.read_text(encoding="utf-8").strip().encode()
    elif os.environ.get("TRIALDESK_NEW_SECRET_KEY"):
        new_key = os.environ["TRIALDESK_NEW_SECRET_KEY"].encode()
    settings = Settings()
    try:
        rotated = rotate(settings, new_key=new_key)
    except RotationError as exc:
        _fail(str(exc))
        return
    for name, count in rotated.resealed.items():
        typer.echo(f"re-sealed {count} {name}", err=True)
    if rotated.key_file is None:
        typer.echo("now restart the servers with TRIALDESK_SECRET_KEY set to the new key", err=True)
    else:
        typer.echo(f"the key file {rotated.key_file} holds the new key only", err=True)
        typer.echo("escrow it again: trialdesk keys export OUT", err=True)
    typer.echo(f"{rotated.old_fingerprint[:16]} -> {rotated.new_fingerprint[:16]}")


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
