"""Events as the API shows them and sends them: `data.object` is the invoice or the
transaction exactly as the API returned it when the event happened.

Events written from Python store that object already shaped; the ledger's one-statement
payments store the raw rows they wrote (`{"invoice": …}` or `{"transaction": …}`), which
are shaped here by the same functions that shape the API's answers."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import orjson

from app.credit.service import credit_entry_json
from app.events.schemas import EventOut
from app.http.fields import iso_z
from app.http.responses import json_body
from app.invoices.service import invoice_json
from app.ledger.service import transaction_json
from app.money import format_minor

# The driver stores the first and the last moment and day Python has as PostgreSQL's
# infinities, and reads them back as those: so does an event's row.
_INFINITE_TIMES = {"-infinity": datetime.min.replace(tzinfo=UTC),
                   "infinity": datetime.max.replace(tzinfo=UTC)}
_INFINITE_DATES = {"-infinity": date.min, "infinity": date.max}


def _time(text: str) -> datetime:
    """A timestamptz as `to_jsonb` wrote it."""
    return _INFINITE_TIMES.get(text) or datetime.fromisoformat(text)


def _api_time(text: str) -> str:
    """A timestamptz as `to_jsonb` wrote it, as the API writes it."""
    return iso_z(_time(text))


def event_object(data: dict[str, Any]) -> dict[str, Any]:
    """`data.object` from an event's stored data, shaped without models by the functions
    that shape the API's answers, as JSON values (tests/unit/test_event_body.py compares
    each kind with the models' JSON)."""
    if "object" in data:
        return data["object"]
    if "credit" in data:  # a credit entry, and the balance it left
        raw = data["credit"]  # ids already as the API writes them; times as PostgreSQL
        return {**credit_entry_json({**raw, "created_at": _api_time(raw["created_at"])}),
                "balance": format_minor(raw["balance"], raw["currency"])}
    if "transaction" in data:  # the commonest event
        raw = data["transaction"]
        return transaction_json({**raw, "created_at": _api_time(raw["created_at"]),
                                 "payment_date": _api_time(raw["payment_date"])})
    raw = data["invoice"]
    due = raw["due_date"]
    if due is not None:
        due = _INFINITE_DATES.get(due) or date.fromisoformat(due)
    invoice = invoice_json({**raw, "due_date": due, "created_at": _api_time(raw["created_at"]),
                            "updated_at": _api_time(raw["updated_at"])})
    return {**invoice, "due_date": due.isoformat() if due is not None else None}


def _loaded(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def event_json(row: Any) -> dict[str, Any]:
    """An event row as the API shows it: EventOut's fields in its order, as plain values."""
    return {"id": row["id"], "type": row["type"], "created_at": row["created_at"],
            "invoice_id": row["invoice_id"],
            "data": {"object": event_object(_loaded(row["data"]))},
            "previous": _loaded(row["previous"])}


def event_out(row: Any) -> EventOut:
    return EventOut.model_construct(**event_json(row))


def event_body(row: Any) -> bytes:
    """The bytes sent to endpoints: the same on every attempt, so the same signature
    input for the same event and timestamp. Byte for byte event_out()'s JSON, encoded from
    plain values (tests/unit/test_event_body.py): a quarter of the model's cost, on every
    delivery."""
    return json_body(event_json(row))
