"""A provider's ID token: its signature, issuer, audience, expiry and nonce checked (joserfc),
and what its claims tell."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

from joserfc import jwt
from joserfc.errors import ClaimError, ExpiredTokenError, JoseError
from joserfc.jwk import KeySet

from bloop.platform.identity.oidc.problems import id_token_invalid

# Asymmetric algorithms only: an HS256 ID token would be signed with the client secret.
ID_TOKEN_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384",
                       "ES512", "EdDSA")


def verify_id_token(id_token: str, jwks: Mapping[str, Any], *, issuer: str, client_id: str,
                    nonce: str, algorithms: list[str], now_s: int, leeway_s: int) -> dict[str, Any]:
    """The ID token's claims, once its signature (a key of `jwks`), issuer, audience, expiry and
    nonce hold (OpenID Connect Core §3.1.3.7). `issuer` may hold Microsoft's `{tenantid}`
    marker, which the token's own `tid` claim fills in."""
    try:
        keys = KeySet.import_key_set(dict(jwks))  # type: ignore[arg-type]
        token = jwt.decode(id_token, keys, algorithms=algorithms)
    except (JoseError, ValueError, TypeError) as exc:
        raise id_token_invalid(f"its signature does not verify ({exc.__class__.__name__})") \
            from None
    except RecursionError:
        raise id_token_invalid("its JSON nests too deeply to be read") from None
    claims = token.claims
    expected = issuer
    if "{tenantid}" in issuer and isinstance(claims.get("tid"), str):
        expected = issuer.replace("{tenantid}", claims["tid"])
    registry = jwt.JWTClaimsRegistry(
        now=now_s, leeway=leeway_s, iss={"essential": True, "value": expected},
        aud={"essential": True, "value": client_id}, exp={"essential": True},
        iat={"essential": True}, sub={"essential": True}, nonce={"essential": True, "value": nonce})
    try:
        registry.validate(claims)
    except ExpiredTokenError:
        raise id_token_invalid("it has expired") from None
    except ClaimError as exc:
        raise id_token_invalid(f"the claim {exc.claim} is missing or wrong") from None
    audience = claims["aud"]
    if isinstance(audience, list) and len(audience) > 1 and claims.get("azp") != client_id:
        raise id_token_invalid("it names several audiences but is not authorised for this client")
    return claims


def names_unknown_key(id_token: str, jwks: Mapping[str, Any]) -> bool:
    try:
        header = json.loads(_b64(id_token.split(".")[0]))
    except (ValueError, IndexError, RecursionError):
        return False  # `verify_id_token` refuses it
    kid = header.get("kid") if isinstance(header, dict) else None
    known = {k.get("kid") for k in jwks.get("keys", []) if isinstance(k, dict)}
    return kid is not None and kid not in known


def _b64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def display_name(claims: Mapping[str, Any]) -> str | None:
    name = claims.get("name")
    if isinstance(name, str) and name.strip():
        return name
    parts = [claims.get(k) for k in ("given_name", "family_name")]
    joined = " ".join(p for p in parts if isinstance(p, str) and p.strip())
    return joined or None
