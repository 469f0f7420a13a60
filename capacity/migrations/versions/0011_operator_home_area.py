"""operator home area: where a local requester (a police zone) works

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("operators") as batch:
        batch.add_column(sa.Column("home_municipality_nis", sa.String(length=5)))


def downgrade() -> None:
    with op.batch_alter_table("operators") as batch:
        batch.drop_column("home_municipality_nis")
