"""feeds: until when the partner's server asked Abri not to come back (``Retry-After``)

Revision ID: 0022
Revises: 0021
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import capacity.models

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("feeds") as batch:
        batch.add_column(sa.Column("retry_after_until", capacity.models.UTCDateTime()))


def downgrade() -> None:
    with op.batch_alter_table("feeds") as batch:
        batch.drop_column("retry_after_until")
