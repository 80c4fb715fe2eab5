from __future__ import annotations

import re
import uuid
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, StringConstraints

from app.http.fields import StrictBody, Timestamp

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def normalize_email(value: str) -> str:
    """The one form an email is stored in and looked up by."""
    return value.strip().lower()


def _email(value: str) -> str:
    value = normalize_email(value)
    if len(value) > 254 or not _EMAIL.fullmatch(value):
        raise ValueError("email must look like name@example.com")
    return value


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
Role = Literal["admin", "user"]


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
    # Needed to change one's own email or password (an admin resetting someone else's
    # does not send it).
    current_password: str | None = Field(default=None, max_length=128)


class UserOut(BaseModel):
    id: uuid.UUID
    username: str
    email: str
    role: Role
    is_active: bool
    created_at: Timestamp
    updated_at: Timestamp


class UserWithNewToken(UserOut):
    """One's own email or password changed: every other token of the account was revoked,
    and this new one replaces the token that made the change."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth2 token type
    expires_in: int
    other_tokens_revoked: bool = True
