"""holds: why a hold ended, as a stable code (``close_code``, shown as ``closeCode``)

The requester's reads carried only ``state`` and the free-text ``close_reason``: a dispatch
system that missed a webhook told "location compromised: do not go there" from "full
tonight" only by matching a sentence. New endings store the code; this backfills what the
stored rows say for certain:

* ``expired``, ``no_show``, ``departed``: the state itself;
* ``declined``: ``location_compromised`` when ``close_reason`` is Abri's own text for a
  compromised location (``COMPROMISED_REASON``, unchanged since it was introduced), else
  ``declined`` when a staff reason is still there;
* ``released``: ``released_by_admin`` when the audit log's ``hold.released`` entry for the
  hold is an admin's of another operator, ``released`` when it is the requester operator's
  (as ``_move`` decides today).

Not derivable, left NULL (shown as ``closeCode: null``): a declined hold whose
``close_reason`` the retention purge already cleared (a compromised location or not: no
record left says which), and a released hold with no ``hold.released`` audit entry. Held and
arrived holds stay NULL (open); one past its deadline is shown ``expired`` until the sweeper
writes it.

Revision ID: 0024
Revises: 0023
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: ``placement.holds_service.COMPROMISED_REASON`` as written since it exists (a copy: a
#: migration must not change when the code does).
COMPROMISED_REASON = (
    "The place can no longer take anyone, for safety reasons: do not go there. Search again "
    "and hold another place."
)
_RELEASED_BY = (
    "SELECT 1 FROM audit_log a WHERE a.action = 'hold.released' AND a.object_type = 'hold'"
    " AND a.object_id = holds.ref AND {who}"
)


def upgrade() -> None:
    with op.batch_alter_table("holds") as batch:
        batch.add_column(sa.Column("close_code", sa.String(32)))
    bind = op.get_bind()
    for state in ("expired", "no_show", "departed"):
        bind.execute(sa.text("UPDATE holds SET close_code = :s WHERE state = :s"), {"s": state})
    bind.execute(
        sa.text(
            "UPDATE holds SET close_code = 'location_compromised'"
            " WHERE state = 'declined' AND close_reason = :text"
        ),
        {"text": COMPROMISED_REASON},
    )
    bind.execute(
        sa.text(
            "UPDATE holds SET close_code = 'declined' WHERE state = 'declined'"
            " AND close_code IS NULL AND close_reason IS NOT NULL"
        )
    )
    by_admin = _RELEASED_BY.format(
        who="a.actor_role = 'admin' AND (a.actor_operator_id IS NULL"
        " OR a.actor_operator_id <> holds.requester_operator_id)"
    )
    by_requester = _RELEASED_BY.format(who="a.actor_operator_id = holds.requester_operator_id")
    bind.execute(
        sa.text(
            "UPDATE holds SET close_code = 'released_by_admin'"
            f" WHERE state = 'released' AND EXISTS ({by_admin})"
        )
    )
    bind.execute(
        sa.text(
            "UPDATE holds SET close_code = 'released' WHERE state = 'released'"
            f" AND close_code IS NULL AND EXISTS ({by_requester})"
        )
    )


def downgrade() -> None:
    with op.batch_alter_table("holds") as batch:
        batch.drop_column("close_code")
