"""The one-time link page for a night worker (issue 7): open the link once, then update the
counts of one facility's pools or confirm "still accurate" — nothing else.

The link's secret is in the URL fragment (``/web/link/open#abl_...``): browsers never send a
fragment to a server, so it is in no access or request log and in no Referer. The open page's
small script moves it into a form field and strips it from the address bar; tapping "Open"
POSTs it (with the CSRF token), so a chat app's link preview, which only GETs, cannot use the
link up. The exchange (``capacity.links.exchange``) succeeds once and answers with a redirect to
``/web/link``, a URL without the secret. Counts go through ``capacity.links`` (the same
availability service as the staff page, limited to the link's facility). "Report the location
compromised" is the staff page's form and path (``holds_service.set_facility_status``), for the
link's facility only, and never lifts it: no other status is set from here.
"""

from __future__ import annotations

import re
from typing import Any

from litestar import Controller, Request, Response
from litestar.params import FromPath
from litestar.response import ServerSentEvent

from api.holds.controllers import hold_event_stream, resume_from
from api.ratelimit import open_stream
from api.routing import get, post
from api.schemas import pool_read
from api.web import i18n
from api.web import session as sess
from api.web.controllers import (
    COMPROMISED,
    REASON_TOO_LONG,
    STATUS_MSGIDS,
    FormError,
    _error_text,
    _forbidden,
    _form_error,
    _int,
    _lang,
    _now,
    _redirect,
    _render,
    _text,
    counts_from_form,
    has_nul,
    local_when,
    refused_nul,
    soonest_first,
)
from capacity import links
from capacity.commands import STATUS_REASON_MAX, AvailabilityUpdate, StatusChange
from capacity.errors import AbriError, Conflict, InvalidInput, NotFound, RateLimited
from placement import holds_service, standing_service
from placement.errors import BadReference

REFUSED_TEXT = {
    "unknown": "This link is not valid. Check that you opened the whole link, or ask your "
    "coordinator for a new one.",
    "used": "This link has already been used. Ask your coordinator for a new one.",
    "expired": "This link has expired. Ask your coordinator for a new one.",
    "revoked": "This link has been withdrawn. Ask your coordinator for a new one.",
}
NOTICES = {
    "saved": "Saved.",
    "confirmed": "Thank you: marked as still accurate.",
    "arrived": "Marked as arrived.",
    "no_show": "Marked as no-show: the places are free again.",
    "departed": "Marked as departed: its places are free again.",
    "compromised": "Location reported compromised: no new placements, the households on their "
    "way were declined and their requesters told not to come, and the administrators alerted.",
}


async def _link_guard(
    request: Request[Any, Any, Any],
) -> tuple[sess.WebSession, Response[Any] | None]:
    """A link session (CSRF-checked on POST), or a response: the open page, or 403."""
    ws = await sess.load(request, _now(request))
    if request.method == "POST":
        form = await request.form()
        if not sess.csrf_ok(ws, form.get("csrf")):
            return ws, _forbidden(request, ws)
        if has_nul(form):
            return ws, refused_nul(request, ws)
    if ws.link is None:
        if ws.actor is None and request.method == "GET":
            return ws, _redirect(request, ws, "/web/link/open")
        _ = i18n.translator(_lang(request))
        return ws, _render(
            request,
            ws,
            "message.html",
            status=403,
            title=_("Not allowed"),
            message=_("This page opens with the link your coordinator sent you."),
        )
    return ws, None


