"""Server-rendered pages: the operator console (helpline, police) and the staff page (phone).

Pages authenticate with the cookie session of ``api.web.session`` (the bearer middleware
skips ``/web``), check a CSRF token on every POST, and call the same services as the JSON
API. Nothing here decides who may be placed where: that is ``placement`` and ``capacity``.
No page for a helpline or police operator reads a facility address; the staff page does not
show addresses either.
"""

from __future__ import annotations

import contextlib
import math
import re
import secrets
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import msgspec
from babel.dates import format_datetime
from jinja2 import Environment, FileSystemLoader, select_autoescape
from litestar import Controller, Request, Response
from litestar.enums import MediaType
from litestar.params import FromPath
from litestar.response import ServerSentEvent
from litestar.static_files import create_static_files_router

from api.holds.controllers import hold_event_stream, resume_from
from api.holds.schemas import CALLBACK_MAX, HOLD_REASON_MAX, hold_read, staff_hold_read
from api.ratelimit import check as rate_check
from api.ratelimit import open_stream
from api.routing import get, post
from api.schemas import pool_read
from api.staff.links import link_url
from api.standing.schemas import standing_read
from api.web import i18n, reasons
from api.web import session as sess
from capacity import availability, health_rules, links, registry
from capacity.areas import areas, display_name, fold, local_name, name_key
from capacity.audit import Actor
from capacity.commands import STATUS_REASON_MAX, AvailabilityUpdate, StatusChange
from capacity.errors import (
    AbriError,
    Conflict,
    InvalidInput,
    NotFound,
    RateLimited,
    UnknownArea,
)
from capacity.text import refused_char
from placement import holds_service, search_service, standing_service
from placement.errors import IdempotencyKeyReused, IllegalTransition
from placement.holds_service import requester_kind_of
from placement.household import MAX_ADULTS, MAX_CHILDREN, Household, SearchRequest
from placement.rules import BRUSSELS, EXCLUSION_TEXT, RELAX_TEXT

HERE = Path(__file__).parent
STAFF_ROLES = frozenset({"staff", "admin"})  # as api.auth.requires_staff_or_admin
CONSOLE_ROLES = frozenset({"helpline", "police", "admin"})  # as api.auth.requires_requester
NEEDS = ("ipv", "sexual_violence", "family_violence", "trafficking", "homelessness", "other")
LANGUAGE_CHOICES = ("fr", "nl", "de", "en", "ar", "tr", "es", "ru", "uk", "ro")
# As many rows as the API takes people (R24: a large family can be entered on the web too);
# the first ones shown, the others under "More adults" / "More children".
ADULT_SLOTS, CHILD_SLOTS, AVOID_SLOTS = MAX_ADULTS, MAX_CHILDREN, 3
ADULT_ROWS_SHOWN, CHILD_ROWS_SHOWN = 3, 6
EPISODE_PATTERN = r"[A-Za-z0-9_-]{8,64}"  # the console's own episode tokens
AGE_MSG = "A child's age is a whole number from %(lo)s to %(hi)s."
KM_MSG = "The distance is a whole number from %(lo)s to %(hi)s km."
#: The console keeps places at least this far from every area to avoid unless the operator
#: changes it (R17: never near where the perpetrator lives or works); 0 = the areas only.
DEFAULT_AVOID_KM = 5
#: How long the console keeps showing a hold that ended without an arrival (and a standing
#: request that was offered a place, expired or was cancelled).
RECENTLY_ENDED_HOURS = 12
#: How long a standing request left from the console waits (hours; the API takes 15 min-72 h).
STANDING_HOURS = (2, 4, 8, 12, 24, 48, 72)
DEFAULT_STANDING_HOURS = 12
STANDING_HOURS_MSG = "Wait: a whole number of hours from %(lo)s to %(hi)s."
AVOID_KM_MSG = "Distance from the areas to avoid: a whole number from %(lo)s to %(hi)s km."
LINK_HOURS_MSG = "A link lasts a whole number of hours, from %(lo)s to %(hi)s."
#: The statuses of the staff page's status form. ``location_compromised`` has a form of its own,
#: which says what it does and asks for a confirmation; a facility in it is left alone here by
#: staff: an administrator lifts it (the API, or "Lift: reopen this place" on an admin's staff
#: page, whose status form also sets it any other status).
WEB_STATUSES = ("open", "closed_to_admissions", "reduced", "suspended")
COMPROMISED = "location_compromised"
#: An admin's status form drawn before the place was reported compromised: nothing changed.
COMPROMISED_SINCE = (
    "This place was reported compromised after this page was drawn: nothing was changed. "
    "Its card now offers to lift it or to change its status."
)
#: The registry's own messages for a status change, shown translated on the staff page.
STATUS_MSGIDS = (
    registry.REASON_REQUIRED,
    registry.UNTIL_IN_PAST,
    registry.STATUS_KEPT,
    registry.LIFT_REASON_REQUIRED,
    registry.NOT_COMPROMISED,
    COMPROMISED_SINCE,
)
#: Why a hold ended, in Abri's own words (not the staff's): shown in the reader's language.
#: The one for a compromised location is shown as an alert (do not go there).
CLOSE_REASON_MSGIDS = (
    holds_service.COMPROMISED_REASON,
    holds_service.EXPIRED_REASON,
    standing_service.STANDING_CLOSED_REASON,
)

_env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
    auto_reload=False,
)
# the lengths the API takes for the texts the forms send: their inputs' maxlength
_env.globals |= {
    "callback_max": CALLBACK_MAX,
    "hold_reason_max": HOLD_REASON_MAX,
    "status_reason_max": STATUS_REASON_MAX,
}
# Every page read once, now: a process renders the templates of the code it runs. Read on first
# use and again when the file changed, a new version installed over a running one (RUNBOOK,
# Upgrade, step 2 before the restart of step 3) had the old code render the new templates, and
# the task-force page answered 500 until the restart.
for _name in _env.list_templates():
    _env.get_template(_name)

ERROR_TEXT = {
    "version-mismatch": "Someone else updated this first. Your change was not saved: here "
    "are the current figures.",
    "no-longer-free": "This place was just taken. Search again.",
    "not-admitting": "This place is not taking people right now.",
    "not-eligible": "This place cannot take this household.",
    "hold-expired": "This hold has expired; its place was given back.",
    "illegal-transition": "This hold has already changed; reload the page.",
    "extension-refused": "This hold cannot be extended any further.",  # (at most twice)
    "not-found": "Not found.",
    "unknown-area": "Unknown municipality.",
    "busy": "The service is busy; try again in a moment.",
    "invalid-input": "Please check the form.",
    "idempotency-in-flight": "This request is already being handled; wait a moment.",
    "rate-limited": "Too many requests in a short time; try again in a moment.",
}


#: Enumerations shown on the pages: value -> English msgid (translated in the templates).
LABELS: dict[str, dict[str, str]] = {
    "gender": {"female": "Woman", "male": "Man", "nonbinary": "Non-binary"},
    "child_gender": {
        "unknown": "Not given",
        "female": "Girl",
        "male": "Boy",
        "nonbinary": "Non-binary",
    },
    "need": {
        "ipv": "Intimate partner violence",
        "sexual_violence": "Sexual violence",
        "family_violence": "Family violence",
        "trafficking": "Human trafficking",
        "homelessness": "Homelessness",
        "other": "Other need",
    },
    "specialisation": {
        "ipv": "Intimate partner violence",
        "sexual_violence": "Sexual violence",
        "family_violence": "Family violence",
        "trafficking": "Human trafficking",
        "homelessness": "Homelessness",
        "youth": "Young people",
        "lgbtqi": "LGBTQIA+ people",
        "elderly": "Older people",
        "disability": "People with disabilities",
        "migrants": "Migrants",
    },
    "residence": {
        "unknown": "Unknown",
        "documented": "With residence papers",
        "undocumented": "Undocumented",
    },
    "income": {"unknown": "Unknown", "yes": "Has an income", "no": "No income"},
    "language": {
        "fr": "French",
        "nl": "Dutch",
        "de": "German",
        "en": "English",
        "ar": "Arabic",
        "tr": "Turkish",
        "es": "Spanish",
        "ru": "Russian",
        "uk": "Ukrainian",
        "ro": "Romanian",
    },
    "kind": {
        "refuge": "Refuge",
        "safe_house": "Safe house",
        "crisis_hotel": "Crisis hotel",
        "cpas_place": "CPAS place",
        "night_shelter": "Night shelter",
        "other": "Other place",
    },
    "cost": {"free": "Free of charge", "paying": "Paying", "income_based": "Income-based fee"},
    "standing_state": {
        "waiting": "Waiting for a place",
        "offered": "A place is held for you",
        "expired": "Nothing freed up in time",
        "cancelled": "Cancelled",
    },
    "state": {
        "held": "Held",
        "arrived": "Arrived",
        "released": "Released",
        "declined": "Declined",
        "expired": "Expired",
        "no_show": "No show",
        "departed": "Departed",
    },
    "status": {
        "open": "Open",
        "closed_to_admissions": "Closed to admissions",
        "reduced": "Reduced capacity",
        "suspended": "Suspended",
        "location_compromised": "Location compromised",
    },
    "role": {
        "staff": "Shelter staff",
        "helpline": "Helpline",
        "police": "Police",
        "admin": "Administrator",
        "taskforce": "Task force",
        "link": "One-time link",
    },
    "health": {"negative_test": "A negative test", "medical_clearance": "A medical clearance"},
    "link_state": {
        "active": "Not opened yet",
        "used": "Opened",
        "expired": "Expired",
        "revoked": "Revoked",
    },
    "warning": {
        "stale_data": "Availability may be out of date.",
        "reduced_capacity": "Temporarily reduced capacity: call first.",
        "runs_past_planned_end": "The scheme is planned to end before the nights asked.",
        "shared_beds": "The household takes several beds in a shared space.",
        "several_rooms": "The household is spread over several rooms of this place.",
        "beyond_one_hour": "Likely more than an hour's journey from the preferred area.",
        "documents_to_check": "Requires residence documents: check first.",
        "income_to_check": "Requires an income or charges a fee.",
        "adult_age_to_check": "Check the minimum age for adults.",
        "admission_later": "Intake opens later today: call first.",
    },
}


