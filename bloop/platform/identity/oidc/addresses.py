"""Which of a provider's addresses Bloop may use: https ones (http on loopback when the operator
allows it), without a user name or password, and, unless the operator allows them, none of this
machine or a private network."""

from __future__ import annotations

from urllib.parse import urlsplit

from bloop.platform.identity.oidc.problems import refuse
from bloop.platform.kit.errors import Problem
from bloop.platform.kit.settings import OidcSettings
from bloop.platform.kit.urls import (
    USERINFO_PROBLEM,
    has_userinfo,
    http_url_problem,
    loopback,
    private_address_problem,
)


async def check_url(settings: OidcSettings, url: str, *, at_use: bool = True,
                    field: str | None = None) -> None:
    """Refuses an address of the provider's that is no https URL, holds a user name or
    password, or (unless the operator allows it) is of this machine or a private network:
    422 when given, 502 when used (a discovery document's, or a name that resolves elsewhere
    since)."""
    status, invalid = (502, "oidc_provider_unavailable") if at_use else (
        422, "oidc_config_invalid")
    check_web_address(settings, url, status, invalid, field)
    loopback_allowed = (settings.allow_http_loopback
                        and loopback((urlsplit(url).hostname or "").lower()))
    if loopback_allowed or settings.private_addresses:
        return
    private = await private_address_problem(url, unresolved_ok=not at_use)
    if private is not None and private.unresolved:
        raise refuse(f"the provider's address {url!r} cannot be reached: {private.why}",
                     invalid, status)
    if private is not None:
        raise refuse(f"the provider's address {url!r} may not be used: {private.why}",
                     "private_address", status)


def check_web_address(settings: OidcSettings, url: str, status: int, invalid: str,
                      field: str | None) -> None:
    """Refuses `url` (the `field` of the configuration, if any) unless it is an https URL
    (http on loopback when the operator allows it) without a user name or password, which
    the problem does not repeat."""
    if has_userinfo(url):
        what = f"the {field}" if field else "an address of the provider's"
        raise Problem(f"{what} may not be used: {USERINFO_PROBLEM}", status=status,
                      code="credentials_in_url", extra={"field": field} if field else None)
    problem = http_url_problem(url)
    if problem is not None:
        raise refuse(f"{url!r} is not a web address: {problem}", invalid, status)
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if not (parts.scheme == "https" and host) and not (
            parts.scheme == "http" and settings.allow_http_loopback and loopback(host)):
        raise refuse(f"{url!r} is not an https URL", invalid, status)

