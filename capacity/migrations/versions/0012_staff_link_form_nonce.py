"""staff link form nonce: the same form sent twice issues one link, not two

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("staff_links") as batch:
        batch.add_column(sa.Column("form_nonce", sa.String(length=32)))
        batch.create_unique_constraint("uq_staff_links_form_nonce", ["form_nonce"])


def downgrade() -> None:
    with op.batch_alter_table("staff_links") as batch:
        batch.drop_constraint("uq_staff_links_form_nonce", type_="unique")
        batch.drop_column("form_nonce")
