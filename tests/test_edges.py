"""Inputs at the edges of what the parsers accept: every one gets a documented 2xx or 4xx.

First the cases found by hand (each once answered 500, or wrongly), then properties checked
with Hypothesis for every kind of input the API parses: money strings and numbers,
datetimes with offsets, cursors, ids, signature headers, nested JSON. The server log is
checked after every test as well (conftest.py), so a 5xx fails the test even when the
answer looked fine.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import (
    PASSWORD,
    Account,
    Api,
    assert_problem,
    ledger_sums,
    sign,
)

FIXTURES_OK = settings(deadline=None, max_examples=60,
                       suppress_health_check=[HealthCheck.function_scoped_fixture,
                                              HealthCheck.too_slow])


def nested(depth: int) -> bytes:
    return b'{"a": ' * depth + b"1" + b"}" * depth


# -- nesting -------------------------------------------------------------------------------

JSON_ROUTES = ["/users", "/login", "/invoices", "/invoice-transactions",
               "/webhooks/payment/success", "/webhooks/payment/failure", "/webhooks/refund"]


@pytest.mark.parametrize("depth", [33, 500, 930, 960, 990, 999, 1100])
@pytest.mark.parametrize("path", JSON_ROUTES)
def test_deeply_nested_json_is_422_on_every_route(api: Api, admin: Account, path: str,
                                                  depth: int) -> None:
    for body in (nested(depth), b"[" * depth + b"]" * depth):
        headers = {**admin.headers, "content-type": "application/json"}
        if path.startswith("/webhooks"):
            headers["X-Signature"] = sign(body)
        r = api.client.post(path, content=body, headers=headers)
        problem = assert_problem(r, 422, "validation_error")
        assert "nested deeper than 32 levels" in problem["detail"], problem


def test_nesting_up_to_the_limit_is_read_as_data(api: Api, admin: Account, alice: Account,
                                                 bob: Account) -> None:
    body = {"payer_id": alice.id, "receiver_id": bob.id, "amount": 5, "description": "x",
            "status": json.loads(nested(31))}  # a read-only field, echoed deeply
    r = api.client.post("/invoices", headers=admin.headers, json=body)
    assert_problem(r, 422, "read_only_field")


# -- datetimes -------------------------------------------------------------------------------

OUT_OF_RANGE = ["0001-01-01T00:00:00+01:00", "0001-01-01T00:59:59+01:00",
                "9999-12-31T23:00:00-01:00", "9999-12-31T23:59:59.999999-23:59"]
IN_RANGE = ["0001-01-01T00:00:00Z", "0001-01-01T01:00:00+01:00", "9999-12-31T23:59:59Z",
            "9999-12-31T22:00:00-01:00"]


@pytest.mark.parametrize("when", OUT_OF_RANGE)
def test_datetimes_outside_years_1_to_9999_in_utc_are_422(api: Api, admin: Account,
                                                          alice: Account, bob: Account,
                                                          when: str) -> None:
    inv = api.invoice(admin, alice, bob)
    problem = assert_problem(api.pay(admin, inv["id"], 1, payment_date=when), 422)
    assert "years 1 to 9999" in problem["detail"]
    for param in ("created_after", "created_before"):
        r = api.client.get("/invoices", headers=admin.headers, params={param: when})
        assert_problem(r, 422, "validation_error")
    assert ledger_sums(api, inv["id"]) == (0, 0, 0)


@pytest.mark.parametrize("when", IN_RANGE)
def test_datetimes_at_the_edges_of_the_range_are_taken(api: Api, admin: Account,
                                                       alice: Account, bob: Account,
                                                       when: str) -> None:
    inv = api.invoice(admin, alice, bob)
    r = api.pay(admin, inv["id"], 1, payment_date=when)
    assert r.status_code == 201, r.text
    sent = datetime.fromisoformat(when.replace("Z", "+00:00"))
    assert datetime.fromisoformat(r.json()["payment_date"].replace("Z", "+00:00")) == sent
    for param in ("created_after", "created_before"):
        r = api.client.get("/invoices", headers=admin.headers, params={param: when})
        assert r.status_code == 200, r.text


def cursor_of(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize("stamp", [*OUT_OF_RANGE, "0001-01-01T00:00:00", "not-a-time",
                                   "2026-01-01T00:00:00+99:00"])
def test_forged_cursors_are_422(api: Api, admin: Account, stamp: str) -> None:
    cursor = cursor_of(f"{stamp}|{uuid.uuid4()}")
    for path in ("/invoices", "/users", f"/invoice-transactions/invoice/{uuid.uuid4()}"):
        r = api.client.get(path, headers=admin.headers, params={"cursor": cursor})
        assert_problem(r, 422, "invalid_cursor")


# -- signatures ------------------------------------------------------------------------------

def test_non_ascii_signature_headers_are_401(api: Api, admin: Account, alice: Account,
                                            bob: Account) -> None:
    inv = api.invoice(admin, alice, bob)
    body = json.dumps({"id": "evt_x", "invoice_id": inv["id"], "amount_paid": 1}).encode()
    t = str(int(time.time()))
    good = sign(body, t=int(t)).split("v1=")[1]
    arabic_t = "".join(chr(0x0660 + int(d)) for d in t)  # the same number in Arabic digits
    headers = [
        f"t={arabic_t},v1={good}".encode(),
        f"t={t},v1={good[:-1]}\u0661".encode(),
        f"t={t},v1={good[:-1]}".encode() + b"\xff",
        b"t=\xff\xfe,v1=" + good.encode(),
        f"t={t},v1=\uff10{good[1:]}".encode(),  # a fullwidth zero
    ]
    for header in headers:
        r = api.client.post("/webhooks/payment/success", content=body, headers={
            "content-type": "application/json", "X-Signature": header})
        assert_problem(r, 401, "invalid_signature")
    assert ledger_sums(api, inv["id"]) == (0, 0, 0)


# -- money -----------------------------------------------------------------------------------

@pytest.mark.parametrize("amount", ["١٢", "１２", "12\n", " 12", "12 ", "1٫5", "½", "1_000",
                                    "0x10", "+", "-", ".", "1e3", "١"])
def test_money_strings_are_ascii_decimals_only(api: Api, admin: Account, alice: Account,
                                               bob: Account, amount: str) -> None:
    inv = api.invoice(admin, alice, bob)
    assert_problem(api.pay(admin, inv["id"], amount), 422, "validation_error")
    r = api.client.post("/invoices", headers=admin.headers, json={
        "payer_id": alice.id, "receiver_id": bob.id, "amount": amount, "description": "x"})
    assert_problem(r, 422, "validation_error")
    assert ledger_sums(api, inv["id"]) == (0, 0, 0)


def test_currencies_are_the_current_iso_4217_list(api: Api, admin: Account, alice: Account,
                                                  bob: Account) -> None:
    def create(currency: str) -> httpx.Response:
        return api.client.post("/invoices", headers=admin.headers, json={
            "payer_id": alice.id, "receiver_id": bob.id, "amount": "1", "currency": currency,
            "description": "x"})

    for code, shown in (("XCG", "1.00"), ("VED", "1.00"), ("CLF", "1.0000"), ("BOV", "1.00"),
                        ("isk", "1"), ("BHD", "1.000")):
        r = create(code)
        assert r.status_code == 201 and r.json()["amount"] == shown, r.text
    # Withdrawn (ANG, BGN), not money (XAU, XXX, XTS), or not ASCII ("ınr" upper-cases to INR).
    for code in ("ANG", "BGN", "XAU", "XXX", "XTS", "ınr", "INR\n", "EURO", ""):
        assert_problem(create(code), 422, "validation_error")


def test_an_invoice_in_a_withdrawn_currency_still_works(api: Api, admin: Account,
                                                       alice: Account, bob: Account) -> None:
    inv = api.invoice(admin, alice, bob, amount="10")
    api.db.rows("UPDATE invoices SET currency = 'BGN' WHERE id = %s", (inv["id"],))
    r = api.pay(admin, inv["id"], "2.50")
    assert r.status_code == 201 and r.json()["currency"] == "BGN", r.text
    got = api.client.get(f"/invoices/{inv['id']}", headers=admin.headers).json()
    assert got["amount_recovered"] == "2.50" and got["currency"] == "BGN"


# -- HTTP methods ----------------------------------------------------------------------------

def test_head_answers_every_get_route(api: Api, admin: Account, alice: Account,
                                      bob: Account) -> None:
    inv = api.invoice(admin, alice, bob)
    for path in ("/health", "/ready", "/metrics", "/openapi.json", "/invoices",
                 f"/invoices/{inv['id']}", f"/users/{admin.id}", "/users",
                 f"/invoice-transactions/invoice/{inv['id']}"):
        got = api.client.get(path, headers=admin.headers)
        head = api.client.head(path, headers=admin.headers)
        assert head.status_code == got.status_code == 200, (path, head.status_code)
        assert head.content == b""
        assert head.headers["content-type"] == got.headers["content-type"]
        assert "x-request-id" in head.headers
    r = api.client.head(f"/invoices/{uuid.uuid4()}", headers=admin.headers)
    assert r.status_code == 404 and r.content == b""
    assert api.client.head("/login").status_code == 405


@pytest.mark.parametrize("method, path, allowed", [
    ("POST", "/invoices/{id}", "DELETE, GET, HEAD, PATCH, PUT"),
    ("DELETE", "/invoices", "GET, HEAD, POST"),
    ("GET", "/login", "POST"),
    ("PUT", "/invoice-transactions", "POST"),
    ("POST", "/users/{id}", "DELETE, GET, HEAD, PATCH, PUT"),
    ("OPTIONS", "/health", "GET, HEAD"),
])
def test_405_lists_every_method_of_the_path(api: Api, admin: Account, method: str,
                                            path: str, allowed: str) -> None:
    r = api.client.request(method, path.replace("{id}", str(uuid.uuid4())),
                           headers=admin.headers)
    assert_problem(r, 405, "method_not_allowed")
    assert r.headers["allow"] == allowed


# -- accounts --------------------------------------------------------------------------------

def test_login_by_email_matches_however_it_is_cased(api: Api) -> None:
    for email in ("Dora.Smith@Example.COM", "STRAẞE@example.de", "Ärger@Beispiel.de"):
        name = f"u{uuid.uuid4().hex[:8]}"
        r = api.client.post("/users", json={"username": name, "email": email,
                                            "password": PASSWORD})
        assert r.status_code == 201, r.text
        stored = r.json()["email"]
        for typed in (email, email.lower(), email.upper(), stored, f"  {email}  "):
            r = api.client.post("/login", data={"username": typed, "password": PASSWORD})
            assert r.status_code == 200, (email, typed, r.text)


def test_passwords_are_taken_exactly_as_sent(api: Api) -> None:
    spaced = "  pass word  "
    r = api.client.post("/users", json={"username": "spacey", "email": "s@example.com",
                                        "password": spaced})
    assert r.status_code == 201, r.text
    assert api.client.post("/login", data={"username": "spacey", "password": spaced}
                           ).status_code == 200
    r = api.client.post("/login", json={"username": "spacey", "password": spaced.strip()})
    assert_problem(r, 401, "invalid_credentials")
    # Eight characters as sent: spaces count, and nothing is trimmed before counting.
    r = api.client.post("/users", json={"username": "short", "email": "sh@example.com",
                                        "password": "  abc   "})
    assert r.status_code == 201, r.text
    r = api.client.post("/users", json={"username": "shorter", "email": "sr@example.com",
                                        "password": " abcdef"})
    assert_problem(r, 422, "validation_error")


def test_reactivation_does_not_revive_earlier_tokens(api: Api, admin: Account,
                                                     alice: Account) -> None:
    url = f"/users/{alice.id}"
    assert api.client.delete(url, headers=admin.headers).status_code == 204
    r = api.client.patch(url, headers=admin.headers, json={"is_active": True})
    assert r.status_code == 200 and r.json()["is_active"] is True
    assert_problem(api.client.get(url, headers=alice.headers), 401, "not_authenticated")
    fresh = api.login("alice")
    assert api.client.get(url, headers={"Authorization": f"Bearer {fresh}"}).status_code == 200


def test_an_admin_password_reset_ends_the_users_sessions(api: Api, admin: Account,
                                                         alice: Account) -> None:
    url = f"/users/{alice.id}"
    r = api.client.patch(url, headers=admin.headers, json={"password": "reset-by-admin-1"})
    assert r.status_code == 200
    assert_problem(api.client.get(url, headers=alice.headers), 401)
    assert api.login("alice", "reset-by-admin-1")
    assert api.client.get(url, headers=admin.headers).status_code == 200  # not the admin's


def test_the_throttle_counts_an_account_not_a_spelling(api: Api, alice: Account) -> None:
    for name in ("alice", "alice@example.com", "ALICE@EXAMPLE.COM", "Alice", "alice"):
        r = api.client.post("/login", data={"username": name, "password": "wrong-pass"})
        assert_problem(r, 401, "invalid_credentials")
    r = api.client.post("/login", data={"username": "alice@example.com", "password": PASSWORD})
    assert_problem(r, 429, "too_many_attempts")


# -- properties ------------------------------------------------------------------------------

_json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20),
                       st.floats(allow_nan=False, allow_infinity=False))
_json = st.recursive(_json_leaf, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=6)
_unicode_digits = st.text(alphabet=st.sampled_from(
    "0123456789.+-eE ١٢٣٠۰۱۲０１２३४৫੬௭๘༩႐០᠑٫,_\n\t"), max_size=12)
_amounts = st.one_of(
    _unicode_digits, st.integers(min_value=-10**20, max_value=10**20),
    st.integers(0, 6).flatmap(lambda places: st.decimals(
        allow_nan=False, allow_infinity=False, places=places)).map(str),
    st.decimals(allow_nan=False, allow_infinity=False).map(str), _json)


@pytest.fixture
def invoice_id(api: Api, admin: Account, alice: Account, bob: Account) -> str:
    return api.invoice(admin, alice, bob, amount="9999999999999.99")["id"]


@FIXTURES_OK
@given(amount=_amounts, kind=st.sampled_from(["payment", "refund"]))
def test_any_amount_is_answered_by_the_rules(api: Api, admin: Account, invoice_id: str,
                                             amount: object, kind: str) -> None:
    r = api.client.post("/invoice-transactions", content=json.dumps(
        {"invoice_id": invoice_id, "amount": amount, "payment_mode": "x", "kind": kind},
        default=str), headers={**admin.headers, "content-type": "application/json"})
    assert r.status_code in (201, 409, 422), r.text
    if isinstance(amount, str) and not (amount.isascii() and amount.strip() == amount):
        assert r.status_code == 422, (amount, r.text)
    if r.status_code == 201:
        assert Decimal(r.json()["amount"]) == Decimal(str(amount))


_offsets = st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(
    lambda m: timezone(timedelta(minutes=m)))
_datetimes = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59),
                          timezones=st.one_of(st.none(), _offsets))


def _in_utc_range(value: datetime) -> bool:
    try:
        (value.astimezone(UTC) if value.tzinfo else value).replace(tzinfo=None)
        return True
    except OverflowError:
        return False


@FIXTURES_OK
@given(when=_datetimes)
def test_any_datetime_is_taken_or_refused_by_its_utc_year(api: Api, admin: Account,
                                                          invoice_id: str,
                                                          when: datetime) -> None:
    text = when.isoformat()
    r = api.pay(admin, invoice_id, "0.01", payment_date=text)
    listed = api.client.get("/invoices", headers=admin.headers,
                            params={"created_after": text, "limit": 1})
    if _in_utc_range(when):
        assert r.status_code == 201, r.text
        assert listed.status_code == 200, listed.text
    else:
        assert_problem(r, 422, "validation_error")
        assert_problem(listed, 422, "validation_error")


@FIXTURES_OK
@given(cursor=st.one_of(
    st.text(max_size=60),
    st.binary(max_size=60).map(lambda b: base64.urlsafe_b64encode(b).decode().rstrip("=")),
    st.tuples(_datetimes, st.uuids()).map(lambda p: cursor_of(f"{p[0].isoformat()}|{p[1]}"))))
def test_any_cursor_is_a_page_or_422(api: Api, admin: Account, cursor: str) -> None:
    for path in ("/invoices", "/users"):
        r = api.client.get(path, headers=admin.headers, params={"cursor": cursor})
        assert r.status_code in (200, 422), r.text
        if r.status_code == 422:
            assert r.json()["code"] in ("invalid_cursor", "validation_error")


@FIXTURES_OK
@given(segment=st.text(min_size=1, max_size=40))
def test_any_id_in_a_path_is_404_or_422(api: Api, admin: Account, segment: str) -> None:
    quoted = quote(segment, safe="")
    for path in (f"/invoices/{quoted}", f"/users/{quoted}", f"/invoice-transactions/{quoted}",
                 f"/invoice-transactions/invoice/{quoted}"):
        r = api.client.get(path, headers=admin.headers)
        # An id of "/" collapses into the path above it, which may not take GET (405).
        assert r.status_code in (200, 404, 405, 422), (path, r.text)


@FIXTURES_OK
@given(t=st.text(max_size=14), v1=st.text(max_size=70), raw=st.binary(max_size=40))
def test_any_signature_header_is_checked_or_401(api: Api, invoice_id: str, t: str, v1: str,
                                                raw: bytes) -> None:
    body = json.dumps({"id": f"evt_{uuid.uuid4().hex}", "invoice_id": invoice_id,
                       "amount_paid": "0.01"}).encode()
    for text in (f"t={t},v1={v1}".encode(), raw, f"t={int(time.time())},v1={v1}".encode()):
        # What HTTP can carry: no control characters, no space at either end.
        header = bytes(b for b in text if b >= 0x20 and b != 0x7F).strip(b" ")
        r = api.client.post("/webhooks/payment/success", content=body, headers={
            "content-type": "application/json", "X-Signature": header})
        assert_problem(r, 401, "invalid_signature")


@FIXTURES_OK
@given(depth=st.integers(1, 1200), path=st.sampled_from(JSON_ROUTES),
       shape=st.sampled_from(["object", "array"]))
def test_any_nesting_is_a_4xx(api: Api, admin: Account, depth: int, path: str,
                              shape: str) -> None:
    body = nested(depth) if shape == "object" else b"[" * depth + b"]" * depth
    headers = {**admin.headers, "content-type": "application/json", "X-Signature": sign(body)}
    r = api.client.post(path, content=body, headers=headers)
    assert 400 <= r.status_code < 500, r.text
    if depth > 32:
        assert_problem(r, 422, "validation_error")


@settings(deadline=None, max_examples=300)
@given(amount=st.integers(0, 5).flatmap(lambda places: st.decimals(
           min_value=Decimal("-1"), max_value=Decimal("10") ** 16, allow_nan=False,
           allow_infinity=False, places=places)),
       currency=st.sampled_from(["INR", "JPY", "KWD", "CLF", "BGN", "USD", "ISK"]))
def test_the_database_scales_money_as_python_does(_database, amount: Decimal,
                                                  currency: str) -> None:
    from app.money import AmountError, to_minor

    try:
        expected: int | None = to_minor(amount, currency)
    except AmountError:
        expected = None
    got = _database.scalar("SELECT to_minor_units(%s::numeric, exponent) FROM currencies "
                           "WHERE code = %s", (str(amount), currency))
    assert got == expected, (amount, currency)
