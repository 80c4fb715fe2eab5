"""The token check as a guard (app/db/guard.py): the request's first SELECT carries it, so
an authenticated request spends no round trip on it, and a refused caller still reads,
locks and changes nothing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import asyncpg
import httpx
import peewee
import psycopg2
import pytest
from fastapi.testclient import TestClient

from app.auth.queries import _AUTHENTICATE as AUTHENTICATE
from app.auth.queries import GUARD
from app.config import Settings
from app.db import connection
from app.db.guard import Guard, wrap
from app.main import create_app
from tests.support import PASSWORD, Account, Api, Database, assert_problem, burst, ledger_sums

pytestmark = pytest.mark.usefixtures("db")


def _guard() -> Guard:
    async def alone() -> None: ...

    return Guard(cte="SELECT %s AS allowed, %s AS info", params=(True, "x"),
                 settle=lambda _: None, check_alone=alone)


def test_the_guard_takes_the_parameter_style_of_the_statement() -> None:
    sql, params = wrap("SELECT a FROM t WHERE b = %s AND c = %s", (1, 2), _guard())
    assert sql.startswith("WITH guard AS (SELECT %s AS allowed, %s AS info) ")
    assert params == (True, "x", 1, 2)  # in the order of the text
    sql, params = wrap("SELECT a FROM t WHERE b = $1 AND c = $2 OR d = $1", (1, 2), _guard())
    assert sql.startswith("WITH guard AS (SELECT $3 AS allowed, $4 AS info) ")
    assert params == (1, 2, True, "x")
    sql, params = wrap("SELECT 1", None, _guard())
    assert "$1 AS allowed, $2 AS info" in sql and params == (True, "x")


def test_a_refused_guard_never_runs_the_select(db: Database) -> None:
    """The SELECT divides by zero if it runs: behind a refusal it must not run at all, even
    where PostgreSQL could pull it into the join (docs of app/db/guard.py)."""
    async def alone() -> None: ...

    def guard(cte: str, *params: object) -> Guard:
        return Guard(cte=cte, params=params, settle=lambda _: None, check_alone=alone)

    # (volatile, so that PostgreSQL cannot fold it while planning)
    divide = ("SELECT 1 / (length(md5(random()::text || g)) - 32) AS x "
              "FROM generate_series(1, 3) g WHERE %s")
    # (known only when it runs, as a real check is: no constant PostgreSQL could fold)
    for refused in (guard("SELECT count(*) > 10 AS allowed, 'x' AS info "
                          "FROM generate_series(1, %s)", 3),
                    guard("SELECT true AS allowed, 'x' AS info "
                          "FROM generate_series(1, %s) g WHERE g > 10", 3)):
        rows = db.rows(*wrap(divide, (True,), refused))
        assert [(r["x"], r["guard_row"]) for r in rows] in ([], [(None, None)])
    with pytest.raises(psycopg2.errors.DivisionByZero):
        db.rows(*wrap(divide, (True,), guard("SELECT %s AS allowed, 'x' AS info", True)))


def test_the_select_keeps_its_own_order(db: Database) -> None:
    async def alone() -> None: ...

    allowed = Guard(cte="SELECT %s AS allowed, 'x' AS info", params=(True,),
                    settle=lambda _: None, check_alone=alone)
    for sql in ("SELECT g FROM generate_series(1, %s) g ORDER BY g DESC",
                "SELECT g FROM generate_series(1, %s) g ORDER BY md5(g::text)"):
        rows = db.rows(*wrap(sql, (5000,), allowed))
        assert [r["g"] for r in rows] == [r["g"] for r in db.rows(sql, (5000,))]


def test_selects_of_every_shape_run_behind_the_guard(database_url: str) -> None:
    """Each gives the same rows wrapped as sent alone, as the app's connection sends them
    (numbered parameters; a statement without parameters was sent as written)."""
    async def alone() -> None: ...

    allowed = Guard(cte="SELECT %s::boolean AS allowed, 'x' AS info", params=(True,),
                    settle=lambda _: None, check_alone=alone)
    shapes = [("SELECT '100%' AS a, format('%s-x', 1) AS b", ()),
              ("SELECT 1 AS a, 2 AS a", ()),  # the same name twice
              ("SELECT g FROM generate_series(1, 3) g -- a comment at the end", ()),
              ("SELECT g FROM generate_series(1, 3) g;", ()),
              ("SELECT $1::int AS a UNION ALL SELECT $1 + 1 ORDER BY 1 DESC", (5,)),
              ("SELECT %s::text AS a, 7 %% 4 AS b", ("p",))]

    async def run() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            for sql, params in shapes:
                sent = connection.numbered(sql) if params else sql
                expected = [tuple(r) for r in await conn.fetch(sent, *params)]
                text, ordered = wrap(sql, params, allowed)
                rows = await conn.fetch(connection.numbered(text), *ordered)
                assert [tuple(r)[:-3] for r in rows] == expected, sql
        finally:
            await conn.close()

    asyncio.run(run())


@pytest.fixture
def statements(database_url: str, db: Database, password_hash: str,
               monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TestClient, list[str]]]:
    """The app in-process, each statement it sends to PostgreSQL recorded."""
    sent: list[str] = []
    original = connection.AppConnection._execute

    async def recording(self, sql, params=None):
        sent.append(sql)
        return await original(self, sql, params)

    monkeypatch.setattr(connection.AppConnection, "_execute", recording)
    settings = Settings(database_url=database_url, app_env="test", secret_key="k" * 40,
                        webhook_secret="w" * 40, migrate_on_start=False,
                        argon2_memory_kib=1024, argon2_time_cost=1, deliver_in_process=False)
    with TestClient(create_app(settings)) as client:
        yield client, sent


def _login(client: TestClient, db: Database, password_hash: str, role: str) -> tuple[str, dict]:
    user_id, name = str(uuid.uuid4()), f"{role}_{uuid.uuid4().hex[:8]}"
    db.rows("INSERT INTO users (id, username, email, password_hash, role) "
            "VALUES (%s, %s, %s, %s, %s)", (user_id, name, f"{name}@example.com",
                                            password_hash, role))
    r = client.post("/login", data={"username": name, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return user_id, {"Authorization": f"Bearer {r.json()['access_token']}"}


def _people(client: TestClient, db: Database, password_hash: str,
            ) -> tuple[dict, tuple[str, dict], tuple[str, dict]]:
    """An admin's headers, and two users (id, headers)."""
    _, admin = _login(client, db, password_hash, "admin")
    return (admin, _login(client, db, password_hash, "user"),
            _login(client, db, password_hash, "user"))


