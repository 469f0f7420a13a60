"""Cookie sessions for the web pages: signed, expiring, with a CSRF secret.

The cookie holds no token: after sign-in it carries the token's *id*, the role and operator,
times and a CSRF secret, signed with HMAC-SHA256. Every request re-checks that the token is
still valid (not revoked, not expired), so revoking a token ends its web sessions too.
Signing out is final: the session's id is remembered (``web_sessions_ended``) until the
cookie would have expired, so a copy of the cookie left on a shared computer is refused.

* Absolute lifetime 12 h; idle limit 30 min for helpline/police/admin/task force consoles,
  12 h for shelter staff (a phone on a night shift). Only what the user does slides the idle
  window: the pages' own looks for news (a hold page, a waiting list every 15 s; the script
  sends ``X-Abri-Background: 1``) do not, or a console left open would stay signed in 12 h.
* A one-time link (``capacity.links``) opens a session of kind "link": it carries the link id
  and its one facility, no token; it ends with the link's expiry or revocation (re-checked on
  every request), and no page but the link page admits it.
* ``HttpOnly``, ``SameSite=Strict``, ``Path=/web``; ``Secure`` (and the ``__Host-`` prefix
  is not used because the path is scoped) whenever the request arrived over https — uvicorn
  behind a TLS proxy with ``--proxy-headers`` reports ``https`` — or when
  ``ABRI_WEB_SECURE_COOKIES=1`` forces it. A plain-http local demo therefore still works.
* The signing key is ``ABRI_SESSION_KEY`` if set, otherwise derived from the address key
  (so every API process of one deployment accepts the same cookies). While an address key is
  being rotated (a new key first, the old ones after it), a cookie signed with a key derived
  from an older one is still accepted and signed again with the newest: the rotation signs
  nobody out (a night worker's one-time link cannot be opened a second time).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
from litestar import Request, Response
from sqlalchemy import exists, select
from sqlalchemy.exc import IntegrityError

from capacity import links
from capacity.audit import Actor
from capacity.db import Database
from capacity.errors import RateLimited
from capacity.models import EndedWebSession, Operator, Token
from capacity.settings import SWITCH_OFF, Settings

COOKIE = "abri_session"
LANG_COOKIE = "abri_lang"
COOKIE_PATH = "/web"
ABSOLUTE_SECONDS = 12 * 3600
IDLE_SECONDS = {"staff": 12 * 3600, links.LINK_ROLE: 12 * 3600}
DEFAULT_IDLE_SECONDS = 30 * 60
#: Sent by the pages' script on the requests it makes by itself (abri.js ``fetchPage``).
BACKGROUND_HEADER = "x-abri-background"
#: ... with the mark of the session the page was drawn for (``page_mark``, the body's
#: ``data-session``): a tab left open across a sign-out and a sign-in as someone else.
PAGE_HEADER = "x-abri-page"

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; object-src 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


def refused_stream(exc: RateLimited) -> Response[str]:
    """A live stream refused (too many open with this token or link): 429 with
    ``Retry-After``. The page's script keeps the page as it is and says live updates are off."""
    headers = {**SECURITY_HEADERS, "Retry-After": str(exc.extra["retry_after"])}
    return Response(str(exc), status_code=429, media_type="text/plain", headers=headers)


class SessionData(msgspec.Struct, kw_only=True, omit_defaults=True):
    sid: str
    csrf: str
    iat: int
    seen: int
    tid: int | None = None
    role: str | None = None
    op: int | None = None
    opk: str | None = None
    opn: str | None = None  # operator name, shown in the header
    lnk: int | None = None  # one-time link session: the link's id ...
    fac: int | None = None  # ... and its one facility


@dataclass
class WebSession:
    data: SessionData
    actor: Actor | None
    dirty: bool = False
    link: links.LinkScope | None = None  # set for a one-time link session only


def session_keys(settings: Settings) -> list[bytes]:
    """The keys cookies are checked with, the one they are signed with first: one per address
    key (newest first), so rotating the address key signs nobody out."""
    explicit = os.environ.get("ABRI_SESSION_KEY")
    if explicit:
        materials = [explicit.encode()]
    elif settings.address_key:
        materials = [k.strip().encode() for k in settings.address_key.split(",") if k.strip()]
    else:
        path = Path(settings.address_key_file)
        materials = [path.read_bytes().strip()] if path.exists() else []
    materials = [m for m in materials if m]
    if not materials:  # no key anywhere: sessions last as long as this process
        materials = [_PROCESS_KEY]
    return [hashlib.sha256(b"abri-web-session-v1\x00" + m).digest() for m in materials]