class LinkPageController(Controller):
    path = "/web/link"
    include_in_schema = False

    @get("/open")
    async def open_page(self, request: Request[Any, Any, Any]) -> Response[Any]:
        ws = await sess.load(request, _now(request))
        return _render(request, ws, "link_open.html", error=None)

    @post("/open")
    async def open_link(self, request: Request[Any, Any, Any]) -> Response[Any]:
        state = request.app.state
        now = state.clock.now()
        ws = await sess.load(request, now)
        form = await request.form()
        if not sess.csrf_ok(ws, form.get("csrf")):
            return _forbidden(request, ws)
        code = (form.get("code") or "").strip().lstrip("#")
        opened = await links.exchange(state.db, code, now=now)
        if opened.refused is not None:
            _ = i18n.translator(_lang(request))
            return _render(
                request,
                ws,
                "link_open.html",
                status=404 if opened.refused == "unknown" else 410,
                error=_(REFUSED_TEXT[opened.refused]),
            )
        fresh = sess.WebSession(sess.sign_in_link(opened, now), None, dirty=True)
        return _redirect(request, fresh, "/web/link")

    async def _page(
        self, request: Request[Any, Any, Any], ws: sess.WebSession, status: int = 200, **ctx: Any
    ) -> Response[Any]:
        assert ws.link is not None
        state = request.app.state
        now = state.clock.now()
        # a hold past its deadline no longer blocks its place, swept or not: not counted held
        await standing_service.expire_and_offer(
            state.db, state.settings, now, facility_id=ws.link.facility_id
        )
        fac = await links.get_facility(state.db, ws.link)
        pools = [
            pool_read(p, fac, state.settings, now)
            for p in await links.facility_pools(state.db, ws.link)
        ]
        lang = _lang(request)
        arriving = [
            {
                "id": h.id,  # never the code: the household gives it (see ``arrived``)
                "pool_label": h.pool_label,
                "units": h.units,
                "until": local_when(h.deadline, lang, now),
            }
            # every one, as on the staff page, and in its order: the soonest deadline first
            for h in soonest_first(
                await holds_service.list_holds(
                    state.db,
                    actor=ws.link.actor,
                    side="staff",
                    states=["held"],
                    facility_id=ws.link.facility_id,
                    limit=None,
                )
            )
            if h.effective_state(now) == "held"
        ]
        in_house = [
            {
                "id": h.id,  # as above: no code, and no household data on this page
                "pool_label": h.pool_label,
                "units": h.units,
                "since": None if h.arrived_at is None else local_when(h.arrived_at, lang, now),
            }
            for h in await holds_service.list_holds(
                state.db,
                actor=ws.link.actor,
                side="staff",
                states=["arrived"],
                facility_id=ws.link.facility_id,
                limit=None,  # every one, as on the staff page
            )
        ]
        ctx = {
            "notice": None,
            "conflict": None,
            "error": None,
            "arrival_error": None,
            "typed_code": None,
            "status_error": None,
            "typed_reason": None,
            **ctx,
        }
        return _render(
            request,
            ws,
            "link.html",
            status=status,
            facility={"id": fac.id, "alias": fac.alias, "status": fac.status},
            pools=pools,
            arriving=arriving,
            in_house=in_house,
            **ctx,
        )

    @get("/")
    async def page(self, request: Request[Any, Any, Any]) -> Response[Any]:
        ws, stop = await _link_guard(request)
        if stop:
            return stop
        _ = i18n.translator(_lang(request))
        ok = request.query_params.get("ok") or ""
        return await self._page(request, ws, notice=_(NOTICES[ok]) if ok in NOTICES else None)

    @get("/stream")
    async def stream(self, request: Request[Any, Any, Any]) -> Response[Any] | ServerSentEvent:
        """The link page's live source: holds on the link's facility as they come, go or
        change (their state only, never their code), so "Expected arrivals" needs no reload."""
        ws, stop = await _link_guard(request)
        if stop:
            return stop
        assert ws.link is not None
        state = request.app.state
        last = request.headers.get("last-event-id")
        start = resume_from(last)
        asked = request.query_params.get("seconds") or ""
        seconds = min(300, max(1, int(asked))) if re.fullmatch(r"[0-9]{1,3}", asked) else 300
        events = hold_event_stream(
            state.db,
            ws.link.actor,
            state.clock,
            start,
            seconds,
            facility_id=ws.link.facility_id,
            bare=True,
            alive=lambda: sess.still_valid(state.db, ws.data, state.clock.now()),
        )
        try:
            stream = ServerSentEvent(open_stream(state, ("link", ws.link.link_id), events))
        except RateLimited as exc:
            return sess.refused_stream(exc)
        for name, value in sess.SECURITY_HEADERS.items():
            stream.headers[name] = value
        return stream

    @post("/pools/{pool_id:int}")
    async def update_pool(
        self, pool_id: FromPath[int], request: Request[Any, Any, Any]
    ) -> Response[Any]:
        ws, stop = await _link_guard(request)
        if stop:
            return stop
        assert ws.link is not None
        form = await request.form()
        state = request.app.state
        now = state.clock.now()
        _ = i18n.translator(_lang(request))
        action = form.get("action") or "free"
        try:
            version = _int(form.get("version"), 0, 10**12, "Please check the form.")
            if version is None:
                raise FormError("Please check the form.")
            if action == "confirm":
                await links.confirm(state.db, ws.link, pool_id, if_match=version, now=now)
                return _redirect(request, ws, f"/web/link?ok=confirmed#pool-{pool_id}")
            pool = await links.get_pool(state.db, ws.link, pool_id)
            total, occupied, held = counts_from_form(form, action, pool)
            await links.update_counts(
                state.db,
                ws.link,
                pool_id,
                AvailabilityUpdate(units_total=total, units_occupied=occupied),
                if_match=version,
                expect_held=held,
                now=now,
            )
            await standing_service.run_round(state.db, state.settings, now=now)
        except FormError as exc:
            return await self._page(request, ws, 422, error=(pool_id, _form_error(_, exc)))
        except NotFound:
            return await self._page(request, ws, 404, error=(None, _("Not found.")))
        except AbriError as exc:
            if exc.code == "version-mismatch":
                return await self._page(request, ws, 409, conflict=(pool_id, _error_text(_, exc)))
            return await self._page(request, ws, exc.status, error=(pool_id, _error_text(_, exc)))
        return _redirect(request, ws, f"/web/link?ok=saved#pool-{pool_id}")

    @post("/facilities/{facility_id:int}/status")
    async def report_compromised(
        self, facility_id: FromPath[int], request: Request[Any, Any, Any]
    ) -> Response[Any]:
        """The night worker at the door sees the partner outside: report the link's own
        facility's location compromised, with a reason and the box ticked that confirms it
        (without it, nothing changes). The staff page's path: no new placements, the holds
        still held there declined and their requesters told, an alert for admins; audited as
        the link's (which link, in the same transaction). Only that status, and never lifted:
        a facility already compromised is answered as it is. Another facility's id is 404."""
        ws, stop = await _link_guard(request)
        if stop:
            return stop
        assert ws.link is not None
        state = request.app.state
        now = state.clock.now()
        _ = i18n.translator(_lang(request))
        if facility_id != ws.link.facility_id:  # the operator's other places too: not here
            return await self._page(request, ws, 404, error=(None, _("Not found.")))
        form = await request.form()
        typed = (form.get("reason") or "").strip()
        try:
            if form.get("status") != COMPROMISED:  # no other status from a link
                raise FormError("Please check the form.")
            if form.get("confirm") != "yes":
                raise FormError(
                    "Tick the box to confirm that the location is compromised. Nothing was changed."
                )
            reason = _text(form, "reason", STATUS_REASON_MAX, REASON_TOO_LONG)
            await holds_service.set_facility_status(
                state.db,
                ws.link.facility_id,
                StatusChange(status=COMPROMISED, reason=reason),
                actor=ws.link.actor,
                now=now,
                operator_scope=ws.link.actor.operator_id,
                refuse_from=(COMPROMISED,),  # a link never lifts it
                also_audit=links.status_audit(ws.link),
            )
        except FormError as exc:
            return await self._page(
                request, ws, 422, status_error=_form_error(_, exc), typed_reason=typed
            )
        except NotFound:
            return await self._page(request, ws, 404, error=(None, _("Not found.")))
        except (InvalidInput, Conflict) as exc:
            text = _(exc.detail) if exc.detail in STATUS_MSGIDS else _error_text(_, exc)
            return await self._page(request, ws, exc.status, status_error=text, typed_reason=typed)
        except AbriError as exc:
            return await self._page(
                request, ws, exc.status, status_error=_error_text(_, exc), typed_reason=typed
            )
        return _redirect(request, ws, "/web/link?ok=compromised#status")

    @post("/arrived")
    async def arrived(self, request: Request[Any, Any, Any]) -> Response[Any]:
        """A night worker marks a household as arrived by typing the reference code it gives:
        the page lists who is expected but never their codes, so a code is the proof that
        this household was sent here. Only holds on the link's own facility; its places move
        from held to occupied; audited as the link's doing."""
        ws, stop = await _link_guard(request)
        if stop:
            return stop
        assert ws.link is not None
        state = request.app.state
        now = state.clock.now()
        _ = i18n.translator(_lang(request))
        typed = str((await request.form()).get("code") or "").strip()[:20]
        try:
            ref = holds_service.parse_ref(typed)
            view = await holds_service.get(state.db, ref, actor=ws.link.actor, side="staff")
            if view.facility_id != ws.link.facility_id:  # the operator's other places: not here
                raise NotFound("No such hold.", field="ref")
            await holds_service.transition_ex(
                state.db,
                ref,
                "arrived",
                actor=ws.link.actor,
                now=now,
                also_audit=links.hold_action_audit(ws.link, ref, "arrived"),
            )
        except BadReference:
            text = _("This is not a reference code (8 letters and digits, e.g. KM4T-9RC7).")
            return await self._page(request, ws, 422, arrival_error=text, typed_code=typed)
        except NotFound:
            text = _("Nobody is expected here with this code. Check the code with them.")
            return await self._page(request, ws, 404, arrival_error=text, typed_code=typed)
        except AbriError as exc:
            text = _error_text(_, exc)
            return await self._page(request, ws, exc.status, arrival_error=text, typed_code=typed)
        return _redirect(request, ws, "/web/link?ok=arrived#arriving")

    @post("/holds/{hold_id:int}/no-show")
    async def no_show(
        self, hold_id: FromPath[int], request: Request[Any, Any, Any]
    ) -> Response[Any]:
        """A night worker frees the places of a household that did not come (no code needed:
        they are not there to give it). Only holds held on the link's own facility."""
        return await self._hold_action(request, hold_id, "no_show", ["held"], "#arriving")

    @post("/holds/{hold_id:int}/departed")
    async def departed(
        self, hold_id: FromPath[int], request: Request[Any, Any, Any]
    ) -> Response[Any]:
        """A night worker marks a household placed through Abri as gone: the units its arrival
        took are free again, once (the pool's "-" would leave the hold arrived, and a later
        departure would free them a second time). No code needed: the household has left. Only
        holds arrived on the link's own facility; audited as the link's doing."""
        return await self._hold_action(
            request, hold_id, "departed", ["arrived", "departed"], "#in-house-live"
        )

    async def _hold_action(
        self,
        request: Request[Any, Any, Any],
        hold_id: int,
        to: str,
        states: list[str],
        anchor: str,
    ) -> Response[Any]:
        """``to`` for the hold ``hold_id`` of the link's own facility, if it is in one of
        ``states`` (else 404, as for another facility's); audited as the link's doing, and a
        place it frees goes to the request in line."""
        ws, stop = await _link_guard(request)
        if stop:
            return stop
        assert ws.link is not None
        state = request.app.state
        now = state.clock.now()
        _ = i18n.translator(_lang(request))
        try:
            here = await holds_service.list_holds(
                state.db,
                actor=ws.link.actor,
                side="staff",
                states=states,
                facility_id=ws.link.facility_id,
                # that hold itself, not the newest 200: a long stay is older than them
                hold_id=hold_id,
            )
            ref = next((h.ref for h in here if h.id == hold_id), None)
            if ref is None:  # unknown, or another facility's
                raise NotFound("No such hold.")
            done = await holds_service.transition_ex(
                state.db,
                ref,
                to,  # type: ignore[arg-type]
                actor=ws.link.actor,
                now=now,
                also_audit=links.hold_action_audit(ws.link, ref, to),
            )
            if done.someone_waiting:
                await standing_service.run_round(state.db, state.settings, now=now)
        except NotFound:
            return await self._page(request, ws, 404, error=(None, _("Not found.")))
        except AbriError as exc:
            return await self._page(request, ws, exc.status, error=(None, _error_text(_, exc)))
        return _redirect(request, ws, f"/web/link?ok={to}{anchor}")
