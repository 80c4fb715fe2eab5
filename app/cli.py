"""Command line: python -m app {serve,migrate,create-admin,reconcile,sign-webhook,deliver,
receive-events,db}."""

from __future__ import annotations

import argparse
import logging
import sys
import time
import uuid
from pathlib import Path

from app.config import ConfigError, Settings, get_settings
from app.db.location import EmbeddedUnavailable


def _url(settings: Settings) -> str:
    from app.db.location import database_url

    return database_url(settings)


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from app.db.migrations import migrate

    applied = migrate(_url(settings))
    print("applied: " + ", ".join(applied) if applied else "database is up to date")
    return 0


def create_admin(settings: Settings, url: str | None = None, *, username: str, email: str,
                 password: str) -> str:
    """Make an admin account directly in the database and return its id: the CLI's
    `create-admin`, and the way a test makes its first admin
    (`create_admin(app.state.settings, username=..., email=..., password=...)`).
    `url` defaults to the settings' database (DATABASE_URL or the embedded one)."""
    from app.auth.passwords import PasswordHasher
    from app.db.location import sync_database
    from app.users.schemas import UserCreate

    data = UserCreate(username=username, email=email, password=password, role="admin")
    database = sync_database(url or _url(settings))
    with database.connection_context():
        taken = database.execute_sql(
            "SELECT 1 FROM users WHERE lower(username) = lower(%s) OR email = %s",
            (data.username, data.email)).fetchone()
        if taken:
            raise ValueError(f"a user with username {data.username!r} or email "
                             f"{data.email!r} already exists")
        user_id = uuid.uuid4()
        database.execute_sql(
            "INSERT INTO users (id, username, email, password_hash, role) "
            "VALUES (%s, %s, %s, %s, 'admin')",
            (str(user_id), data.username, data.email,
             PasswordHasher(settings).hash_now(data.password)))
    return str(user_id)