class FormError(Exception):
    """A form field the page itself rejected (message is a msgid, params for %-format)."""

    def __init__(self, msgid: str, *, field: str | None = None, **params: Any) -> None:
        super().__init__(msgid)
        self.msgid, self.params = msgid, params
        #: the id of the field it is about, when one: the page marks it (aria-invalid, described
        #: by the refusal) and focuses it, instead of leaving the user to look for it
        self.field = field


def _now(request: Request[Any, Any, Any]) -> Any:
    return request.app.state.clock.now()


def _lang(request: Request[Any, Any, Any]) -> str:
    chosen = request.scope.get("abri_lang")  # just switched: the page drawn in it at once
    if chosen in i18n.LANGS:
        return str(chosen)
    return i18n.negotiate(
        request.cookies.get(sess.LANG_COOKIE), request.headers.get("accept-language")
    )


def _error_text(_: Callable[[str], str], exc: AbriError) -> str:
    if exc.code == "extension-refused" and exc.extra.get("reason") == "not-yet":
        # not counted: the hold already runs as long as it may from now
        return _(
            "This hold already runs as long as it may for now. Extend it later, when its "
            "deadline is nearer."
        )
    text = _(ERROR_TEXT.get(exc.code, "The request failed."))
    if exc.code in ("invalid-input", "not-eligible") and exc.field:
        text += f" ({exc.field})"
    return text


def _form_error(_: Callable[[str], str], exc: FormError) -> str:
    return _(exc.msgid) % exc.params if exc.params else _(exc.msgid)


REASON_TOO_LONG = "The reason is too long: at most %(n)s characters."
CALLBACK_TOO_LONG = "The contact for the shelter is too long: at most %(n)s characters."


def _text(form: Any, name: str, limit: int, msgid: str) -> str | None:
    """A text field, trimmed (None when empty). Longer than the API takes for it: refused
    with ``msgid`` (the page says so, nothing written), never cut to fit without a word."""
    value = (form.get(name) or "").strip()
    if len(value) > limit:
        raise FormError(msgid, field=name, n=limit)
    return value or None


def _page_of(request: Request[Any, Any, Any]) -> str:
    """Where the language switch comes back to: this page, or for a page drawn for a POST
    (search results, a refused hold, a staff form's error) the page that form was on, since
    those paths answer POST only (a GET there is a 405)."""
    path = request.url.path
    if request.method == "GET":
        return path
    return _form_page(path)


def _form_page(path: str) -> str:
    """The page a form whose address is ``path`` is on."""
    hold = re.fullmatch(r"(/web/console/holds/[^/]+)/[a-z-]+", path)
    if hold:
        return hold.group(1)
    if path in ("/web/sign-in", "/web/link/open"):
        return path
    for page in ("/web/console", "/web/staff", "/web/link"):
        if path.startswith(page + "/"):
            return page
    return "/web/"


def _render(
    request: Request[Any, Any, Any],
    ws: sess.WebSession,
    template: str,
    *,
    status: int = 200,
    **ctx: Any,
) -> Response[Any]:
    lang = _lang(request)
    _ = i18n.translator(lang)
    html = _env.get_template(template).render(
        # the form the language buttons send along (the console's), else none
        carry_form=ctx.pop("carry_form", None),
        _=_,
        lang=lang,
        # "Label: value": French sets a (narrow, no-break) space before the colon
        colon=i18n.colon(lang),
        langs=i18n.LANGS,
        lang_names=i18n.LANG_NAMES,
        csrf=ws.data.csrf,
        signed_in=ws.actor is not None,
        role=ws.data.role if ws.actor else None,
        operator_name=ws.data.opn if ws.actor else None,
        # which session the page is drawn for: its own looks for news send it back (abri.js)
        page_mark=sess.page_mark(ws.data) if ws.actor else "",
        here=_page_of(request),
        labels=LABELS,
        # why a hold ended: Abri's own words translated, the staff's as they wrote them
        close_reason_text=lambda r: _(r) if r in CLOSE_REASON_MSGIDS else r,
        compromised_reason=holds_service.COMPROMISED_REASON,
        # Abri's time as the page is drawn: the countdowns run on it, not on the device's
        # clock (a patrol car's tablet minutes slow showed a hold as lasting longer than it did)
        server_now=request.app.state.clock.now().isoformat(),
        **ctx,
    )
    return sess.apply(
        request, Response(content=html, media_type=MediaType.HTML, status_code=status), ws
    )


def _retry_after(exc: Exception, response: Response[Any]) -> Response[Any]:
    """A page refused for the token's rate limit says when to try again, as the API does."""
    wait = exc.extra.get("retry_after") if isinstance(exc, AbriError) else None
    if wait is not None:
        response.headers["Retry-After"] = str(wait)
    return response


def _redirect(
    request: Request[Any, Any, Any], ws: sess.WebSession | None, to: str
) -> Response[Any]:
    return sess.apply(request, Response(content=b"", status_code=303, headers={"Location": to}), ws)


def web_no_page(request: Request[Any, Any, Any], status: int) -> Response[Any] | None:
    """A request under /web/ that found no page, for the exception handlers: a GET of the
    address of a form (a results page's /web/console/search, restored by a tablet or
    bookmarked: 405) goes to the page that form is on; an unknown address, or a form sent
    to one (a page left open across an upgrade) or with another method, is a page in the
    user's language, not the API's problem in English. None for anything else."""
    path = request.url.path
    if not path.startswith("/web/") or status not in (404, 405):
        return None
    if status == 405 and request.method in ("GET", "HEAD"):
        return _redirect(request, None, _form_page(path))
    return _bare_page(
        request,
        status,
        "Page not found",
        "There is no page at this address. Check the link, or start again from Abri.",
    )


def web_unavailable(request: Request[Any, Any, Any]) -> Response[Any] | None:
    """A page under /web/ whose database could not be reached or cannot write (a failover, a
    full disk), for the exception handlers: a page in the user's language that says nothing
    was saved, not the API's problem JSON. None outside /web/."""
    if not request.url.path.startswith("/web/"):
        return None
    page = _bare_page(
        request,
        503,
        "Try again in a moment",
        "Abri cannot save anything right now; nothing was saved. Go back and try again in a "
        "moment. If it lasts, phone the place or the helpline as before Abri.",
    )
    page.headers["Retry-After"] = "10"
    return page


def _bare_page(
    request: Request[Any, Any, Any], status: int, title: str, message: str
) -> Response[Any]:
    """A message page (``title`` and ``message`` are msgids) for the exception handlers. No
    session read (the handlers are synchronous): a page without the language and sign-out
    forms, whose CSRF token it could not give."""
    _ = i18n.translator(_lang(request))
    anonymous = sess.WebSession(sess.new_session(request.app.state.clock.now()), None)
    return _render(
        request, anonymous, "message.html", status=status, bare=True,
        title=_(title), message=_(message),
    )  # fmt: skip


def _forbidden(request: Request[Any, Any, Any], ws: sess.WebSession) -> Response[Any]:
    _ = i18n.translator(_lang(request))
    return _render(
        request,
        ws,
        "message.html",
        status=403,
        title=_("Not allowed"),
        message=_(
            "This form has expired or did not come from this site. Reload the page and try again."
        ),
    )


def has_nul(form: Any) -> bool:
    """Whether a form field holds a NUL character (U+0000): nobody types one, and PostgreSQL
    cannot store it in a text (a link's label, a status reason, a hold's callback number were
    an internal error there, and stored as sent on SQLite), or a character the API refuses in
    the same field (``capacity.text``: a control or bidi character, a line break in a one-line
    field, an invisible one in a callback number)."""
    return any(
        "\x00" in str(value) or refused_char(str(value), name) is not None
        for name, value in form.multi_items()
    )


