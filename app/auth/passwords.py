"""Password hashing: argon2id at the configured cost, off the event loop."""

from __future__ import annotations

import asyncio
import uuid
from functools import cached_property

from passlib.context import CryptContext

from app.config import Settings


class PasswordHasher:
    def __init__(self, settings: Settings) -> None:
        self._context = CryptContext(
            schemes=["argon2"],
            argon2__type="ID",
            argon2__memory_cost=settings.argon2_memory_kib,
            argon2__time_cost=settings.argon2_time_cost,
            argon2__parallelism=settings.argon2_parallelism,
        )

    def hash_now(self, password: str) -> str:
        """On this thread: for the command line, never on the event loop."""
        return self._context.hash(password)

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._context.hash, password)

    async def verify(self, password: str, password_hash: str) -> bool:
        return await asyncio.to_thread(self._check, password, password_hash)

    def _check(self, password: str, password_hash: str) -> bool:
        try:
            return self._context.verify(password, password_hash)
        except (ValueError, TypeError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        """True when the hash was made with other argon2 parameters than the current ones."""
        try:
            return self._context.needs_update(password_hash)
        except (ValueError, TypeError):
            return False

    @cached_property
    def _dummy_hash(self) -> str:
        return self._context.hash("not-a-real-password-" + uuid.uuid4().hex)

    async def verify_against_dummy(self, password: str) -> None:
        """Spend the same time as a real check, so an unknown username is not revealed."""
        dummy = await asyncio.to_thread(lambda: self._dummy_hash)
        await self.verify(password, dummy)

    async def warm_up(self) -> None:
        await asyncio.to_thread(lambda: self._dummy_hash)
