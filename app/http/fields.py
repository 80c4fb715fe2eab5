"""Building blocks of request and response bodies: exact amounts in, strings out; times
in UTC; text without NUL; strict bodies that refuse unknown fields."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    model_validator,
)

from app.money import normalize_currency, parse_amount


def _utc(value: datetime) -> datetime:
    """Aware and in UTC (a time without an offset is taken as UTC)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is in year 0 in UTC
        raise ValueError("the time in UTC must fall within the years 1 to 9999") from None


def iso_z(value: datetime) -> str:
    """A time as the API writes it: ISO 8601 in UTC, with a Z."""
    return _utc(value).isoformat().replace("+00:00", "Z")


Timestamp = Annotated[datetime, PlainSerializer(iso_z, return_type=str)]
InTimestamp = Annotated[datetime, AfterValidator(_utc)]
Amount = Annotated[
    Decimal,
    BeforeValidator(parse_amount),
    WithJsonSchema({
        "anyOf": [{"type": "string", "pattern": r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)$"},
                  {"type": "number"}],
        "description": "a positive amount with at most the currency's decimals, "
                       "as a JSON number or a string",
        "examples": ["500.50", 500],
    }),
]
CurrencyCode = Annotated[str, BeforeValidator(normalize_currency),
                         WithJsonSchema({"type": "string", "pattern": "^[A-Za-z]{3}$",
                                         "examples": ["INR"]})]
ShortText = Annotated[str, Field(max_length=255)]


def _no_nul(value: Any) -> Any:
    """PostgreSQL text cannot hold NUL; refuse it here rather than fail in the database.
    (Bodies are at most 32 levels deep, app/http/jsonbody.py, so recursing is safe.)"""
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("text must not contain NUL characters")
    if isinstance(value, dict):
        for item in value.values():
            _no_nul(item)
    elif isinstance(value, list):
        for item in value:
            _no_nul(item)
    return value


class Body(BaseModel):
    @model_validator(mode="before")
    @classmethod
    def _refuse_nul(cls, data: Any) -> Any:
        return _no_nul(data)


class StrictBody(Body):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
