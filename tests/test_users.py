"""Accounts: sign-up, reads, changes, the last admin, pages."""

from __future__ import annotations

import uuid

import pytest

from tests.support import PASSWORD, Account, Api, assert_problem


def signup(api: Api, **over: object):
    body = {"username": "carol", "email": "carol@example.com", "password": PASSWORD, **over}
    return api.client.post("/users", json=body)


def test_signup_creates_user_and_hides_password(api: Api) -> None:
    r = signup(api, email="Carol@Example.com")
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == {"id", "username", "email", "role", "is_active", "created_at",
                         "updated_at"}
    assert body["username"] == "carol" and body["email"] == "carol@example.com"
    assert body["role"] == "user" and body["is_active"] is True
    assert body["created_at"].endswith("Z")
    row = api.db.one("SELECT * FROM users WHERE id = %s", (body["id"],))
    assert row["password_hash"].startswith("$argon2id$")
    assert PASSWORD not in r.text


@pytest.mark.parametrize("field", ["username", "email"])
def test_signup_duplicate_is_409(api: Api, field: str) -> None:
    assert signup(api).status_code == 201
    other = {"username": "dave", "email": "dave@example.com"}
    other[field] = "CAROL" if field == "username" else "CAROL@example.com"
    body = assert_problem(signup(api, **other), 409, f"{field}_taken")
    assert field in body["detail"]
    assert api.db.scalar("SELECT count(*) FROM users") == 1


@pytest.mark.parametrize("over, loc", [
    ({"email": "not-an-email"}, "email"),
    ({"password": "short"}, "password"),
    ({"password": "x" * 129}, "password"),
    ({"username": "a b"}, "username"),
    ({"username": "ab"}, "username"),
    ({"role": "superuser"}, "role"),
    ({"unexpected": 1}, "unexpected"),
])
def test_signup_bad_input_is_422(api: Api, over: dict, loc: str) -> None:
    body = assert_problem(signup(api, **over), 422, "validation_error")
    assert ["body", loc] in [e["loc"] for e in body["errors"]]
    assert api.db.scalar("SELECT count(*) FROM users") == 0


def test_signup_not_json_is_422(api: Api) -> None:
    r = api.client.post("/users", content=b"{nope", headers={"content-type": "application/json"})
    assert_problem(r, 422, "validation_error")


def test_asking_for_admin_is_403_unless_admin(api: Api, admin: Account, alice: Account) -> None:
    assert_problem(signup(api, role="admin"), 403, "forbidden")
    r = api.client.post("/users", headers=alice.headers, json={
        "username": "carol", "email": "c@example.com", "password": PASSWORD, "role": "admin"})
    assert_problem(r, 403, "forbidden")
    r = api.client.post("/users", headers=admin.headers, json={
        "username": "carol", "email": "c@example.com", "password": PASSWORD, "role": "admin"})
    assert r.status_code == 201 and r.json()["role"] == "admin"


def test_user_access_rules(api: Api, admin: Account, alice: Account, bob: Account) -> None:
    url = f"/users/{alice.id}"
    assert_problem(api.client.get(url), 401)
    assert_problem(api.client.get(url, headers=bob.headers), 403, "forbidden")
    assert api.client.get(url, headers=alice.headers).status_code == 200
    assert api.client.get(url, headers=admin.headers).status_code == 200
    unknown = f"/users/{uuid.uuid4()}"
    assert_problem(api.client.get(unknown, headers=admin.headers), 404, "user_not_found")
    assert_problem(api.client.get("/users/not-a-uuid", headers=admin.headers), 422)

    assert_problem(api.client.get("/users"), 401)
    assert_problem(api.client.get("/users", headers=alice.headers), 403)
    page = api.client.get("/users", headers=admin.headers).json()
    assert {u["username"] for u in page["data"]} >= {"alice", "bob"}

    assert_problem(api.client.patch(url, json={"email": "x@example.com"}), 401)
    assert_problem(api.client.patch(url, headers=bob.headers, json={"email": "x@example.com"}),
                   403)
    assert_problem(api.client.delete(url, headers=alice.headers), 403)
    assert_problem(api.client.delete(url), 401)
    assert_problem(api.client.delete(unknown, headers=admin.headers), 404)


def test_users_update_self_and_admin(api: Api, admin: Account, alice: Account) -> None:
    url = f"/users/{alice.id}"
    r = api.client.patch(url, headers=alice.headers, json={
        "email": "new@example.com", "current_password": PASSWORD})
    assert r.status_code == 200 and r.json()["email"] == "new@example.com"
    assert_problem(api.client.get(url, headers=alice.headers), 401)  # the old token ended
    alice.token = r.json()["access_token"]  # the answer's new one replaces it
    r = api.client.put(url, headers=alice.headers, json={
        "password": "another-pass-1", "current_password": PASSWORD})
    assert r.status_code == 200
    # A new password ends every earlier session, the one that changed it included.
    assert_problem(api.client.get(url, headers=alice.headers), 401)
    alice.token = api.login("alice", "another-pass-1")
    assert_problem(api.client.patch(url, headers=alice.headers, json={"role": "admin"}), 403)
    assert api.db.scalar("SELECT role FROM users WHERE id = %s", (alice.id,)) == "user"
    r = api.client.patch(url, headers=admin.headers, json={"role": "admin"})
    assert r.status_code == 200 and r.json()["role"] == "admin"
    r = api.client.patch(url, headers=admin.headers, json={"username": admin.username.upper()})
    assert_problem(r, 409, "username_taken")


