"""Web addresses that people or other servers hand Bloop, checked before anything fetches them:
httpx (and the OpenAI client, built on it) refuses some addresses only when asked to fetch them,
which would surface as a server error long after the address was accepted."""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from typing import Annotated, NamedTuple

import httpx
from pydantic import AfterValidator, ValidationInfo

from bloop.platform.kit.read_back import read_back


def loopback(host: str) -> bool:
    """Whether `host` (a URL's, without brackets) names this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def http_url_problem(value: str) -> str | None:
    """Why `value` is not an absolute http(s) address that can be fetched as written, or None."""
    bad = next((c for c in value if c.isspace() or not c.isprintable()), None)
    if bad is not None:
        return f"holds the character {bad!r}"
    try:
        url = httpx.URL(value)
    except httpx.InvalidURL as exc:
        return str(exc)
    if url.scheme not in ("http", "https"):
        return "must start with http:// or https://"
    try:
        host = url.host  # an `xn--` name is decoded here, and may not decode
    except (UnicodeError, ValueError):
        return "names an invalid host"
    if not host:
        return "names no host"
    if url.port is not None and not 0 < url.port < 65_536:
        return f"port {url.port} is out of range"
    return None


_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)([^/?#]*)@")
USERINFO_PROBLEM = ("it holds a user name or password (user:password@), which would be sent in "
                    "every request and logged with it")
"""Why an address with `has_userinfo` is refused (the address itself is not repeated)."""


def has_userinfo(value: str) -> bool:
    """Whether the address holds a user name or password (`http://user:secret@host/`)."""
    return _USERINFO.match(value) is not None


def masked_url(value: str) -> str:
    """The address as shown: its user name and password, if any, as `***`."""
    return _USERINFO.sub(r"\1***@", value, count=1)


def url_password(value: str) -> str | None:
    """The password (else the user name) an address holds, to take out of what a server says
    back; None when it holds neither."""
    found = _USERINFO.match(value)
    if found is None:
        return None
    user, _, password = found.group(2).partition(":")
    return password or user or None


def _checked(value: str, info: ValidationInfo) -> str:
    if read_back(info):
        return value
    problem = http_url_problem(value)
    if problem is not None:
        raise ValueError(f"not a web address: {problem}")
    return value


WEB_ADDRESS = AfterValidator(_checked)
"""Checks a string is an absolute http(s) address; put it after any `StringConstraints`, so it
sees the string they leave."""
HttpUrlText = Annotated[str, WEB_ADDRESS]
"""An absolute http(s) address, kept as written."""


class AddressProblem(NamedTuple):
    why: str
    unresolved: bool  # the host's name does not resolve (rather than naming a private address)


async def private_address_problem(value: str, *, unresolved_ok: bool = False
                                  ) -> AddressProblem | None:
    """Why the http(s) address `value` is not for a server on the public internet (its host
    is, or resolves to, this machine, a private or link-local network, or an address reserved
    for no host), or None. Checked when given and again before use, since a name's addresses
    can change; a name re-pointed between the check and the request itself is not caught. A
    name that does not resolve is a problem too, unless `unresolved_ok` (then its use, which
    checks again, fails)."""
    host = httpx.URL(value).host
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        return None if unresolved_ok else AddressProblem(
            f"its host {host!r} cannot be resolved ({exc})", unresolved=True)
    for *_, address in infos:
        ip = ipaddress.ip_address(str(address[0]).split("%", 1)[0])
        if not ip.is_global:
            return AddressProblem(f"its host {host!r} is {ip}, an address of this machine or "
                                  "a private network", unresolved=False)
    return None
