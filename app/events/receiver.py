"""`python -m app receive-events`: a local endpoint for trying events by hand. It prints
each delivery and whether its signature verifies, and answers 200 (or the status given).
On aiohttp's server, which costs little CPU per request: the benchmark runs it beside the
app on the same cores."""

from __future__ import annotations

import json

from aiohttp import web

from app.events.signing import verify


def serve(port: int, secret: str | None, status: int, *, quiet: bool = False) -> None:
    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        if quiet:
            return web.Response(status=status)
        h = request.headers
        checked = "not checked (no --secret)"
        if secret:
            ok = verify(secret, h.get("webhook-id", ""), h.get("webhook-timestamp", ""),
                        h.get("webhook-signature", ""), body)
            checked = "verified" if ok else "DOES NOT VERIFY"
        try:
            event = json.loads(body)
            summary = f"{event.get('type')} {event.get('id')} invoice {event.get('invoice_id')}"
        except ValueError:
            summary = f"{len(body)} bytes, not JSON"
        print(f"{summary}  signature {checked}  -> {status}", flush=True)
        return web.Response(status=status)

    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", receive)
    print(f"receiving events on http://127.0.0.1:{port}/ (Ctrl+C stops)", flush=True)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None,
                backlog=128)
