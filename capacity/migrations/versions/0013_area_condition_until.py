"""area health conditions end by themselves: an optional until

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import capacity.models

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("area_health_conditions") as batch:
        batch.add_column(sa.Column("until", capacity.models.UTCDateTime()))


def downgrade() -> None:
    with op.batch_alter_table("area_health_conditions") as batch:
        batch.drop_column("until")
