"""staff_links: the one-time links of a token revoked before revoking took its links along

Revoking a token now also revokes the night-worker links it issued (registry.revoke_token). A
token revoked with an earlier version kept its links (up to a week long), and it cannot be
revoked again: they are revoked here, as of the token's revocation. Links that had ended
before it (expired or revoked) are left as they are. (No audit entry: the token's own
revocation is in the log, and the links' state says revoked.)

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        UPDATE staff_links
        SET revoked_at = (
            SELECT t.revoked_at FROM tokens t WHERE t.id = staff_links.created_by_token_id
        )
        WHERE revoked_at IS NULL
          AND EXISTS (
            SELECT 1 FROM tokens t
            WHERE t.id = staff_links.created_by_token_id
              AND t.revoked_at IS NOT NULL
              AND t.revoked_at < staff_links.expires_at
          )
        """
    )


def downgrade() -> None:
    pass  # a revoked link stays revoked
