"""audit_log: append-only in the database too (R28)

The application never edits or deletes an audit entry; these triggers make the database refuse
it too, whatever the client: an UPDATE may only clear ``detail`` (the retention purge), and a
DELETE is refused. (TRUNCATE and DROP stay with the database's owner: run the service as a role
that does not own the tables to take those away as well.)

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KEPT = (
    "id",
    "at",
    "actor_operator_id",
    "actor_token_id",
    "actor_role",
    "action",
    "object_type",
    "object_id",
    "facility_id",
)
MESSAGE = "audit_log is append-only: entries are never changed or deleted"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        old = ", ".join(f"OLD.{c}" for c in _KEPT)
        new = ", ".join(f"NEW.{c}" for c in _KEPT)
        op.execute(
            f"""
            CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF TG_OP = 'UPDATE' AND NEW.detail IS NULL
                   AND ROW({new}) IS NOT DISTINCT FROM ROW({old}) THEN
                    RETURN NEW;  -- the retention purge clears the detail, nothing else
                END IF;
                RAISE EXCEPTION '{MESSAGE}' USING ERRCODE = 'insufficient_privilege';
            END $$
            """
        )
        op.execute(
            "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
            "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()"
        )
    else:
        same = " AND ".join(f"NEW.{c} IS OLD.{c}" for c in _KEPT)
        op.execute(
            "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log "
            f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END"
        )
        op.execute(
            "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log "
            f"WHEN NOT (NEW.detail IS NULL AND {same}) "
            f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log")
        op.execute("DROP FUNCTION IF EXISTS audit_log_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_delete")
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