def _invoice(client: TestClient, admin: dict, payer_id: str, receiver_id: str,
             headers: dict | None = None) -> httpx.Response:
    return client.post("/invoices", headers={**admin, **(headers or {})}, json={
        "payer_id": payer_id, "receiver_id": receiver_id, "amount": "10.00",
        "description": "d"})


def test_each_read_is_one_statement_that_checks_the_token(
        statements: tuple[TestClient, list[str]], db: Database, password_hash: str) -> None:
    client, sent = statements
    admin, (user_id, user), (payer_id, _) = _people(client, db, password_hash)
    r = _invoice(client, admin, payer_id, user_id)
    assert r.status_code == 201, r.text
    invoice_id = r.json()["id"]
    reads = [(admin, "/users"), (admin, f"/users/{user_id}"), (user, f"/users/{user_id}"),
             (admin, f"/users/{user_id}/credit"), (user, f"/users/{user_id}/credit"),
             (user, f"/users/{user_id}/credit/entries"), (admin, "/events"),
             (admin, "/webhook-endpoints"), (admin, f"/invoice-transactions/invoice/{invoice_id}"),
             (admin, f"/invoice-transactions/{uuid.uuid4()}"), (admin, f"/events/{10**9}")]
    for headers, path in reads:
        sent.clear()
        r = client.get(path, headers=headers)
        assert r.status_code in (200, 404), (path, r.text)
        assert sent and sent[0].startswith("WITH guard AS ("), (path, sent)
        # the whole token check rides on the route's own statements: none of its own
        assert AUTHENTICATE.text not in sent, (path, sent)


def test_a_write_checks_the_token_in_its_first_read(
        statements: tuple[TestClient, list[str]], db: Database, password_hash: str) -> None:
    client, sent = statements
    admin, (payer_id, _), (receiver_id, _) = _people(client, db, password_hash)
    sent.clear()
    r = _invoice(client, admin, payer_id, receiver_id)
    assert r.status_code == 201, r.text
    first = next(sql for sql in sent if not sql.startswith(("BEGIN", "COMMIT")))
    assert first.startswith("WITH guard AS (") and GUARD.split(" FROM ")[0][7:] in first
    sent.clear()
    r = client.post(f"/invoices/{r.json()['id']}/void", headers=admin)
    assert r.status_code == 200, r.text
    assert sent[0].startswith("WITH guard AS (")


