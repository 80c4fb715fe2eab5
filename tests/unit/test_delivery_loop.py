"""The delivery loop's handling of a round that fails (app/events/worker.py)."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace

import asyncpg
import peewee
import pytest

from app.events.worker import Deliverer


def _deliverer(monkeypatch: pytest.MonkeyPatch, error: Exception) -> Deliverer:
    settings = SimpleNamespace(retry_delays=[1], delivery_timeout_seconds=1,
                               delivery_concurrency=4, private_urls_allowed=True,
                               delivery_poll_seconds=0.01)
    deliverer = Deliverer(settings)  # type: ignore[arg-type]
    rounds = 0

    async def failing_round() -> int:
        nonlocal rounds
        rounds += 1
        if rounds == 3:
            stop.set()
        raise error

    stop = asyncio.Event()
    monkeypatch.setattr(deliverer, "run_once", failing_round)
    deliverer.stop = stop  # type: ignore[attr-defined]
    return deliverer


@pytest.mark.parametrize("driver_error", [asyncpg.exceptions.DeadlockDetectedError,
                                          asyncpg.exceptions.SerializationError])
def test_a_round_the_database_rolled_back_is_a_warning_and_runs_again(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        driver_error: type[Exception]) -> None:
    error = peewee.OperationalError("deadlock detected")
    error.orig = driver_error("deadlock detected")  # as peewee wraps the driver's error
    deliverer = _deliverer(monkeypatch, error)
    with caplog.at_level(logging.WARNING, logger="app.deliveries"):
        asyncio.run(asyncio.wait_for(deliverer.run(deliverer.stop), 5))
    records = [r for r in caplog.records if r.name == "app.deliveries"]
    assert len(records) == 3
    assert all(r.levelno == logging.WARNING and r.exc_info is None for r in records)
    assert "rolled back by the database" in records[0].getMessage()


def test_any_other_failure_is_logged_with_its_traceback(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    deliverer = _deliverer(monkeypatch, ValueError("a bug"))
    with caplog.at_level(logging.WARNING, logger="app.deliveries"):
        asyncio.run(asyncio.wait_for(deliverer.run(deliverer.stop), 5))
    records = [r for r in caplog.records if r.name == "app.deliveries"]
    assert records and all(r.levelno == logging.ERROR and r.exc_info for r in records)
