"""Customer credit: money that arrived but was not owed, kept per user and currency.

`credit_entries` is the credit ledger (immutable, like invoice_transactions): each grant,
overpayment, application to an invoice (negative) and refund returned to credit. The
balance is `credit_balances.balance`, equal to the sum of the user's entries in that
currency (`python -m app reconcile` checks it), never below zero: a spend takes the
balance row's lock and subtracts only if enough is there.

A payment made from credit has `source = 'credit'`. The invoice counts what it was paid
from credit and what of that refunds have returned to credit, so a refund returns to
credit at most what came from it; `last_credit_return` is what the latest movement
returned (set by the ledger statement from the row version it locked, and read back in
the same statement).
"""

STATEMENTS = [
    "ALTER TABLE invoice_transactions DROP CONSTRAINT invoice_transaction_source_check",
    """ALTER TABLE invoice_transactions ADD CONSTRAINT invoice_transactions_source_check
       CHECK (source IN ('api', 'webhook', 'credit'))""",
    """ALTER TABLE invoices
         ADD COLUMN amount_paid_from_credit bigint NOT NULL DEFAULT 0,
         ADD COLUMN amount_returned_to_credit bigint NOT NULL DEFAULT 0,
         ADD COLUMN last_credit_return bigint NOT NULL DEFAULT 0,
         ADD CONSTRAINT invoices_credit_in_range CHECK (
             0 <= amount_returned_to_credit
             AND amount_returned_to_credit <= amount_paid_from_credit
             AND amount_paid_from_credit <= amount_recovered)""",
    """
    CREATE TABLE credit_balances (
        user_id uuid NOT NULL REFERENCES users (id),
        currency char(3) NOT NULL REFERENCES currencies (code),
        balance bigint NOT NULL CHECK (balance >= 0 AND balance < 1000000000000000),
        updated_at timestamptz NOT NULL,
        PRIMARY KEY (user_id, currency)
    )
    """,
    """
    CREATE TABLE credit_entries (
        id uuid PRIMARY KEY,
        user_id uuid NOT NULL REFERENCES users (id),
        currency char(3) NOT NULL REFERENCES currencies (code),
        amount bigint NOT NULL CHECK (amount <> 0 AND abs(amount) < 1000000000000000),
        source text NOT NULL CHECK (source IN ('grant', 'overpayment', 'applied', 'refund')),
        invoice_id uuid REFERENCES invoices (id) ON DELETE RESTRICT,
        transaction_id uuid REFERENCES invoice_transactions (id) ON DELETE RESTRICT,
        reason text,
        created_at timestamptz NOT NULL,
        CONSTRAINT credit_entry_sign CHECK ((amount < 0) = (source = 'applied'))
    )
    """,
    "CREATE INDEX credit_entries_user_idx ON credit_entries (user_id, created_at DESC, id DESC)",
    "CREATE INDEX credit_entries_invoice_idx ON credit_entries (invoice_id)",
    """
    CREATE FUNCTION credit_entry_immutable() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'credit entries are immutable' USING ERRCODE = 'restrict_violation';
    END
    $$
    """,
    """
    CREATE TRIGGER credit_entry_no_change
    BEFORE UPDATE OR DELETE ON credit_entries
    FOR EACH ROW EXECUTE FUNCTION credit_entry_immutable()
    """,
]


def up(migrator, db):
    for statement in STATEMENTS:
        db.execute_sql(statement)
