"""The app as a whole: its models describe the database exactly, every request gives its
database connection back, and settings passed to create_app() reach every part."""

from __future__ import annotations

import gc
import json
import time
import uuid

import pytest
from fastapi.testclient import TestClient
from jose import jwt

from app.config import Settings
from app.db import models
from app.main import create_app
from app.ops.runtime import GC_THRESHOLDS
from tests.support import PASSWORD, Account, Api, Database, deliver, evt, metric, sign


def test_the_models_describe_the_schema(_database: Database) -> None:
    tables = {m._meta.table_name: m for m in vars(models).values()
              if isinstance(m, type) and issubclass(m, models.BaseModel)
              and m is not models.BaseModel}
    in_db = {r["table_name"] for r in _database.rows(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
        "AND table_name <> 'schema_migration'")}
    assert set(tables) == in_db
    for name, model in tables.items():
        columns = {r["column_name"]: r["is_nullable"] == "YES" for r in _database.rows(
            "SELECT column_name, is_nullable FROM information_schema.columns "
            "WHERE table_schema = 'public' AND table_name = %s", (name,))}
        fields = {f.column_name: f.null for f in model._meta.sorted_fields}
        assert fields == columns, name


def test_every_request_gives_its_connection_back(api: Api, admin: Account, alice: Account,
                                                 bob: Account) -> None:
    inv = api.invoice(admin, alice, bob)
    c, h = api.client, admin.headers
    for _ in range(3):
        c.get(f"/invoices/{inv['id']}", headers=h)
        c.get("/invoices", headers=h, params={"cursor": "bad"})
        api.pay(admin, inv["id"], 1)
        api.pay(admin, inv["id"], 10**9)
        c.post("/invoice-transactions", headers={**h, "Idempotency-Key": uuid.uuid4().hex},
               json={"invoice_id": inv["id"], "amount": 1, "payment_mode": "x"})
        deliver(api, "payment/success", {"id": evt(), "invoice_id": inv["id"],
                                         "amount_paid": "1"})
        c.post("/login", data={"username": "nobody", "password": "x"})
        c.post("/users", json={"username": "x"})
        c.get(f"/users/{uuid.uuid4()}", headers=h)
        c.get("/ready")
        c.patch(f"/invoices/{uuid.uuid4()}", headers=h, json={"description": "x"})
    # A leak stays; the in-process delivery worker's own short claims come and go.
    for _ in range(40):
        text = c.get("/metrics").text
        if metric(text, "db_pool_connections_in_use") == 0:
            break
        time.sleep(0.05)
    assert metric(text, "db_pool_connections_open") >= 1
    assert metric(text, "db_pool_connections_in_use") == 0


@pytest.fixture
def explicit(database_url: str, db: Database, password_hash: str) -> Settings:
    db.rows("INSERT INTO users (id, username, email, password_hash, role) VALUES "
            "(%s, 'root', 'root@example.com', %s, 'admin')", (str(uuid.uuid4()), password_hash))
    return Settings(database_url=database_url, app_env="test", secret_key="k" * 40,
                    webhook_secret="w" * 40, login_max_failures=2, migrate_on_start=False,
                    argon2_memory_kib=1024, argon2_time_cost=1)


def test_settings_given_to_create_app_reach_every_part(explicit: Settings, db: Database,
                                                       ) -> None:
    with TestClient(create_app(explicit)) as client:
        r = client.post("/login", data={"username": "root", "password": PASSWORD})
        assert r.status_code == 200, r.text
        token = r.json()["access_token"]
        assert jwt.decode(token, "k" * 40, algorithms=["HS256"])["sub"]  # signed with ours
        headers = {"Authorization": f"Bearer {token}"}
        r = client.post("/users", json={"username": "dora", "email": "d@example.com",
                                        "password": PASSWORD})
        assert r.status_code == 201
        assert "m=1024" in db.scalar("SELECT password_hash FROM users WHERE username = 'dora'")
        for _ in range(2):
            client.post("/login", data={"username": "dora", "password": "wrong-pass"})
        r = client.post("/login", data={"username": "dora", "password": PASSWORD})
        assert r.status_code == 429  # LOGIN_MAX_FAILURES = 2
        users = client.get("/users", headers=headers).json()["data"]
        payer, receiver = users[0]["id"], users[1]["id"]
        inv = client.post("/invoices", headers=headers, json={
            "payer_id": payer, "receiver_id": receiver, "amount": 5, "description": "x"}).json()
        body = json.dumps({"id": evt(), "invoice_id": inv["id"], "amount_paid": 1}).encode()
        t = int(time.time())
        r = client.post("/webhooks/payment/success", content=body, headers={
            "content-type": "application/json", "X-Signature": sign(body, "w" * 40, t)})
        assert r.status_code == 200, r.text
        r = client.post("/webhooks/payment/success", content=body, headers={
            "content-type": "application/json", "X-Signature": sign(body, t=t)})
        assert r.status_code == 401  # the environment's secret is not this app's


