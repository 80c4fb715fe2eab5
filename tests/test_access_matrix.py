"""Every route × every kind of caller → the expected status, all checked.

A route that the OpenAPI document lists but this table does not makes the suite fail, so a
new endpoint cannot ship without its access rules written down here.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import pytest
from jose import jwt

from tests.support import PASSWORD, SECRET_KEY, Api, sign

PERSONAS = ("anonymous", "expired", "revoked", "deactivated", "user", "payer", "receiver",
            "admin")
NO_TOKEN = (401, 401, 401, 401)
ADMIN_ONLY = (*NO_TOKEN, 403, 403, 403, 200)


@dataclass
class World:
    ids: dict[str, str]
    tokens: dict[str, str | None]
    invoice_id: str
    empty_invoice_id: str
    transaction_id: str
    event_id: str
    endpoint_id: str


def mint(user_id: str, *, expired: bool = False) -> tuple[str, str]:
    now = int(time.time())
    jti = uuid.uuid4().hex
    exp = now - 60 if expired else now + 600
    return jwt.encode({"sub": user_id, "iat": now - 120, "exp": exp, "jti": jti}, SECRET_KEY,
                      algorithm="HS256"), jti


def build_world(api: Api, password_hash: str) -> World:
    ids: dict[str, str] = {}
    for name in ("expired", "revoked", "deactivated", "user", "payer", "receiver", "admin"):
        ids[name] = str(uuid.uuid4())
        api.db.rows(
            "INSERT INTO users (id, username, email, password_hash, role, is_active) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            (ids[name], name, f"{name}@example.com", password_hash,
             "admin" if name == "admin" else "user", name != "deactivated"))
    tokens: dict[str, str | None] = {"anonymous": None}
    for name, user_id in ids.items():
        token, jti = mint(user_id, expired=name == "expired")
        tokens[name] = token
        if name == "revoked":
            api.db.rows("INSERT INTO revoked_tokens (jti, expires_at) "
                        "VALUES (%s, now() + interval '1 hour')", (jti,))
    invoice_id, empty_id, tx_id = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    for inv in (invoice_id, empty_id):
        api.db.rows("INSERT INTO invoices (id, payer_id, receiver_id, amount, currency) "
                    "VALUES (%s, %s, %s, 100000, 'INR')", (inv, ids["payer"], ids["receiver"]))
    api.db.rows(
        "INSERT INTO invoice_transactions (id, invoice_id, kind, status, amount, currency, "
        "payment_mode, payment_date, source) VALUES (%s, %s, 'payment', 'succeeded', 100, "
        "'INR', 'upi', now(), 'api')", (tx_id, invoice_id))
    api.db.rows("UPDATE invoices SET amount_recovered = 100 WHERE id = %s", (invoice_id,))
    event_id, endpoint_id = f"evt_{uuid.uuid4().hex}", str(uuid.uuid4())
    api.db.rows("INSERT INTO events (id, type, invoice_id, created_at, data) VALUES "
                "(%s, 'invoice.created', %s, now(), '{\"object\": {}}')", (event_id, invoice_id))
    api.db.rows("INSERT INTO webhook_endpoints (id, url, event_types, secret, created_at, "
                "updated_at) VALUES (%s, 'http://127.0.0.1:9/hooks', '{invoice.deleted}', "
                "'whsec_AAAA', now(), now())", (endpoint_id,))
    return World(ids, tokens, invoice_id, empty_id, tx_id, event_id, endpoint_id)


Request = Callable[[httpx.Client, World, dict[str, str]], httpx.Response]


def _webhook(path: str, field: str) -> Request:
    def send(c: httpx.Client, w: World, h: dict[str, str]) -> httpx.Response:
        body = json.dumps({"id": f"evt_{uuid.uuid4().hex}", "invoice_id": w.invoice_id,
                           field: "1"}).encode()
        return c.post(path, content=body, headers={**h, "X-Signature": sign(body),
                                                    "content-type": "application/json"})
    return send


def _new_user(c: httpx.Client, w: World, h: dict[str, str]) -> httpx.Response:
    name = f"n{uuid.uuid4().hex[:12]}"
    return c.post("/users", headers=h, json={"username": name, "email": f"{name}@example.com",
                                             "password": PASSWORD})


# (method, path) → (request, expected status per persona, in PERSONAS order)
MATRIX: dict[tuple[str, str], tuple[Request, tuple[int, ...]]] = {
    ("GET", "/health"): (lambda c, w, h: c.get("/health", headers=h), (200,) * 8),
    ("GET", "/ready"): (lambda c, w, h: c.get("/ready", headers=h), (200,) * 8),
    ("GET", "/metrics"): (lambda c, w, h: c.get("/metrics", headers=h), (200,) * 8),
    ("POST", "/login"): (lambda c, w, h: c.post("/login", headers=h, data={
        "username": "payer", "password": PASSWORD}), (200,) * 8),
    ("POST", "/logout"): (lambda c, w, h: c.post("/logout", headers=h),
                          (*NO_TOKEN, 204, 204, 204, 204)),
    ("POST", "/users"): (_new_user, (201, 401, 401, 401, 201, 201, 201, 201)),
    ("GET", "/users"): (lambda c, w, h: c.get("/users", headers=h),
                        (*NO_TOKEN, 403, 403, 403, 200)),
    ("GET", "/users/{user_id}"): (lambda c, w, h: c.get(f"/users/{w.ids['payer']}", headers=h),
                                  (*NO_TOKEN, 403, 200, 403, 200)),
    ("PUT", "/users/{user_id}"): (lambda c, w, h: c.put(
        f"/users/{w.ids['payer']}", headers=h, json={"email": "p2@example.com",
                                                     "current_password": PASSWORD}),
        (*NO_TOKEN, 403, 200, 403, 200)),
    ("PATCH", "/users/{user_id}"): (lambda c, w, h: c.patch(
        f"/users/{w.ids['payer']}", headers=h, json={"email": "p3@example.com",
                                                     "current_password": PASSWORD}),
        (*NO_TOKEN, 403, 200, 403, 200)),
    ("DELETE", "/users/{user_id}"): (lambda c, w, h: c.delete(
        f"/users/{w.ids['user']}", headers=h), (*NO_TOKEN, 403, 403, 403, 204)),
    ("POST", "/invoices"): (lambda c, w, h: c.post("/invoices", headers=h, json={
        "payer_id": w.ids["payer"], "receiver_id": w.ids["receiver"], "amount": "5",
        "description": "m"}), (*NO_TOKEN, 403, 403, 403, 201)),
    ("GET", "/invoices"): (lambda c, w, h: c.get("/invoices", headers=h),
                           (*NO_TOKEN, 403, 403, 403, 200)),
    ("GET", "/invoices/{invoice_id}"): (lambda c, w, h: c.get(
        f"/invoices/{w.invoice_id}", headers=h), (*NO_TOKEN, 403, 200, 200, 200)),
    ("PUT", "/invoices/{invoice_id}"): (lambda c, w, h: c.put(
        f"/invoices/{w.invoice_id}", headers=h, json={"description": "x"}),
        (*NO_TOKEN, 403, 403, 403, 200)),
    ("PATCH", "/invoices/{invoice_id}"): (lambda c, w, h: c.patch(
        f"/invoices/{w.invoice_id}", headers=h, json={"description": "y"}),
        (*NO_TOKEN, 403, 403, 403, 200)),
    ("DELETE", "/invoices/{invoice_id}"): (lambda c, w, h: c.delete(
        f"/invoices/{w.empty_invoice_id}", headers=h), (*NO_TOKEN, 403, 403, 403, 204)),
    ("POST", "/invoices/{invoice_id}/void"): (lambda c, w, h: c.post(
        f"/invoices/{w.empty_invoice_id}/void", headers=h), (*NO_TOKEN, 403, 403, 403, 200)),
    ("POST", "/invoices/{invoice_id}/mark-uncollectible"): (lambda c, w, h: c.post(
        f"/invoices/{w.invoice_id}/mark-uncollectible", headers=h),
        (*NO_TOKEN, 403, 403, 403, 200)),
    ("POST", "/invoices/{invoice_id}/mark-collectible"): (lambda c, w, h: c.post(
        f"/invoices/{w.invoice_id}/mark-collectible", headers=h),
        (*NO_TOKEN, 403, 403, 403, 200)),
    ("GET", "/users/{user_id}/credit"): (lambda c, w, h: c.get(
        f"/users/{w.ids['payer']}/credit", headers=h), (*NO_TOKEN, 403, 200, 403, 200)),
    ("GET", "/users/{user_id}/credit/entries"): (lambda c, w, h: c.get(
        f"/users/{w.ids['payer']}/credit/entries", headers=h), (*NO_TOKEN, 403, 200, 403, 200)),
    ("POST", "/users/{user_id}/credit"): (lambda c, w, h: c.post(
        f"/users/{w.ids['payer']}/credit", headers=h, json={
            "amount": "5", "currency": "INR", "reason": "matrix"}),
        (*NO_TOKEN, 403, 403, 403, 201)),
    # No credit in this world: an admin gets through to the money rule.
    ("POST", "/invoices/{invoice_id}/apply-credit"): (lambda c, w, h: c.post(
        f"/invoices/{w.invoice_id}/apply-credit", headers=h),
        (*NO_TOKEN, 403, 403, 403, 409)),
    ("POST", "/invoice-transactions"): (lambda c, w, h: c.post(
        "/invoice-transactions", headers=h, json={"invoice_id": w.invoice_id, "amount": "1",
                                                  "payment_mode": "upi"}),
        (*NO_TOKEN, 403, 403, 403, 201)),
    ("GET", "/invoice-transactions/invoice/{invoice_id}"): (lambda c, w, h: c.get(
        f"/invoice-transactions/invoice/{w.invoice_id}", headers=h),
        (*NO_TOKEN, 403, 403, 403, 200)),
    ("GET", "/invoice-transactions/{transaction_id}"): (lambda c, w, h: c.get(
        f"/invoice-transactions/{w.transaction_id}", headers=h),
        (*NO_TOKEN, 403, 403, 403, 200)),
    ("POST", "/webhooks/payment/success"): (_webhook("/webhooks/payment/success",
                                                     "amount_paid"), (200,) * 8),
    ("POST", "/webhooks/payment/failure"): (_webhook("/webhooks/payment/failure", "amount"),
                                            (200,) * 8),
    ("POST", "/webhooks/refund"): (_webhook("/webhooks/refund", "refunded_amount"),
                                   (200,) * 8),
    ("GET", "/events"): (lambda c, w, h: c.get("/events", headers=h), ADMIN_ONLY),
    ("GET", "/events/{event_id}"): (lambda c, w, h: c.get(f"/events/{w.event_id}", headers=h),
                                    ADMIN_ONLY),
    ("GET", "/events/{event_id}/deliveries"): (lambda c, w, h: c.get(
        f"/events/{w.event_id}/deliveries", headers=h), ADMIN_ONLY),
    ("POST", "/events/{event_id}/redeliver"): (lambda c, w, h: c.post(
        f"/events/{w.event_id}/redeliver", headers=h, json={"endpoint_id": w.endpoint_id}),
        (*NO_TOKEN, 403, 403, 403, 202)),
    ("POST", "/webhook-endpoints"): (lambda c, w, h: c.post("/webhook-endpoints", headers=h, json={
        "url": "http://127.0.0.1:9/x", "event_types": ["*"]}), (*NO_TOKEN, 403, 403, 403, 201)),
    ("GET", "/webhook-endpoints"): (lambda c, w, h: c.get("/webhook-endpoints", headers=h),
                                    ADMIN_ONLY),
    ("GET", "/webhook-endpoints/{endpoint_id}"): (lambda c, w, h: c.get(
        f"/webhook-endpoints/{w.endpoint_id}", headers=h), ADMIN_ONLY),
    ("PATCH", "/webhook-endpoints/{endpoint_id}"): (lambda c, w, h: c.patch(
        f"/webhook-endpoints/{w.endpoint_id}", headers=h, json={"description": "d"}),
        ADMIN_ONLY),
    ("DELETE", "/webhook-endpoints/{endpoint_id}"): (lambda c, w, h: c.delete(
        f"/webhook-endpoints/{w.endpoint_id}", headers=h), (*NO_TOKEN, 403, 403, 403, 204)),
    ("POST", "/webhook-endpoints/{endpoint_id}/rotate-secret"): (lambda c, w, h: c.post(
        f"/webhook-endpoints/{w.endpoint_id}/rotate-secret", headers=h), ADMIN_ONLY),
}


def test_every_route_has_a_row(api: Api) -> None:
    doc = api.client.get("/openapi.json").json()
    routes = {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}
    assert routes == set(MATRIX), {"missing rows": routes - set(MATRIX),
                                   "rows for no route": set(MATRIX) - routes}


@pytest.mark.parametrize("route", list(MATRIX), ids=[f"{m} {p}" for m, p in MATRIX])
def test_access_matrix(api: Api, password_hash: str, route: tuple[str, str]) -> None:
    send, expected = MATRIX[route]
    got = []
    for persona in PERSONAS:
        api.db.reset()
        world = build_world(api, password_hash)
        token = world.tokens[persona]
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = send(api.client, world, headers)
        got.append(response.status_code)
        if response.status_code >= 400:
            assert response.headers["content-type"].startswith("application/problem+json")
        if response.status_code == 401:
            assert response.headers.get("www-authenticate") == "Bearer"
    assert dict(zip(PERSONAS, got, strict=True)) == dict(zip(PERSONAS, expected, strict=True))
