"""feeds: whether the last document applied carried its own times (a 304 then brings nothing new)

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("feeds") as batch:
        batch.add_column(sa.Column("document_timed", sa.Boolean()))
    # Whether a feed's current document is timed is not known yet: forget the validators so
    # that the next poll fetches it whole (a 200) instead of a 304 that could confirm nothing.
    op.execute("UPDATE feeds SET etag = NULL, last_modified = NULL")


def downgrade() -> None:
    with op.batch_alter_table("feeds") as batch:
        batch.drop_column("document_timed")
