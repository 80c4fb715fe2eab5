"""Passwords: taken exactly as sent, 8–128 characters; argon2id at the configured cost."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import ValidationError

from app.auth.passwords import PasswordHasher
from app.config import Settings
from app.users.schemas import UserCreate, normalize_email

CHEAP = Settings(argon2_memory_kib=1024, argon2_time_cost=1)


def signup(password: str) -> UserCreate:
    return UserCreate(username="alice", email="a@example.com", password=password)


@pytest.mark.parametrize("password", ["  pass word  ", "  abc   ", "x" * 128, "12345678"])
def test_passwords_are_kept_as_sent(password: str) -> None:
    assert signup(password).password == password


@pytest.mark.parametrize("password", [" abcdef", "1234567", "x" * 129, ""])
def test_length_is_counted_as_sent(password: str) -> None:
    with pytest.raises(ValidationError):
        signup(password)


def test_emails_have_one_normal_form() -> None:
    assert normalize_email("  STRAẞE@Example.DE ") == "straße@example.de"
    assert signup("12345678").email == "a@example.com"


def test_hashing_verifying_and_rehashing() -> None:
    hasher = PasswordHasher(CHEAP)

    async def run() -> None:
        stored = await hasher.hash("correct-horse-42")
        assert stored.startswith("$argon2id$")
        assert await hasher.verify("correct-horse-42", stored)
        assert not await hasher.verify("correct-horse-4", stored)
        assert not await hasher.verify("x", "not a hash")
        assert not hasher.needs_rehash(stored)
        assert PasswordHasher(Settings(argon2_memory_kib=2048, argon2_time_cost=1)
                              ).needs_rehash(stored)
        await hasher.verify_against_dummy("anything")

    asyncio.run(run())
