"""The database layer: connection pool (connection.py), unit of work (transaction.py),
failure classification (failures.py), location (location.py), migrations (migrations.py)
and the schema as peewee models (models.py)."""
