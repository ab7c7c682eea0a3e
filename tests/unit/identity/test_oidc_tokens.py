"""ID-token checks on their own: the issuer template of Microsoft's multi-tenant endpoints, and
tokens whose algorithm a provider must not use."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey

from bloop.platform.identity.oidc.tokens import ID_TOKEN_ALGORITHMS, verify_id_token
from bloop.platform.kit.errors import Problem

MICROSOFT = "https://login.microsoftonline.com/{tenantid}/v2.0"
TID = "9188040d-6c67-4c5b-b112-36a304b66dad"
KEY = RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig"})
JWKS = {"keys": [KEY.as_dict(private=False)]}


def claims(**changes: Any) -> dict[str, Any]:
    t = int(time.time())
    return {"iss": f"https://login.microsoftonline.com/{TID}/v2.0", "aud": "client-1",
            "sub": "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ", "tid": TID, "nonce": "n-1",
            "iat": t, "nbf": t, "exp": t + 3600, "email": "ada@contoso.test", "ver": "2.0",
            **changes}


def check(token: str, issuer: str = MICROSOFT) -> dict[str, Any]:
    return verify_id_token(token, JWKS, issuer=issuer, client_id="client-1", nonce="n-1",
                           algorithms=list(ID_TOKEN_ALGORITHMS), now_s=int(time.time()),
                           leeway_s=60)


def signed(body: dict[str, Any]) -> str:
    return jwt.encode({"alg": "RS256", "kid": "k1", "typ": "JWT"}, body, KEY)


def test_microsofts_issuer_template_takes_the_tokens_tenant() -> None:
    assert check(signed(claims()))["tid"] == TID
    fixed = f"https://login.microsoftonline.com/{TID}/v2.0"
    assert check(signed(claims()), issuer=fixed)["sub"]


@pytest.mark.parametrize("body", [
    claims(tid="00000000-0000-0000-0000-000000000000"),  # the issuer names another directory
    claims(iss="https://login.microsoftonline.com/common/v2.0"),
    claims(nbf=int(time.time()) + 3600),
    claims(iat=int(time.time()) + 3600),
])
def test_a_token_of_the_wrong_issuer_or_time_is_refused(body: dict[str, Any]) -> None:
    with pytest.raises(Problem) as caught:
        check(signed(body))
    assert caught.value.code == "oidc_id_token_invalid"


def test_symmetric_and_unsigned_tokens_are_refused() -> None:
    secret = OctKey.import_key("client-secret-that-is-long-enough-for-hs256-000")
    hs256 = jwt.encode({"alg": "HS256", "kid": "k1"}, claims(), secret)
    header = base64.urlsafe_b64encode(json.dumps({"alg": "none"}).encode()).rstrip(b"=")
    payload = base64.urlsafe_b64encode(json.dumps(claims()).encode()).rstrip(b"=")
    unsigned = f"{header.decode()}.{payload.decode()}."
    for token in (hs256, unsigned, "not-a-jwt"):
        with pytest.raises(Problem) as caught:
            check(token)
        assert caught.value.code == "oidc_id_token_invalid"
