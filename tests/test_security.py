"""Attacks tried: tokens, injection, oversized and nested bodies, enumeration,
secrets in logs, security headers and CORS, and signed-webhook bodies fuzzed."""

from __future__ import annotations

import base64
import json
import statistics
import time
import uuid

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import (
    PASSWORD,
    SECRET_KEY,
    WEBHOOK_SECRETS,
    Account,
    Api,
    Server,
    assert_problem,
    assert_reconciles,
    deliver,
    ledger_sums,
    sign,
)

INJECTIONS = [
    "' OR '1'='1",
    "'; DROP TABLE users; --",
    '"); DELETE FROM invoices; --',
    "1; SELECT pg_sleep(5)",
    "$1 %s %% {}",
    "<script>alert(1)</script>",
    "${jndi:ldap://127.0.0.1/a}",
    "{{7*7}}",
    "../../../../etc/passwd",
    "ʼ OR ʼ1ʼ=ʼ1 ÄÖÜ 漢字 🙂",
    "line1\nline2\rX-Injected: yes",
]


def test_tampered_token_payload_is_401(api: Api, alice: Account, admin: Account) -> None:
    header, payload, signature = alice.token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = admin.id
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    r = api.client.get("/users", headers={"Authorization": f"Bearer {header}.{forged}.{signature}"})
    assert_problem(r, 401)


@pytest.mark.parametrize("text", INJECTIONS)
def test_injection_strings_are_data(api: Api, admin: Account, alice: Account, bob: Account,
                                    text: str) -> None:
    users_before = api.db.scalar("SELECT count(*) FROM users")
    r = api.client.post("/users", json={"username": text, "email": "x@example.com",
                                        "password": PASSWORD})
    assert_problem(r, 422)
    r = api.client.post("/users", json={"username": "eve", "email": f"{text}@example.com",
                                        "password": PASSWORD})
    assert r.status_code in (201, 422), r.text
    r = api.client.post("/login", data={"username": text, "password": text})
    assert_problem(r, 401)
    r = api.client.post("/login", json={"username": text, "password": PASSWORD})
    assert_problem(r, 401)

    inv = api.invoice(admin, alice, bob, description=text)
    assert inv["description"] == text.strip()
    stored = api.db.scalar("SELECT description FROM invoices WHERE id = %s", (inv["id"],))
    assert stored == text.strip()
    r = api.pay(admin, inv["id"], "1", payment_mode=text[:50], reference=text)
    assert r.status_code == 201, r.text
    assert r.json()["reference"] == text.strip()
    event = {"id": text, "invoice_id": inv["id"], "amount_paid": "1", "reference": text}
    assert deliver(api, "payment/success", event).status_code == 200
    assert api.db.scalar("SELECT count(*) FROM replays WHERE scope = 'webhook' AND key = %s",
                         (text.strip(),)) == 1

    for params in ({"status": text}, {"cursor": text}, {"payer_id": text},
                   {"created_after": text}):
        assert_problem(api.client.get("/invoices", headers=admin.headers, params=params), 422)
    from urllib.parse import quote

    r = api.client.get(f"/invoices/{quote(text, safe='')}", headers=admin.headers)
    assert r.status_code in (404, 422)
    if text.isascii() and "\n" not in text and "\r" not in text:
        r = api.client.post("/invoices", headers={**admin.headers, "Idempotency-Key": text},
                            json={"payer_id": alice.id, "receiver_id": bob.id, "amount": 1,
                                  "description": "k"})
        assert r.status_code == 201
    assert api.db.scalar("SELECT count(*) FROM users") >= users_before
    assert ledger_sums(api, inv["id"])[0] == 200


def test_header_injection_in_request_id_is_not_echoed(api: Api) -> None:
    for value in ("abc def", 'x"y', "a" * 200, "ok;Set-Cookie=1"):
        r = api.client.get("/health", headers={"X-Request-ID": value})
        assert r.headers["x-request-id"] != value
        assert "set-cookie" not in r.headers


def test_nul_bytes_are_422_not_500(api: Api, admin: Account, alice: Account,
                                   bob: Account) -> None:
    r = api.client.post("/invoices", headers=admin.headers, json={
        "payer_id": alice.id, "receiver_id": bob.id, "amount": 1, "description": "a\x00b"})
    assert_problem(r, 422)
    assert_problem(api.client.post("/login", json={"username": "a\x00", "password": "x"}), 422)
    inv = api.invoice(admin, alice, bob)
    r = deliver(api, "payment/success", {"id": "evt\x00", "invoice_id": inv["id"],
                                         "amount_paid": 1})
    assert_problem(r, 422)


