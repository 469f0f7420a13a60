"""The API documentation page (Swagger UI) with its files served by Abri itself.

Admins paste their tokens into this page (an admin token reads every secret address). Litestar's
default page loads Swagger UI's scripts and a favicon from a public CDN, so whoever controls
what the CDN serves could run code in the page and read the token. Here the files come from
the ``swagger-ui-py`` package, served under ``/static/swagger/``, and the page carries a
Content-Security-Policy that lets it load or send nothing anywhere else.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.static_files import create_static_files_router

ASSETS = "/static/swagger"
_DIR = Path(str(files("swagger_ui") / "static"))

#: The page's inline script holds the whole OpenAPI document (and Swagger UI sets inline
#: styles), hence 'unsafe-inline'; scripts, styles, images and requests from other hosts are
#: refused, and nothing may frame the page.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)

swagger_assets = create_static_files_router(
    path=ASSETS,
    directories=[_DIR],
    name="swagger-static",
    include_in_schema=False,
    send_as_attachment=False,
)


def swagger_plugin() -> SwaggerRenderPlugin:
    return SwaggerRenderPlugin(
        js_url=f"{ASSETS}/swagger-ui-bundle.js",
        css_url=f"{ASSETS}/swagger-ui.css",
        standalone_preset_js_url=f"{ASSETS}/swagger-ui-standalone-preset.js",
        favicon=f"<link rel='icon' type='image/png' href='{ASSETS}/favicon-32x32.png'>",
    )
