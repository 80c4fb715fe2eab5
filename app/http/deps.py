"""Request dependencies every domain uses: the unit of work and the app's settings."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.config import Settings
from app.db.transaction import UnitOfWork, unit_of_work


def _settings(request: Request) -> Settings:
    return request.app.state.settings


Work = Annotated[UnitOfWork, Depends(unit_of_work)]
AppSettings = Annotated[Settings, Depends(_settings)]
