"""Request dependencies every domain uses."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.config import Settings


# `async def` even though it does not await: FastAPI runs a plain `def` dependency in its
# thread pool, a thread hop on every request (measured: a third of the GET rate).
async def _settings(request: Request) -> Settings:
    return request.app.state.settings


AppSettings = Annotated[Settings, Depends(_settings)]