@pytest.mark.parametrize("path", ["/users", "/invoices", "/invoice-transactions", "/login"])
def test_oversized_and_deeply_nested_bodies(api: Api, admin: Account, path: str) -> None:
    big = b'{"description": "' + b"x" * 70_000 + b'"}'
    r = api.client.post(path, content=big, headers={**admin.headers,
                                                    "content-type": "application/json"})
    assert_problem(r, 413, "payload_too_large")
    nested = b"[" * 20_000 + b"]" * 20_000
    r = api.client.post(path, content=nested, headers={**admin.headers,
                                                       "content-type": "application/json"})
    assert_problem(r, 422)

    async def chunked() -> httpx.Response:
        async def body():  # no Content-Length: the limit must hold while streaming
            for _ in range(100):
                yield b"x" * 1024

        async with httpx.AsyncClient(base_url=str(api.client.base_url)) as c:
            return await c.post(path, content=body(), headers={
                **admin.headers, "content-type": "application/json"})

    import asyncio

    assert_problem(asyncio.run(chunked()), 413, "payload_too_large")


def test_login_timing_does_not_reveal_accounts(api: Api, alice: Account) -> None:
    def timed(username: str) -> float:
        start = time.perf_counter()
        r = api.client.post("/login", data={"username": username, "password": "wrong-pass-x"})
        assert r.status_code == 401
        return time.perf_counter() - start

    known, unknown = [], []
    for i in range(7):
        api.db.rows("DELETE FROM login_throttles")
        known.append(timed("alice"))
        unknown.append(timed(f"nobody-{i}"))
    ratio = statistics.median(unknown) / statistics.median(known)
    assert 0.5 < ratio < 2.0, (known, unknown)


def test_secrets_never_reach_the_logs(api: Api, server: Server, admin: Account,
                                      alice: Account, bob: Account) -> None:
    marker = uuid.uuid4().hex
    secret_password = f"Sup3r-secret-{marker}"
    r = api.client.post("/users", json={"username": f"s{marker[:10]}",
                                        "email": f"s{marker[:8]}@example.com",
                                        "password": secret_password},
                        headers={"X-Request-ID": marker})
    assert r.status_code == 201
    api.client.post("/login", data={"username": f"s{marker[:10]}", "password": "wrong-" + marker})
    token = api.login(f"s{marker[:10]}", secret_password)
    api.client.get("/users", headers={"Authorization": f"Bearer {token}"})
    api.client.get("/users", headers={"Authorization": "Bearer garbage-" + marker})
    inv = api.invoice(admin, alice, bob)
    deliver(api, "payment/success", {"id": evt_id(), "invoice_id": inv["id"], "amount_paid": 1})
    deliver(api, "payment/success", b'{"id": "x"}', signature="t=1,v1=" + "ab" * 32)
    time.sleep(0.3)
    log = server.log_text()
    assert marker in log  # the request id is logged, so the log is really being read
    for secret in (secret_password, token, SECRET_KEY, *WEBHOOK_SECRETS, admin.token,
                   "wrong-" + marker, "garbage-" + marker, PASSWORD):
        assert secret not in log
    assert "Authorization" not in log and "password_hash" not in log


def evt_id() -> str:
    return f"evt_{uuid.uuid4().hex}"


def test_security_headers_on_every_kind_of_response(api: Api, admin: Account) -> None:
    responses = [
        api.client.get("/health"),
        api.client.get("/users", headers=admin.headers),
        api.client.get("/users"),
        api.client.get("/nope"),
        api.client.post("/users", json={}),
        api.client.post("/login", data={"username": "x", "password": "y"}),
    ]
    for r in responses:
        assert r.headers["x-content-type-options"] == "nosniff", r.url
        assert r.headers["cache-control"] == "no-store", r.url
        assert "server" not in r.headers, r.url
        assert r.headers.get("x-request-id")


def test_cors_is_off_unless_configured(api: Api, database_url: str, tmp_path) -> None:
    preflight = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    r = api.client.options("/users", headers=preflight)
    assert "access-control-allow-origin" not in r.headers
    r = api.client.get("/health", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers

    srv = Server(database_url, tmp_path / "cors.log", CORS_ORIGINS="https://app.example")
    try:
        ok = httpx.options(srv.url + "/users", headers={
            "Origin": "https://app.example", "Access-Control-Request-Method": "POST"})
        assert ok.headers["access-control-allow-origin"] == "https://app.example"
        other = httpx.options(srv.url + "/users", headers=preflight)
        assert other.headers.get("access-control-allow-origin") != "https://evil.example"
    finally:
        srv.stop()


# -- signed webhook bodies, fuzzed --------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=3),
    max_leaves=8)
_amount = st.one_of(
    st.integers(min_value=-10**20, max_value=10**20), st.text(max_size=25),
    st.decimals(allow_nan=False, allow_infinity=False).map(str),
    st.floats(allow_nan=False, allow_infinity=False), _json)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(kind=st.sampled_from(["payment/success", "payment/failure", "refund"]),
       event_id=st.one_of(st.text(max_size=300), _json), amount=_amount,
       invoice=st.sampled_from(["real", "unknown", "garbage"]), extra=_json)
