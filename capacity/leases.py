"""Named leases: at most one holder at a time, across processes, on SQLite and PostgreSQL.

A lease is a row ``(name, holder, until)``. Taking it is one conditional UPDATE (free when
expired or already ours) or, the first time, an INSERT that the primary key makes race-free.
A holder that dies leaves a lease that simply runs out. Used to make background rounds
single-flight (e.g. offering freed places to standing requests in first-come order).
"""

from __future__ import annotations

import os
import secrets
import socket
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, or_, update
from sqlalchemy.exc import IntegrityError

from capacity.db import Database
from capacity.models import Lease

#: This process's identity as a lease holder.
HOLDER = f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"


async def acquire(
    db: Database, name: str, *, now: datetime, seconds: int = 60, holder: str = HOLDER
) -> bool:
    """Take (or renew) the lease; False if another holder has it and it has not run out."""
    until = now + timedelta(seconds=seconds)
    async with db.write() as s:
        res = await s.execute(
            update(Lease)
            .where(Lease.name == name, or_(Lease.until <= now, Lease.holder == holder))
            .values(holder=holder, until=until)
            .execution_options(synchronize_session=False)
        )
        if res.rowcount == 1:
            return True
    try:
        async with db.write() as s:
            await s.execute(insert(Lease).values(name=name, holder=holder, until=until))
        return True
    except IntegrityError:
        return False


async def release(db: Database, name: str, *, holder: str = HOLDER) -> None:
    async with db.write() as s:
        await s.execute(delete(Lease).where(Lease.name == name, Lease.holder == holder))
