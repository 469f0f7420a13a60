"""web sessions ended: a signed-out cookie is refused, not merely deleted from the browser

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import capacity.models

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "web_sessions_ended",
        sa.Column("sid", sa.String(length=32), nullable=False),
        sa.Column("until", capacity.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("sid", name=op.f("pk_web_sessions_ended")),
    )
    with op.batch_alter_table("web_sessions_ended", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_web_sessions_ended_until"), ["until"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("web_sessions_ended", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_web_sessions_ended_until"))
    op.drop_table("web_sessions_ended")
