"""The one place every JSON request body passes through before a route sees it.

A NUL character (``\\u0000``) in a text is valid JSON, but PostgreSQL cannot store it and
SQLite stores it as sent: the same request must not be a 422 on one database and saved on the
other. Litestar decodes each JSON body with ``Request.json()`` before converting it to the
route's type, so that is where a NUL anywhere in the body (a value or a key, at any depth) is
refused, with the path of the text, before anything is read or written. So is a control or
bidi character a text may not hold (``capacity.text``: a bell, an escape, a U+202E copied
with a callback number), named by its path and the character.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from litestar import Request

from capacity.errors import InvalidInput, UnsupportedMediaType
from capacity.text import check_text, shown_field

#: The sentence for a text holding a NUL character, on both databases (and for a NUL that
#: reaches PostgreSQL some other way, see ``api.errors.handle_database_value``).
NUL_IN_TEXT = (
    "A text in the request contains a NUL character (\\u0000), which cannot be stored; "
    "nothing was saved."
)


def nul_path(value: Any) -> str | None:
    """The path of the first text in a decoded JSON value that holds a NUL character, as the
    client wrote it (``reason``, ``pools[0].label``; ``""`` for a top-level text), else None.
    Iterative: a deeply nested body must not recurse here."""
    todo: list[tuple[str, Any]] = [("", value)]
    while todo:
        path, item = todo.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return path
        elif isinstance(item, dict):
            for key, inner in item.items():
                here = f"{path}.{key}" if path else str(key)
                if "\x00" in str(key):
                    return path or here
                todo.append((here, inner))
        elif isinstance(item, list):
            todo.extend((f"{path}[{i}]", inner) for i, inner in enumerate(item))
    return None


def texts(value: Any) -> Iterator[tuple[str, str]]:
    """Every text of a decoded JSON value, keys included, with its path as in ``nul_path``
    (a key is named by its own path), in the order the body gives them. Iterative, like
    ``nul_path``."""
    todo: list[tuple[str, Any]] = [("", value)]
    while todo:
        path, item = todo.pop()
        if isinstance(item, str):
            yield path, item
        elif isinstance(item, dict):
            later: list[tuple[str, Any]] = []
            for key, inner in item.items():
                here = f"{path}.{key}" if path else str(key)
                later.append((here, str(key)))  # the key, then its value
                later.append((here, inner))
            todo.extend(reversed(later))  # popped first to last
        elif isinstance(item, list):
            todo.extend(reversed([(f"{path}[{i}]", inner) for i, inner in enumerate(item)]))


#: A byte of a JSON body that may begin a character some text may not hold: an escape (``\\t``,
#: ``\\u202e``), DEL, or any byte of a non-ASCII character. (A raw control byte is not valid
#: inside a JSON text, so the decoder refused it: here it is whitespace between tokens, the
#: line breaks and indentation of a pretty-printed body.)
_MAYBE_REFUSED = re.compile(rb"[\\\x7f-\xff]")


def _printable(value: Any) -> bool:
    """Whether every text of a decoded JSON value, keys included, is printable (accents
    and all): then none holds a character ``capacity.text`` refuses. No paths are made."""
    todo: list[Any] = [value]
    while todo:
        item = todo.pop()
        if isinstance(item, str):
            if not item.isprintable():
                return False
        elif isinstance(item, dict):
            for key, inner in item.items():
                if not str(key).isprintable():
                    return False
                todo.append(inner)
        elif isinstance(item, list):
            todo.extend(item)
    return True


def refuse_bad_text(value: Any, raw: bytes) -> None:
    """A 422 naming the first text of a JSON body holding a character it may not
    (``capacity.text``). A body of printable ASCII without an escape holds none: no walk; nor
    does one whose texts are all printable: no walk with paths (a name's accents, a
    pretty-printed body cost a hold ~10 % of its CPU)."""
    if _MAYBE_REFUSED.search(raw) is None or _printable(value):
        return
    for path, text in texts(value):
        refused = check_text(text, path or "body")
        if refused is not None:
            raise InvalidInput(refused, field=shown_field(path) if path else None)


#: What a JSON route takes, said when a body comes as something else.
JSON_ONLY = (
    "This route takes a JSON body: send it with Content-Type: application/json "
    "(UTF-8, the only encoding of JSON); {got}. Nothing was saved."
)


def refuse_other_media_type(content_type: tuple[str, dict[str, str]]) -> None:
    """A 415 for a body that does not say it is JSON in UTF-8: ``text/plain``, a form, no
    ``Content-Type`` at all or ``charset=latin-1`` were parsed as JSON anyway, and a Latin-1
    ``é`` became whatever UTF-8 made of it. ``application/json`` with ``charset=utf-8`` (any
    case) and ``application/*+json`` are JSON."""
    media_type, options = content_type
    media_type = media_type.strip().lower()
    charset = options.get("charset", "utf-8").strip().strip('"').lower()
    if not media_type:
        raise UnsupportedMediaType(JSON_ONLY.format(got="it came without a Content-Type"))
    is_json = media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )
    if not is_json:
        raise UnsupportedMediaType(JSON_ONLY.format(got=f"it came as {media_type[:100]}"))
    if charset not in ("utf-8", "utf8"):
        raise UnsupportedMediaType(JSON_ONLY.format(got=f"it came as charset={charset[:40]}"))


class AbriRequest(Request[Any, Any, Any]):
    async def json(self) -> Any:
        if await self.body():  # no body: the route says what it needs
            refuse_other_media_type(self.content_type)
        value = await super().json()
        # a NUL in a JSON text is always written escaped: no escape, no walk
        if b"\\u0000" in await self.body():
            where = nul_path(value)
            if where is not None:
                raise InvalidInput(
                    f"{where}: {NUL_IN_TEXT}" if where else NUL_IN_TEXT, field=where or None
                )
        refuse_bad_text(value, await self.body())
        return value


async def refuse_nul_in_query(request: Request[Any, Any, Any]) -> None:
    """The same for the query string of an API route (``?action=a%00b`` was an empty answer
    on SQLite and a refusal from PostgreSQL's driver), and for a control or bidi character
    (``capacity.text``: a query parameter is one line): named by its parameter. The web pages
    answer their own forms and links with a page."""
    query = request.scope.get("query_string", b"")
    if b"%" not in query and query.isascii():  # no escape, no control: no parsing
        return
    if request.scope["path"].startswith("/web/"):
        return
    for name, value in request.query_params.multi_items():
        if "\x00" in name or "\x00" in value:
            raise InvalidInput(f"{name}: {NUL_IN_TEXT}", field=name)
        refused = check_text(name, name) or check_text(value, name)
        if refused is not None:
            raise InvalidInput(refused, field=shown_field(name))
