"""Users, tokens, login throttling, invoices, the ledger, idempotency keys, webhook events.

Money is integer minor units in BIGINT; the CHECK constraints are the last line of
defence behind the service's own rules. An invoice's `status` is a generated column: the
one place that turns its sums into a status (docs/API.md, "Invoices").
"""

STATEMENTS = [
    """
    CREATE TABLE users (
        id uuid PRIMARY KEY,
        username text NOT NULL,
        email text NOT NULL,
        password_hash text NOT NULL,
        role text NOT NULL DEFAULT 'user' CHECK (role IN ('admin', 'user')),
        is_active boolean NOT NULL DEFAULT true,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
    )
    """,
    "CREATE UNIQUE INDEX users_username_key ON users (lower(username))",
    "CREATE UNIQUE INDEX users_email_key ON users (lower(email))",
    "CREATE INDEX users_created_idx ON users (created_at DESC, id DESC)",
    """
    CREATE TABLE revoked_token (
        jti text PRIMARY KEY,
        expires_at timestamptz NOT NULL
    )
    """,
    """
    CREATE TABLE login_throttle (
        key text PRIMARY KEY,
        failures integer NOT NULL,
        window_started_at timestamptz NOT NULL,
        locked_until timestamptz
    )
    """,
    """
    CREATE TABLE invoice (
        id uuid PRIMARY KEY,
        payer_id uuid NOT NULL REFERENCES users (id),
        receiver_id uuid NOT NULL REFERENCES users (id),
        amount bigint NOT NULL,
        currency char(3) NOT NULL,
        description text NOT NULL DEFAULT '',
        due_date date,
        amount_recovered bigint NOT NULL DEFAULT 0,
        amount_refunded bigint NOT NULL DEFAULT 0,
        last_attempt_failed boolean NOT NULL DEFAULT false,
        status text GENERATED ALWAYS AS (
            CASE
                WHEN amount_refunded > 0 THEN
                    CASE WHEN amount_refunded = amount_recovered
                         THEN 'refunded' ELSE 'partially_refunded' END
                WHEN amount_recovered = amount THEN 'completed'
                WHEN amount_recovered > 0 THEN 'partially_paid'
                WHEN last_attempt_failed THEN 'payment_failed'
                ELSE 'pending'
            END
        ) STORED,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT invoice_amount_positive CHECK (amount > 0 AND amount < 1000000000000000),
        CONSTRAINT invoice_sums_in_range CHECK (
            0 <= amount_refunded AND amount_refunded <= amount_recovered
            AND amount_recovered <= amount),
        CONSTRAINT invoice_parties_differ CHECK (payer_id <> receiver_id)
    )
    """,
    "CREATE INDEX invoice_created_idx ON invoice (created_at DESC, id DESC)",
    "CREATE INDEX invoice_status_idx ON invoice (status, created_at DESC, id DESC)",
    "CREATE INDEX invoice_payer_idx ON invoice (payer_id, created_at DESC, id DESC)",
    "CREATE INDEX invoice_receiver_idx ON invoice (receiver_id, created_at DESC, id DESC)",
    """
    CREATE TABLE invoice_transaction (
        id uuid PRIMARY KEY,
        invoice_id uuid NOT NULL REFERENCES invoice (id) ON DELETE RESTRICT,
        kind text NOT NULL CHECK (kind IN ('payment', 'refund')),
        status text NOT NULL CHECK (status IN ('succeeded', 'failed')),
        amount bigint NOT NULL CHECK (amount >= 0 AND amount < 1000000000000000),
        currency char(3) NOT NULL,
        payment_mode text NOT NULL,
        payment_date timestamptz NOT NULL,
        reference text,
        source text NOT NULL CHECK (source IN ('api', 'webhook')),
        event_id text UNIQUE,
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT transaction_moves_money CHECK (status = 'failed' OR amount > 0),
        CONSTRAINT transaction_refunds_succeed CHECK (kind = 'payment' OR status = 'succeeded')
    )
    """,
    "CREATE INDEX invoice_transaction_invoice_idx"
    " ON invoice_transaction (invoice_id, created_at, id)",
    # Transactions are immutable: the database itself refuses to change or remove one.
    """
    CREATE FUNCTION invoice_transaction_immutable() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'invoice transactions are immutable' USING ERRCODE = 'restrict_violation';
    END
    $$
    """,
    """
    CREATE TRIGGER invoice_transaction_no_change
    BEFORE UPDATE OR DELETE ON invoice_transaction
    FOR EACH ROW EXECUTE FUNCTION invoice_transaction_immutable()
    """,
    """
    CREATE TABLE idempotency_key (
        caller text NOT NULL,
        key text NOT NULL,
        fingerprint text NOT NULL,
        response_status integer,
        response_body text,
        created_at timestamptz NOT NULL DEFAULT now(),
        locked_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (caller, key)
    )
    """,
    "CREATE INDEX idempotency_key_created_idx ON idempotency_key (created_at)",
    """
    CREATE TABLE webhook_event (
        id text PRIMARY KEY,
        event_type text NOT NULL,
        fingerprint text NOT NULL,
        response_status integer,
        response_body text,
        created_at timestamptz NOT NULL DEFAULT now()
    )
    """,
]


def up(migrator, db):
    for statement in STATEMENTS:
        db.execute_sql(statement)


def down(migrator, db):
    for table in ("webhook_event", "idempotency_key", "invoice_transaction", "invoice",
                  "login_throttle", "revoked_token", "users"):
        db.execute_sql(f"DROP TABLE IF EXISTS {table} CASCADE")
    db.execute_sql("DROP FUNCTION IF EXISTS invoice_transaction_immutable()")