def test_a_refused_token_reads_locks_and_changes_nothing(api: Api, admin: Account,
                                                         alice: Account, bob: Account) -> None:
    inv = api.invoice(admin, alice, bob)
    gone = api.user("admin")
    assert api.client.post("/logout", headers=gone.headers).status_code in (200, 204)
    for method, path, body in [
            ("GET", "/events", None), ("GET", f"/users/{alice.id}", None),
            ("GET", f"/users/{alice.id}/credit", None),
            ("POST", f"/invoices/{inv['id']}/void", None),
            ("DELETE", f"/invoices/{inv['id']}", None),
            ("PATCH", f"/invoices/{inv['id']}", {"amount": "1.00"}),
            ("POST", "/webhook-endpoints", {"url": "https://example.com/hook"}),
            ("POST", f"/users/{alice.id}/credit", {"amount": "5.00", "currency": "INR"}),
            ("DELETE", f"/users/{bob.id}", None),
            ("GET", f"/events/{10**9}", None),  # 401, not 404
            ("PATCH", f"/invoices/{uuid.uuid4()}", {"amount": "-1"}),  # 401, not 422 or 404
            ("GET", f"/invoices/{inv['id']}", None), ("GET", f"/invoices/{uuid.uuid4()}", None),
            ("GET", "/invoices/not-an-id", None), ("GET", "/invoices?limit=0", None),
    ]:
        r = api.client.request(method, path, headers=gone.headers, json=body)
        assert_problem(r, 401, "not_authenticated")
    row = api.db.one("SELECT amount, voided_at FROM invoices WHERE id = %s", (inv["id"],))
    assert row == {"amount": 100000, "voided_at": None}
    assert api.db.scalar("SELECT count(*) FROM webhook_endpoints") == 0
    assert api.db.scalar("SELECT count(*) FROM credit_entries") == 0
    assert api.db.scalar("SELECT is_active FROM users WHERE id = %s", (bob.id,))


def test_admin_or_self_is_decided_before_anything_is_looked_up(api: Api, admin: Account,
                                                              alice: Account,
                                                              bob: Account) -> None:
    for path in (f"/users/{bob.id}", f"/users/{bob.id}/credit",
                 f"/users/{bob.id}/credit/entries", f"/users/{uuid.uuid4()}",
                 f"/users/{uuid.uuid4()}/credit"):
        assert_problem(api.client.get(path, headers=alice.headers), 403, "forbidden")
    for path in (f"/users/{alice.id}", f"/users/{alice.id}/credit",
                 f"/users/{alice.id}/credit/entries"):
        assert api.client.get(path, headers=alice.headers).status_code == 200
        assert api.client.get(path, headers=admin.headers).status_code == 200
    assert_problem(api.client.get(f"/users/{uuid.uuid4()}", headers=admin.headers), 404)
    for path in (f"/users/{bob.id}/credit/entries?limit=0",  # 403, not 422
                 f"/users/{uuid.uuid4()}/credit/entries?cursor=zzz"):
        assert_problem(api.client.get(path, headers=alice.headers), 403, "forbidden")
    assert_problem(api.client.get("/events", headers=alice.headers), 403, "forbidden")
    assert_problem(api.client.patch(f"/invoices/{uuid.uuid4()}", headers=alice.headers,
                                    json={"amount": "-1"}), 403, "forbidden")  # not 422
    assert_problem(api.client.post(f"/users/{bob.id}/credit", headers=alice.headers,
                                   json={"amount": "5.00", "currency": "INR"}), 403)


def test_logout_stops_guarded_writes_at_once_on_every_worker(api: Api, two_workers,
                                                             alice: Account,
                                                             bob: Account) -> None:
    """Each round: a fresh admin logs out, then at once, through two workers, 8 voids, 8
    credit grants and 8 reads with its token: every one is 401, and nothing happened."""
    for _ in range(5):
        admin = api.user("admin")
        inv = api.invoice(admin, alice, bob)
        assert api.client.post("/logout", headers=admin.headers).status_code in (200, 204)
        requests = [("POST", f"/invoices/{inv['id']}/void", admin.headers, None),
                    ("POST", f"/users/{alice.id}/credit", admin.headers,
                     {"amount": "1.00", "currency": "INR"}),
                    ("GET", "/events", admin.headers, None)] * 8
        codes = [r.status_code for r in burst(two_workers.url, requests)]
        assert codes == [401] * len(requests), codes
        assert api.db.scalar("SELECT voided_at FROM invoices WHERE id = %s",
                             (inv["id"],)) is None
        assert ledger_sums(api, inv["id"]) == (0, 0, 0)
    assert api.db.scalar("SELECT count(*) FROM credit_entries") == 0


