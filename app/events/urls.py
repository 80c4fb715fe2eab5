"""Endpoint URLs: http(s), a host, no credentials; and, unless private addresses are
allowed, every address the host resolves to is public. Checked when an endpoint is saved;
at send time the delivery client refuses a private address it is about to connect to (a
name may resolve elsewhere later: DNS rebinding), app/events/sender.py."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from app.errors import Invalid


class InvalidEndpointUrl(Invalid, code="invalid_url"): ...


def check_shape(url: str) -> str:
    """The URL's host, or InvalidEndpointUrl saying what is wrong with it."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidEndpointUrl(f"url is not a valid URL: {exc}", field="url") from None
    if parts.scheme not in ("https", "http"):
        raise InvalidEndpointUrl("url must start with https:// (or http://)", field="url")
    if parts.username is not None or parts.password is not None:
        raise InvalidEndpointUrl("url must not carry credentials (user:password@); "
                                 "verify our signature instead", field="url")
    if not parts.hostname:
        raise InvalidEndpointUrl("url has no host", field="url")
    if port == 0:
        raise InvalidEndpointUrl("url has port 0", field="url")
    return parts.hostname


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


async def check(url: str, *, allow_private: bool) -> None:
    host = check_shape(url)
    if allow_private:
        return
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None,
                                                             type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise InvalidEndpointUrl(f"url's host {host!r} does not resolve", field="url") from None
    for info in infos:
        if not is_public(str(info[4][0])):
            raise InvalidEndpointUrl(
                f"url's host {host!r} resolves to {info[4][0]}, a loopback or private "
                "address; endpoints must be public (WEBHOOK_ALLOW_PRIVATE_URLS=true allows "
                "them)", field="url")
