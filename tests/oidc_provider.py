"""A local stand-in for external identity providers, served over real HTTP on 127.0.0.1.

It speaks OpenID Connect the way Google does (discovery document, JWKS with an RSA key, an
authorization endpoint, a token endpoint answering with a signed ID token; the documents and
claims have the fields of Google's real responses) and OAuth2 the way GitHub does (authorize,
`/login/oauth/access_token`, `/user`, `/user/emails`). It checks what a real provider checks:
the client's credentials, the redirect URI, the PKCE verifier, single use of each code. Tests
pick the next person to sign in, may tamper with the ID token to see Bloop refuse it, and may
have any path misbehave (`misbehaving`): hang, trickle, or answer too much."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import secrets
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import unquote, urlencode

import uvicorn
from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

CLIENT_ID = "1234567890-bloop.apps.googleusercontent.com"
CLIENT_SECRET = "GOCSPX-stand-in-client-secret"
GITHUB_CLIENT_ID = "Iv1.8a61f9b3a7aba766"
GITHUB_CLIENT_SECRET = "1f7a0c3e9b2d4f6a8c0e2b4d6f8a0c2e4b6d8f0a"
HUGE_BYTES = 8 * 1024 * 1024
HANG_S = 5.0

# hang: answers HANG_S late; trickle: a byte each 0.1 s for 4 s; huge: declares HUGE_BYTES and
# sends none; huge_chunked: streams HUGE_BYTES of (JSON) whitespace, then `{}`; deep: JSON
# nested deeper than Python's parser recurses (DEEP_JSON).
Misbehaviour = Literal["hang", "trickle", "huge", "huge_chunked", "deep"]
DEEP_JSON = b"[" * 5000


@dataclass
class Person:
    email: str
    name: str = "Grace Hopper"
    verified: bool = True
    sub: str = field(default_factory=lambda: str(secrets.randbelow(10**21)))


@dataclass
class Grant:
    client_id: str
    redirect_uri: str
    person: Person
    nonce: str | None
    challenge: str | None
    scope: str
    used: bool = False


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _kid() -> str:
    return secrets.token_hex(20)


class StandInProvider:
    def __init__(self) -> None:
        kid = _kid()
        self.key = RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig", "alg": "RS256"})
        # Same key id, different key: a token signed with it must fail signature checks.
        self.impostor_key = RSAKey.generate_key(2048, parameters={"kid": kid})
        self.base_url = ""
        self.person = Person(email="grace@acme.dev")
        self.github_emails: list[dict[str, Any]] | None = None
        self.deny_with: str | None = None
        self.claims_override: dict[str, Any] = {}
        self.discovery_override: dict[str, Any] = {}
        self.sign_with_impostor = False
        self.codes: dict[str, Grant] = {}
        self.tokens: dict[str, Person] = {}
        self.token_requests: list[dict[str, str]] = []
        self.header_kid: str | None = None
        self.id_token_override: str | None = None  # sent as the id_token when set
        self.misbehaving: dict[str, Misbehaviour] = {}
        self.hits: Counter[str] = Counter()
        self.released = asyncio.Event()
        self.misbehaved = asyncio.Event()  # a misbehaving path was asked for
        self.routes = Starlette(routes=[
            Route("/.well-known/openid-configuration", self.discovery),
            Route("/oauth2/v3/certs", self.certs),
            Route("/o/oauth2/v2/auth", self.authorize),
            Route("/token", self.token, methods=["POST"]),
            Route("/login/oauth/authorize", self.github_authorize),
            Route("/login/oauth/access_token", self.github_token, methods=["POST"]),
            Route("/api/user", self.github_user),
            Route("/api/user/emails", self.github_user_emails),
        ])
        self.app: ASGIApp = self.asgi

    @property
    def issuer(self) -> str:
        return self.base_url

    def reset(self, person: Person) -> None:
        self.person = person
        self.github_emails = None
        self.deny_with = None
        self.claims_override = {}
        self.discovery_override = {}
        self.sign_with_impostor = False
        self.header_kid = None
        self.id_token_override = None
        self.misbehaving = {}
        self.hits.clear()
        self.released.clear()
        self.misbehaved.clear()

    async def asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        how = None
        if scope["type"] == "http":
            self.hits[scope["path"]] += 1
            how = self.misbehaving.get(scope["path"])
        if how is None:
            return await self.routes(scope, receive, send)
        self.misbehaved.set()
        if how == "hang":
            await self._hang()
            return await self.routes(scope, receive, send)
        headers = [(b"content-type", b"application/json")]
        if how == "deep":
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            return await send({"type": "http.response.body", "body": DEEP_JSON})
        if how == "huge":
            headers.append((b"content-length", str(HUGE_BYTES).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        if how == "trickle":
            for _ in range(40):
                await send({"type": "http.response.body", "body": b" ", "more_body": True})
                await asyncio.sleep(0.1)
        elif how == "huge":
            await self._hang()
        else:
            chunk = b" " * 65536
            for _ in range(HUGE_BYTES // len(chunk)):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"{}"})

    async def _hang(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.released.wait(), HANG_S)

    # OpenID Connect, shaped like https://accounts.google.com

    async def discovery(self, request: Request) -> Response:
        base = self.base_url
        return JSONResponse({
            "issuer": base,
            "authorization_endpoint": f"{base}/o/oauth2/v2/auth",
            "device_authorization_endpoint": f"{base}/device/code",
            "token_endpoint": f"{base}/token",
            "userinfo_endpoint": f"{base}/v1/userinfo",
            "revocation_endpoint": f"{base}/revoke",
            "jwks_uri": f"{base}/oauth2/v3/certs",
            "response_types_supported": ["code", "token", "id_token", "code token",
                                         "code id_token", "token id_token",
                                         "code token id_token", "none"],
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "email", "profile"],
            "token_endpoint_auth_methods_supported": ["client_secret_post",
                                                      "client_secret_basic"],
            "claims_supported": ["aud", "email", "email_verified", "exp", "family_name",
                                 "given_name", "iat", "iss", "name", "picture", "sub"],
            "code_challenge_methods_supported": ["plain", "S256"],
            "grant_types_supported": ["authorization_code", "refresh_token",
                                      "urn:ietf:params:oauth:grant-type:device_code",
                                      "urn:ietf:params:oauth:grant-type:jwt-bearer"],
            **self.discovery_override,
        })

    async def certs(self, request: Request) -> Response:
        return JSONResponse({"keys": [self.key.as_dict(private=False)]},
                            headers={"Cache-Control": "public, max-age=21600"})

    def _issue_code(self, request: Request, client_id: str, *, oidc: bool) -> Response:
        q = request.query_params
        redirect_uri = q.get("redirect_uri", "")
        if q.get("client_id") != client_id or not redirect_uri:
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        if q.get("response_type") != "code" or (oidc and "openid" not in q.get("scope", "")):
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        if q.get("code_challenge_method", "S256") != "S256":
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        if self.deny_with is not None:
            query = {"error": self.deny_with, "state": q.get("state", "")}
            return RedirectResponse(f"{redirect_uri}?{urlencode(query)}", status_code=302)
        code = f"4/0A{secrets.token_urlsafe(48)}"
        self.codes[code] = Grant(client_id=client_id, redirect_uri=redirect_uri,
                                 person=self.person, nonce=q.get("nonce"),
                                 challenge=q.get("code_challenge"), scope=q.get("scope", ""))
        back = {"state": q.get("state", ""), "code": code}
        if oidc:
            back |= {"scope": "email profile openid https://www.googleapis.com/auth/userinfo."
                     "email https://www.googleapis.com/auth/userinfo.profile",
                     "authuser": "0", "prompt": "consent"}
        return RedirectResponse(f"{redirect_uri}?{urlencode(back)}", status_code=302)

    async def authorize(self, request: Request) -> Response:
        return self._issue_code(request, CLIENT_ID, oidc=True)

    async def _redeem(self, request: Request, client_id: str,
                      secret: str) -> tuple[Grant | None, dict[str, str]]:
        form = {k: str(v) for k, v in (await request.form()).items()}
        self.token_requests.append(form)
        given_id, given_secret = form.get("client_id"), form.get("client_secret")
        basic = request.headers.get("authorization", "")
        if basic.startswith("Basic "):
            raw_id, _, raw_secret = base64.b64decode(basic[6:]).decode().partition(":")
            given_id, given_secret = unquote(raw_id), unquote(raw_secret)
        if (given_id, given_secret) != (client_id, secret):
            return None, {"error": "invalid_client", "error_description": "Unauthorized"}
        grant = self.codes.get(form.get("code", ""))
        if (form.get("grant_type") != "authorization_code" or grant is None or grant.used
                or grant.redirect_uri != form.get("redirect_uri")
                or (grant.challenge is not None
                    and _s256(form.get("code_verifier", "")) != grant.challenge)):
            return None, {"error": "invalid_grant", "error_description": "Bad Request"}
        grant.used = True
        return grant, form

    async def token(self, request: Request) -> Response:
        grant, answer = await self._redeem(request, CLIENT_ID, CLIENT_SECRET)
        if grant is None:
            return JSONResponse(answer, status_code=400)
        access = f"ya29.{secrets.token_urlsafe(120)}"
        person, now = grant.person, int(time.time())
        given, _, family = person.name.partition(" ")
        claims: dict[str, Any] = {
            "iss": self.issuer, "azp": CLIENT_ID, "aud": CLIENT_ID, "sub": person.sub,
            "email": person.email, "email_verified": person.verified,
            "at_hash": _s256(access)[:22], "nonce": grant.nonce, "name": person.name,
            "picture": "https://lh3.googleusercontent.com/a/ACg8ocJstandin=s96-c",
            "given_name": given, "family_name": family, "iat": now, "exp": now + 3599}
        claims |= self.claims_override
        key = self.impostor_key if self.sign_with_impostor else self.key
        kid = self.header_kid or self.key.kid
        id_token = self.id_token_override or jwt.encode(
            {"alg": "RS256", "kid": kid, "typ": "JWT"}, claims, key)
        return JSONResponse({
            "access_token": access, "expires_in": 3599,
            "scope": "https://www.googleapis.com/auth/userinfo.email openid "
                     "https://www.googleapis.com/auth/userinfo.profile",
            "token_type": "Bearer", "id_token": id_token})

    # OAuth2, shaped like github.com and api.github.com

    async def github_authorize(self, request: Request) -> Response:
        return self._issue_code(request, GITHUB_CLIENT_ID, oidc=False)

    async def github_token(self, request: Request) -> Response:
        grant, _ = await self._redeem(request, GITHUB_CLIENT_ID, GITHUB_CLIENT_SECRET)
        if grant is None:  # GitHub answers errors with 200
            return JSONResponse({"error": "bad_verification_code",
                                 "error_description": "The code passed is incorrect or expired.",
                                 "error_uri": "https://docs.github.com/apps/managing-oauth-apps/"
                                              "troubleshooting-oauth-app-access-token-request-"
                                              "errors/#bad-verification-code"})
        access = f"gho_{secrets.token_urlsafe(27)}"
        self.tokens[access] = grant.person
        return JSONResponse({"access_token": access, "token_type": "bearer",
                             "scope": "read:user,user:email"})

    def _github_person(self, request: Request) -> Person | None:
        auth = request.headers.get("authorization", "")
        return self.tokens.get(auth.removeprefix("Bearer ").removeprefix("token "))

    async def github_user(self, request: Request) -> Response:
        person = self._github_person(request)
        if person is None:
            return JSONResponse({"message": "Bad credentials",
                                 "documentation_url": "https://docs.github.com/rest",
                                 "status": "401"}, status_code=401)
        login = person.email.partition("@")[0]
        return JSONResponse({
            "login": login, "id": int(person.sub[:9]), "node_id": "MDQ6VXNlcjE=",
            "avatar_url": "https://avatars.githubusercontent.com/u/1?v=4", "gravatar_id": "",
            "url": f"https://api.github.com/users/{login}", "type": "User",
            "site_admin": False, "name": person.name, "company": None, "blog": "",
            "location": None, "email": None, "hireable": None, "bio": None,
            "public_repos": 8, "followers": 20, "following": 0,
            "created_at": "2011-01-25T18:44:36Z", "updated_at": "2024-11-02T09:12:41Z"})

    async def github_user_emails(self, request: Request) -> Response:
        person = self._github_person(request)
        if person is None:
            return JSONResponse({"message": "Bad credentials", "status": "401"}, status_code=401)
        emails = self.github_emails if self.github_emails is not None else [
            {"email": f"{person.sub[:9]}+{person.email.partition('@')[0]}"
                      "@users.noreply.github.com",
             "primary": False, "verified": True, "visibility": None},
            {"email": person.email, "primary": True, "verified": person.verified,
             "visibility": "private"}]
        return JSONResponse(emails)


@asynccontextmanager
async def serve(provider: StandInProvider) -> AsyncIterator[StandInProvider]:
    """Runs the provider with uvicorn on a free port of 127.0.0.1, in this event loop."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    provider.base_url = f"http://127.0.0.1:{port}"
    server = uvicorn.Server(uvicorn.Config(provider.app, log_level="warning", lifespan="off",
                                            interface="asgi3"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        yield provider
    finally:
        provider.released.set()  # nothing hangs on
        server.should_exit = True
        await task
        sock.close()
