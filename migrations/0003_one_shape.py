"""Plural table names throughout, and one table for replayed answers.

`replays` holds the answer to every Idempotency-Key and every provider event id
(app/http/replay.py); it replaces `idempotency_key` and `webhook_event`. Answers already
stored move over. An event's old fingerprint cannot be recomputed (it was unkeyed), so it
is marked `legacy:` and replayed for any body with that id; an idempotency key's
fingerprint is computed the same way as before and stays comparable.
"""

RENAMES = [("invoice", "invoices"), ("invoice_transaction", "invoice_transactions"),
           ("revoked_token", "revoked_tokens"), ("login_throttle", "login_throttles")]

STATEMENTS = [
    """
    CREATE TABLE replays (
        scope text NOT NULL,
        key text NOT NULL,
        fingerprint text NOT NULL,
        response_status integer,
        response_body text,
        created_at timestamptz NOT NULL,
        expires_at timestamptz,
        PRIMARY KEY (scope, key)
    )
    """,
    "CREATE INDEX replays_expires_idx ON replays (expires_at) WHERE expires_at IS NOT NULL",
    """
    INSERT INTO replays (scope, key, fingerprint, response_status, response_body, created_at)
    SELECT 'webhook', id, 'legacy:' || fingerprint, response_status, response_body, created_at
    FROM webhook_event WHERE response_status IS NOT NULL
    """,
    """
    INSERT INTO replays (scope, key, fingerprint, response_status, response_body, created_at,
                         expires_at)
    SELECT 'idempotency:' || caller, key, fingerprint, response_status, response_body,
           created_at, created_at + interval '24 hours'
    FROM idempotency_key WHERE response_status IS NOT NULL
    """,
    "DROP TABLE webhook_event",
    "DROP TABLE idempotency_key",
]


def up(migrator, db):
    for old, new in RENAMES:
        db.execute_sql(f"ALTER TABLE {old} RENAME TO {new}")
    for statement in STATEMENTS:
        db.execute_sql(statement)


def down(migrator, db):
    raise NotImplementedError("0003 moves stored answers into one table; restore a backup")
