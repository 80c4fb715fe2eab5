"""Health and readiness, the error shape, paths, request ids, the OpenAPI document."""

from __future__ import annotations

from tests.support import Account, Api, assert_problem


def test_health_and_ready(api: Api) -> None:
    assert api.client.get("/health").json() == {"status": "ok"}
    r = api.client.get("/ready")
    assert r.status_code == 200 and r.json() == {"status": "ready"}


def test_error_shape_for_unknown_route_and_method(api: Api) -> None:
    assert_problem(api.client.get("/nope"), 404, "not_found")
    assert_problem(api.client.delete("/health"), 405, "method_not_allowed")


def test_trailing_slash_and_no_slash_are_the_same(api: Api, admin: Account) -> None:
    for path in ("/users", "/users/"):
        r = api.client.get(path, headers=admin.headers)
        assert r.status_code == 200, (path, r.text)
    r = api.client.get(f"/users/{admin.id}/", headers=admin.headers)
    assert r.status_code == 200
    assert api.client.get("/health/").status_code == 200


def test_request_id_and_security_headers(api: Api) -> None:
    r = api.client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["cache-control"] == "no-store"
    assert "server" not in r.headers
    assert len(api.client.get("/health").headers["x-request-id"]) >= 16


def test_openapi_document(api: Api) -> None:
    doc = api.client.get("/openapi.json").json()
    for path in ("/users", "/login", "/logout", "/users/{user_id}", "/health", "/ready"):
        assert path in doc["paths"], path