def refused_nul(request: Request[Any, Any, Any], ws: sess.WebSession) -> Response[Any]:
    """422 for a form with a NUL character in a field (``has_nul``): nothing was saved."""
    _ = i18n.translator(_lang(request))
    return _render(
        request,
        ws,
        "message.html",
        status=422,
        title=_("Please check the form."),
        message=_(
            "A field contains a character that cannot be saved. Nothing was saved: go back "
            "and type it again."
        ),
    )


def _session_over(request: Request[Any, Any, Any], ws: sess.WebSession, what: str) -> Response[Any]:
    """The answer to a page's own look for news (``sess.is_background``) when the session it
    was drawn for is over: ``ended`` (401: idle limit, signed out, token revoked), so that the
    page goes to the sign-in page and says why instead of parsing the sign-in page as if it
    were itself and sitting there frozen; ``changed`` (409: someone signed in since, maybe
    as another operator), so that the page draws itself again for the session signed in
    instead of showing that operator's holds or waiting list under its own header and forms.
    No page in the body: nothing of anyone's."""
    status = 401 if what == "ended" else 409
    response = Response(
        content=what, status_code=status, media_type=MediaType.TEXT,
        headers={"X-Abri-Session": what},
    )  # fmt: skip
    return sess.apply(request, response, ws)


async def _guard(
    request: Request[Any, Any, Any], roles: frozenset[str]
) -> tuple[sess.WebSession, Actor | None, Response[Any] | None]:
    """The session and actor, or a response: sign-in page, or 403 for the wrong role.
    POSTs also need the session's CSRF token."""
    ws = await sess.load(request, _now(request))
    if request.method == "POST":
        form = await request.form()
        if not sess.csrf_ok(ws, form.get("csrf")):
            return ws, None, _forbidden(request, ws)
        if has_nul(form):
            return ws, None, refused_nul(request, ws)
    if ws.actor is None:
        if request.method == "GET" and sess.is_background(request):
            return ws, None, _session_over(request, ws, "ended")
        if request.method == "GET":
            return ws, None, _redirect(request, ws, _sign_in_then(request.url.path))
        return ws, None, _forbidden(request, ws)
    if request.method == "GET" and sess.drawn_for_another(request, ws.data):
        return ws, None, _session_over(request, ws, "changed")
    if ws.actor.role not in roles:
        _ = i18n.translator(_lang(request))
        return (
            ws,
            None,
            _render(
                request,
                ws,
                "message.html",
                status=403,
                title=_("Not allowed"),
                message=_("There is no page for your role here."),
            ),
        )
    return ws, ws.actor, None


async def _new_household(request: Request[Any, Any, Any], actor: Actor | None) -> dict[str, Any]:
    """The console form for a new household: keep 5 km from the areas to avoid (R17), a new
    episode token (R33), a police zone's home area as the preferred one; no gender chosen for
    the first adult (never assume a woman, R12)."""
    values: dict[str, Any] = {
        "avoid_km": str(DEFAULT_AVOID_KM),
        "episode": secrets.token_urlsafe(12),
    }
    home = (
        None
        if actor is None
        else await registry.operator_home(request.app.state.db, actor.operator_id)
    )
    if home is not None:  # a police zone: where its officers are, to change if need be
        values["preferred"] = _muni_label(home, _lang(request))
    return values


def _home_for(role: str | None) -> str:
    if role == "link":  # a one-time link session (api/web/links.py)
        return "/web/link"
    if role == "taskforce":  # the dashboard (api/web/taskforce.py)
        return "/web/taskforce"
    if role in STAFF_ROLES - {"admin"}:
        return "/web/staff"
    if role in CONSOLE_ROLES:
        return "/web/console"
    return "/web/sign-in"


#: the pages a sign-in leads to by itself (``_home_for``): no need to say "come back here"
_HOMES = frozenset({"/web", "/web/", "/web/console", "/web/staff", "/web/taskforce"})
#: which roles may open the pages under each part of the site (as the pages' own guards)
_AREAS = (
    ("/web/console/", CONSOLE_ROLES),
    ("/web/staff/", STAFF_ROLES),
    ("/web/taskforce/", frozenset({"taskforce", "admin"})),
)


def _sign_in_then(path: str) -> str:
    """The sign-in page, asked to come back to ``path`` (a hold's page, a waiting list...)
    once signed in again."""
    target = _safe_next(path)
    if target in _HOMES:
        return "/web/sign-in"
    return f"/web/sign-in?next={quote(target, safe='/')}"


def _resume(role: str, target: str | None) -> str | None:
    """``target`` if it is one of our pages this role may open (not a home page), else None.
    A page of the operator who used this browser before stays theirs: the new one's guard
    answers for it (another operator's hold is not found)."""
    page = _safe_next(target)
    if page in _HOMES:
        return None
    for prefix, roles in _AREAS:
        if page.startswith(prefix):
            return page if role in roles else None
    return None


def _safe_next(target: str | None) -> str:
    """Where to go back to after a language switch or a sign-in: one of our pages, nothing
    else (no other host, and no ``..`` that a browser resolves out of ``/web/``)."""
    if (
        target
        and re.fullmatch(r"/web(/[A-Za-z0-9_./-]*)?", target)
        and "//" not in target
        and {".", ".."}.isdisjoint(target.split("/"))
    ):
        return target
    return "/web/"


# --------------------------------------------------------------------------- areas


def _muni_label(nis: str, lang: str) -> str:
    code = areas().canonical_municipality(nis)
    return f"{display_name(code, lang)} ({code})"


def _datalist(lang: str) -> list[str]:
    return sorted((_muni_label(nis, lang) for nis in areas().municipalities), key=lambda s: fold(s))


def resolve_municipality(text: str) -> str:
    """A municipality typed as a name (FR/NL/DE), a NIS code or "Name (NIS)" -> NIS code."""
    raw = text.strip()
    m = re.search(r"\((\d{5})\)\s*$", raw)
    code = m.group(1) if m else raw if re.fullmatch(r"\d{5}", raw) else None
    if code is not None:
        try:
            return areas().municipality(code).nis
        except UnknownArea:
            raise FormError("Unknown municipality: %(name)s", name=raw) from None
    exact = areas().named(raw)
    if len(exact) == 1:
        return exact[0].nis
    found = areas().find(raw, limit=10)
    if not found:
        raise FormError("Unknown municipality: %(name)s", name=raw)
    if len(found) == 1 and not exact:
        # A postal code is taken. A name that is not a municipality's is not, even when only
        # one municipality's name contains it: "Berchem" (a district of Antwerpen) is not
        # Berchem-Sainte-Agathe, "Heverlee" (in Leuven) not Oud-Heverlee — an area to avoid
        # must never silently become another town. The list offers the full name.
        m = found[0]
        if name_key(raw).isdigit():
            return m.nis
        raise FormError(
            "No municipality is called %(name)s. Did you mean %(match)s? Pick it from the list.",
            name=raw,
            match=f"{local_name(m.nis)} ({m.nis})",
        )
    raise FormError("Several municipalities match %(name)s: pick one from the list.", name=raw)


def show_resolved_areas(values: dict[str, Any], lang: str) -> dict[str, Any]:
    """The form's area fields as understood: each typed name replaced by the municipality it
    was taken for ("Borsbeek" -> "Antwerpen (11002)"), so the officer sees what was avoided."""
    out = dict(values)
    for key in [f"avoid{i}" for i in range(AVOID_SLOTS)] + ["preferred"]:
        text = (out.get(key) or "").strip()
        if text:
            with contextlib.suppress(FormError):  # the search ran: each one resolved
                out[key] = _muni_label(resolve_municipality(text), lang)
    return out


# --------------------------------------------------------------------------- forms


def _int(value: str | None, lo: int, hi: int, msgid: str, field: str | None = None) -> int | None:
    if value is None or value.strip() == "":
        return None
    v = value.strip()
    # ASCII digits only: isdigit() also takes "²", which int() refuses (and int() refuses more
    # than 4300 digits): either was an internal error instead of this message
    if not re.fullmatch(r"[0-9]{1,15}", v) or not lo <= int(v) <= hi:
        raise FormError(msgid, field=field, lo=lo, hi=hi)
    return int(v)


def _municipality_in(text: str, field: str) -> str:
    """``resolve_municipality`` for the console's field ``field`` (named in a refusal)."""
    try:
        return resolve_municipality(text)
    except FormError as exc:
        exc.field = field
        raise


