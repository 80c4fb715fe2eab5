"""What one delivery costs in CPU, per process: the sender (`python -m app deliver`),
PostgreSQL, and the receiver, while one deliver process sends a queue of deliveries.
PostgreSQL's figure and the machine's count whatever else runs: run it alone.

On a throwaway database, N `payment.succeeded` events of 1,000 invoices (as bench/run.py's
events scenario makes them) are queued to one endpoint at once, in event order; this
waits until none is pending and divides each process's CPU time over the wait by N. The
events scenario of bench/run.py shows what that costs payments; this shows where it goes
(docs/EVENTS.md, "Throughput"):

    .venv/bin/python bench/delivery_cost.py [--deliveries 6000] [--rounds 3] [--bare]

`--bare`: a receiver that costs next to nothing (an asyncio protocol answering 204)
instead of `python -m app receive-events --quiet`.
"""

# ruff: noqa: E402  (the project root goes on sys.path before the imports that need it)
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import harness
import seed

DB_NAME = "payapp_bench_delivery"
TICK = os.sysconf("SC_CLK_TCK")

_EVENTS = """
INSERT INTO events (id, type, invoice_id, created_at, data)
SELECT 'evt_' || replace(gen_random_uuid()::text, '-', ''), 'payment.succeeded', inv,
       at, jsonb_build_object('transaction', jsonb_build_object(
           'id', gen_random_uuid(), 'invoice_id', inv, 'kind', 'payment',
           'status', 'succeeded', 'amount', 100, 'currency', 'INR', 'payment_mode', 'upi',
           'payment_date', at, 'reference', 'bench', 'source', 'api', 'event_id', NULL,
           'created_at', at))
FROM (SELECT ('00000000-0000-4000-8000-' || lpad((1 + n %% 1000)::text, 12, '0'))::uuid
             AS inv, now() - (%s - n) * interval '1 millisecond' AS at
      FROM generate_series(1, %s) n) s
"""
# Queued as a payment's fan-out queues them: due when their event was made, in its order.
_QUEUE = """
INSERT INTO deliveries (event_seq, endpoint_id, invoice_id, next_attempt_at, created_at,
                        updated_at)
SELECT e.seq, %s, e.invoice_id, e.created_at, e.created_at, e.created_at
FROM events e ORDER BY e.seq
"""

# A receiver that costs next to nothing: reads each request, answers 204.
_BARE = """
import asyncio, sys
class P(asyncio.Protocol):
    def connection_made(self, t): self.t, self.buf = t, b""
    def data_received(self, d):
        self.buf += d
        while (i := self.buf.find(b"\\r\\n\\r\\n")) >= 0:
            n = next((int(v) for k, _, v in (h.partition(b":") for h in
                      self.buf[:i].lower().split(b"\\r\\n")) if k == b"content-length"), 0)
            if len(self.buf) < i + 4 + n: return
            self.buf = self.buf[i + 4 + n:]
            self.t.write(b"HTTP/1.1 204 No Content\\r\\ncontent-length: 0\\r\\n\\r\\n")
async def main():
    server = await asyncio.get_running_loop().create_server(P, "127.0.0.1", int(sys.argv[1]))
    await server.serve_forever()
asyncio.run(main())
"""


def postgres_cpu() -> float:
    """Every postgres process's CPU (backends, WAL writer, autovacuum; the ones that ended
    meanwhile are not counted: none should, the deliverer keeps its pool)."""
    return harness.cpu_of(harness.postgres_pids())


def machine_busy() -> float:
    user, nice, system, _idle, _iowait, irq, softirq = (
        int(v) for v in Path("/proc/stat").read_text().split()[1:8])
    return (user + nice + system + irq + softirq) / TICK


def one_round(db: seed.Database, url: str, n: int, bare: bool) -> dict[str, float]:
    db.rows("DELETE FROM delivery_attempts; DELETE FROM deliveries; DELETE FROM events; "
            "DELETE FROM webhook_endpoints")
    port = harness.free_port()
    receiver = subprocess.Popen(
        [sys.executable, "-c", _BARE, str(port)] if bare else
        [sys.executable, "-m", "app", "receive-events", "--port", str(port), "--quiet"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db.rows("INSERT INTO webhook_endpoints (id, url, event_types, secret, created_at, "
            "updated_at) VALUES (gen_random_uuid(), %s, '{*}', "
            "'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', now(), now())",
            (f"http://127.0.0.1:{port}/",))
    endpoint = db.scalar("SELECT id FROM webhook_endpoints")
    db.rows(_EVENTS, (n, n))  # made in the last n ms: all due when queued
    db.rows("VACUUM ANALYZE events")
    env = {**os.environ, "DATABASE_URL": url, "WEBHOOK_ALLOW_PRIVATE_URLS": "true",
           "LOG_LEVEL": "WARNING", "MIGRATE_ON_START": "false"}
    deliverer = subprocess.Popen([sys.executable, "-m", "app", "deliver"], cwd=ROOT, env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(4)  # started, and idle
        before = (harness.cpu_seconds(deliverer.pid), postgres_cpu(),
                  harness.cpu_seconds(receiver.pid), machine_busy(), time.monotonic())
        db.rows(_QUEUE, (endpoint,))
        deadline = time.monotonic() + 120 + n / 100
        while db.scalar("SELECT count(*) FROM deliveries WHERE status = 'pending'"):
            if deliverer.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the deliver process stopped or stalled: run "
                                 "`python -m app deliver` with this environment to see why")
            time.sleep(0.25)
        after = (harness.cpu_seconds(deliverer.pid), postgres_cpu(),
                 harness.cpu_seconds(receiver.pid), machine_busy(), time.monotonic())
        delivered = db.scalar("SELECT count(*) FROM deliveries WHERE status = 'delivered'")
    finally:
        for process in (deliverer, receiver):
            process.terminate()
            process.wait(10)
    if delivered != n:
        raise SystemExit(f"{delivered} of {n} deliveries delivered")
    per = [(b - a) / n * 1000 for a, b in zip(before, after, strict=True)]
    return dict(zip(("sender", "postgres", "receiver", "machine", "seconds"),
                    [*per[:4], after[4] - before[4]], strict=True))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deliveries", type=int, default=6000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bare", action="store_true", help="a receiver that costs nothing")
    args = parser.parse_args()
    with harness.throwaway_database(DB_NAME) as url:
        db = seed.Database(url)
        print(f"{args.deliveries:,} deliveries queued at once, one deliver process, "
              f"{'a bare' if args.bare else 'the receive-events'} receiver; "
              "ms of CPU per delivery:")
        for _ in range(args.rounds):
            r = one_round(db, url, args.deliveries, args.bare)
            print(f"  sender {r['sender']:.3f}  postgres {r['postgres']:.3f}  receiver "
                  f"{r['receiver']:.3f}  whole machine {r['machine']:.3f}  "
                  f"(sent in {r['seconds']:.1f} s)", flush=True)
        db.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
