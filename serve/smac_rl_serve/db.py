"""The registry's tables (SQLAlchemy 2.x), the engine, and the schema migrations run at start.

Portable SQL only: SQLite (a file, the default) or PostgreSQL. The schema is created by the
alembic migrations shipped in :mod:`smac_rl_serve.migrations`, upgraded to head when the app
starts; the models below describe the same tables (a test compares them with the migrated schema).

Locking: every change to a site runs in one transaction that first locks the site's row
(``SELECT ... FOR UPDATE`` on PostgreSQL). SQLite has no row locks: each transaction starts with
``BEGIN IMMEDIATE``, which takes the database's write lock at once, so writers queue (WAL journal,
30 s busy timeout) and a read-modify-write never interleaves with another.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    create_engine,
    event,
)
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
"""The alembic script folder shipped in the package."""

SQLITE_BUSY_TIMEOUT_S = 30.0
"""How long a SQLite writer waits for the write lock before giving up [s]."""

ID_LENGTH = 128
"""Longest site, session or tenant id [characters]."""

KEY_LENGTH = 200
"""Longest idempotency key [characters]."""


class UtcDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite stores it naive, in UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        """Store in UTC; naive on SQLite, which keeps no offset."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("UtcDateTime: a timezone-aware datetime")
        utc = value.astimezone(dt.UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        """Read back as an aware UTC datetime."""
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    """Declarative base of the registry's tables."""


class SiteRow(Base):
    """A configured site; its row is the lock every change to the site takes."""

    __tablename__ = "sites"

    site_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(ID_LENGTH), index=True)
    config_json: Mapped[str] = mapped_column(Text)
    site_version: Mapped[int] = mapped_column(Integer)
    created_at_utc: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    updated_at_utc: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class SessionRow(Base):
    """A charging session; ``session_id`` is unique across all sites and tenants."""

    __tablename__ = "sessions"
    __table_args__ = (Index("ix_sessions_site_active", "site_id", "is_active"),)

    session_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    site_id: Mapped[str] = mapped_column(String(ID_LENGTH), ForeignKey("sites.site_id"))
    is_active: Mapped[bool] = mapped_column()
    spec_json: Mapped[str] = mapped_column(Text)
    soc_frac: Mapped[float] = mapped_column(Float)
    energy_delivered_kwh: Mapped[float | None] = mapped_column(Float)
    measured_at_utc: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    started_at_utc: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    ended_at_utc: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)


class CapacityBlockRow(Base):
    """A capacity limit from an OSCP or OpenADR signal."""

    __tablename__ = "capacity_blocks"

    block_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    site_id: Mapped[str] = mapped_column(String(ID_LENGTH), ForeignKey("sites.site_id"), index=True)
    signal_version: Mapped[int] = mapped_column(Integer)
    direction: Mapped[str] = mapped_column(String(8))
    start_utc: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    end_utc: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    limit_kw: Mapped[float] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(16))


class IdempotencyRow(Base):
    """The stored answer of an event, by site and idempotency key."""

    __tablename__ = "idempotency_records"

    site_id: Mapped[str] = mapped_column(String(ID_LENGTH), ForeignKey("sites.site_id"), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(KEY_LENGTH), primary_key=True)
    request_sha256: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    answer_json: Mapped[str] = mapped_column(Text)
    created_at_utc: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class DecisionRow(Base):
    """One answer about a site: inputs, model, outputs, time (the audit and replay log)."""

    __tablename__ = "decisions"
    __table_args__ = (Index("ix_decisions_site_decision", "site_id", "decision_id"),)

    decision_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    site_id: Mapped[str] = mapped_column(String(ID_LENGTH), ForeignKey("sites.site_id"))
    created_at_utc: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    event: Mapped[str] = mapped_column(String(32))
    session_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    idempotency_key: Mapped[str | None] = mapped_column(String(KEY_LENGTH))
    site_version: Mapped[int] = mapped_column(Integer)
    request_json: Mapped[str] = mapped_column(Text)
    scenario_json: Mapped[str] = mapped_column(Text)
    format: Mapped[str] = mapped_column(String(16))
    rate_unit: Mapped[str] = mapped_column(String(4))
    model_json: Mapped[str] = mapped_column(Text)
    answer_json: Mapped[str] = mapped_column(Text)


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # The driver's own transaction handling off: SQLAlchemy's "begin" hook below emits BEGIN.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def create_registry_engine(database_url: str) -> Engine:
    """An engine for the registry: SQLite with write-lock transactions, or PostgreSQL.

    Args:
        database_url: ``sqlite:///path.db`` or ``postgresql+psycopg://...``.

    Returns:
        The engine.

    Raises:
        ValueError: For an in-memory SQLite database (each pooled connection would get its own).
    """
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    if not url.database or url.database == ":memory:":
        raise ValueError(f"database_url: got {database_url!r}; expected a SQLite file (sqlite:///path.db)")
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False})
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin)
    return engine


def upgrade_schema(engine: Engine) -> None:
    """Run the shipped alembic migrations up to head (a no-op on an up-to-date database).

    Raises:
        ValueError: When the database cannot be reached or opened (the URL shown without password).
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except OperationalError as exc:
        shown = engine.url.render_as_string(hide_password=True)
        raise ValueError(f"database_url: cannot open {shown!r} ({exc.orig})") from None