def session_key(settings: Settings) -> bytes:
    """The key new cookies are signed with."""
    return session_keys(settings)[0]


_PROCESS_KEY = secrets.token_bytes(32)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(key: bytes, payload: bytes) -> str:
    body = _b64(payload)
    mac = hmac.new(key, body.encode(), hashlib.sha256).digest()
    return f"{body}.{_b64(mac)}"


def unsign(key: bytes, value: str, *, max_len: int = 2000) -> bytes | None:
    if not value or len(value) > max_len or value.count(".") != 1:
        return None
    body, mac = value.split(".")
    expected = hmac.new(key, body.encode(), hashlib.sha256).digest()
    try:
        if not hmac.compare_digest(_unb64(mac), expected):
            return None
        return _unb64(body)
    except (ValueError, TypeError):
        return None


def secure_cookies(request: Request[Any, Any, Any]) -> bool:
    # read as the other switches (settings: 0/false/no/off in any case is off); a value that
    # is neither was refused at start (Settings.from_env), so anything else here is on
    raw = os.environ.get("ABRI_WEB_SECURE_COOKIES", "").strip().lower()
    forced = raw not in ("", *SWITCH_OFF)
    return forced or request.url.scheme == "https"


def new_session(now: datetime) -> SessionData:
    t = int(now.timestamp())
    return SessionData(sid=secrets.token_urlsafe(16), csrf=secrets.token_urlsafe(24), iat=t, seen=t)


def _ended(sid: str) -> Any:
    return exists().where(EndedWebSession.sid == sid)


async def end(db: Database, data: SessionData, now: datetime) -> None:
    """Sign out for good: remember this session's id until its cookie would have expired."""
    until = datetime.fromtimestamp(data.iat + ABSOLUTE_SECONDS, UTC)
    if until <= now:
        return
    try:
        async with db.write() as s:
            s.add(EndedWebSession(sid=data.sid, until=until))
    except IntegrityError:  # signed out twice at the same moment: ended all the same
        pass


async def _actor_for(db: Database, data: SessionData, now: datetime) -> Actor | None:
    if data.tid is None:
        return None
    async with db.read() as s:
        row = (
            await s.execute(
                select(
                    Token.revoked_at,
                    Token.expires_at,
                    Token.role,
                    Token.operator_id,
                    _ended(data.sid).label("ended"),
                ).where(Token.id == data.tid)
            )
        ).first()
    if row is None or row.revoked_at is not None or row.ended:
        return None
    if row.expires_at is not None and row.expires_at <= now:
        return None
    if row.role != data.role or row.operator_id != data.op:
        return None
    return Actor(
        operator_id=row.operator_id, role=row.role, token_id=data.tid, operator_kind=data.opk
    )


async def _is_ended(db: Database, sid: str) -> bool:
    async with db.read() as s:
        return bool(await s.scalar(select(_ended(sid))))


async def still_valid(db: Database, data: SessionData, now: datetime) -> bool:
    """Whether a session loaded earlier still stands (not signed out; its token not revoked,
    or its link not revoked or expired): for the live streams, which outlast one request."""
    if data.lnk is not None:
        scope = await links.session_scope(db, data.lnk, data.fac or 0, now)
        return scope is not None and not await _is_ended(db, data.sid)
    return await _actor_for(db, data, now) is not None


def is_background(request: Request[Any, Any, Any]) -> bool:
    """Whether the page's script sent this request by itself (a look for news), not the user."""
    return request.headers.get(BACKGROUND_HEADER) == "1"


def page_mark(data: SessionData) -> str:
    """Which session a page was drawn for, as the page may show it: a hash of the session's
    id (never the id itself, which a copy of the cookie would need)."""
    return hashlib.sha256(b"abri-page\x00" + data.sid.encode()).hexdigest()[:24]


