"""Standing-request types for requesters. No address field exists here; an offer carries the
ordinary requester view of its hold."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from api.holds.schemas import Callback, HoldRead, hold_read
from api.placement.controllers import SEARCH_EXAMPLE
from api.schemas import Out
from placement.holds import minutes_left
from placement.household import SearchRequest
from placement.standing_service import MAX_MINUTES, StandingView

StandingState = Literal["waiting", "offered", "expired", "cancelled"]

STANDING_EXAMPLE = {
    "search": SEARCH_EXAMPLE,
    "minutes": 720,
    "callback": "1712 night desk, +32 2 555 00 17, ask for the duty coordinator",
}


class StandingCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, rename="camel"):
    """The search that found nothing, how long to wait, and how to reach the requester."""

    search: SearchRequest
    minutes: Annotated[int, msgspec.Meta(ge=15, le=MAX_MINUTES)] | None = None
    callback: Callback | None = None


class StandingRead(Out, kw_only=True):
    """A standing request. When ``offered``, ``hold`` is the place held for you (its intake
    phone and handover protocol, never an address)."""

    ref: str
    state: StandingState
    need: str
    created_at: datetime
    deadline: datetime
    minutes_left: int
    notified_at: datetime | None
    callback: str | None
    hold: HoldRead | None
    #: back in line (``waiting``) because the place declined the hold it was offered, or
    #: marked it no-show: that hold (``closeCode`` says why), else null
    previous_hold: HoldRead | None = None


def standing_read(v: StandingView, now: datetime) -> StandingRead:
    state = v.effective_state(now)
    return StandingRead(
        ref=v.ref,
        state=state,  # type: ignore[arg-type]
        need=v.need,
        created_at=v.created_at,
        deadline=v.deadline,
        minutes_left=minutes_left(v.deadline, now) if state == "waiting" else 0,
        notified_at=v.notified_at,
        callback=v.callback,
        hold=hold_read(v.offered_hold, now) if v.offered_hold is not None else None,
        previous_hold=hold_read(v.previous_hold, now) if v.previous_hold is not None else None,
    )