def search_form_to_request(form: Any) -> tuple[SearchRequest, dict[str, Any]]:
    """The console form -> the same ``SearchRequest`` the JSON API takes."""
    adults = []
    for i in range(ADULT_SLOTS):
        gender = form.get(f"adult{i}_gender") or ""
        if gender:
            adults.append({"gender": gender, "ageBand": form.get(f"adult{i}_band") or "25-64"})
    if not adults:
        raise FormError("Enter at least one adult.", field="adult0_gender")
    children = []
    for i in range(CHILD_SLOTS):
        age = _int(form.get(f"child{i}_age"), 0, 17, AGE_MSG, f"child{i}_age")
        if age is not None:
            children.append({"age": age, "gender": form.get(f"child{i}_gender") or "unknown"})
    langs = [x for x in form.getall("languages", []) if x in LANGUAGE_CHOICES]
    avoid = []
    for i in range(AVOID_SLOTS):
        text = (form.get(f"avoid{i}") or "").strip()
        if text:
            avoid.append(_municipality_in(text, f"avoid{i}"))
    avoid_km = _int(form.get("avoid_km"), 0, 50, AVOID_KM_MSG, "avoid_km")
    preferred_text = (form.get("preferred") or "").strip()
    preferred = _municipality_in(preferred_text, "preferred") if preferred_text else None
    km = _int(form.get("max_km"), 1, 500, KM_MSG, "max_km")
    if km is not None and preferred is None:
        raise FormError("A maximum distance needs a preferred area.", field="preferred")
    nights = _int(
        form.get("nights"), 1, 365, "Nights: a whole number from %(lo)s to %(hi)s.", "nights"
    )
    body: dict[str, Any] = {
        "household": {
            "adults": adults,
            "children": children,
            "residenceStatus": form.get("residence") or "unknown",
            "income": form.get("income") or "unknown",
            "languages": langs,
            "wheelchair": form.get("wheelchair") == "1",
            "pets": form.get("pets") == "1",
            "healthConditionsMet": [
                x for x in form.getall("health_met", []) if x in health_rules.CONDITIONS
            ],
        },
        "need": form.get("need") or "other",
        "nights": nights or 1,
        # R17: the areas to avoid, and (the API's ``avoid.radius``) every municipality whose
        # territory comes within ``avoid_km`` of one of them, neighbours included
        "avoid": {
            "municipalities": sorted(set(avoid)),
            "radius": [{"municipalityNis": m, "km": avoid_km} for m in avoid] if avoid_km else [],
        },
        "freeOnly": form.get("free_only") == "1",
        "limit": 10,
    }
    episode = (form.get("episode") or "").strip()
    if re.fullmatch(EPISODE_PATTERN, episode):
        # One household on the line, however often it is searched again (R33): the task
        # force counts it once in unmet demand. "New household" starts a new token.
        body["episodeToken"] = episode
    if preferred:
        body["preferredMunicipalityNis"] = preferred
    if km is not None:
        body["maxDistanceKm"] = km
    try:
        req = msgspec.convert(body, SearchRequest)
    except msgspec.ValidationError:
        raise FormError("Please check the form.") from None
    return req, body


def _form_values(form: Any) -> dict[str, Any]:
    values: dict[str, Any] = {k: form.get(k) for k in form if k != "csrf"}
    values["languages"] = list(form.getall("languages", []))
    values["health_met"] = list(form.getall("health_met", []))
    return values


def _typed_values(form: Any) -> dict[str, Any] | None:
    """The search form as the operator typed it, carried by a results page's hold and wait
    forms (``typed``): a refused hold or wait shows the household again, not an empty form
    to retype at 2 a.m. (an area to avoid forgotten in the retyping, a new episode token)."""
    try:
        typed = msgspec.json.decode(form.get("typed") or "", type=dict[str, str | list[str] | None])
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    typed.pop("csrf", None)
    return typed or None


# --------------------------------------------------------------------------- views


def _minutes_ago(seconds: int | None) -> int | None:
    return None if seconds is None else seconds // 60


def soonest_first(holds: list[holds_service.HoldView]) -> list[holds_service.HoldView]:
    """Holds on their way as the pages list them: the soonest deadline first (the one about to
    run out is on top, not under every newer one on a phone's screen), the older one first at
    equal deadlines. The API's list stays newest first: its pages (``beforeId``) follow ids."""
    return sorted(holds, key=lambda h: (h.deadline, h.id))


async def _staff_view(request: Request[Any, Any, Any], actor: Actor) -> dict[str, Any]:
    state = request.app.state
    now = state.clock.now()
    scope = None if actor.is_admin else actor.operator_id
    # a hold past its deadline no longer blocks its place, swept or not: not counted as held
    await standing_service.expire_and_offer(state.db, state.settings, now, operator_id=scope)
    views = await registry.list_facilities(state.db, operator_id=scope)
    area_rules = await health_rules.list_conditions(state.db)
    lang = _lang(request)
    facilities = [
        {
            "id": v.facility.id,
            "alias": v.facility.alias,
            **_status_view(v.facility, lang, now),
            "pools": [pool_read(p, v.facility, state.settings, now) for p in v.pools],
            "area_conditions": [
                {
                    "condition": c.condition,
                    "reason": c.reason,
                    "until_text": None if c.until is None else local_when(c.until, lang, now),
                }
                for c in health_rules.in_force_at(
                    v.facility.municipality_nis, area_rules, secret=v.facility.secret_address
                )
            ],
        }
        for v in views
    ]
    current = await links.current_links(state.db, [f["id"] for f in facilities], now=now)
    for f in facilities:
        f["link_nonce"] = secrets.token_urlsafe(16)  # one link per form sent (a reload: 409)
        f["links"] = [
            {
                "id": x.id,
                "label": x.label,
                "state": links.link_state(x, now),
                "opened": x.used_at is not None,
                "hours_left": max(1, math.ceil((x.expires_at - now).total_seconds() / 3600)),
            }
            for x in current.get(f["id"], [])
        ]
    holds = [
        staff_hold_read(h, now)
        # every one (no page of 200): each needs its answer, and a page has no "next"
        for h in soonest_first(
            await holds_service.list_holds(
                state.db, actor=actor, side="staff", states=["held"], limit=None
            )
        )
        if h.effective_state(now) == "held"  # past its deadline: gone, swept or not
    ]
    # households placed through Abri that are in house: "Departed" frees their units once
    # (the pool's "-" would leave the hold arrived, and a later departure count them again)
    in_house = [
        {
            "hold": staff_hold_read(h, now),
            "arrived_text": None if h.arrived_at is None else local_when(h.arrived_at, lang, now),
        }
        # every one: the longest stays are the oldest, and would fall off a page of 200
        for h in await holds_service.list_holds(
            state.db, actor=actor, side="staff", states=["arrived"], limit=None
        )
    ]
    return {
        "facilities": facilities,
        "holds": holds,
        "in_house": in_house,
        "issued": None,
        "web_statuses": WEB_STATUSES,
        "status_form": None,
    }


def occupied_for_free(total: int, held: int, free: int) -> int:
    """ "Set free beds" in the staff's words -> the occupied count the service stores
    (the inverse of ``unitsFree = total - occupied - held`` of ``capacity.availability``)."""
    return max(0, total - held - free)


def counts_from_form(form: Any, action: str, pool: Any) -> tuple[int, int, int | None]:
    """(in service, occupied, held as the staff saw it) from a pool form: both counts
    ("counts": held does not matter), one place taken or given back ("minus", "plus"), or the
    free places wanted ("set free places"; a page from before "minus"/"plus" sends -/+ so),
    turned into occupancy *with the held places the staff saw*: if a hold came in since, the
    update is refused (409 with the new figures), since "2 free" meant "2 besides the held
    ones I saw" and would otherwise give the new hold's bed away again. Raises FormError."""
    if action in ("minus", "plus"):
        # One place taken or given back: occupancy moves by one from what the page showed
        # (the version check makes sure it still is what the page showed). Not "free ± 1"
        # turned into occupancy: with more people than places in service (mattresses), that
        # made "+" drop several people at once and show a free place that is not there.
        held = _int(form.get("held"), 0, 100000, "Please check the form.")
        held = pool.units_held if held is None else held
        step = 1 if action == "minus" else -1
        return pool.units_total, max(0, pool.units_occupied + step), held
    if action == "counts":
        total = _int(form.get("total"), 0, 100000, "Enter a whole number.")
        occupied = _int(form.get("occupied"), 0, 100000, "Enter a whole number.")
        if total is None or occupied is None:
            raise FormError("Enter a whole number.")
        return total, occupied, None
    free = _int(form.get("free"), 0, 100000, "Enter a whole number of free places.")
    if free is None:
        raise FormError("Enter a whole number of free places.")
    held = _int(form.get("held"), 0, 100000, "Please check the form.")
    held = pool.units_held if held is None else held  # a page from before this field
    if free > pool.units_total - held:
        raise FormError(
            "At most %(n)s can be free (places in service minus places held).",
            n=max(0, pool.units_total - held),
        )
    if free == max(0, pool.units_total - pool.units_occupied - held):
        # the free places it already shows: the occupancy stays, also above the places in
        # service (mattresses), where "0 free" would otherwise cut it down to the total
        return pool.units_total, pool.units_occupied, held
    return pool.units_total, occupied_for_free(pool.units_total, held, free), held