def test_fuzzed_signed_webhooks_never_500(api: Api, fuzz_invoice: str, kind: str,
                                          event_id: object, amount: object, invoice: str,
                                          extra: object) -> None:
    invoice_id = {"real": fuzz_invoice, "unknown": str(uuid.uuid4()),
                  "garbage": "not-a-uuid"}[invoice]
    field = {"payment/success": "amount_paid", "payment/failure": "amount",
             "refund": "refunded_amount"}[kind]
    body = json.dumps({"id": event_id, "invoice_id": invoice_id, field: amount,
                       "extra": extra}, default=str).encode()
    r = api.client.post(f"/webhooks/{kind}", content=body,
                        headers={"X-Signature": sign(body), "content-type": "application/json"})
    assert r.status_code in (200, 404, 409, 422), r.text
    assert r.headers["content-type"].startswith(
        "application/json" if r.status_code == 200 else "application/problem+json")


@pytest.fixture
def fuzz_invoice(api: Api, admin: Account, alice: Account, bob: Account) -> str:
    inv = api.invoice(admin, alice, bob, amount="1000000")
    yield inv["id"]
    assert_reconciles(api)


def test_old_cost_hashes_are_upgraded_at_login(api: Api) -> None:
    from passlib.context import CryptContext

    old = CryptContext(schemes=["argon2"]).hash(PASSWORD)  # passlib's heavier defaults
    user_id = str(uuid.uuid4())
    api.db.rows("INSERT INTO users (id, username, email, password_hash) "
                "VALUES (%s, 'legacy', 'legacy@example.com', %s)", (user_id, old))
    api.login("legacy")
    new = api.db.scalar("SELECT password_hash FROM users WHERE id = %s", (user_id,))
    assert new != old and "m=19456" in new
    api.login("legacy")


def test_metrics_are_not_public_in_production(database_url: str, tmp_path) -> None:
    """/metrics shows business totals (ASVS V14.3): closed in production until
    METRICS_TOKEN is set, then only for a scrape that sends it; /health stays open."""
    closed = Server(database_url, tmp_path / "closed.log", APP_ENV="production")
    try:
        assert_problem(httpx.get(closed.url + "/metrics"), 403, "forbidden")
        assert httpx.get(closed.url + "/health").status_code == 200
    finally:
        closed.stop()
    token = "m" * 40
    guarded = Server(database_url, tmp_path / "guarded.log", APP_ENV="production",
                     METRICS_TOKEN=token)
    try:
        url = guarded.url + "/metrics"
        assert_problem(httpx.get(url), 401, "not_authenticated")
        assert_problem(httpx.get(url, headers={"Authorization": "Bearer wrong"}), 401)
        ok = httpx.get(url, headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200 and "http_requests_total" in ok.text
    finally:
        guarded.stop()


def test_oversized_request_headers_are_431(api: Api, alice: Account) -> None:
    """A limit on headers as on bodies (ASVS V13.1): 16 KiB in all by default."""
    url = f"/users/{alice.id}"
    big = {**alice.headers, "X-Padding": "p" * (20 * 1024)}
    r = api.client.get(url, headers=big)
    assert_problem(r, 431, "request_headers_too_large")
    assert r.headers["x-request-id"] and r.headers["x-content-type-options"] == "nosniff"
    ok = api.client.get(url, headers={**alice.headers, "X-Padding": "p" * 8000})
    assert ok.status_code == 200


def test_every_answer_carries_the_headers_even_an_unexpected_500(database_url: str,
                                                                 db) -> None:
    """An error no handler catches is answered by the app's own middleware (ASVS V14.4):
    problem+json with the request id and the security headers, and a traceback in the log.
    404, 405 and /docs carry them too, and no page may be framed."""
    from fastapi.testclient import TestClient

    from app.config import Settings
    from app.main import create_app

    app = create_app(Settings(database_url=database_url, app_env="test", secret_key="k" * 40,
                              webhook_secret="w" * 40, deliver_in_process=False))

    async def boom() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/boom", boom)
    with TestClient(app, raise_server_exceptions=False) as client:
        for path, method, status in (("/boom", "GET", 500), ("/nowhere", "GET", 404),
                                     ("/health", "POST", 405), ("/docs", "GET", 200)):
            r = client.request(method, path, headers={"X-Request-ID": "req-42"})
            assert r.status_code == status, (path, r.text)
            assert r.headers["x-request-id"] == "req-42", path
            assert r.headers["x-content-type-options"] == "nosniff", path
            assert r.headers["x-frame-options"] == "DENY", path
            assert "frame-ancestors 'none'" in r.headers["content-security-policy"], path
        r = client.get("/boom")
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["code"] == "internal_error"
        assert r.headers["x-request-id"] in r.json()["detail"]
