"""feeds: the mapped identifiers the last document did not mention (a warning on the feed)

Revision ID: 0020
Revises: 0019
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("feeds") as batch:
        batch.add_column(sa.Column("missing_feed_ids", sa.JSON()))


def downgrade() -> None:
    with op.batch_alter_table("feeds") as batch:
        batch.drop_column("missing_feed_ids")
