"""standing requests become offers backed by a real hold; leases for single-flight jobs

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import capacity.models

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("standing_requests") as batch:
        batch.add_column(sa.Column("hold_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("idempotency_key", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("request_hash", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("closed_at", capacity.models.UTCDateTime(), nullable=True))
    # NULL keys never collide (both databases), so requests without a key stay independent.
    op.create_index(
        "uq_standing_requests_idem",
        "standing_requests",
        ["requester_operator_id", "idempotency_key"],
        unique=True,
    )
    op.create_table(
        "leases",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=64), nullable=False),
        sa.Column("until", capacity.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_leases")),
    )


def downgrade() -> None:
    op.drop_table("leases")
    op.drop_index("uq_standing_requests_idem", table_name="standing_requests")
    with op.batch_alter_table("standing_requests") as batch:
        batch.drop_column("closed_at")
        batch.drop_column("request_hash")
        batch.drop_column("idempotency_key")
        batch.drop_column("hold_id")
