"""The deliveries' HTTP client against a real local server: redirects not followed, a long
answer read only up to the limit, a slow one cut at the deadline, and private addresses
refused where the connection is made."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import pytest
from aiohttp import web

from app.events.sender import RESPONSE_LIMIT, Sender

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
T = TypeVar("T")


async def serving(handler: Handler) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


async def post(handler: Handler, *, allow_private: bool = True, timeout: float = 5,
               host: str = "127.0.0.1") -> tuple[int | None, str | None, list[str]]:
    """The sender's answer, and the paths the server saw."""
    seen: list[str] = []

    async def recording(request: web.Request) -> web.StreamResponse:
        seen.append(request.path)
        return await handler(request)

    runner, base = await serving(recording)
    sender = Sender(timeout=timeout, connections=4, allow_private=allow_private)
    try:
        answer = await sender.post(base.replace("127.0.0.1", host) + "/hooks", b"{}",
                                   {"content-type": "application/json"})
    finally:
        await sender.aclose()
        await runner.cleanup()
    return answer.status_code, answer.error, seen


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def test_a_redirect_is_answered_not_followed() -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        if request.path == "/hooks":
            raise web.HTTPFound("/elsewhere")
        return web.Response(status=200)

    status, error, seen = run(post(handler))
    assert (status, error, seen) == (302, None, ["/hooks"])


def test_a_long_answer_is_read_only_up_to_the_limit() -> None:
    sent: list[int] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=200)
        await response.prepare(request)
        try:
            for _ in range(10_000):  # 640 MB if it were all read
                await response.write(b"x" * 65536)
                sent.append(65536)
        except (ConnectionError, RuntimeError):
            pass
        return response

    started = time.monotonic()
    status, error, _ = run(post(handler))
    assert status == 200 and error is None
    assert time.monotonic() - started < 5
    assert sum(sent) < 10_000 * 65536
    assert RESPONSE_LIMIT <= 4096


def test_no_answer_within_the_deadline_is_an_error() -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(3)
        return web.Response(status=200)

    status, error, _ = run(post(handler, timeout=0.3))
    assert status is None and error == "no answer within 0.3 s"


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_private_address_is_refused_at_connect_time(host: str) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=200)

    status, error, seen = run(post(handler, allow_private=False, host=host))
    assert status is None and seen == []
    assert error and "private" in error, error


def test_a_refused_connection_is_an_error_not_an_exception() -> None:
    async def attempt() -> tuple[int | None, str | None]:
        sender = Sender(timeout=5, connections=4, allow_private=True)
        try:
            answer = await sender.post("http://127.0.0.1:1/hooks", b"{}", {})
        finally:
            await sender.aclose()
        return answer.status_code, answer.error

    status, error = run(attempt())
    assert status is None and error and error.startswith("could not connect"), error
