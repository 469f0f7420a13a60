"""staff links: signed one-time links for night workers (one facility, expiring, revocable)

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import capacity.models

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "staff_links",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "facility_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("created_by_operator_id", sa.Integer(), nullable=True),
        sa.Column("created_by_token_id", sa.Integer(), nullable=True),
        sa.Column("label", sa.String(length=120), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", capacity.models.UTCDateTime(), nullable=False),
        sa.Column("expires_at", capacity.models.UTCDateTime(), nullable=False),
        sa.Column("used_at", capacity.models.UTCDateTime(), nullable=True),
        sa.Column("revoked_at", capacity.models.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["facility_id"],
            ["facilities.id"],
            name=op.f("fk_staff_links_facility_id_facilities"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_links")),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_staff_links_secret_hash")),
    )
    with op.batch_alter_table("staff_links", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_staff_links_facility_id"), ["facility_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("staff_links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_staff_links_facility_id"))
    op.drop_table("staff_links")