def test_a_refused_caller_waits_for_no_lock(api: Api, admin: Account, alice: Account,
                                            bob: Account, database_url: str) -> None:
    """The route's first read locks the invoice (FOR UPDATE); a caller the guard refuses
    never runs it, so it is answered at once while someone else holds that lock."""
    inv = api.invoice(admin, alice, bob)
    gone = api.user("admin")
    assert api.client.post("/logout", headers=gone.headers).status_code in (200, 204)
    holder = Database(database_url)
    try:
        holder.conn.autocommit = False
        holder.rows("SELECT id FROM invoices WHERE id = %s FOR UPDATE", (inv["id"],))
        for who, status in ((alice, 403), (gone, 401)):
            r = api.client.post(f"/invoices/{inv['id']}/void", headers=who.headers,
                                timeout=5)
            assert_problem(r, status)
    finally:
        holder.conn.rollback()
        holder.conn.close()


def test_a_refused_token_causes_no_lookup_of_an_endpoint_host(
        statements: tuple[TestClient, list[str]], db: Database, password_hash: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An endpoint's URL is resolved (DNS) before anything is written: only once the
    caller has been checked."""
    from app.events import endpoints

    client, _ = statements
    looked_up: list[str] = []

    async def check(url: str, *, allow_private: bool) -> None:
        looked_up.append(url)

    monkeypatch.setattr(endpoints, "check", check)
    _, admin = _login(client, db, password_hash, "admin")
    _, user = _login(client, db, password_hash, "user")
    body = {"url": "https://attacker.example/x", "event_types": ["*"]}
    assert client.post("/webhook-endpoints", headers=user, json=body).status_code == 403
    assert client.post("/logout", headers=admin).status_code in (200, 204)
    assert client.post("/webhook-endpoints", headers=admin, json=body).status_code == 401
    assert client.patch(f"/webhook-endpoints/{uuid.uuid4()}", headers=admin,
                        json=body).status_code == 401
    assert looked_up == []
    _, admin = _login(client, db, password_hash, "admin")
    assert client.post("/webhook-endpoints", headers=admin, json=body).status_code == 201
    assert looked_up == [body["url"]]


def _deadlock() -> peewee.OperationalError:
    error = peewee.OperationalError("deadlock detected")
    error.orig = asyncpg.exceptions.DeadlockDetectedError("deadlock detected")
    return error


def test_a_check_that_fails_and_is_retried_still_refuses(
        statements: tuple[TestClient, list[str]], db: Database, password_hash: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """When the statement carrying the check, or the check run alone, fails with a deadlock,
    the unit of work is retried, and the retry must check again: a logged-out admin is
    refused, and nothing is written."""
    from app.auth import service

    client, sent = statements
    _, admin = _login(client, db, password_hash, "admin")
    alice_id, _ = _login(client, db, password_hash, "user")
    r = client.post("/webhook-endpoints", headers=admin,
                    json={"url": "http://127.0.0.1:9/", "event_types": ["*"]})
    assert r.status_code == 201, r.text
    endpoint_id, secret = r.json()["id"], r.json()["secret"]
    assert client.post("/logout", headers=admin).status_code in (200, 204)

    # The Idempotency-Key's claim carries the check: it deadlocks once.
    faults, original = [1], connection.AppDatabase._execute_sql

    async def deadlocks_once(self, sql, params):
        if "WITH guard AS" in sql and faults and faults.pop():
            raise _deadlock()
        return await original(self, sql, params)

    monkeypatch.setattr(connection.AppDatabase, "_execute_sql", deadlocks_once)
    sent.clear()
    r = client.post(f"/users/{alice_id}/credit", headers={**admin, "Idempotency-Key": "k1"},
                    json={"amount": "5.00", "currency": "INR", "reason": "retried"})
    assert r.status_code == 401, r.text
    assert not faults and sum("WITH guard AS" in sql for sql in sent) == 1  # then the retry
    assert db.scalar("SELECT count(*) FROM credit_entries") == 0
    assert db.scalar("SELECT count(*) FROM replays") == 0

    # The check runs alone (the route's first statement writes): it deadlocks once.
    real, faults, checks = service.authenticate, [1], []

    async def check_deadlocks_once(*, claims):
        checks.append(claims.user_id)
        if faults and faults.pop():
            raise _deadlock()
        return await real(claims=claims)

    monkeypatch.setattr(service, "authenticate", check_deadlocks_once)
    r = client.post(f"/webhook-endpoints/{endpoint_id}/rotate-secret", headers=admin)
    assert r.status_code == 401, r.text
    assert len(checks) == 2  # the retry checked again
    assert db.scalar("SELECT secret FROM webhook_endpoints WHERE id = %s",
                     (endpoint_id,)) == secret


def test_a_keyed_write_checks_the_token_in_its_claim(
        statements: tuple[TestClient, list[str]], db: Database, password_hash: str) -> None:
    """With an Idempotency-Key the first statement is the key's claim: the check rides on
    it, and a refused caller claims no key."""
    client, sent = statements
    _, admin = _login(client, db, password_hash, "admin")
    _, user = _login(client, db, password_hash, "user")
    payer_id, _ = _login(client, db, password_hash, "user")
    receiver_id, _ = _login(client, db, password_hash, "user")
    body = {"payer_id": payer_id, "receiver_id": receiver_id, "amount": "10.00",
            "description": "d"}
    sent.clear()
    r = client.post("/invoices", headers={**admin, "Idempotency-Key": "a"}, json=body)
    assert r.status_code == 201, r.text
    assert "INSERT INTO replays" in sent[0] and sent[0].lstrip().startswith("WITH guard AS")
    assert AUTHENTICATE.text not in sent
    invoice_id = r.json()["id"]
    sent.clear()
    r = client.post("/invoice-transactions", headers={**admin, "Idempotency-Key": "b"},
                    json={"invoice_id": invoice_id, "amount": "1.00", "payment_mode": "upi"})
    assert r.status_code == 201, r.text
    assert AUTHENTICATE.text not in sent and "WITH guard AS" in sent[0]
    for key in ("c", "d"):  # the user is refused; so is the admin once logged out
        who = user if key == "c" else admin
        if key == "d":
            assert client.post("/logout", headers=admin).status_code in (200, 204)
        for path, json in (("/invoices", body),
                           ("/invoice-transactions", {"invoice_id": invoice_id,
                                                      "amount": "1.00", "payment_mode": "upi"}),
                           (f"/users/{payer_id}/credit", {"amount": "1.00", "currency": "INR",
                                                          "reason": "r"})):
            r = client.post(path, headers={**who, "Idempotency-Key": key}, json=json)
            assert r.status_code == (403 if key == "c" else 401), (path, r.text)
    assert db.scalar("SELECT count(*) FROM replays") == 2  # a and b
    assert db.scalar("SELECT count(*) FROM invoices") == 1
    assert db.scalar("SELECT count(*) FROM invoice_transactions") == 1
    assert db.scalar("SELECT count(*) FROM credit_entries") == 0


def test_the_caller_is_refused_before_its_body(api: Api, admin: Account, alice: Account) -> None:
    """A body that is not JSON, or in another media type, is refused only once the caller
    may send it: a refused caller hears about its token, not its body."""
    gone = api.user("admin")
    assert api.client.post("/logout", headers=gone.headers).status_code in (200, 204)
    not_json = {"content": b"{not json", "headers": {"Content-Type": "application/json"}}
    as_text = {"content": b"amount=1", "headers": {"Content-Type": "text/plain"}}
    for body in (not_json, as_text):
        for who, status in ((None, 401), (gone, 401), (alice, 403), (admin, None)):
            headers = {**body["headers"], **(who.headers if who else {})}
            r = api.client.post("/invoices", content=body["content"], headers=headers)
            expected = status or (422 if body is not_json else 415)
            assert_problem(r, expected)
        r = api.client.patch(f"/invoices/{uuid.uuid4()}", content=body["content"],
                             headers={**body["headers"], **gone.headers})
        assert_problem(r, 401)
    # a sign-up takes no token: its body is judged as before
    assert_problem(api.client.post("/users", **not_json), 422)