def until_from_form(form: Any) -> datetime | None:
    """The status form's "until": a date and a time in Belgian local time (what staff read on
    the wall clock), as a UTC instant; neither given: no end. Raises FormError."""
    day = (form.get("until_date") or "").strip()
    hour = (form.get("until_time") or "").strip()
    if not day and not hour:
        return None
    if not day or not hour:
        raise FormError("Give both a date and a time, or neither.")
    try:
        local = datetime.combine(date.fromisoformat(day), time.fromisoformat(hour))
        # OverflowError: 0001-01-01 before 00:17 (Brussels' mean time then) has no UTC instant
        return local.replace(tzinfo=BRUSSELS).astimezone(UTC)
    except (ValueError, OverflowError):
        raise FormError("Please check the date and the time.") from None


def local_when(at: datetime, lang: str, now: datetime) -> str:
    """An instant as staff read it: Belgian time, "Fri 5 Dec, 18:00" in the page's language
    (with the year when it is not this year's)."""
    same_year = at.astimezone(BRUSSELS).year == now.astimezone(BRUSSELS).year
    pattern = "EEE d MMM, HH:mm" if same_year else "EEE d MMM y, HH:mm"
    return format_datetime(at, pattern, tzinfo=BRUSSELS, locale=lang)


def _status_view(fac: Any, lang: str, now: datetime) -> dict[str, Any]:
    """A facility's status for the staff page: the text shown, and the form's current values."""
    until = fac.status_until
    pending = until is not None and until > now
    local = until.astimezone(BRUSSELS) if pending else None
    # R07: the scheme's own dates, so staff know why no hold comes (searches leave a place
    # out before its validFrom and after its plannedEnd, whatever its status)
    starts, ends = fac.valid_from, fac.planned_end
    return {
        "status": fac.status,
        "status_reason": fac.status_reason,
        "scheme_not_yet": local_when(starts, lang, now) if starts and starts > now else None,
        "scheme_ended": local_when(ends, lang, now) if ends and ends <= now else None,
        "scheme_until": local_when(ends, lang, now) if ends and ends > now else None,
        "until_text": local_when(until, lang, now) if pending else None,
        "lapses": pending and fac.status in registry.LAPSING_STATUSES,
        "until_date": f"{local:%Y-%m-%d}" if local else "",
        "until_time": f"{local:%H:%M}" if local else "",
    }


