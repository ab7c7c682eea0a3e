"""Cross-origin calls from web apps in a browser (CORS), for the origins the settings name.

Callers sign in with bearer tokens or API keys, never cookies, so no credentials mode: a page
on another origin can use only a token it was given."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
REQUEST_HEADERS = ["Authorization", "X-API-Key", "Content-Type", "Accept", "If-Match",
                   "If-None-Match", "If-Range", "Range", "X-Request-Id", "Idempotency-Key"]
RESPONSE_HEADERS = ["ETag", "Location", "Retry-After", "X-Request-Id", "Content-Range",
                    "Accept-Ranges", "Content-Disposition", "Allow", "RateLimit-Limit",
                    "RateLimit-Remaining", "RateLimit-Reset", "RateLimit-Policy",
                    "X-Missing-Media", "X-Missing-Media-Count", "X-Lesson-Count"]


def install_cors(app: FastAPI, origins: Sequence[str]) -> None:
    """Outside every other middleware, so a preflight is answered before anything reads it."""
    app.add_middleware(CORSMiddleware, allow_origins=list(origins), allow_methods=METHODS,
                       allow_headers=REQUEST_HEADERS, expose_headers=RESPONSE_HEADERS,
                       max_age=600)
