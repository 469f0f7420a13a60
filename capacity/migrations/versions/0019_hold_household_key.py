"""holds: one running hold per household and place, whatever key each try carried

A household (an episode token, a need and a composition) that already holds a place got its
hold back only if the read before the grant saw it: a requester's system retrying with a new
Idempotency-Key while its first request was still on its way held a second unit. The new
``household_key`` (a hash of the three, set only when an episode token is given) and a partial
unique index over running holds make the second grant fail by construction.

Holds made before this revision have no key (nothing is backfilled, so two such running holds
of one household cannot stop the upgrade); they end within hours.

Revision ID: 0019
Revises: 0018
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_WHERE = "state = 'held' AND household_key IS NOT NULL"


def upgrade() -> None:
    with op.batch_alter_table("holds") as batch:
        batch.add_column(sa.Column("household_key", sa.String(64)))
    op.create_index(
        "uq_holds_household_held",
        "holds",
        ["pool_id", "household_key"],
        unique=True,
        postgresql_where=sa.text(_WHERE),
        sqlite_where=sa.text(_WHERE),
    )


def downgrade() -> None:
    op.drop_index("uq_holds_household_held", table_name="holds")
    with op.batch_alter_table("holds") as batch:
        batch.drop_column("household_key")
