"""key_marks: the fingerprint of the episode key every process must share

An HMAC does not say which key made it: an API process or worker started with another
``ABRI_EPISODE_KEY`` (a typo on one host) answered ready and silently counted one household
as several, and let it hold the same place twice. The first process to start now records its
key's fingerprint (``capacity.episode.FINGERPRINT``, never the key); ``/health/ready`` and
``abri check`` compare theirs with it.

Revision ID: 0025
Revises: 0024
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import capacity.models

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "key_marks",
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("recorded_at", capacity.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("purpose", name=op.f("pk_key_marks")),
    )


def downgrade() -> None:
    op.drop_table("key_marks")
