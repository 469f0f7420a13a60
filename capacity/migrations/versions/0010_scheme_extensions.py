"""scheme extensions: a facility's first planned end and how many times it was pushed back

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import capacity.models

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("facilities") as batch:
        batch.add_column(sa.Column("first_planned_end", capacity.models.UTCDateTime()))
        batch.add_column(sa.Column("extensions", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("facilities") as batch:
        batch.drop_column("extensions")
        batch.drop_column("first_planned_end")
