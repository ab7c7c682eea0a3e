"""The API's documentation pages, Swagger UI at `/docs` and ReDoc at `/redoc`, with their scripts
and styles served by the app itself (from the `fastapi-offline` package), so they work on a
machine without internet access, where FastAPI's own pages would load them from a CDN. ReDoc's
script is sent with the one address it would still load, its logo's on cdn.redoc.ly, taken
out."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.staticfiles import NotModifiedResponse
from starlette.types import Scope

from bloop.platform.kit.favicon import DATA_URL as ICON

ASSETS = Path(fastapi_offline.__file__).parent / "static"
ASSETS_URL = "/docs/assets"
SWAGGER_URL = "/docs"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"
REDOC_URL = "/redoc"
REDOC_JS = "redoc.standalone.js"
# The image beside "API docs by Redocly" at the foot of ReDoc's menu (there is no option to leave
# it out); with no address it is not asked for, and ReDoc hides it when it fails to load.
REDOC_LOGO = b'"https://cdn.redoc.ly/redoc/logo-mini.svg"'


class DocsAssets(StaticFiles):
    """The pages' files, ReDoc's script without its logo's address."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if path != REDOC_JS or response.status_code != 200:
            return response
        etag = '"{}-nologo"'.format(response.headers["etag"].strip('"'))
        headers = {"etag": etag, "last-modified": response.headers["last-modified"]}
        if self.is_not_modified(Headers(headers), Headers(scope=scope)):
            return NotModifiedResponse(Headers(headers))
        return Response(redoc_script(), media_type=response.media_type, headers=headers)


@cache
def redoc_script() -> bytes:
    return (ASSETS / REDOC_JS).read_bytes().replace(REDOC_LOGO, b'""')


def with_lang(page: HTMLResponse) -> HTMLResponse:
    """FastAPI's page with the language its `<html>` lacks."""
    return HTMLResponse(bytes(page.body).decode().replace("<html>", '<html lang="en">', 1))


def install_docs(app: FastAPI, *, sign_in_tenant: str | None = None) -> None:
    """For an app made with `docs_url=None, redoc_url=None`. Swagger UI's Authorize dialog signs
    in to `sign_in_tenant` (the token request names its tenant; the dialog has no field for it)."""
    app.mount(ASSETS_URL, DocsAssets(directory=ASSETS), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"
    init_oauth = ({"additionalQueryStringParams": {"tenant": sign_in_tenant}}
                  if sign_in_tenant else None)

    @app.get(SWAGGER_URL, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return with_lang(get_swagger_ui_html(
            openapi_url=root + openapi_url, title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=root + OAUTH2_REDIRECT_URL,
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css", swagger_favicon_url=ICON,
            init_oauth=init_oauth, swagger_ui_parameters=app.swagger_ui_parameters))

    @app.get(OAUTH2_REDIRECT_URL, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get(REDOC_URL, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return with_lang(get_redoc_html(
            openapi_url=root + openapi_url, title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS_URL}/{REDOC_JS}", redoc_favicon_url=ICON,
            with_google_fonts=False))
