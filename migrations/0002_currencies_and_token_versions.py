"""Currencies as data, minor units computed under the row lock, token versions, one email form.

- `currencies`: the ISO 4217 list (kept in step with the `iso4217` package by every
  `migrate`, see app/db/migrations.py), referenced by every invoice.
- `to_minor_units(amount, exponent)`: an exact decimal to minor units of a currency with
  that exponent, or NULL when it has too many decimals or is out of range. A single
  expression, so PostgreSQL inlines it (a function that read the table itself would cost
  more than the rest of the ledger statement). The ledger statement joins the currency of
  the invoice row it updates, so no copy of a currency held elsewhere (a cache, an earlier
  read) can scale an amount.
- `users.token_version`: a token carries the version it was issued at; deactivating,
  reactivating or changing the password moves it on, so every earlier token stops working.
- Emails are stored in the one normalised form the app looks them up by (stripped,
  lower-cased by Python), with a unique index on the column itself.
"""

STATEMENTS = [
    """
    CREATE TABLE currencies (
        code char(3) PRIMARY KEY,
        exponent smallint NOT NULL CHECK (exponent BETWEEN 0 AND 4)
    )
    """,
    """
    CREATE FUNCTION to_minor_units(amount numeric, exponent integer) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
        SELECT CASE WHEN amount > 0
                     AND amount * 10::numeric ^ exponent = trunc(amount * 10::numeric ^ exponent)
                     AND amount * 10::numeric ^ exponent < 1000000000000000
                    THEN (amount * 10::numeric ^ exponent)::bigint END
    $$
    """,
    "ALTER TABLE users ADD COLUMN token_version integer NOT NULL DEFAULT 0",
]


def up(migrator, db):
    from app.db.migrations import sync_currencies

    for statement in STATEMENTS:
        db.execute_sql(statement)
    sync_currencies(db)
    db.execute_sql("ALTER TABLE invoice ADD CONSTRAINT invoice_currency_fkey "
                   "FOREIGN KEY (currency) REFERENCES currencies (code)")
    for user_id, email in db.execute_sql("SELECT id, email FROM users").fetchall():
        if email.strip().lower() != email:  # the normal form of app/schemas.py, today
            db.execute_sql("UPDATE users SET email = %s WHERE id = %s",
                           (email.strip().lower(), user_id))
    db.execute_sql("DROP INDEX users_email_key")
    db.execute_sql("CREATE UNIQUE INDEX users_email_key ON users (email)")


def down(migrator, db):
    db.execute_sql("DROP INDEX users_email_key")
    db.execute_sql("CREATE UNIQUE INDEX users_email_key ON users (lower(email))")
    db.execute_sql("ALTER TABLE users DROP COLUMN token_version")
    db.execute_sql("ALTER TABLE invoice DROP CONSTRAINT invoice_currency_fkey")
    db.execute_sql("DROP FUNCTION to_minor_units(numeric, integer)")
    db.execute_sql("DROP TABLE currencies")
