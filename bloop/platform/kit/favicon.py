"""Bloop's icon: linked inline by each of the app's pages, and at `/favicon.ico` for what a
browser shows without a page of ours (a JSON answer), which would otherwise ask for it and get a
404."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter
from fastapi.responses import Response

FAVICON_URL = "/favicon.ico"
SVG = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">'
       '<rect width="32" height="32" rx="7" fill="#1f3a8a"/>'
       '<circle cx="15" cy="18" r="8" fill="none" stroke="#fff" stroke-width="3.5"/>'
       '<circle cx="24" cy="8" r="3" fill="#fff"/></svg>')
# For `<link rel="icon" href=...>`: no request at all, and right under any root path.
DATA_URL = "data:image/svg+xml," + quote(SVG)


def favicon_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get(FAVICON_URL)
    async def favicon() -> Response:
        return Response(SVG, media_type="image/svg+xml",
                        headers={"cache-control": "public, max-age=86400"})

    return router
