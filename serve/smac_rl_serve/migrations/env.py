"""Alembic environment: migrate the connection the service hands over, or ``sqlalchemy.url``.

On PostgreSQL a transaction-scoped advisory lock serialises replicas that start together, so
only the first one creates the tables and the others find the schema at head.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine, text

MIGRATION_LOCK_ID = 727_101
"""Advisory lock key taken on PostgreSQL while migrating (any constant the service alone uses)."""


def _migrate(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_ID})
    context.configure(connection=connection, target_metadata=None)
    with context.begin_transaction():
        context.run_migrations()


def run() -> None:
    """Migrate online (the service always passes a connection in ``config.attributes``)."""
    given = context.config.attributes.get("connection")
    if given is not None:
        _migrate(given)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("alembic: pass a connection in config.attributes or set sqlalchemy.url")
    with create_engine(url).begin() as connection:
        _migrate(connection)


run()
