"""taskforce: saturation snapshots (time series, downsampled)

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import capacity.models

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "saturation_runs",
        sa.Column("at", capacity.models.UTCDateTime(), nullable=False),
        sa.Column("k", sa.Integer(), nullable=False),
        sa.Column("cells", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("at", name=op.f("pk_saturation_runs")),
    )
    figures = [
        sa.Column(name, sa.Integer(), nullable=True)
        for name in (
            "facilities",
            "capacity",
            "occupied",
            "held",
            "free",
            "fresh",
            "stale",
            "closed",
            "blocked",
            "surge_24h",
            "surge_72h",
        )
    ]
    op.create_table(
        "saturation_snapshots",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("at", capacity.models.UTCDateTime(), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("nis", sa.String(length=8), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("segment", sa.String(length=32), nullable=False),
        sa.Column("suppressed", sa.Boolean(), nullable=False),
        *figures,
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saturation_snapshots")),
    )
    op.create_index(
        "ix_saturation_snapshots_series",
        "saturation_snapshots",
        ["level", "kind", "segment", "at"],
        unique=False,
    )
    op.create_index("ix_saturation_snapshots_at", "saturation_snapshots", ["at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_saturation_snapshots_at", table_name="saturation_snapshots")
    op.drop_index("ix_saturation_snapshots_series", table_name="saturation_snapshots")
    op.drop_table("saturation_snapshots")
    op.drop_table("saturation_runs")
