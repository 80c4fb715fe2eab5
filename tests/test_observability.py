"""Prometheus metrics, one JSON log line per request, X-Request-ID in and out."""

from __future__ import annotations

import json
import time
import uuid

from tests.support import Account, Api, Server, deliver, metric


def test_metrics_count_requests_money_and_webhooks(api: Api, admin: Account, alice: Account,
                                                   bob: Account) -> None:
    before = api.client.get("/metrics").text
    inv = api.invoice(admin, alice, bob, amount="100")
    assert api.pay(admin, inv["id"], "12.34").status_code == 201
    assert api.pay(admin, inv["id"], "1000").status_code == 409
    assert api.pay(admin, inv["id"], "2", kind="refund").status_code == 201
    deliver(api, "payment/success", {"id": f"evt_{uuid.uuid4().hex}", "invoice_id": inv["id"],
                                     "amount_paid": "1"})
    deliver(api, "payment/success", b'{"id": "x"}', signature="t=1,v1=00")
    r = api.client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    after = r.text

    def delta(name: str, **labels: str) -> float:
        return metric(after, name, **labels) - metric(before, name, **labels)

    assert delta("http_requests_total", method="POST", route="/invoice-transactions",
                 status="201") == 2
    assert delta("http_requests_total", method="POST", route="/invoice-transactions",
                 status="409") == 1
    assert delta("http_request_duration_seconds_count", method="POST",
                 route="/invoice-transactions") == 3
    assert delta("invoice_transactions_total", kind="payment", currency="INR", source="api") == 1
    assert delta("invoice_transaction_amount_minor_units_total", kind="payment", currency="INR",
                 source="api") == 1234
    assert delta("invoice_transaction_amount_minor_units_total", kind="refund", currency="INR",
                 source="api") == 200
    assert delta("invoice_transactions_total", kind="payment", currency="INR",
                 source="webhook") == 1
    assert delta("webhook_events_total", type="payment.succeeded", outcome="processed") == 1
    assert delta("webhook_events_total", type="payment.succeeded",
                 outcome="invalid_signature") == 1
    assert "db_pool_connections_in_use" in after and "db_pool_connections_open" in after
    # Routes are labelled by their template, so ids do not blow up the label set.
    api.client.get(f"/invoices/{inv['id']}", headers=admin.headers)
    text = api.client.get("/metrics").text
    assert 'route="/invoices/{invoice_id}"' in text and inv["id"] not in text


def test_one_json_log_line_per_request(api: Api, server: Server, admin: Account) -> None:
    request_id = f"test-{uuid.uuid4().hex}"
    r = api.client.get(f"/users/{admin.id}", headers={**admin.headers,
                                                      "X-Request-ID": request_id})
    assert r.status_code == 200 and r.headers["x-request-id"] == request_id
    api.client.get("/nope", headers={"X-Request-ID": request_id + "-404"})
    deadline = time.monotonic() + 5
    lines: list[dict] = []
    while time.monotonic() < deadline:
        lines = [json.loads(line) for line in server.log_text().splitlines()
                 if request_id in line]
        if len(lines) >= 2:
            break
        time.sleep(0.1)
    ok = next(entry for entry in lines if entry["request_id"] == request_id)
    assert ok["logger"] == "app.access" and ok["method"] == "GET"
    assert ok["route"] == "/users/{user_id}" and ok["path"] == f"/users/{admin.id}"
    assert ok["status"] == 200 and ok["user_id"] == admin.id
    assert isinstance(ok["duration_ms"], float) and ok["duration_ms"] >= 0
    assert ok["level"] == "INFO" and "time" in ok
    missing = next(entry for entry in lines if entry["request_id"] == request_id + "-404")
    assert missing["status"] == 404 and missing["user_id"] is None
    assert sum(1 for entry in lines if entry["request_id"] == request_id) == 1