def drawn_for_another(request: Request[Any, Any, Any], data: SessionData) -> bool:
    """Whether the page's own look for news comes from a page drawn for another session than
    the one signed in now (signed out, and in again, in another tab)."""
    mark = request.headers.get(PAGE_HEADER)
    if not mark or not is_background(request):
        return False
    return not hmac.compare_digest(mark.encode(), page_mark(data).encode())


async def load(request: Request[Any, Any, Any], now: datetime) -> WebSession:
    """The visitor's session (a fresh anonymous one if none, expired or tampered with)."""
    state = request.app.state
    cookie = request.cookies.get(COOKIE, "")
    raw, resign = None, False
    for i, key in enumerate(session_keys(state.settings)):
        raw = unsign(key, cookie)
        if raw is not None:
            resign = i > 0  # signed with an older key: sign it again with the newest
            break
    data: SessionData | None = None
    if raw is not None:
        try:
            data = msgspec.json.decode(raw, type=SessionData)
        except msgspec.DecodeError:
            data = None
    t = int(now.timestamp())
    if data is not None:
        idle = IDLE_SECONDS.get(data.role or "", DEFAULT_IDLE_SECONDS)
        if t - data.iat > ABSOLUTE_SECONDS or t - data.seen > idle or t < data.iat - 300:
            data = None
    if data is None:
        return WebSession(new_session(now), None, dirty=True)
    scope = None
    if data.lnk is not None:
        scope = await links.session_scope(state.db, data.lnk, data.fac or 0, now)
        if scope is not None and await _is_ended(state.db, data.sid):
            scope = None  # signed out
        if scope is None:  # link revoked or expired: the session ends with it
            return WebSession(new_session(now), None, dirty=True)
        actor: Actor | None = scope.actor
    else:
        actor = await _actor_for(state.db, data, now)
    if data.tid is not None and actor is None:  # token revoked or expired: signed out
        return WebSession(new_session(now), None, dirty=True)
    ws = WebSession(data, actor, link=scope, dirty=resign)
    # slide the idle window, at most once a minute, for what the user did (not the page itself)
    if actor is not None and t - data.seen >= 60 and not is_background(request):
        data.seen = t
        ws.dirty = True
    return ws


async def sign_in(db: Database, actor: Actor, now: datetime) -> SessionData:
    """A brand-new session (new id and CSRF secret: no fixation) for this actor."""
    async with db.read() as s:
        name = await s.scalar(select(Operator.name).where(Operator.id == actor.operator_id))
    data = new_session(now)
    data.tid, data.role, data.op, data.opk, data.opn = (
        actor.token_id,
        actor.role,
        actor.operator_id,
        actor.operator_kind,
        name,
    )
    return data


def sign_in_link(opened: links.Exchange, now: datetime) -> SessionData:
    """A brand-new session for an opened one-time link: one facility, no token."""
    assert opened.link is not None and opened.refused is None
    data = new_session(now)
    data.role, data.op, data.opn = links.LINK_ROLE, opened.operator_id, opened.facility_alias
    data.lnk, data.fac = opened.link.id, opened.link.facility_id
    return data


def csrf_ok(ws: WebSession, submitted: str | None) -> bool:
    return bool(submitted) and hmac.compare_digest(ws.data.csrf.encode(), str(submitted).encode())


def apply(
    request: Request[Any, Any, Any],
    response: Response[Any],
    ws: WebSession | None,
    *,
    clear: bool = False,
) -> Response[Any]:
    """Security headers on every page; the session cookie when it changed (or cleared)."""
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
    secure = secure_cookies(request)
    if clear:
        response.delete_cookie(COOKIE, path=COOKIE_PATH)
    if ws is not None and ws.dirty:
        key = session_key(request.app.state.settings)
        response.set_cookie(
            COOKIE,
            sign(key, msgspec.json.encode(ws.data)),
            path=COOKIE_PATH,
            max_age=ABSOLUTE_SECONDS,
            httponly=True,
            secure=secure,
            samesite="strict",
        )
    return response


def set_lang_cookie(request: Request[Any, Any, Any], response: Response[Any], lang: str) -> None:
    response.set_cookie(
        LANG_COOKIE,
        lang,
        path=COOKIE_PATH,
        max_age=365 * 24 * 3600,
        httponly=True,
        secure=secure_cookies(request),
        samesite="strict",
    )
