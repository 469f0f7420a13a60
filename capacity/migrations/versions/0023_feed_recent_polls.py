"""feeds: the outcomes of their recent polls (the alert rule looks at the last 15 minutes)

Revision ID: 0023
Revises: 0022
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("feeds") as batch:
        batch.add_column(sa.Column("recent_polls", sa.JSON()))


def downgrade() -> None:
    with op.batch_alter_table("feeds") as batch:
        batch.drop_column("recent_polls")
