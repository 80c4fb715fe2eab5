"""Endpoint URLs: what is refused before anything is sent."""

from __future__ import annotations

import asyncio

import pytest

from app.events.urls import InvalidEndpointUrl, check


@pytest.mark.parametrize("url", [
    "file:///etc/passwd", "ftp://example.com/x", "gopher://example.com", "example.com/x",
    "https://user:pass@example.com/hook", "https://token@example.com/hook", "https:///x",
    "https://example.com:99999/x", "http://[::1", "javascript:alert(1)",
])
def test_refused_whatever_the_setting(url: str) -> None:
    with pytest.raises(InvalidEndpointUrl):
        asyncio.run(check(url, allow_private=True))


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8080/x", "http://localhost/x", "http://10.1.2.3/x", "http://192.168.0.1/",
    "http://172.16.5.4/", "http://169.254.169.254/latest/meta-data", "http://[::1]/x",
    "http://[::ffff:127.0.0.1]/x", "http://0.0.0.0/", "http://[fd00::1]/", "http://100.64.0.1/",
])
def test_private_and_loopback_refused_unless_allowed(url: str) -> None:
    with pytest.raises(InvalidEndpointUrl, match="loopback or private"):
        asyncio.run(check(url, allow_private=False))
    asyncio.run(check(url, allow_private=True))


def test_a_public_address_is_accepted() -> None:
    asyncio.run(check("https://93.184.215.14/hooks", allow_private=False))
