"""Outgoing events: the outbox (`events`), the merchant's endpoints, and deliveries.

An event row is written by the same statement or transaction as the change it reports
(app/events/). When an event is written, one `deliveries` row per enabled endpoint that
subscribes to its type is written with it, so the delivery workers only ever read
`deliveries`. `seq` orders events: for one invoice it is the commit order, because every
change of an invoice holds the invoice's row lock until it commits.
"""

STATEMENTS = [
    """
    CREATE TABLE events (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id text NOT NULL UNIQUE,
        type text NOT NULL,
        invoice_id uuid,
        created_at timestamptz NOT NULL,
        data jsonb NOT NULL,
        previous jsonb
    )
    """,
    "CREATE INDEX events_created_idx ON events (created_at DESC, seq DESC)",
    "CREATE INDEX events_invoice_idx ON events (invoice_id, seq)",
    """
    CREATE TABLE webhook_endpoints (
        id uuid PRIMARY KEY,
        url text NOT NULL,
        event_types text[] NOT NULL,
        description text NOT NULL DEFAULT '',
        secret text NOT NULL,
        previous_secret text,
        previous_secret_expires_at timestamptz,
        enabled boolean NOT NULL DEFAULT true,
        disabled_reason text,
        failing_since timestamptz,
        created_at timestamptz NOT NULL,
        updated_at timestamptz NOT NULL
    )
    """,
    """
    CREATE TABLE deliveries (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        event_seq bigint NOT NULL REFERENCES events (seq) ON DELETE CASCADE,
        endpoint_id uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
        invoice_id uuid,
        status text NOT NULL DEFAULT 'pending'
            CHECK (status IN ('pending', 'delivered', 'failed')),
        attempts integer NOT NULL DEFAULT 0,
        next_attempt_at timestamptz NOT NULL,
        created_at timestamptz NOT NULL,
        updated_at timestamptz NOT NULL
    )
    """,
    # What the workers look for: due pending deliveries, and earlier pending ones of the
    # same invoice and endpoint (which hold a later one back).
    "CREATE INDEX deliveries_due_idx ON deliveries (next_attempt_at) WHERE status = 'pending'",
    """CREATE INDEX deliveries_order_idx ON deliveries (endpoint_id, invoice_id, event_seq)
       WHERE status = 'pending'""",
    "CREATE INDEX deliveries_event_idx ON deliveries (event_seq)",
    """
    CREATE TABLE delivery_attempts (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        delivery_id bigint NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
        attempt integer NOT NULL,
        status_code integer,
        error text,
        duration_ms double precision NOT NULL,
        created_at timestamptz NOT NULL,
        next_attempt_at timestamptz
    )
    """,
    "CREATE INDEX delivery_attempts_delivery_idx ON delivery_attempts (delivery_id, attempt)",
]


def up(migrator, db):
    for statement in STATEMENTS:
        db.execute_sql(statement)


def down(migrator, db):
    for table in ("delivery_attempts", "deliveries", "webhook_endpoints", "events"):
        db.execute_sql(f"DROP TABLE {table}")
