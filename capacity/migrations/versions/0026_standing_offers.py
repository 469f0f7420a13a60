"""standing_requests: how many places were offered and ended without the household (``offers``)

A standing request whose offered hold is declined by the place (full after all, location
compromised) or marked no-show goes back in line, in its original position, while its own
deadline has not passed. Each offer's hold is made with an Idempotency-Key derived from the
request and this count (``standing_service.hold_key``), so a request back in line gets a new
hold rather than the replay of the ended one. Existing rows start at 0 (the key as before).

Revision ID: 0026
Revises: 0025
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0026"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("standing_requests") as batch:
        batch.add_column(sa.Column("offers", sa.Integer(), nullable=False, server_default="0"))
    # Every end of a hold now looks for the standing request it was offered to (back in line,
    # or the offer settled): by index, not by reading every request ever kept.
    op.create_index(
        "ix_standing_requests_offered_hold",
        "standing_requests",
        ["hold_id"],
        postgresql_where=sa.text("state = 'offered'"),
        sqlite_where=sa.text("state = 'offered'"),
    )


def downgrade() -> None:
    op.drop_index("ix_standing_requests_offered_hold", table_name="standing_requests")
    with op.batch_alter_table("standing_requests") as batch:
        batch.drop_column("offers")
