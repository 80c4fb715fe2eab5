"""Request and response bodies. Amounts in are exact Decimals; amounts out are strings."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)

from app.money import normalize_currency, parse_amount

T = TypeVar("T")

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def normalize_email(value: str) -> str:
    """The one form an email is stored in and looked up by."""
    return value.strip().lower()


def _email(value: str) -> str:
    value = normalize_email(value)
    if len(value) > 254 or not _EMAIL.fullmatch(value):
        raise ValueError("email must look like name@example.com")
    return value


def _utc(value: datetime) -> datetime:
    """Aware and in UTC (a time without an offset is taken as UTC)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is in year 0 in UTC
        raise ValueError("the time in UTC must fall within the years 1 to 9999") from None


def _iso_z(value: datetime) -> str:
    return _utc(value).isoformat().replace("+00:00", "Z")


Timestamp = Annotated[datetime, PlainSerializer(_iso_z, return_type=str)]
InTimestamp = Annotated[datetime, AfterValidator(_utc)]
Username = Annotated[
    str,
    Field(min_length=3, max_length=50, pattern=r"^[A-Za-z0-9_.-]+$",
          examples=["alice"], description="3–50 letters, digits, '_', '.' or '-'"),
]
Email = Annotated[str, Field(max_length=254, examples=["alice@example.com"]),
                  AfterValidator(_email)]
# Taken exactly as sent: never trimmed, its length counted as sent (spaces included).
Password = Annotated[str, StringConstraints(strip_whitespace=False, min_length=8,
                                            max_length=128),
                     Field(examples=["correct-horse-42"])]
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
Currency = Annotated[str, BeforeValidator(normalize_currency),
                     WithJsonSchema({"type": "string", "pattern": "^[A-Za-z]{3}$",
                                     "examples": ["INR"]})]
ShortText = Annotated[str, Field(max_length=255)]
Role = Literal["admin", "user"]
InvoiceStatus = Literal[
    "pending", "payment_failed", "partially_paid", "completed", "partially_refunded", "refunded"
]


def _no_nul(value: Any) -> Any:
    """PostgreSQL text cannot hold NUL; refuse it here rather than fail in the database."""
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


# -- users and login ---------------------------------------------------------------------

class UserCreate(StrictBody):
    username: Username
    email: Email
    password: Password
    role: Role = "user"


class UserUpdate(StrictBody):
    username: Username | None = None
    email: Email | None = None
    password: Password | None = None
    role: Role | None = None
    is_active: bool | None = None


class UserOut(BaseModel):
    id: uuid.UUID
    username: str
    email: str
    role: Role
    is_active: bool
    created_at: Timestamp
    updated_at: Timestamp


class LoginBody(Body):
    model_config = ConfigDict(extra="ignore")
    username: str = Field(min_length=1, max_length=254)
    password: str = Field(min_length=1, max_length=1024)


class Token(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth2 token type
    expires_in: int


# -- invoices ----------------------------------------------------------------------------

class ReadOnlyInvoiceFields(StrictBody):
    """Accepted only so that a client sending them gets `read_only_field`, not a typo error."""

    status: Any = Field(default=None, json_schema_extra={"readOnly": True})
    amount_recovered: Any = Field(default=None, json_schema_extra={"readOnly": True})
    amount_refunded: Any = Field(default=None, json_schema_extra={"readOnly": True})
    amount_due: Any = Field(default=None, json_schema_extra={"readOnly": True})

    def read_only_values(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ReadOnlyInvoiceFields.model_fields
                if k in self.model_fields_set}


class InvoiceCreate(ReadOnlyInvoiceFields):
    payer_id: uuid.UUID = Field(validation_alias=AliasChoices("payer_id", "payer"))
    receiver_id: uuid.UUID = Field(validation_alias=AliasChoices("receiver_id", "receiver"))
    amount: Amount
    currency: Currency | None = None
    description: str = Field(max_length=2000, examples=["Consulting, November"])
    due_date: date | None = None


class InvoiceUpdate(ReadOnlyInvoiceFields):
    payer_id: uuid.UUID | None = Field(
        default=None, validation_alias=AliasChoices("payer_id", "payer"))
    receiver_id: uuid.UUID | None = Field(
        default=None, validation_alias=AliasChoices("receiver_id", "receiver"))
    amount: Amount | None = None
    currency: Currency | None = None
    description: str | None = Field(default=None, max_length=2000)
    due_date: date | None = None


class Party(BaseModel):
    id: uuid.UUID
    username: str
    email: str


class InvoiceOut(BaseModel):
    id: uuid.UUID
    payer_id: uuid.UUID
    receiver_id: uuid.UUID
    payer: Party
    receiver: Party
    amount: str
    currency: str
    description: str
    due_date: date | None
    status: InvoiceStatus
    amount_recovered: str
    amount_refunded: str
    amount_due: str
    created_at: Timestamp
    updated_at: Timestamp


# -- the ledger --------------------------------------------------------------------------

class TransactionCreate(StrictBody):
    invoice_id: uuid.UUID
    amount: Amount
    payment_mode: str = Field(min_length=1, max_length=50, examples=["upi"])
    payment_date: InTimestamp | None = None
    reference: ShortText | None = None
    kind: Literal["payment", "refund"] = "payment"


class TransactionOut(BaseModel):
    id: uuid.UUID
    invoice_id: uuid.UUID
    kind: Literal["payment", "refund"]
    status: Literal["succeeded", "failed"]
    amount: str
    currency: str
    payment_mode: str
    payment_date: Timestamp
    reference: str | None
    source: Literal["api", "webhook"]
    event_id: str | None
    created_at: Timestamp


class Page(BaseModel, Generic[T]):
    data: list[T]
    next_cursor: str | None


# -- webhooks ----------------------------------------------------------------------------

class WebhookBody(Body):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)
    id: str = Field(min_length=1, max_length=255, examples=["evt_1N2b3C"])
    invoice_id: uuid.UUID
    reference: ShortText | None = None


class PaymentSucceededEvent(WebhookBody):
    amount_paid: Amount
    payment_mode: str = Field(default="provider", min_length=1, max_length=50)


class PaymentFailedEvent(WebhookBody):
    reason: str | None = Field(default=None, max_length=1000)
    amount: Amount | None = None
    payment_mode: str = Field(default="provider", min_length=1, max_length=50)


class RefundEvent(WebhookBody):
    refunded_amount: Amount


class WebhookResult(BaseModel):
    event_id: str
    duplicate: bool
    invoice: InvoiceOut
    transaction: TransactionOut


class Health(BaseModel):
    status: str


class ErrorItem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str | None = None


class Problem(BaseModel):
    """Every error (RFC 9457 problem+json); `code` is the stable name to branch on."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "type": "about:blank", "title": "Conflict", "status": 409,
        "code": "amount_exceeds_due",
        "detail": "payment of 30.00 exceeds the amount due 10.00"}]})
    type: str = "about:blank"
    title: str
    status: int
    code: str
    detail: str
    errors: list[ErrorItem] | None = None
