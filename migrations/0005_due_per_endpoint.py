"""Due deliveries looked up per endpoint: the workers read each enabled endpoint's due
deliveries from this index, so a disabled endpoint's backlog is never walked."""

STATEMENTS = [
    """CREATE INDEX deliveries_endpoint_due_idx ON deliveries (endpoint_id, next_attempt_at)
       WHERE status = 'pending'""",
    "DROP INDEX deliveries_due_idx",
]


def up(migrator, db):
    for statement in STATEMENTS:
        db.execute_sql(statement)
