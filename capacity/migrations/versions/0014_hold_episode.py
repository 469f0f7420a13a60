"""holds: an optional episode hash, so hold demand counts households, not holds (R33)

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("holds") as batch:
        batch.add_column(sa.Column("episode_hash", sa.String(64)))


def downgrade() -> None:
    with op.batch_alter_table("holds") as batch:
        batch.drop_column("episode_hash")