class WebController(Controller):
    path = "/web"
    include_in_schema = False

    @get("/")
    async def home(self, request: Request[Any, Any, Any]) -> Response[Any]:
        ws = await sess.load(request, _now(request))
        return _redirect(request, ws, _home_for(ws.data.role if ws.actor else None))

    # ----------------------------------------------------------------- sign-in / out

    @get("/sign-in")
    async def sign_in_page(self, request: Request[Any, Any, Any]) -> Response[Any]:
        ws = await sess.load(request, _now(request))
        # come from a page whose session ended while it looked for news (abri.js): say why
        ended = request.query_params.get("ended") == "1" and ws.actor is None
        after = _safe_next(request.query_params.get("next"))
        return _render(
            request,
            ws,
            "sign_in.html",
            error=None,
            ended=ended,
            next=None if after in _HOMES else after,
        )

    @post("/sign-in")
    async def sign_in(self, request: Request[Any, Any, Any]) -> Response[Any]:
        state = request.app.state
        now = state.clock.now()
        ws = await sess.load(request, now)
        form = await request.form()
        if not sess.csrf_ok(ws, form.get("csrf")):
            return _forbidden(request, ws)
        token = (form.get("token") or "").strip()
        after = _safe_next(form.get("next"))
        actor = await registry.authenticate(state.db, token, now) if token else None
        if actor is None:
            _ = i18n.translator(_lang(request))
            return _render(
                request,
                ws,
                "sign_in.html",
                status=401,
                error=_("This token is not valid (unknown, expired or revoked)."),
                next=None if after in _HOMES else after,
            )
        ws = sess.WebSession(await sess.sign_in(state.db, actor, now), actor, dirty=True)
        return _redirect(request, ws, _resume(actor.role, after) or _home_for(actor.role))

    @post("/sign-out")
    async def sign_out(self, request: Request[Any, Any, Any]) -> Response[Any]:
        ws = await sess.load(request, _now(request))
        form = await request.form()
        if not sess.csrf_ok(ws, form.get("csrf")):
            return _forbidden(request, ws)
        if ws.actor is not None:  # a copy of this cookie must not stay signed in
            await sess.end(request.app.state.db, ws.data, _now(request))
        fresh = sess.WebSession(sess.new_session(_now(request)), None, dirty=True)
        return _redirect(request, fresh, "/web/sign-in")

    @post("/lang")
    async def set_lang(self, request: Request[Any, Any, Any]) -> Response[Any]:
        ws = await sess.load(request, _now(request))
        form = await request.form()
        if not sess.csrf_ok(ws, form.get("csrf")):
            return _forbidden(request, ws)
        lang = form.get("lang")
        resp = _redirect(request, ws, _safe_next(form.get("next")))
        if lang in i18n.LANGS:
            sess.set_lang_cookie(request, resp, lang)
        return resp

    # ----------------------------------------------------------------- operator console

    @get("/console")
    async def console(self, request: Request[Any, Any, Any]) -> Response[Any]:
        ws, actor, stop = await _guard(request, CONSOLE_ROLES)
        if stop:
            return stop
        assert actor is not None
        return await self._console(request, ws, values=await _new_household(request, actor))

    async def _console(
        self,
        request: Request[Any, Any, Any],
        ws: sess.WebSession,
        *,
        values: dict[str, Any],
        status: int = 200,
        **extra: Any,
    ) -> Response[Any]:
        assert ws.actor is not None
        lang = _lang(request)
        state = request.app.state
        now = state.clock.now()
        # Held places, and those that ended without arriving in the last 12 hours (declined,
        # expired, no-show): an operator must not find out only by calling the shelter. Every
        # place still held is listed, however many ended since (the operator's call-takers
        # share this list).
        recent = now - timedelta(hours=RECENTLY_ENDED_HOURS)
        held, ended = [], []
        for v in await holds_service.list_holds(
            state.db, actor=ws.actor, side="requester", states=["held"], limit=500
        ):
            (held if v.effective_state(now) == "held" else ended).append(v)
        ended += await holds_service.list_holds(
            state.db,
            actor=ws.actor,
            side="requester",
            states=["declined", "expired", "no_show"],
            limit=50,
        )
        ended = [v for v in ended if (v.closed_at or v.deadline) >= recent]
        ended.sort(key=lambda v: v.closed_at or v.deadline, reverse=True)
        # Standing requests (R24: the web console can wait in line too): every one still
        # waiting, then those that got a place, expired or were cancelled in the last 12 hours.
        waiting, closed = [], []
        for v in await standing_service.list_mine(
            state.db, actor=ws.actor, states=["waiting"], limit=500
        ):
            (waiting if v.effective_state(now) == "waiting" else closed).append(v)
        closed += await standing_service.list_mine(
            state.db, actor=ws.actor, states=["offered", "expired", "cancelled"], limit=20
        )
        closed = [
            v for v in closed if min(now, v.closed_at or v.notified_at or v.deadline) >= recent
        ]
        closed.sort(key=lambda v: v.closed_at or v.notified_at or v.deadline, reverse=True)
        standing = [standing_read(v, now) for v in [*waiting, *closed[:10]]]
        # which household each request waits for, or its hold is for (as on the holds)
        households_waiting = {
            v.ref: v.household or (v.hold.household if v.hold is not None else None)
            for v in [*waiting, *closed[:10]]
        }
        return _render(
            request,
            ws,
            "console.html",
            status=status,
            v=values,
            needs=NEEDS,
            language_choices=LANGUAGE_CHOICES,
            health_choices=health_rules.CONDITIONS,
            adult_slots=ADULT_SLOTS,
            child_slots=CHILD_SLOTS,
            adult_shown=ADULT_ROWS_SHOWN,
            child_shown=CHILD_ROWS_SHOWN,
            avoid_slots=AVOID_SLOTS,
            municipalities=_datalist(lang),
            my_holds=[hold_read(v, now) for v in held],
            ended_holds=[hold_read(v, now) for v in ended[:10]],
            # which household each hold is for (an operator may hold for several): its
            # composition, as the operator typed it (never a name)
            households={v.ref: v.household for v in [*held, *ended[:10]] if v.household},
            standing=standing,
            standing_households={k: v for k, v in households_waiting.items() if v},
            # the page keeps looking while a request waits, and while a place is held for one
            # (the place may still decline it: then it is back in line, shown as such)
            standing_waiting=bool(waiting)
            or any(v.offered_hold is not None and v.offered_hold.state == "held" for v in closed),
            standing_hours=STANDING_HOURS,
            default_standing_hours=DEFAULT_STANDING_HOURS,
            carry_form="search-form",
            **{"result": None, "error": None, "error_field": None, **extra},
        )

    @post("/console/lang")
    async def console_lang(self, request: Request[Any, Any, Any]) -> Response[Any]:
        """The language switch on the console: it sends the search form along, so the
        household as typed (and its results, when they were shown) is drawn again in the new
        language rather than an empty form with a new episode token."""
        ws, actor, stop = await _guard(request, CONSOLE_ROLES)
        if stop:
            return stop
        assert actor is not None
        form = await request.form()
        lang = form.get("lang")
        if lang in i18n.LANGS:
            request.scope["abri_lang"] = lang  # type: ignore[typeddict-unknown-key]
        if form.get("shown") == "1":
            resp = await self._search(request, ws, actor, form)
        else:
            resp = await self._console(request, ws, values=_form_values(form))
        if lang in i18n.LANGS:
            sess.set_lang_cookie(request, resp, lang)
        return resp

    @post("/console/search")
    async def search(self, request: Request[Any, Any, Any]) -> Response[Any]:
        ws, actor, stop = await _guard(request, CONSOLE_ROLES)
        if stop:
            return stop
        assert actor is not None
        return await self._search(request, ws, actor, await request.form())

    async def _search(
        self, request: Request[Any, Any, Any], ws: sess.WebSession, actor: Actor, form: Any
    ) -> Response[Any]:
        values = _form_values(form)
        lang = _lang(request)
        _ = i18n.translator(lang)
        state = request.app.state
        try:
            rate_check(state, actor, "search")  # the token's budget, as on the API
            req, _body = search_form_to_request(form)
            found = await search_service.search(
                state.db,
                state.search_cache,
                req,
                requester_kind=requester_kind_of(actor),
                operator_id=actor.operator_id,
                now=state.clock.now(),
                episode_key=state.episode_key,
            )
        except FormError as exc:
            return await self._console(
                request,
                ws,
                values=values,
                status=422,
                error=_form_error(_, exc),
                error_field=exc.field,
            )
        except AbriError as exc:
            return _retry_after(
                exc,
                await self._console(
                    request, ws, values=values, status=exc.status, error=_error_text(_, exc)
                ),
            )
        values = show_resolved_areas(values, lang)
        r = found.result
        options = [
            {
                "o": o,
                "area": display_name(o.area_nis, lang),
                "reasons": [reasons.localise(x, _, LABELS) for x in o.reasons],
                "warnings": [
                    reasons.localise_warning(w.code, w.message, _, LABELS) for w in o.warnings
                ],
                "idem": secrets.token_urlsafe(12),
                "groups": ", ".join(
                    _(LABELS["specialisation"].get(c, c)) for c in o.specialisations
                ),
            }
            for o in r.options
        ]
        exclusions = [
            (n, EXCLUSION_TEXT.get(c, c))
            for c, n in sorted(r.excluded.items(), key=lambda kv: (-kv[1], kv[0]))
        ]
        # only what would help: "0 more options if…" beside "29 places are not free of
        # charge" read as a contradiction (the API keeps every count)
        alternatives = [
            (a.extra_options, RELAX_TEXT.get(a.code, a.message))
            for a in r.alternatives
            if a.extra_options > 0
        ]
        return await self._console(
            request,
            ws,
            values=values,
            result={
                "options": options,
                "exclusions": exclusions,
                "alternatives": alternatives,
                "household_json": msgspec.json.encode(req.household).decode(),
                # the form as typed, for the page that says a hold or a wait was refused
                "typed_json": msgspec.json.encode(values).decode(),
                # no option: the same search can wait in line (a standing request)
                "search_json": "" if r.options else msgspec.json.encode(req).decode(),
                "standing_idem": secrets.token_urlsafe(12),
                "need": req.need,
                "unmet_recorded": found.unmet_recorded,
                "notices": [
                    _(
                        "The preferred area lies in an area to avoid: places are ranked by "
                        "their distance from it. Check the form."
                    )
                    for w in found.notices
                    if w.code == "preferred_area_avoided"
                ],
            },
        )

    @post("/console/hold")
    async def hold(self, request: Request[Any, Any, Any]) -> Response[Any]:
        ws, actor, stop = await _guard(request, CONSOLE_ROLES)
        if stop:
            return stop
        assert actor is not None
        form = await request.form()
        state = request.app.state
        now = state.clock.now()
        try:
            rate_check(state, actor, "hold")  # the token's budget, as on the API
            household = msgspec.json.decode(form.get("household") or "", type=Household)
            minutes = _int(form.get("minutes"), 15, 960, "Minutes: from %(lo)s to %(hi)s.")
            callback = _text(form, "callback", CALLBACK_MAX, CALLBACK_TOO_LONG)
            key = form.get("idem") or ""
            if not re.fullmatch(r"[A-Za-z0-9._:-]{8,128}", key):
                raise FormError("Please check the form.")
            episode = (form.get("episode") or "").strip()
            episode = episode if re.fullmatch(EPISODE_PATTERN, episode) else None
            pool_ref, need = form.get("pool_ref") or "", form.get("need") or "other"
            if need not in NEEDS:  # as the API's NeedCategory: the task force counts by need
                raise FormError("Please check the form.")
            # the results page sent again (the browser's Back) when this household already
            # holds this place: its hold, not a second unit (``already_held``)
            try:
                result = await holds_service.reserve(
                    state.db,
                    pool_ref=pool_ref,
                    household=household,
                    need=need,
                    minutes=minutes,
                    callback=callback,
                    idempotency_key=f"web-{key}",
                    actor=actor,
                    now=now,
                    episode_token=episode,
                    episode_key=state.episode_key,
                )
            except IdempotencyKeyReused:
                # the same hold form (its key) sent again from the page restored by Back, with
                # a callback typed since: for the API a refused key, but the operator never
                # sees the key, and this household's hold is what was meant
                earlier = None
                if episode is not None:
                    earlier = await holds_service.held_for_household(
                        state.db,
                        actor=actor,
                        pool_ref=pool_ref,
                        household=household,
                        need=need,
                        episode_token=episode,
                        now=now,
                        episode_key=state.episode_key,
                    )
                if earlier is None:
                    raise
                result = holds_service.Reserved(earlier, created=False, already_held=True)
        except (msgspec.ValidationError, msgspec.DecodeError, FormError, AbriError) as exc:
            return await self._console_failure(request, ws, exc, _typed_values(form))
        already = "?already=1" if result.already_held else ""
        return _redirect(request, ws, f"/web/console/holds/{quote(result.view.ref)}{already}")

    async def _console_failure(
        self,
        request: Request[Any, Any, Any],
        ws: sess.WebSession,
        exc: Exception,
        typed: dict[str, Any] | None = None,
    ) -> Response[Any]:
        """The console again, saying why a posted hold or wait was refused (nothing written),
        with the household as typed when the refused form carried it."""
        _ = i18n.translator(_lang(request))
        if isinstance(exc, FormError):
            status, error = 422, _form_error(_, exc)
        elif isinstance(exc, AbriError):
            status, error = exc.status, _error_text(_, exc)
        else:  # the hidden household or search did not decode
            status, error = 422, _("Please check the form.")
        values = typed or await _new_household(request, ws.actor)
        page = await self._console(request, ws, values=values, status=status, error=error)
        return _retry_after(exc, page)

    @get("/console/holds/{ref:str}")
    async def hold_page(self, ref: FromPath[str], request: Request[Any, Any, Any]) -> Response[Any]:
        ws, _actor, stop = await _guard(request, CONSOLE_ROLES)
        if stop:
            return stop
        already = request.query_params.get("already") == "1"
        return await self._hold_page(request, ws, ref, already=already)

    async def _hold_page(
        self, request: Request[Any, Any, Any], ws: sess.WebSession, ref: str, **extra: Any
    ) -> Response[Any]:
        assert ws.actor is not None
        state = request.app.state
        _ = i18n.translator(_lang(request))
        status = extra.pop("status", 200)
        try:
            view = await holds_service.get(state.db, ref, actor=ws.actor, side="requester")
        except AbriError:
            return _render(
                request,
                ws,
                "message.html",
                status=404,
                title=_("Not found."),
                message=_("No such hold."),
            )
        now = state.clock.now()
        h = hold_read(view, now)
        return _render(
            request,
            ws,
            "hold.html",
            status=status,
            h=h,
            area=display_name(h.place.area.nis, _lang(request)),
            # what the officer radios to the patrol: the Belgian wall clock, not a countdown
            deadline_text=local_when(h.deadline, _lang(request), now),
            # which household the code is for, to check before reading it out (an operator
            # may hold for several at once; composition only, never a name)
            household=view.household,
            **{"error": None, "already": False, **extra},
        )

    @post("/console/holds/{ref:str}/release")
    async def release(self, ref: FromPath[str], request: Request[Any, Any, Any]) -> Response[Any]:
        return await self._hold_action(request, ref, "release")

    @post("/console/holds/{ref:str}/extend")
    async def extend(self, ref: FromPath[str], request: Request[Any, Any, Any]) -> Response[Any]:
        return await self._hold_action(request, ref, "extend")

    async def _hold_action(
        self, request: Request[Any, Any, Any], ref: str, action: str
    ) -> Response[Any]:
        ws, actor, stop = await _guard(request, CONSOLE_ROLES)
        if stop:
            return stop
        assert actor is not None
        state = request.app.state
        now = state.clock.now()
        try:
            if action == "release":
                await holds_service.transition(state.db, ref, "released", actor=actor, now=now)
                await standing_service.run_round(state.db, state.settings, now=now)
            else:
                await holds_service.extend(state.db, ref, minutes=None, actor=actor, now=now)
        except AbriError as exc:
            _ = i18n.translator(_lang(request))
            # the refusal's own status (409 already changed, 422 not extended), not a 200
            # that reads as done to a script or a tablet's retry
            page = await self._hold_page(
                request, ws, ref, error=_error_text(_, exc), status=exc.status
            )
            return _retry_after(exc, page)
        return _redirect(request, ws, f"/web/console/holds/{quote(ref)}")

    @post("/console/standing")
    async def standing(self, request: Request[Any, Any, Any]) -> Response[Any]:
        """Wait in line for a place for the household a search found nothing for (R24: the
        standing requests of the API, for operators who only have the web pages)."""
        ws, actor, stop = await _guard(request, CONSOLE_ROLES)
        if stop:
            return stop
        assert actor is not None
        form = await request.form()
        state = request.app.state
        try:
            rate_check(state, actor, "hold")  # it may hold a place at once: as POST /holds
            search = msgspec.json.decode(form.get("search") or "", type=SearchRequest)
            hours = _int(
                form.get("hours"), 1, standing_service.MAX_MINUTES // 60, STANDING_HOURS_MSG
            )
            callback = _text(form, "callback", CALLBACK_MAX, CALLBACK_TOO_LONG)
            key = form.get("idem") or ""
            if not re.fullmatch(r"[A-Za-z0-9._:-]{8,128}", key):
                raise FormError("Please check the form.")
            await standing_service.create(
                state.db,
                state.settings,
                request=search,
                minutes=(hours or DEFAULT_STANDING_HOURS) * 60,
                callback=callback,
                idempotency_key=f"web-{key}",  # a double click leaves one request
                actor=actor,
                now=state.clock.now(),
            )
        except (msgspec.ValidationError, msgspec.DecodeError, FormError, AbriError) as exc:
            return await self._console_failure(request, ws, exc, _typed_values(form))
        return _redirect(request, ws, "/web/console#standing")

    @post("/console/standing/{ref:str}/cancel")
    async def cancel_standing(
        self, ref: FromPath[str], request: Request[Any, Any, Any]
    ) -> Response[Any]:
        ws, actor, stop = await _guard(request, CONSOLE_ROLES)
        if stop:
            return stop
        assert actor is not None
        state = request.app.state
        _ = i18n.translator(_lang(request))
        # the console's button sends its search form along: the household being typed (the
        # next caller's) comes back as typed; a bare form (no episode field) is redirected
        form = await request.form()
        typed = _form_values(form) if "episode" in form else None
        try:
            await standing_service.cancel(state.db, ref, actor=actor, now=state.clock.now())
        except IllegalTransition as exc:  # offered or expired meanwhile: the list says which
            error = _("This request has already been answered: see “Waiting for a place”.")
            values = typed or await _new_household(request, actor)
            return await self._console(request, ws, values=values, status=exc.status, error=error)
        except AbriError as exc:
            return await self._console_failure(request, ws, exc, typed)
        if typed is not None:
            return await self._console(request, ws, values=typed)
        return _redirect(request, ws, "/web/console#standing")

    # ----------------------------------------------------------------- staff page

    @get("/staff")
    async def staff(self, request: Request[Any, Any, Any]) -> Response[Any]:
        ws, actor, stop = await _guard(request, STAFF_ROLES)
        if stop:
            return stop
        assert actor is not None
        ok = request.query_params.get("ok")
        _ = i18n.translator(_lang(request))
        notices = {
            "saved": _("Saved."),
            "confirmed": _("Thank you: marked as still accurate."),
            "arrived": _("Marked as arrived."),
            "no_show": _("Marked as no-show."),
            "declined": _("Hold declined."),
            "departed": _("Marked as departed: its places are free again."),
            "revoked": _(
                "Link revoked: it no longer opens the page, and a session it opened ends."
            ),
            "closed": _("Closed to new admissions."),
            "reopened": _("Open again to new admissions."),
            "status": _("Status saved."),
            "compromised": _(
                "Location reported compromised: no new placements, the households on their "
                "way were declined and their requesters told not to come, and the "
                "administrators alerted."
            ),
            "lifted": _(
                "Lifted: the place is open again, offered to helplines and police, and its "
                "alert is acknowledged."
            ),
        }
        return _render(
            request,
            ws,
            "staff.html",
            notice=notices.get(ok or ""),
            conflict=None,
            error=None,
            **await _staff_view(request, actor),
        )

    async def _staff_error(
        self, request: Request[Any, Any, Any], ws: sess.WebSession, status: int, **extra: Any
    ) -> Response[Any]:
        assert ws.actor is not None
        ctx = {"notice": None, "conflict": None, "error": None}
        ctx |= await _staff_view(request, ws.actor)
        ctx |= extra
        return _render(request, ws, "staff.html", status=status, **ctx)

    @post("/staff/pools/{pool_id:int}")
    async def update_pool(
        self, pool_id: FromPath[int], request: Request[Any, Any, Any]
    ) -> Response[Any]:
        ws, actor, stop = await _guard(request, STAFF_ROLES)
        if stop:
            return stop
        assert actor is not None
        form = await request.form()
        state = request.app.state
        now = state.clock.now()
        _ = i18n.translator(_lang(request))
        scope = None if actor.is_admin else actor.operator_id
        action = form.get("action") or "free"
        try:
            version = _int(form.get("version"), 0, 10**12, "Please check the form.")
            if version is None:
                raise FormError("Please check the form.")
            if action == "confirm":
                await availability.confirm_still_accurate(
                    state.db,
                    pool_id,
                    if_match=version,
                    actor=actor,
                    now=now,
                    operator_scope=scope,
                )
                return _redirect(request, ws, f"/web/staff?ok=confirmed#pool-{pool_id}")
            pool = await availability.get_pool(state.db, pool_id, operator_scope=scope)
            total, occupied, held = counts_from_form(form, action, pool)
            await availability.update_availability(
                state.db,
                pool_id,
                AvailabilityUpdate(units_total=total, units_occupied=occupied),
                if_match=version,
                expect_held=held,
                actor=actor,
                now=now,
                operator_scope=scope,
            )
            await standing_service.run_round(state.db, state.settings, now=now)
        except FormError as exc:
            return await self._staff_error(request, ws, 422, error=(pool_id, _form_error(_, exc)))
        except AbriError as exc:
            if exc.code == "version-mismatch":
                return await self._staff_error(
                    request, ws, 409, conflict=(pool_id, _error_text(_, exc))
                )
            if isinstance(exc, NotFound):
                return await self._staff_error(request, ws, 404, error=(pool_id, _("Not found.")))
            return await self._staff_error(
                request, ws, exc.status, error=(pool_id, _error_text(_, exc))
            )
        return _redirect(request, ws, f"/web/staff?ok=saved#pool-{pool_id}")

    @post("/staff/facilities/{facility_id:int}/links")
    async def issue_link(
        self, facility_id: FromPath[int], request: Request[Any, Any, Any]
    ) -> Response[Any]:
        """A one-time link for a night worker, shown once on the page that answers (never in
        a URL of ours: the secret sits after the ``#``), with ``no-store`` like every page."""
        ws, actor, stop = await _guard(request, STAFF_ROLES)
        if stop:
            return stop
        assert actor is not None
        form = await request.form()
        state = request.app.state
        now = state.clock.now()
        _ = i18n.translator(_lang(request))
        label = (form.get("label") or "").strip()
        try:
            hours = _int(form.get("hours"), 1, links.MAX_HOURS, LINK_HOURS_MSG)
            if not label or len(label) > 120:
                raise FormError("Give the link a label of 1 to 120 characters.")
            nonce = form.get("nonce") or ""
            secret, link = await links.issue(
                state.db,
                facility_id,
                label=label,
                hours=links.DEFAULT_HOURS if hours is None else hours,
                actor=actor,
                now=now,
                operator_scope=None if actor.is_admin else actor.operator_id,
                form_nonce=nonce if re.fullmatch(r"[A-Za-z0-9_-]{16,32}", nonce) else None,
            )
        except FormError as exc:
            return await self._staff_error(request, ws, 422, error=(None, _form_error(_, exc)))
        except Conflict:
            return await self._staff_error(request, ws, 409, error=(None, _(links.SENT_TWICE)))
        except AbriError as exc:
            return await self._staff_error(
                request, ws, exc.status, error=(None, _error_text(_, exc))
            )
        view = await _staff_view(request, actor)
        view["issued"] = {
            "facility_id": link.facility_id,
            "label": link.label,
            "url": link_url(request, secret),
        }
        return _render(
            request, ws, "staff.html", status=201, notice=None, conflict=None, error=None, **view
        )

    @post("/staff/facilities/{facility_id:int}/status")
    async def set_status(
        self, facility_id: FromPath[int], request: Request[Any, Any, Any]
    ) -> Response[Any]:
        """Open, close to admissions, reduce or suspend, with a reason (required unless open)
        and an optional end; or report the location compromised (a reason, and the box ticked
        that confirms it), which declines the holds still held there as the API does. A
        facility whose location is compromised is left alone by staff (409); an admin may set
        it any status from a form drawn on its compromised card (``shown``)."""
        ws, actor, stop = await _guard(request, STAFF_ROLES)
        if stop:
            return stop
        assert actor is not None
        form = await request.form()
        state = request.app.state
        now = state.clock.now()
        _ = i18n.translator(_lang(request))
        status = form.get("status") or ""
        reason = (form.get("reason") or "").strip()
        here = f"status-{facility_id}"
        typed = {
            "facility_id": facility_id,
            "status": status,
            "reason": reason,
            "until_date": (form.get("until_date") or "").strip()[:10],
            "until_time": (form.get("until_time") or "").strip()[:8],
            "compromised": status == COMPROMISED,
        }
        try:
            if status == COMPROMISED:
                if form.get("confirm") != "yes":
                    raise FormError(
                        "Tick the box to confirm that the location is compromised. Nothing "
                        "was changed."
                    )
            elif status not in WEB_STATUSES:
                raise FormError("Please check the form.")
            given = _text(form, "reason", STATUS_REASON_MAX, REASON_TOO_LONG)
            opening = status == "open"
            # an admin may change a compromised place's status, from a form drawn on its card
            # ("shown"): one drawn before the report must not lift it unawares
            lifting = actor.is_admin and form.get("shown") == COMPROMISED
            # the API's path: a compromised location declines the holds still held there
            await holds_service.set_facility_status(
                state.db,
                facility_id,
                StatusChange(
                    status=status,  # type: ignore[arg-type]
                    # a reopening drops the form's old reason, a lift keeps why (audit)
                    reason=None if opening and not lifting else given,
                    until=None if opening or status == COMPROMISED else until_from_form(form),
                ),
                actor=actor,
                now=now,
                operator_scope=None if actor.is_admin else actor.operator_id,
                refuse_from=() if lifting else ("location_compromised",),
            )
            await standing_service.run_round(state.db, state.settings, now=now)  # next in line
        except FormError as exc:
            return await self._staff_error(
                request, ws, 422, error=(here, _form_error(_, exc)), status_form=typed
            )
        except NotFound:
            return await self._staff_error(request, ws, 404, error=(None, _("Not found.")))
        except (InvalidInput, Conflict) as exc:
            if exc.detail == registry.STATUS_KEPT and actor.is_admin:
                # said to an admin, "only an administrator lifts it" was no answer
                text = _(COMPROMISED_SINCE)
            else:
                text = _(exc.detail) if exc.detail in STATUS_MSGIDS else _error_text(_, exc)
            return await self._staff_error(
                request, ws, exc.status, error=(here, text), status_form=typed
            )
        except AbriError as exc:
            return await self._staff_error(
                request, ws, exc.status, error=(here, _error_text(_, exc)), status_form=typed
            )
        ok = {"open": "reopened", "closed_to_admissions": "closed", COMPROMISED: "compromised"}.get(
            status, "status"
        )
        return _redirect(request, ws, f"/web/staff?ok={ok}#status-{facility_id}")

    @post("/staff/facilities/{facility_id:int}/lift")
    async def lift_compromised(
        self, facility_id: FromPath[int], request: Request[Any, Any, Any]
    ) -> Response[Any]:
        """An administrator lifts ``location_compromised``: the place reopens (a reason and the
        box ticked that confirms it), the admin API's path (``PUT
        /admin/facilities/{id}/status``): audited as the admin's, the place's alert
        acknowledged, then the round that gives it to the request waiting in line. Staff get
        409, as from the status form: only an administrator lifts it."""
        ws, actor, stop = await _guard(request, STAFF_ROLES)
        if stop:
            return stop
        assert actor is not None
        _ = i18n.translator(_lang(request))
        if not actor.is_admin:
            return await self._staff_error(
                request, ws, 409, error=(f"status-{facility_id}", _(registry.STATUS_KEPT))
            )
        form = await request.form()
        state = request.app.state
        now = state.clock.now()
        reason = (form.get("reason") or "").strip()
        here = f"lift-{facility_id}"
        typed = {"facility_id": facility_id, "lift": True, "reason": reason}
        try:
            if form.get("confirm") != "yes":
                raise FormError(
                    "Tick the box to confirm that the place is safe again. Nothing was changed."
                )
            given = _text(form, "reason", STATUS_REASON_MAX, REASON_TOO_LONG)
            await holds_service.set_facility_status(
                state.db,
                facility_id,
                StatusChange(status="open", reason=given),
                actor=actor,
                now=now,
                lift=True,
            )
            await standing_service.run_round(state.db, state.settings, now=now)  # next in line
        except FormError as exc:
            return await self._staff_error(
                request, ws, 422, error=(here, _form_error(_, exc)), status_form=typed
            )
        except NotFound:
            return await self._staff_error(request, ws, 404, error=(None, _("Not found.")))
        except InvalidInput as exc:
            text = _(exc.detail) if exc.detail in STATUS_MSGIDS else _error_text(_, exc)
            return await self._staff_error(
                request, ws, exc.status, error=(here, text), status_form=typed
            )
        except AbriError as exc:  # lifted meanwhile: said on the card, whatever it shows now
            text = _(exc.detail) if exc.detail in STATUS_MSGIDS else _error_text(_, exc)
            return await self._staff_error(
                request, ws, exc.status, error=(f"status-{facility_id}", text)
            )
        return _redirect(request, ws, f"/web/staff?ok=lifted#status-{facility_id}")

    @post("/staff/links/{link_id:int}/revoke")
    async def revoke_link(
        self, link_id: FromPath[int], request: Request[Any, Any, Any]
    ) -> Response[Any]:
        ws, actor, stop = await _guard(request, STAFF_ROLES)
        if stop:
            return stop
        assert actor is not None
        state = request.app.state
        _ = i18n.translator(_lang(request))
        try:
            link = await links.revoke(
                state.db,
                link_id,
                actor=actor,
                now=state.clock.now(),
                operator_scope=None if actor.is_admin else actor.operator_id,
            )
        except AbriError as exc:
            return await self._staff_error(
                request, ws, exc.status, error=(None, _error_text(_, exc))
            )
        return _redirect(request, ws, f"/web/staff?ok=revoked#links-{link.facility_id}")

    @post("/staff/holds/{ref:str}/{action:str}")
    async def staff_hold(
        self, ref: FromPath[str], action: FromPath[str], request: Request[Any, Any, Any]
    ) -> Response[Any]:
        ws, actor, stop = await _guard(request, STAFF_ROLES)
        if stop:
            return stop
        assert actor is not None
        target = {
            "arrived": "arrived",
            "no-show": "no_show",
            "decline": "declined",
            "departed": "departed",
        }.get(action)
        _ = i18n.translator(_lang(request))
        if target is None:
            return await self._staff_error(request, ws, 404, error=(None, _("Not found.")))
        form = await request.form()
        state = request.app.state
        now = state.clock.now()
        try:
            reason = _text(form, "reason", HOLD_REASON_MAX, REASON_TOO_LONG)
        except FormError as exc:
            return await self._staff_error(request, ws, 422, error=(None, _form_error(_, exc)))
        if target == "declined" and not reason:
            return await self._staff_error(
                request, ws, 422, error=(None, _("Give a reason for declining."))
            )
        try:
            done = await holds_service.transition_ex(
                state.db, ref, target, actor=actor, now=now, reason=reason
            )
            if done.someone_waiting:  # no-show, decline, departure: a place freed
                await standing_service.run_round(state.db, state.settings, now=now)
        except AbriError as exc:
            return await self._staff_error(
                request, ws, exc.status, error=(None, _error_text(_, exc))
            )
        where = "#in-house-live" if target == "departed" else ""
        return _redirect(request, ws, f"/web/staff?ok={target}{where}")

    @get("/staff/stream")
    async def staff_stream(
        self, request: Request[Any, Any, Any]
    ) -> Response[Any] | ServerSentEvent:
        _ws, actor, stop = await _guard(request, STAFF_ROLES)
        if stop:
            return stop
        assert actor is not None
        state = request.app.state
        last = request.headers.get("last-event-id")
        start = resume_from(last)

        async def alive() -> bool:  # signed out, or the token revoked: the stream ends
            return await sess.still_valid(state.db, _ws.data, state.clock.now())

        events = hold_event_stream(state.db, actor, state.clock, start, 300, alive=alive)
        try:  # the same slots as the API's stream: one budget per token
            stream = ServerSentEvent(open_stream(state, ("token", actor.token_id), events))
        except RateLimited as exc:
            return sess.refused_stream(exc)
        for name, value in sess.SECURITY_HEADERS.items():
            stream.headers[name] = value
        return stream


static_files = create_static_files_router(
    path="/static/web",
    directories=[HERE / "static"],
    name="web-static",
    include_in_schema=False,
    send_as_attachment=False,
)

WEB_HANDLERS: list[Any] = [WebController, static_files]
