"""Headers for a stored file served inline (media, AI outputs): browsers take it as the type it
is sent as, never as one sniffed from its bytes, and an SVG may neither run script nor load
anything."""

from __future__ import annotations

SVG_POLICY = "default-src 'none'; style-src 'unsafe-inline'; sandbox"


def safety_headers(content_type: str) -> dict[str, str]:
    headers = {"X-Content-Type-Options": "nosniff"}
    if content_type.split(";", 1)[0].strip().lower() == "image/svg+xml":
        headers["Content-Security-Policy"] = SVG_POLICY
    return headers