def cmd_create_admin(args: argparse.Namespace, settings: Settings) -> int:
    from pydantic import ValidationError

    from app.db.migrations import migrate

    url = _url(settings)
    migrate(url)
    try:
        user_id = create_admin(settings, url, username=args.username, email=args.email,
                               password=args.password)
    except ValidationError as exc:
        for err in exc.errors():
            print(f"{'.'.join(map(str, err['loc']))}: {err['msg']}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"admin {args.username} created (id {user_id}); log in with POST /login")
    return 0


def _has_admin(url: str) -> bool:
    from app.db.location import sync_database

    database = sync_database(url)
    with database.connection_context():
        return database.execute_sql(
            "SELECT 1 FROM users WHERE role = 'admin' AND is_active").fetchone() is not None


def _port_taken(host: str, port: int) -> str | None:
    """Why the server could not listen there, or None (checked before saying it will)."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from app import serving
    from app.db.migrations import migrate

    s = settings
    url = _url(s)
    migrate(url)
    if not _has_admin(url):
        if s.admin_username and s.admin_email and s.admin_password:
            create_admin(s, url, username=s.admin_username, email=s.admin_email,
                         password=s.admin_password)
            print(f"created the first admin, {s.admin_username}")
        else:
            print("No admin yet. Make one (in another terminal) with:\n"
                  "  .venv/bin/python -m app create-admin --username admin "
                  "--email admin@example.com --password 'a-long-password'\n"
                  "In Docker: docker compose exec app python -m app create-admin ...\n"
                  "Or set ADMIN_USERNAME, ADMIN_EMAIL and ADMIN_PASSWORD before starting.")
    host, port = args.host or s.host, args.port or s.port
    problem = _port_taken(host, port)
    if problem:
        print(f"cannot serve on {host}:{port}: {problem}. Stop what holds the port, or choose "
              "another with --port or PORT.", file=sys.stderr)
        return 1
    print(f"Payment App on http://{host}:{port}  (API docs: http://{host}:{port}/docs)")
    # Several workers share the connections evenly (app/serving.py); one is plain uvicorn.
    serving.run("app.main:create_app", host=host, port=port,
                workers=args.workers or s.workers, log_config=None)
    return 0


def cmd_reconcile(args: argparse.Namespace, settings: Settings) -> int:
    from app.db.location import sync_database
    from app.ledger.reconcile import find_mismatches

    database = sync_database(_url(settings))
    with database.connection_context():
        checked, mismatches = find_mismatches(database)
    for m in mismatches:
        print(f"MISMATCH invoice {m.invoice_id}: {m.problem}")
    print(f"checked {checked} invoices: {len(mismatches)} mismatch(es)")
    return 1 if mismatches else 0


def cmd_sign_webhook(args: argparse.Namespace, settings: Settings) -> int:
    from app.webhooks.signature import signature_header

    body = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    secret = args.secret or settings.resolved_webhook_secrets()[0]
    print(signature_header(body, secret, timestamp=args.timestamp or int(time.time())))
    return 0


def cmd_deliver(args: argparse.Namespace, settings: Settings) -> int:
    """Send deliveries until interrupted (SIGINT/SIGTERM); several may run at once."""
    import asyncio
    import signal

    import uvloop

    from app import clock
    from app.db import connection
    from app.db.migrations import migrate
    from app.events.worker import Deliverer
    from app.ops.logging import configure_logging
    from app.ops.runtime import tune_gc

    configure_logging(settings.log_level, settings.resolved_log_format)
    tune_gc()
    url = _url(settings)
    migrate(url)

    async def main() -> None:
        connection.configure(settings, url)
        clock.configure(settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        deliverer = Deliverer(settings)
        try:
            await deliverer.run(stop)
        finally:
            await deliverer.aclose()
            await connection.close()

    print("delivering events to webhook endpoints (Ctrl+C stops)", flush=True)
    # uvloop, as the API's workers run under uvicorn: the standard library's event loop was
    # a third of the deliverer's busy time, in Python (docs/EVENTS.md, "Throughput").
    uvloop.run(main())
    return 0


def cmd_receive_events(args: argparse.Namespace, settings: Settings) -> int:
    from app.events.receiver import serve

    serve(args.port, args.secret, args.status, quiet=args.quiet)
    return 0


def cmd_db_stop(args: argparse.Namespace, settings: Settings) -> int:
    from app.db.location import stop_embedded

    if settings.database_url:
        print("DATABASE_URL is set: that server is not ours to stop", file=sys.stderr)
        return 1
    stopped = stop_embedded(settings.data_dir)
    print(f"embedded PostgreSQL under {settings.data_dir} "
          + ("stopped" if stopped else "was not running"))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="migrate, then serve the API with uvicorn")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int)
    serve.set_defaults(fn=cmd_serve)

    sub.add_parser("migrate", help="apply pending migrations").set_defaults(fn=cmd_migrate)

    admin = sub.add_parser("create-admin", help="create an admin account")
    admin.add_argument("--username", required=True)
    admin.add_argument("--email", required=True)
    admin.add_argument("--password", required=True)
    admin.set_defaults(fn=cmd_create_admin)

    sub.add_parser("reconcile", help="check every invoice against its ledger; exit 1 on "
                   "any mismatch").set_defaults(fn=cmd_reconcile)

    sign = sub.add_parser("sign-webhook", help="print the X-Signature header for a body file")
    sign.add_argument("file", help="the exact body bytes to send ('-' for stdin)")
    sign.add_argument("--secret", help="defaults to the first WEBHOOK_SECRET")
    sign.add_argument("--timestamp", type=int, help="unix seconds (default: now)")
    sign.set_defaults(fn=cmd_sign_webhook)

    sub.add_parser("deliver", help="send events to the webhook endpoints until stopped "
                   "(serve does this too unless DELIVER_IN_PROCESS=false)"
                   ).set_defaults(fn=cmd_deliver)

    receive = sub.add_parser("receive-events", help="a local endpoint that prints the "
                             "events it is sent and checks their signatures")
    receive.add_argument("--port", type=int, default=9000)
    receive.add_argument("--secret", help="the endpoint's whsec_… secret, to verify")
    receive.add_argument("--status", type=int, default=200, help="the status to answer")
    receive.add_argument("--quiet", action="store_true",
                         help="print nothing per delivery (the benchmark's receiver)")
    receive.set_defaults(fn=cmd_receive_events)

    db = sub.add_parser("db", help="the embedded development database")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("stop", help="stop the embedded PostgreSQL under DATA_DIR "
                      "(the next command that needs it starts it again)"
                      ).set_defaults(fn=cmd_db_stop)

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    try:
        return args.fn(args, get_settings())
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except EmbeddedUnavailable as exc:
        print(exc, file=sys.stderr)
        return 2
