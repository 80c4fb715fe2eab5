"""Health and readiness, the error shape, paths, request ids, media types, the interactive
docs and the OpenAPI document."""

from __future__ import annotations

import pytest

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



# -- query strings (read as one model each: app/http/params.py) -------------------------------

def test_list_query_errors_name_each_bad_parameter_once(api: Api, admin: Account) -> None:
    r = api.client.get("/invoices", headers=admin.headers, params={
        "limit": "0", "status": "bogus", "payer_id": "x", "overdue": "maybe",
        "created_after": "yesterday", "cursor": "c" * 513})
    errors = assert_problem(r, 422, "validation_error")["errors"]
    assert [e["loc"] for e in errors] == [["query", name] for name in (
        "limit", "cursor", "status", "payer_id", "created_after", "overdue")]
    # A bad path parameter is listed too, first, as FastAPI lists them.
    r = api.client.get("/users/not-an-id/credit/entries", headers=admin.headers,
                       params={"limit": "101"})
    errors = assert_problem(r, 422, "validation_error")["errors"]
    assert [e["loc"] for e in errors] == [["path", "user_id"], ["query", "limit"]]
    # ... and once with a good query too, though the caller check reads it as well.
    r = api.client.get("/users/not-an-id/credit/entries", headers=admin.headers)
    errors = assert_problem(r, 422, "validation_error")["errors"]
    assert [e["loc"] for e in errors] == [["path", "user_id"]]
    r = api.client.get("/invoice-transactions/invoice/not-an-id", headers=admin.headers,
                       params={"limit": "x"})
    errors = assert_problem(r, 422, "validation_error")["errors"]
    assert [e["loc"] for e in errors] == [["path", "invoice_id"], ["query", "limit"]]


def test_list_query_takes_the_last_of_a_repeated_name_and_ignores_unknown_ones(
        api: Api, admin: Account) -> None:
    r = api.client.get("/users?limit=x&limit=1&unknown=3", headers=admin.headers)
    assert r.status_code == 200 and len(r.json()["data"]) == 1, r.text
    r = api.client.get("/users?limit=1&limit=x", headers=admin.headers)
    assert assert_problem(r, 422, "validation_error")["errors"][0]["loc"] == ["query", "limit"]
    r = api.client.get("/events?type=payment.succeeded&limit=2&created_after="
                       "2024-01-01T00:00:00%2B05:00", headers=admin.headers)
    assert r.status_code == 200, r.text


def test_list_query_parameters_are_documented(api: Api) -> None:
    doc = api.client.get("/openapi.json").json()
    params = {p["name"]: p for p in doc["paths"]["/invoices"]["get"]["parameters"]}
    assert list(params) == ["limit", "cursor", "status", "payer_id", "receiver_id",
                            "created_after", "created_before", "overdue"]
    assert all(p["in"] == "query" and p["required"] is False for p in params.values())
    limit = params["limit"]["schema"]
    assert (limit["type"], limit["minimum"], limit["maximum"], limit["default"]) == (
        "integer", 1, 100, 20)
    assert params["limit"]["description"] == "page size (1–100)"
    assert "pending" in params["status"]["schema"]["anyOf"][0]["enum"]
    for path in ("/users", "/webhook-endpoints", "/users/{user_id}/credit/entries",
                 "/invoice-transactions/invoice/{invoice_id}", "/events"):
        names = [p["name"] for p in doc["paths"][path]["get"]["parameters"]
                 if p["in"] == "query"]
        assert names[:2] == ["limit", "cursor"], (path, names)

# -- bodies in another media type ------------------------------------------------------------

@pytest.mark.parametrize("path, method", [("/users", "post"), ("/invoices", "post"),
                                          ("/invoice-transactions", "post"),
                                          ("/webhooks/payment/success", "post")])
def test_a_body_in_another_media_type_is_415(api: Api, admin: Account, path: str,
                                             method: str) -> None:
    for content_type in ("application/x-www-form-urlencoded", "text/plain",
                         "multipart/form-data; boundary=x"):
        r = api.client.request(method, path, content=b'{"a": 1}', headers={
            **admin.headers, "content-type": content_type})
        body = assert_problem(r, 415, "unsupported_media_type")
        assert "application/json" in body["detail"]


def test_json_needs_its_media_type(api: Api, admin: Account) -> None:
    body = b'{"username": "erin", "email": "erin@example.com", "password": "pass-word-1"}'
    r = api.client.post("/users", content=body)  # no Content-Type at all
    assert "one without a Content-Type" in assert_problem(r, 415)["detail"]
    r = api.client.post("/users", content=body.replace(b"erin", b"fred"),
                        headers={"content-type": "application/json; charset=utf-8"})
    assert r.status_code == 201
    r = api.client.post("/users", content=body.replace(b"erin", b"gina"),
                        headers={"content-type": "application/merge-patch+json"})
    assert r.status_code == 201


def test_login_takes_a_form_or_json_only(api: Api) -> None:
    r = api.client.post("/login", content=b"username=a&password=b",
                        headers={"content-type": "text/plain"})
    body = assert_problem(r, 415, "unsupported_media_type")
    assert "application/x-www-form-urlencoded or application/json" in body["detail"]


# -- the interactive docs work offline -------------------------------------------------------

def test_docs_and_redoc_load_nothing_from_elsewhere(api: Api) -> None:
    import re

    for page in ("/docs", "/redoc", "/docs/oauth2-redirect"):
        r = api.client.get(page)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert not re.search(r"(?:src|href)=[\"']?(?:https?:)?//", r.text), page
        assert "fonts.googleapis" not in r.text and "cdn" not in r.text.lower()
        for asset in re.findall(r"(?:src|href)=[\"']([^\"']+)[\"']", r.text):
            if asset.startswith("/"):
                got = api.client.get(asset)
                assert got.status_code == 200 and len(got.content) > 1000, asset
    assert api.client.get("/docs-assets/swagger-ui-bundle.js").status_code == 200


# -- the OpenAPI document reads well ---------------------------------------------------------

def test_every_error_in_the_openapi_document_has_its_own_example(api: Api) -> None:
    doc = api.client.get("/openapi.json").json()
    assert [t["name"] for t in doc["tags"]][:3] == ["invoices", "transactions", "webhooks"]
    assert all(t.get("description") for t in doc["tags"])
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            assert op.get("description"), (method, path)
            for status, response in op["responses"].items():
                content = response.get("content", {}).get("application/problem+json")
                if content is None:
                    continue
                codes = response["description"].strip("`").split("`, `")
                examples = content["examples"]
                assert sorted(examples) == sorted(codes), (method, path, status)
                for code, example in examples.items():
                    assert example["value"]["code"] == code
                    assert example["value"]["status"] == int(status)
    signup = doc["paths"]["/users"]["post"]
    assert {} in signup["security"]  # a token is optional there
    webhook = doc["paths"]["/webhooks/payment/success"]["post"]
    assert webhook["security"] == [{"ProviderSignature": []}]
    assert not any(p["name"] == "X-Signature" for p in webhook.get("parameters", []))
    assert doc["components"]["securitySchemes"]["ProviderSignature"]["name"] == "X-Signature"