def test_last_admin_cannot_be_removed(api: Api, admin: Account) -> None:
    assert_problem(api.client.delete(f"/users/{admin.id}", headers=admin.headers), 409,
                   "last_admin")
    r = api.client.patch(f"/users/{admin.id}", headers=admin.headers, json={"role": "user"})
    assert_problem(r, 409, "last_admin")
    assert api.db.scalar("SELECT role FROM users WHERE id = %s", (admin.id,)) == "admin"


def test_users_pagination(api: Api, admin: Account) -> None:
    for i in range(5):
        api.db.rows("INSERT INTO users (id, username, email, password_hash, created_at) "
                    "VALUES (%s, %s, %s, 'x', now() - make_interval(secs => %s))",
                    (str(uuid.uuid4()), f"u{i}", f"u{i}@example.com", i + 1))
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.client.get("/users", headers=admin.headers, params=params).json()
        seen += [u["username"] for u in page["data"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [admin.username, "u0", "u1", "u2", "u3", "u4"]
    r = api.client.get("/users", headers=admin.headers, params={"cursor": "garbage!"})
    assert_problem(r, 422, "invalid_cursor")
    assert_problem(api.client.get("/users", headers=admin.headers, params={"limit": 0}), 422)
    assert_problem(api.client.get("/users", headers=admin.headers, params={"limit": 101}), 422)


def test_concurrent_signups_for_one_name_make_one_account(api: Api, server) -> None:
    from tests.support import burst

    requests = [("POST", "/users", {}, {"username": "racer", "email": f"r{i}@example.com",
                                        "password": PASSWORD}) for i in range(10)]
    codes = sorted(r.status_code for r in burst(server.url, requests))
    assert codes == [201] + [409] * 9, codes
    assert api.db.scalar("SELECT count(*) FROM users WHERE username = 'racer'") == 1


def test_changing_ones_own_credentials_needs_the_current_password(
        api: Api, admin: Account, alice: Account) -> None:
    """ASVS V2.1.6: a stolen token alone cannot take the account over. Every other token
    of the account is revoked, and the answer carries a new one for the caller."""
    url = f"/users/{alice.id}"
    other_session = {"Authorization": f"Bearer {api.login('alice')}"}
    assert_problem(api.client.patch(url, headers=alice.headers, json={
        "email": "a2@example.com"}), 422, "current_password_required")
    assert_problem(api.client.patch(url, headers=alice.headers, json={
        "password": "brand-new-pass-1", "current_password": "not-it-at-all"}), 403,
        "wrong_current_password")
    assert api.client.get(url, headers=other_session).status_code == 200  # nothing changed
    r = api.client.patch(url, headers=alice.headers, json={
        "email": "a2@example.com", "current_password": PASSWORD})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["other_tokens_revoked"] is True and body["token_type"] == "bearer"
    assert_problem(api.client.get(url, headers=other_session), 401)
    assert_problem(api.client.get(url, headers=alice.headers), 401)
    fresh = {"Authorization": f"Bearer {body['access_token']}"}
    assert api.client.get(url, headers=fresh).json()["email"] == "a2@example.com"
    # A username is not a credential; an admin resetting someone else's needs nothing.
    assert api.client.patch(url, headers=fresh, json={"username": "alice2"}).status_code \
        == 200
    r = api.client.patch(url, headers=admin.headers, json={"password": "reset-by-admin-9"})
    assert r.status_code == 200 and "access_token" not in r.json()
    assert_problem(api.client.get(url, headers=fresh), 401)  # reset: every token ends
    # The admin's own email is a credential too.
    assert_problem(api.client.patch(f"/users/{admin.id}", headers=admin.headers, json={
        "email": "boss2@example.com"}), 422, "current_password_required")


def test_wrong_current_passwords_count_towards_the_lockout(api: Api, alice: Account) -> None:
    url = f"/users/{alice.id}"
    codes = [api.client.patch(url, headers=alice.headers, json={
        "password": "brand-new-pass-1", "current_password": f"guess-{n}-xxxx"}).status_code
        for n in range(7)]
    assert codes[:5] == [403] * 5 and codes[-1] == 429, codes
    assert api.client.post("/login", data={"username": "alice", "password": PASSWORD}
                           ).status_code == 429  # the same bucket as logins