def test_a_test_client_without_with_says_what_to_do(explicit: Settings) -> None:
    client = TestClient(create_app(explicit))  # the lifespan never runs
    with pytest.raises(RuntimeError, match=r"use `with TestClient\(app\) as client:`"):
        client.get("/users")
    # Liveness runs none of the route class's database work: it answers regardless.
    assert client.get("/health").json() == {"status": "ok"}


def test_the_sessions_run_in_utc_whatever_the_servers_zone(explicit: Settings,
                                                          db: Database) -> None:
    """PostgreSQL writes a payment's times into its event in the session's zone. Under
    America/Los_Angeles, a payment dated early in year 1 was written as a date BC, which
    no reader of the event could parse (GET /events answered 500, and its delivery was
    retried for ever); and the driver stores Python's first and last moments as
    -infinity and infinity, which the event's reader did not take either."""
    name = db.scalar("SELECT current_database()")
    db.rows(f"ALTER DATABASE \"{name}\" SET timezone = 'America/Los_Angeles'")
    try:
        with TestClient(create_app(explicit)) as client:
            token = client.post("/login", data={"username": "root", "password": PASSWORD},
                                ).json()["access_token"]
            h = {"Authorization": f"Bearer {token}"}
            ids = [client.post("/users", headers=h, json={
                "username": n, "email": f"{n}@example.com", "password": PASSWORD}).json()["id"]
                for n in ("tz_payer", "tz_receiver")]
            inv = client.post("/invoices", headers=h, json={
                "payer_id": ids[0], "receiver_id": ids[1], "amount": 5,
                "description": "x"}).json()
            # The first moment Python has is stored as -infinity, the next one BC there.
            dates = ["0001-01-01T00:00:00Z", "0001-01-01T00:00:01Z",
                     "9999-12-31T23:59:59.999999Z"]
            paid = []
            for at in dates:
                r = client.post("/invoice-transactions", headers=h, json={
                    "invoice_id": inv["id"], "amount": 1, "payment_mode": "upi",
                    "payment_date": at})
                assert r.status_code == 201, r.text
                paid.append(r.json())
            r = client.get("/events", headers=h, params={"invoice_id": inv["id"]})
            assert r.status_code == 200, r.text
            sent = [e["data"]["object"] for e in r.json()["data"]
                    if e["type"] == "payment.succeeded"]
            assert sorted(t["payment_date"] for t in sent) == dates
            assert sorted(sent, key=lambda t: t["payment_date"]) == paid
    finally:
        db.rows(f"ALTER DATABASE \"{name}\" RESET timezone")


def test_fastapis_own_telemetry_is_off_unless_asked(explicit: Settings) -> None:
    """Off, FastAPI does not look for OpenTelemetry providers on every request."""
    flags = ("tracing", "metrics", "logs")
    off = create_app(explicit)._telemetry  # FastAPI's own record of what it was given
    assert [off[f] for f in flags] == [False] * 3
    on = create_app(explicit.model_copy(update={"opentelemetry": True}))._telemetry
    assert [on[f] for f in flags] == [True] * 3


def test_a_started_app_collects_garbage_less_often(explicit: Settings) -> None:
    """The thresholds app/ops/runtime.py sets when the app starts (each API worker)."""
    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        with TestClient(create_app(explicit)):
            assert gc.get_threshold() == GC_THRESHOLDS
        assert GC_THRESHOLDS[0] > 700
    finally:
        gc.set_threshold(*before)


def test_the_readme_way_to_test_with_test_client(database_url: str, db: Database) -> None:
    """What the README shows: `with TestClient(app)`, and the first admin made with the
    public helper."""
    from app.cli import create_admin

    settings = Settings(database_url=database_url, app_env="test", secret_key="k" * 40,
                        webhook_secret="w" * 40, argon2_memory_kib=1024, argon2_time_cost=1)
    with TestClient(create_app(settings)) as client:
        create_admin(client.app.state.settings, username="boss", email="boss@example.com",
                     password="a-long-password")
        r = client.post("/login", data={"username": "boss", "password": "a-long-password"})
        assert r.status_code == 200, r.text
        r = client.get("/users", headers={"Authorization": f"Bearer {r.json()['access_token']}"})
        assert r.status_code == 200 and r.json()["data"][0]["role"] == "admin"


def test_every_module_imports_on_its_own() -> None:
    """An import cycle shows only when a module is imported first (as `python -m app deliver`
    imports the delivery worker): import each one in a fresh interpreter."""
    import subprocess
    import sys
    from concurrent.futures import ThreadPoolExecutor
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    modules = sorted(".".join(p.relative_to(root).with_suffix("").parts)
                     for p in (root / "app").rglob("*.py") if p.name != "__main__.py")

    def imports(module: str) -> str | None:
        done = subprocess.run([sys.executable, "-c", f"import {module}"], cwd=root,
                              capture_output=True, text=True, timeout=60)
        return None if done.returncode == 0 else f"{module}: {done.stderr[-300:]}"

    with ThreadPoolExecutor(4) as pool:
        failures = [f for f in pool.map(imports, modules) if f]
    assert not failures, failures
