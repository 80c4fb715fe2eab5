"""`python -m app receive-events`: a local endpoint for trying events by hand. It prints
each delivery and whether its signature verifies, and answers 200 (or the status given)."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from app.events.signing import verify


def serve(port: int, secret: str | None, status: int) -> None:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: one connection per sender, not per event

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            h = {k.lower(): v for k, v in self.headers.items()}
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
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    class Server(ThreadingHTTPServer):
        request_queue_size = 128  # the default 5 drops concurrent connects (SYN retries)
        daemon_threads = True

    server = Server(("127.0.0.1", port), Handler)
    print(f"receiving events on http://127.0.0.1:{port}/ (Ctrl+C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
