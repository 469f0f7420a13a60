"""Server-rendered pages for shelter staff and helpline/police operators (issue 7)."""

from api.web.controllers import WEB_HANDLERS

__all__ = ["WEB_HANDLERS"]
