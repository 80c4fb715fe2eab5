"""Login, its throttle, tokens, logout, deactivated accounts."""

from __future__ import annotations

import time
import uuid

from jose import jwt

from tests.support import PASSWORD, SECRET_KEY, Account, Api, assert_problem


def test_login_form_and_json_by_username_and_email(api: Api, alice: Account) -> None:
    for data in ({"username": "alice"}, {"username": "alice@example.com"},
                 {"username": " ALICE "}):
        r = api.client.post("/login", data={**data, "password": PASSWORD})
        assert r.status_code == 200, r.text
        assert r.json()["token_type"] == "bearer" and r.json()["expires_in"] > 0
        r = api.client.post("/login", json={**data, "password": PASSWORD})
        assert r.status_code == 200, r.text
        token = r.json()["access_token"]
        me = api.client.get(f"/users/{alice.id}", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200 and me.json()["username"] == "alice"


def test_wrong_password_and_unknown_user_look_the_same(api: Api, alice: Account) -> None:
    wrong = api.client.post("/login", data={"username": "alice", "password": "wrong-pass"})
    unknown = api.client.post("/login", data={"username": "nobody", "password": "wrong-pass"})
    a, b = assert_problem(wrong, 401, "invalid_credentials"), assert_problem(unknown, 401)
    assert a == b
    assert wrong.headers["www-authenticate"] == "Bearer"


def test_login_is_throttled_whatever_the_spelling(api: Api, alice: Account) -> None:
    for name in ("alice", "ALICE", " alice", "Alice ", "a lice"):
        r = api.client.post("/login", data={"username": name, "password": "wrong-pass"})
        assert r.status_code == 401
    r = api.client.post("/login", data={"username": "aLiCe", "password": PASSWORD})
    assert_problem(r, 429, "too_many_attempts")
    assert int(r.headers["retry-after"]) > 0
    api.db.rows("UPDATE login_throttles SET locked_until = now() - interval '1 second'")
    assert api.client.post("/login", data={"username": "alice", "password": PASSWORD}
                           ).status_code == 200


def test_login_missing_fields_is_422(api: Api) -> None:
    assert_problem(api.client.post("/login", json={"username": "x"}), 422)
    assert_problem(api.client.post("/login", data={"password": "x"}), 422)


def _token(sub: str, key: str = SECRET_KEY, alg: str = "HS256", **claims: object) -> str:
    now = int(time.time())
    body = {"sub": sub, "iat": now, "exp": now + 600, "jti": uuid.uuid4().hex, **claims}
    return jwt.encode(body, key, algorithm=alg)


def _none_alg_token(sub: str) -> str:
    import base64
    import json

    def part(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    now = int(time.time())
    return (part({"alg": "none", "typ": "JWT"}) + "." +
            part({"sub": sub, "iat": now, "exp": now + 600, "jti": "x"}) + ".")


def test_bad_tokens_are_401(api: Api, alice: Account) -> None:
    url = f"/users/{alice.id}"
    assert api.client.get(url, headers={"Authorization": f"Bearer {_token(alice.id)}"}
                          ).status_code == 200
    bad = [
        _token(alice.id, exp=int(time.time()) - 10),
        _token(alice.id, key="another-key-" + "y" * 40),
        _none_alg_token(alice.id),
        alice.token[:-4] + ("AAAA" if not alice.token.endswith("AAAA") else "BBBB"),
        "not-a-jwt",
        _token(str(uuid.uuid4())),
    ]
    for token in bad:
        r = api.client.get(url, headers={"Authorization": f"Bearer {token}"})
        assert_problem(r, 401, "not_authenticated")
        assert r.headers["www-authenticate"] == "Bearer"
    assert_problem(api.client.get(url, headers={"Authorization": f"Basic {alice.token}"}), 401)
    assert_problem(api.client.get(url), 401)


def test_token_times_outside_a_sane_window_are_401(api: Api, alice: Account) -> None:
    """Signed with the real key, but: living longer than the configured lifetime, issued
    in the future, not before some time, or times the platform cannot represent. Each is
    401, never a 5xx (ASVS V3.5.3)."""
    url, now = f"/users/{alice.id}", int(time.time())
    bad = [
        _token(alice.id, iat=now, exp=now + 10 * 365 * 24 * 3600),  # longer than allowed
        _token(alice.id, iat=now + 3600, exp=now + 3700),  # issued in the future
        _token(alice.id, nbf=now + 60),  # we never issue nbf
        _token(alice.id, nbf=10**20),
        _token(alice.id, exp=10**18),  # year ~3e10: not representable
        _token(alice.id, exp=-(10**18)),
        _token(alice.id, iat=10**18),
        _token(alice.id, exp=float(now + 600)),
        _token(alice.id, exp=str(now + 600)),
        _token(alice.id, exp=True),
    ]
    for token in bad:
        r = api.client.get(url, headers={"Authorization": f"Bearer {token}"})
        assert_problem(r, 401, "not_authenticated")


def test_exactly_one_authorization_header(api: Api, alice: Account) -> None:
    url = f"/users/{alice.id}"
    two = [("Authorization", f"Bearer {alice.token}"), ("Authorization", "Bearer x")]
    assert_problem(api.client.get(url, headers=two), 401, "not_authenticated")
    same_twice = [("Authorization", f"Bearer {alice.token}")] * 2
    assert_problem(api.client.get(url, headers=same_twice), 401, "not_authenticated")


def test_logout_revokes_the_token(api: Api, alice: Account) -> None:
    other_session = api.login("alice")
    assert api.client.post("/logout", headers=alice.headers).status_code == 204
    assert_problem(api.client.get(f"/users/{alice.id}", headers=alice.headers), 401)
    assert_problem(api.client.post("/logout", headers=alice.headers), 401)
    still = api.client.get(f"/users/{alice.id}",
                           headers={"Authorization": f"Bearer {other_session}"})
    assert still.status_code == 200


def test_deactivated_user_cannot_log_in_or_use_tokens(api: Api, admin: Account,
                                                      alice: Account) -> None:
    assert api.client.delete(f"/users/{alice.id}", headers=admin.headers).status_code == 204
    assert api.db.scalar("SELECT is_active FROM users WHERE id = %s", (alice.id,)) is False
    assert_problem(api.client.get(f"/users/{alice.id}", headers=alice.headers), 401)
    r = api.client.post("/login", data={"username": "alice", "password": PASSWORD})
    assert_problem(r, 401, "invalid_credentials")
    shown = api.client.get(f"/users/{alice.id}", headers=admin.headers).json()
    assert shown["is_active"] is False
