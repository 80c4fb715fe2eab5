"""Currencies as data, minor units computed under the row lock, token versions, one email form.

- `currency`: the ISO 4217 list (kept in step with the `iso4217` package by every
  `migrate`, see app/db.py), referenced by every invoice.
- `to_minor_units(amount, currency)`: an exact decimal to minor units in that currency, or
  NULL when it has too many decimals or is out of range. The ledger statement calls it with
  the currency of the invoice row it has locked, so no copy of a currency held elsewhere
  (a cache, an earlier read) can scale an amount.
- `users.token_version`: a token carries the version it was issued at; deactivating,
  reactivating or changing the password moves it on, so every earlier token stops working.
- Emails are stored in the one normalised form the app looks them up by (stripped,
  lower-cased by Python), with a unique index on the column itself.
"""

STATEMENTS = [
    """
    CREATE TABLE currency (
        code char(3) PRIMARY KEY,
        exponent smallint NOT NULL CHECK (exponent BETWEEN 0 AND 4)
    )
    """,
    """
    CREATE FUNCTION to_minor_units(amount numeric, currency_code text) RETURNS bigint
    LANGUAGE sql STABLE STRICT PARALLEL SAFE AS $$
        SELECT s.scaled::bigint
        FROM currency c, LATERAL (SELECT amount * 10::numeric ^ c.exponent AS scaled) s
        WHERE c.code = to_minor_units.currency_code
          AND s.scaled = trunc(s.scaled)
          AND s.scaled > 0 AND s.scaled < 1000000000000000
    $$
    """,
    "ALTER TABLE users ADD COLUMN token_version integer NOT NULL DEFAULT 0",
]


def up(migrator, db):
    from app.db import sync_currencies

    for statement in STATEMENTS:
        db.execute_sql(statement)
    sync_currencies(db)
    db.execute_sql("ALTER TABLE invoice ADD CONSTRAINT invoice_currency_fkey "
                   "FOREIGN KEY (currency) REFERENCES currency (code)")
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
    db.execute_sql("DROP FUNCTION to_minor_units(numeric, text)")
    db.execute_sql("DROP TABLE currency")
