"""area health conditions: an admission condition switched on for every place of an area

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import capacity.models

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "area_health_conditions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("area_nis", sa.String(length=5), nullable=False),
        sa.Column("condition", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("created_at", capacity.models.UTCDateTime(), nullable=False),
        sa.Column("updated_at", capacity.models.UTCDateTime(), nullable=False),
        sa.Column("created_by_operator_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_area_health_conditions")),
        sa.UniqueConstraint("area_nis", "condition", name="uq_area_health_conditions_area"),
    )


def downgrade() -> None:
    op.drop_table("area_health_conditions")
