"""The outbound HTTP client of deliveries, on aiohttp.

aiohttp because a delivery is one small POST and the client's own cost is what limits how
many a worker sends: on the benchmark machine httpx spent 2.3 ms of CPU per POST (its
connection pool is linear in the connections it holds), aiohttp 0.09 ms (docs/EVENTS.md).

Private and loopback addresses are refused where the connection is made, on the address
actually connected to, so a name that resolved to a public address when the endpoint was
saved and to a private one now (DNS rebinding), or an IP literal, is refused alike.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass

import aiohttp

from app.events.urls import is_public

RESPONSE_LIMIT = 4096  # bytes of a response read, at most
USER_AGENT = "PaymentApp-Webhooks/1.0"


class PrivateAddress(OSError):
    pass


def _public_socket(addr_info: tuple) -> socket.socket:
    family, type_, proto, _, address = addr_info
    if not is_public(str(address[0])):
        raise PrivateAddress(
            f"{address[0]} is a loopback or private address; endpoints must be public "
            "(WEBHOOK_ALLOW_PRIVATE_URLS=true allows them)")
    return socket.socket(family, type_, proto)


@dataclass(frozen=True)
class Answer:
    status_code: int | None
    error: str | None


class Sender:
    """One connection pool shared by a worker's concurrent sends."""

    def __init__(self, *, timeout: float, connections: int, allow_private: bool) -> None:
        self.timeout = timeout
        self._limit = connections
        self._allow_private = allow_private
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:  # made in the running loop, on first use
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._limit,
                    socket_factory=None if self._allow_private else _public_socket),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                headers={"user-agent": USER_AGENT}, auto_decompress=False,
                trust_env=False, cookie_jar=aiohttp.DummyCookieJar())
        return self._session

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> Answer:
        """POST `body`; the answer's status, or why there is none. Redirects are not
        followed, and at most RESPONSE_LIMIT bytes of the answer are read."""
        try:
            async with asyncio.timeout(self.timeout), self._client().post(
                    url, data=body, headers=headers, allow_redirects=False) as response:
                await response.content.read(RESPONSE_LIMIT)
                return Answer(response.status, None)
        except TimeoutError:
            return Answer(None, f"no answer within {self.timeout:g} s")
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, PrivateAddress):
                return Answer(None, str(exc.os_error))
            return Answer(None, f"could not connect: {exc.os_error or exc}"[:500])
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            return Answer(None, f"{type(exc).__name__}: {exc}"[:500])

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
