"""The token check folded into the request's own statement (GET /invoices/{id} and the list,
behind the guard of app/db/guard.py; a payment without an Idempotency-Key, in the ledger
statement): every reason the separate check refused still refuses, with the same answer, and
a refused payment moves nothing."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.support import Account, Api, assert_problem, burst, ledger_sums

pytestmark = pytest.mark.usefixtures("db")


def _pay(api: Api, who: Account, invoice_id: str) -> httpx.Response:
    return api.pay(who, invoice_id, "10.00")


def test_a_logged_out_token_reads_and_pays_nothing(api: Api, admin: Account, alice: Account,
                                                   bob: Account) -> None:
    inv = api.invoice(admin, alice, bob)
    other_admin = api.user("admin")
    r = api.client.post("/logout", headers=other_admin.headers)
    assert r.status_code in (200, 204), r.text
    assert_problem(api.client.get(f"/invoices/{inv['id']}", headers=other_admin.headers),
                   401, "not_authenticated")
    assert_problem(api.client.get(f"/invoices/{uuid.uuid4()}", headers=other_admin.headers),
                   401, "not_authenticated")  # not 404: the token is checked first
    assert_problem(_pay(api, other_admin, inv["id"]), 401, "not_authenticated")
    assert_problem(_pay(api, other_admin, str(uuid.uuid4())), 401, "not_authenticated")
    assert ledger_sums(api, inv["id"]) == (0, 0, 0)
    assert _pay(api, admin, inv["id"]).status_code == 201  # the other admin's token works


def test_a_deactivated_admin_and_an_old_token_version_move_nothing(
        api: Api, admin: Account, alice: Account, bob: Account) -> None:
    inv = api.invoice(admin, alice, bob)
    gone = api.user("admin")
    api.db.rows("UPDATE users SET is_active = false WHERE id = %s", (gone.id,))
    assert_problem(_pay(api, gone, inv["id"]), 401, "not_authenticated")
    assert_problem(api.client.get(f"/invoices/{inv['id']}", headers=gone.headers), 401)
    old = api.user("admin")
    api.db.rows("UPDATE users SET token_version = token_version + 1 WHERE id = %s", (old.id,))
    assert_problem(_pay(api, old, inv["id"]), 401, "not_authenticated")
    assert_problem(api.client.get(f"/invoices/{inv['id']}", headers=old.headers), 401)
    assert ledger_sums(api, inv["id"]) == (0, 0, 0)


def test_only_an_admin_pays_and_only_the_parties_read(api: Api, admin: Account,
                                                      alice: Account, bob: Account) -> None:
    inv = api.invoice(admin, alice, bob)
    for who in (alice, bob):  # payer and receiver may read it, not pay it
        assert api.client.get(f"/invoices/{inv['id']}", headers=who.headers).status_code == 200
        assert_problem(_pay(api, who, inv["id"]), 403, "forbidden")
        assert_problem(_pay(api, who, str(uuid.uuid4())), 403, "forbidden")  # before 404
    stranger = api.user()
    assert_problem(api.client.get(f"/invoices/{inv['id']}", headers=stranger.headers),
                   403, "forbidden")
    assert_problem(api.client.get(f"/invoices/{uuid.uuid4()}", headers=stranger.headers),
                   404, "invoice_not_found")
    assert ledger_sums(api, inv["id"]) == (0, 0, 0)
    # A demoted admin's token still carries its old claims; the statement reads the role.
    demoted = api.user("admin")
    api.db.rows("UPDATE users SET role = 'user' WHERE id = %s", (demoted.id,))
    assert_problem(_pay(api, demoted, inv["id"]), 403, "forbidden")
    assert ledger_sums(api, inv["id"]) == (0, 0, 0)
    # The refusals of the payment itself come after the caller's: an admin gets them.
    assert_problem(_pay(api, admin, str(uuid.uuid4())), 404, "invoice_not_found")
    assert_problem(api.pay(admin, inv["id"], "5000.00"), 409, "amount_exceeds_due")


def test_logout_is_immediate_on_every_worker(api: Api, two_workers, admin: Account,
                                             alice: Account, bob: Account) -> None:
    """Each round: log out a fresh admin, then at once 8 payments and 8 reads with its token
    through two workers: every one is 401, and nothing moved."""
    inv = api.invoice(admin, alice, bob, amount="100000.00")
    with httpx.Client(base_url=two_workers.url, timeout=30) as c:
        for _ in range(10):
            token = api.login(api.user("admin").username)
            headers = {"Authorization": f"Bearer {token}"}
            assert c.get(f"/invoices/{inv['id']}", headers=headers).status_code == 200
            assert c.post("/logout", headers=headers).status_code in (200, 204)
            requests = [("POST", "/invoice-transactions", headers,
                         {"invoice_id": inv["id"], "amount": "1.00", "payment_mode": "upi"}),
                        ("GET", f"/invoices/{inv['id']}", headers, None)] * 8
            codes = [r.status_code for r in burst(two_workers.url, requests)]
            assert codes == [401] * len(requests), codes
    assert ledger_sums(api, inv["id"]) == (0, 0, 0)


def test_the_list_checks_its_caller_in_its_own_statement(api: Api, admin: Account,
                                                         alice: Account, bob: Account) -> None:
    empty = api.client.get("/invoices", headers=admin.headers)
    assert empty.status_code == 200 and empty.json() == {"data": [], "next_cursor": None}
    made = [api.invoice(admin, alice, bob)["id"] for _ in range(3)]
    first = api.client.get("/invoices", params={"limit": 2}, headers=admin.headers).json()
    rest = api.client.get("/invoices", params={"limit": 2, "cursor": first["next_cursor"]},
                          headers=admin.headers).json()
    assert [i["id"] for i in first["data"] + rest["data"]] == made[::-1]
    assert rest["next_cursor"] is None
    none = api.client.get("/invoices", params={"payer_id": str(uuid.uuid4())},
                          headers=admin.headers)
    assert none.status_code == 200 and none.json()["data"] == []
    assert_problem(api.client.get("/invoices", headers=alice.headers), 403, "forbidden")
    gone = api.user("admin")
    api.client.post("/logout", headers=gone.headers)
    assert_problem(api.client.get("/invoices", headers=gone.headers), 401, "not_authenticated")
    assert_problem(api.client.get("/invoices", params={"payer_id": str(uuid.uuid4())},
                                  headers=gone.headers), 401, "not_authenticated")
