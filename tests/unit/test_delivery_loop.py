"""The delivery loop's handling of a round that fails (app/events/worker.py)."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace

import asyncpg
import peewee
import pytest

from app.events import worker
from app.events.worker import Deliverer


def _deadlock(driver_error: type[Exception]) -> Exception:
    error = peewee.OperationalError("deadlock detected")
    error.orig = driver_error("deadlock detected")  # as peewee wraps the driver's error
    return error


def _run(monkeypatch: pytest.MonkeyPatch, *, delivery_error: Exception | None = None,
         housekeeping_error: Exception | None = None) -> list[logging.LogRecord]:
    """Three rounds of the loop with the given failures; what it logged."""
    settings = SimpleNamespace(retry_delays=[1], delivery_timeout_seconds=1,
                               delivery_concurrency=4, private_urls_allowed=True,
                               delivery_poll_seconds=0.01)
    deliverer = Deliverer(settings)  # type: ignore[arg-type]
    stop = asyncio.Event()
    rounds = 0

    async def one_round() -> int:
        nonlocal rounds
        rounds += 1
        if rounds == 3:
            stop.set()
        if delivery_error is not None:
            raise delivery_error
        return 0

    async def announce(**_: object) -> int:
        raise housekeeping_error or AssertionError("not reached")

    monkeypatch.setattr(deliverer, "run_once", one_round)
    monkeypatch.setattr(worker.overdue, "announce", announce)
    handler = _Records()
    logger = logging.getLogger("app.deliveries")
    logger.addHandler(handler)
    try:
        asyncio.run(asyncio.wait_for(deliverer.run(stop), 5))
    finally:
        logger.removeHandler(handler)
    return handler.records


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.mark.parametrize("driver_error", [asyncpg.exceptions.DeadlockDetectedError,
                                          asyncpg.exceptions.SerializationError])
def test_housekeeping_the_database_rolled_back_is_a_warning(
        monkeypatch: pytest.MonkeyPatch, driver_error: type[Exception]) -> None:
    records = _run(monkeypatch, housekeeping_error=_deadlock(driver_error))
    assert len(records) == 1  # one housekeeping round in the 5 s
    assert records[0].levelno == logging.WARNING and records[0].exc_info is None
    assert "housekeeping rolled back by the database" in records[0].getMessage()


def test_a_delivery_round_that_fails_is_logged_with_its_traceback(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A claim or its outcomes are retried inside their transaction already; what still
    fails (a deadlock three times over, a bug) is an error to look at."""
    for error in (_deadlock(asyncpg.exceptions.DeadlockDetectedError), ValueError("a bug")):
        records = _run(monkeypatch, delivery_error=error)
        assert len(records) == 3
        assert all(r.levelno == logging.ERROR and r.exc_info for r in records)
