"""Calls to a provider: each bounded by a deadline as a whole and its answer capped at
MAX_RESPONSE_BYTES, and its JSON documents (the discovery document, the JWKS) downloaded once
for whoever needs them meanwhile, cached, and a JWKS downloaded again for a key it lacks at most
once each KEY_REFRESH_S."""

from __future__ import annotations

import asyncio
import math
import time
import warnings
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import httpx

from bloop.platform.identity.oidc.addresses import check_url
from bloop.platform.identity.oidc.model import OidcProvider
from bloop.platform.identity.oidc.problems import unreachable
from bloop.platform.kit.settings import OidcSettings
from bloop.platform.kit.urls import http_url_problem

# authlib's httpx client runs on the httpx2 fork (which `openai` brings), not on the platform's
# httpx, and raises its errors; without httpx2 it falls back to httpx, and warns: not for us.
with warnings.catch_warnings():
    from authlib.deprecate import AuthlibDeprecationWarning  # installs authlib's filter first

    warnings.filterwarnings("ignore", "The httpx module is deprecated", AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import AsyncOAuth2Client
    from authlib.integrations.httpx_client._compat import httpx2 as authlib_http

# What a provider's HTTP exchange may fail with, whichever client made it.
# (A RecursionError: JSON nested too deeply to parse.)
HTTP_ERRORS: tuple[type[Exception], ...] = (httpx.HTTPError, authlib_http.HTTPError, ValueError,
                                            RecursionError)

# The most a provider's answer (a document, a token, a GitHub API response) may hold.
MAX_RESPONSE_BYTES = 1024 * 1024
# An ID token naming a key the cached JWKS lacks downloads it again at most this often.
KEY_REFRESH_S = 60.0


async def _capped(response: httpx.Response) -> None:
    """A response hook (of httpx's clients and authlib's): reads the body before the client
    would read it whole, refusing it past MAX_RESPONSE_BYTES."""
    declared = response.headers.get("content-length", "")
    too_large = unreachable(f"{response.request.url}: the answer is larger than "
                            f"{MAX_RESPONSE_BYTES // 1024} KiB")
    if declared.isdigit() and int(declared) > MAX_RESPONSE_BYTES:
        raise too_large
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > MAX_RESPONSE_BYTES:
            raise too_large
    response._content = bytes(body)  # what `aread()` keeps, and then returns without reading


class _Fetched:
    def __init__(self, value: dict[str, Any], until: float) -> None:
        self.value, self.until = value, until


class ProviderDownloads:
    """What a service calling providers keeps: their documents, and the downloads under way."""

    def __init__(self, settings: OidcSettings, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clock = clock
        self._documents: dict[str, _Fetched] = {}
        self._downloads: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._refreshed: dict[str, float] = {}

    def _client(self, provider: OidcProvider, redirect_uri: str,
                auth_method: str = "client_secret_basic",
                token: Mapping[str, Any] | None = None) -> Any:
        return AsyncOAuth2Client(
            client_id=provider.client_id, client_secret=provider.client_secret,
            scope=" ".join(provider.scopes), redirect_uri=redirect_uri,
            code_challenge_method="S256", token_endpoint_auth_method=auth_method,
            token=dict(token) if token is not None else None,
            timeout=self.settings.http_timeout_s, follow_redirects=False,
            event_hooks={"response": [_capped]})

    @asynccontextmanager
    async def _deadline(self, what: str) -> AsyncIterator[None]:
        """Bounds a call to the provider as a whole (httpx's timeout bounds each read, and a
        provider sending a byte at a time never passes it)."""
        seconds = self.settings.http_timeout_s
        try:
            async with asyncio.timeout(seconds):
                yield
        except TimeoutError:
            raise unreachable(f"{what}: no answer within {seconds:g}s") from None

    async def _metadata(self, provider: OidcProvider) -> dict[str, Any]:
        document = await self._document(str(provider.discovery_url))
        issuer = document.get("issuer")
        if not isinstance(issuer, str):
            raise unreachable("the discovery document names no issuer")
        if (provider.issuer is not None and issuer.rstrip("/") != provider.issuer.rstrip("/")
                and "{tenantid}" not in issuer):
            raise unreachable(f"the discovery document is for the issuer {issuer!r}, not "
                              f"{provider.issuer!r}")
        return document

    async def _document(self, url: str, *, refresh: bool = False) -> dict[str, Any]:
        """The JSON document at `url`, cached. Whoever needs it while it downloads waits for
        that download; with `refresh` (a key the JWKS lacks), it downloads again unless it did
        so within KEY_REFRESH_S."""
        await check_url(self.settings, url)
        download = self._downloads.get(url)
        if download is None:
            cached, now = self._documents.get(url), self.clock()
            if refresh and now - self._refreshed.get(url, -math.inf) >= KEY_REFRESH_S:
                self._refreshed[url] = now
            elif cached is not None and cached.until > now:
                return cached.value
            download = self._downloads[url] = asyncio.ensure_future(self._download(url))
            download.add_done_callback(partial(self._downloaded, url))
        # A waiter going away (its client hung up) leaves the download to the others.
        return await asyncio.shield(download)

    def _downloaded(self, url: str, download: asyncio.Future[dict[str, Any]]) -> None:
        if self._downloads.get(url) is download:
            del self._downloads[url]
        if not download.cancelled():
            download.exception()  # retrieved, should every waiter have gone

    async def _download(self, url: str) -> dict[str, Any]:
        try:
            async with self._deadline(url), httpx.AsyncClient(
                    timeout=self.settings.http_timeout_s,
                    event_hooks={"response": [_capped]}) as client:
                response = await client.get(url, headers={"Accept": "application/json"})
                response.raise_for_status()
                value = response.json()
        except HTTP_ERRORS as exc:
            raise unreachable(f"{url}: {exc.__class__.__name__}") from None
        if not isinstance(value, dict):
            raise unreachable(f"{url} is not a JSON object")
        self._documents[url] = _Fetched(value, self.clock() + self.settings.metadata_ttl_s)
        return value

    async def _endpoint(self, metadata: Mapping[str, Any], name: str) -> str:
        """The address the discovery document gives as `name`, held to the provider's own
        rules (`check_url`)."""
        value = metadata.get(name)
        if not isinstance(value, str) or not value:
            raise unreachable(f"the discovery document names no {name}")
        problem = http_url_problem(value)
        if problem is not None:
            raise unreachable(f"the discovery document's {name} is not a web address: {problem}")
        await check_url(self.settings, value)
        return value
