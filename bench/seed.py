"""Bench data, made with SQL in seconds, and the signed webhook bodies.

Ids are built from numbers so that wrk's Lua and pgbench's scripts can name any seeded row
without a lookup: invoice n is 00000000-0000-4000-8000-<n, 12 digits>, user u is
00000000-0000-4000-9000-<u, 12 digits>. Invoice 0 is the hot one, 1..SPREAD are the ones
payments are spread over, and the rest only fill the table for the list scenarios. Invoice n
was created at 2024-01-01 + n seconds, so the newest (first page) are the last seeded.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psycopg2

from app.db.location import connect_kwargs
from app.pagination import encode_cursor

USERS = 100
HOT = 0
SPREAD = 1000
INVOICE_AMOUNT_MINOR = 900_000_000_000_000  # 9,000,000,000,000.00 INR: never fills up
PAYMENT = "1.00"
PAYMENT_MINOR = 100

_USERS_SQL = """
INSERT INTO users (id, username, email, password_hash)
SELECT ('00000000-0000-4000-9000-' || lpad(u::text, 12, '0'))::uuid,
       'bench_user_' || u, 'bench_user_' || u || '@example.com', '!'
FROM generate_series(0, %s) u
"""

_INVOICES_SQL = f"""
INSERT INTO invoices (id, payer_id, receiver_id, amount, currency, description,
                     created_at, updated_at)
SELECT ('00000000-0000-4000-8000-' || lpad(n::text, 12, '0'))::uuid,
       ('00000000-0000-4000-9000-' || lpad((n %% {USERS})::text, 12, '0'))::uuid,
       ('00000000-0000-4000-9000-' || lpad(((n + 1) %% {USERS})::text, 12, '0'))::uuid,
       %s, 'INR', 'bench invoice ' || n,
       timestamptz '2024-01-01 00:00:00+00' + n * interval '1 second',
       timestamptz '2024-01-01 00:00:00+00' + n * interval '1 second'
FROM generate_series(%s, %s) n
"""


def invoice_id(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


@dataclass(frozen=True)
class Cursor:
    value: str  # what the API takes as ?cursor=
    created_at: datetime
    row_id: str


class Database:
    def __init__(self, url: str) -> None:
        self.conn = psycopg2.connect(**connect_kwargs(url))
        self.conn.autocommit = True

    def close(self) -> None:
        self.conn.close()

    def rows(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self.conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []

    def scalar(self, sql: str, params: tuple = ()) -> object:
        return self.rows(sql, params)[0][0]

    def seed_base(self) -> None:
        """The users, the hot invoice and the SPREAD invoices payments go to."""
        self.rows(_USERS_SQL, (USERS - 1,))
        self.rows(_INVOICES_SQL, (INVOICE_AMOUNT_MINOR, HOT, SPREAD))
        self.rows("ANALYZE")

    def top_up(self, total: int) -> float:
        """Add invoices until the table holds `total`; ANALYZE; the seconds it took."""
        started = time.monotonic()
        have = int(self.scalar("SELECT count(*) FROM invoices"))  # numbers 0..have-1
        if have < total:
            self.rows(_INVOICES_SQL, (INVOICE_AMOUNT_MINOR, have, total - 1))
        self.rows("ANALYZE invoices")
        return time.monotonic() - started

    def deep_cursor(self, fraction: float = 0.9) -> Cursor:
        """A real next_cursor: the one the page ending `fraction` of the way down returns."""
        total = int(self.scalar("SELECT count(*) FROM invoices"))
        created_at, row_id = self.rows(
            "SELECT created_at, id FROM invoices ORDER BY created_at DESC, id DESC "
            "OFFSET %s LIMIT 1", (max(int(total * fraction) - 1, 0),))[0]
        return Cursor(encode_cursor(created_at, row_id), created_at, str(row_id))

    def ledger(self) -> tuple[int, dict[str, tuple[int, int]]]:
        """(sum of all invoices' amount_recovered, {reference: (payments, minor units)})."""
        recovered = int(self.scalar("SELECT coalesce(sum(amount_recovered), 0) FROM invoices"))
        by_ref = {ref: (int(n), int(total)) for ref, n, total in self.rows(
            "SELECT reference, count(*), sum(amount) FROM invoice_transactions "
            "WHERE kind = 'payment' AND status = 'succeeded' GROUP BY reference")}
        return recovered, by_ref


def write_webhook_bodies(path: Path, count: int, secret: str, tag: str) -> None:
    """`count` payment-success events, each its own id, signed now: "<X-Signature>\\t<body>".

    The signature is computed as API.md says a provider does (HMAC-SHA256 over
    f"{t}." + body), not with the app's code, as an outside client would.
    """
    t = int(time.time())
    rng = random.Random(tag)
    with path.open("w") as out:
        for i in range(count):
            body = json.dumps({"id": f"evt_{tag.replace(':', '_')}_{i}",
                               "invoice_id": invoice_id(rng.randint(1, SPREAD)),
                               "amount_paid": PAYMENT, "reference": tag},
                              separators=(",", ":"))
            mac = hmac.new(secret.encode(), f"{t}.".encode() + body.encode(),
                           hashlib.sha256).hexdigest()
            out.write(f"t={t},v1={mac}\t{body}\n")
