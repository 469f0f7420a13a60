"""holds: partial indexes over active holds only; drop an index the unique key already covers

The indexes ``(state, deadline)`` and ``(pool_id, state, deadline)`` led PostgreSQL astray:
when its statistics say few holds are 'held' (an ANALYZE at a quiet moment), the planner
takes ``state = 'held'`` as the most selective condition, even for a look-up by primary key
or reference code, and a release or an arrival then reads the index entries of every active
hold. Partial indexes over the active holds cannot be mistaken for a key look-up: reading
one costs what its real size is. They are also smaller (closed holds, the vast majority,
are not in them) and cheaper to maintain (a hold leaves them when it closes).
``ix_holds_requester_operator_id`` duplicated the leading column of ``uq_holds_idem``.

Partial indexes alone were not enough: PostgreSQL still estimated "1 row" for the active
holds and preferred them to the primary key. On PostgreSQL the column ``state`` therefore
keeps no statistics (``SET STATISTICS 0``): the planner then assumes an equality matches
0.5 % of the rows, never fewer than a unique key's one, whatever the last ANALYZE saw.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_HELD = sa.text("state = 'held'")


def upgrade() -> None:
    with op.batch_alter_table("holds", schema=None) as batch_op:
        batch_op.drop_index("ix_holds_state_deadline")
        batch_op.drop_index("ix_holds_pool_state_deadline")
        batch_op.drop_index("ix_holds_requester_operator_id")
        batch_op.create_index(
            "ix_holds_held_deadline",
            ["deadline"],
            unique=False,
            postgresql_where=_HELD,
            sqlite_where=_HELD,
        )
        batch_op.create_index(
            "ix_holds_held_pool_deadline",
            ["pool_id", "deadline"],
            unique=False,
            postgresql_where=_HELD,
            sqlite_where=_HELD,
        )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE holds ALTER COLUMN state SET STATISTICS 0")
        op.execute("ANALYZE holds")  # forget what was gathered for it


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE holds ALTER COLUMN state SET STATISTICS -1")
    with op.batch_alter_table("holds", schema=None) as batch_op:
        batch_op.drop_index("ix_holds_held_pool_deadline")
        batch_op.drop_index("ix_holds_held_deadline")
        batch_op.create_index(
            "ix_holds_requester_operator_id", ["requester_operator_id"], unique=False
        )
        batch_op.create_index(
            "ix_holds_pool_state_deadline", ["pool_id", "state", "deadline"], unique=False
        )
        batch_op.create_index("ix_holds_state_deadline", ["state", "deadline"], unique=False)
