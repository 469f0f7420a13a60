"""facilities: whether the intake phone is answered round the clock (R21)

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing facilities keep what the importer and the forms asked for until now: a 24/7
    # intake number. Staff or an administrator says otherwise per facility.
    with op.batch_alter_table("facilities") as batch:
        batch.add_column(
            sa.Column("intake_phone_24h", sa.Boolean(), nullable=False, server_default=sa.true())
        )


def downgrade() -> None:
    with op.batch_alter_table("facilities") as batch:
        batch.drop_column("intake_phone_24h")
