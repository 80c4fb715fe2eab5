"""The app's idea of today's date (UTC), for what depends on the calendar: an invoice is
overdue once its due date is before today. `CLOCK_SHIFT_DAYS` moves it, so tests and
demos can see tomorrow without waiting for it; production refuses the setting."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from app.config import Settings

_shift = timedelta(0)


def configure(settings: Settings) -> None:
    global _shift
    _shift = timedelta(days=settings.clock_shift_days)


def today() -> date:
    return (datetime.now(UTC) + _shift).date()
