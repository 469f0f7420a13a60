"""Key rotation for secrets encrypted at rest (``abri keys rotate``).

Put the new Fernet key first in ``ABRI_ADDRESS_KEY`` (old ones after it), restart, run this:
every ciphertext is re-encrypted with the newest key, in one transaction per table. Then the
old keys can be removed from ``ABRI_ADDRESS_KEY``. Idempotent.
"""

from __future__ import annotations

from datetime import datetime

from cryptography.fernet import InvalidToken
from sqlalchemy import Column, Table, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from capacity import audit
from capacity.audit import Actor
from capacity.crypto import AddressCipher, AddressKeyError
from capacity.db import Database
from capacity.models import Base

#: (table, key column, ciphertext column) of every secret kept under the address key.
TARGETS: list[tuple[str, str, str]] = [
    ("facility_addresses", "facility_id", "ciphertext"),
    ("webhook_endpoints", "operator_id", "secret_ciphertext"),
]


def _targets() -> list[tuple[Table, Column[object], Column[object]]]:
    out = []
    tables = Base.metadata.tables
    for name, key, col in TARGETS:
        if name in tables:
            t = tables[name]
            out.append((t, t.c[key], t.c[col]))
    # Feeds keep credentials under the same key when that table exists.
    if "feeds" in tables:
        t = tables["feeds"]
        for col in t.c:
            if col.name.endswith("_ciphertext"):
                out.append((t, t.c.id, col))
    return out


async def sealed_with_other_keys(
    s: AsyncSession, cipher: AddressCipher, *, newest_only: bool = False
) -> list[str]:
    """The stored secrets that no configured key opens, as ``"table key"``: a process started
    with a wrong ``ABRI_ADDRESS_KEY`` (another installation's, a regenerated one, the old key
    removed before ``abri keys rotate``) fails on every address read, webhook and feed
    credential, while it looks healthy. ``newest_only`` checks the last-written secret of each
    table (what readiness asks, every few seconds); otherwise every one (``abri check``)."""
    wrong: list[str] = []
    for table, key, col in _targets():
        q = select(key, col).where(col.is_not(None)).order_by(key.desc())
        if newest_only:
            q = q.limit(1)
        rows = (await s.execute(q)).all()
        wrong += [f"{table.name} {k}" for k, ciphertext in rows if not cipher.opens(ciphertext)]
    return wrong


async def rotate_all(db: Database, cipher: AddressCipher, *, actor: Actor, now: datetime) -> int:
    done = 0
    for table, key, col in _targets():
        async with db.write() as s:
            rows = (await s.execute(select(key, col).where(col.is_not(None)))).all()
            for k, ciphertext in rows:
                try:
                    fresh = cipher.rotate(ciphertext)
                except InvalidToken:  # this table is left as it was (its transaction rolls back)
                    raise AddressKeyError(
                        f"{table.name} {k}: no key in ABRI_ADDRESS_KEY decrypts it. Put the old "
                        "key back after the new one (newest first, comma-separated) and run "
                        "`abri keys rotate` again; only then remove the old key."
                    ) from None
                # Only if unchanged since read: a concurrent writer already used the newest key,
                # and must not be overwritten with the old value.
                res = await s.execute(
                    update(table).where(key == k, col == ciphertext).values({col.name: fresh})
                )
                done += res.rowcount
            await audit.record(
                s,
                actor=actor,
                at=now,
                action="keys.rotated",
                object_type=table.name,
                detail={"column": col.name, "rows": len(rows)},
            )
    return done
