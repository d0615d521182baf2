"""The registry: sites, sessions, capacity blocks, idempotency records, decision log.

Revision ID: 0001
Revises: (none)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

_ID = 128
_KEY = 200


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create the registry's tables."""
    op.create_table(
        "sites",
        sa.Column("site_id", sa.String(_ID), primary_key=True),
        sa.Column("tenant_id", sa.String(_ID), nullable=False),
        sa.Column("config_json", sa.Text(), nullable=False),
        sa.Column("site_version", sa.Integer(), nullable=False),
        sa.Column("created_at_utc", _utc(), nullable=False),
        sa.Column("updated_at_utc", _utc(), nullable=False),
    )
    op.create_index("ix_sites_tenant_id", "sites", ["tenant_id"])
    op.create_table(
        "sessions",
        sa.Column("session_id", sa.String(_ID), primary_key=True),
        sa.Column("site_id", sa.String(_ID), sa.ForeignKey("sites.site_id"), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("spec_json", sa.Text(), nullable=False),
        sa.Column("soc_frac", sa.Float(), nullable=False),
        sa.Column("energy_delivered_kwh", sa.Float(), nullable=True),
        sa.Column("measured_at_utc", _utc(), nullable=False),
        sa.Column("started_at_utc", _utc(), nullable=False),
        sa.Column("ended_at_utc", _utc(), nullable=True),
    )
    op.create_index("ix_sessions_site_active", "sessions", ["site_id", "is_active"])
    op.create_table(
        "capacity_blocks",
        sa.Column("block_id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("site_id", sa.String(_ID), sa.ForeignKey("sites.site_id"), nullable=False),
        sa.Column("signal_version", sa.Integer(), nullable=False),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("start_utc", _utc(), nullable=False),
        sa.Column("end_utc", _utc(), nullable=False),
        sa.Column("limit_kw", sa.Float(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
    )
    op.create_index("ix_capacity_blocks_site_id", "capacity_blocks", ["site_id"])
    op.create_table(
        "idempotency_records",
        sa.Column("site_id", sa.String(_ID), sa.ForeignKey("sites.site_id"), primary_key=True),
        sa.Column("idempotency_key", sa.String(_KEY), primary_key=True),
        sa.Column("request_sha256", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("answer_json", sa.Text(), nullable=False),
        sa.Column("created_at_utc", _utc(), nullable=False),
    )
    op.create_table(
        "decisions",
        sa.Column("decision_id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("site_id", sa.String(_ID), sa.ForeignKey("sites.site_id"), nullable=False),
        sa.Column("created_at_utc", _utc(), nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("session_id", sa.String(_ID), nullable=True),
        sa.Column("idempotency_key", sa.String(_KEY), nullable=True),
        sa.Column("site_version", sa.Integer(), nullable=False),
        sa.Column("request_json", sa.Text(), nullable=False),
        sa.Column("scenario_json", sa.Text(), nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("rate_unit", sa.String(4), nullable=False),
        sa.Column("model_json", sa.Text(), nullable=False),
        sa.Column("answer_json", sa.Text(), nullable=False),
    )
    op.create_index("ix_decisions_site_decision", "decisions", ["site_id", "decision_id"])


def downgrade() -> None:
    """Drop the registry's tables."""
    for index, table in (
        ("ix_decisions_site_decision", "decisions"),
        ("ix_capacity_blocks_site_id", "capacity_blocks"),
        ("ix_sessions_site_active", "sessions"),
        ("ix_sites_tenant_id", "sites"),
    ):
        op.drop_index(index, table_name=table)
    for table in ("decisions", "idempotency_records", "capacity_blocks", "sessions", "sites"):
        op.drop_table(table)
