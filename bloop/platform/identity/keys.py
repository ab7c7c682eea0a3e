"""The token-signing key ring: a new key every `key_rotation_s`; an older key stays published
(and trusted) until every token it signed has expired, then it is deleted.

Several processes share the ring through the `SigningKeyStore`; each re-reads it every
`refresh_s`, and at once when a token names a key it has not seen."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from jwt.algorithms import ECAlgorithm, OKPAlgorithm

from bloop.platform.identity.model import SigningKey
from bloop.platform.identity.ports import SigningKeyStore
from bloop.platform.kit.auth import TOKEN_TYPE, Principal
from bloop.platform.kit.settings import AuthSettings


def new_key(algorithm: str, at: datetime) -> SigningKey:
    private: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
    if algorithm == "EdDSA":
        private = ed25519.Ed25519PrivateKey.generate()
        jwk: dict[str, Any] = OKPAlgorithm.to_jwk(private.public_key(), as_dict=True)
    else:
        private = ec.generate_private_key(ec.SECP256R1())
        jwk = ECAlgorithm.to_jwk(private.public_key(), as_dict=True)
    kid = uuid.uuid4().hex
    pem = private.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return SigningKey(kid=kid, algorithm=algorithm, private_pem=pem,
                      public_jwk=jwk | {"kid": kid, "alg": algorithm, "use": "sig"},
                      created_at=at)


class KeyRing:
    def __init__(self, store: SigningKeyStore, settings: AuthSettings, *,
                 refresh_s: float = 60.0, miss_s: float = 2.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.settings = settings
        self.refresh_s = refresh_s
        self.miss_s = miss_s
        self.clock = clock
        self._keys: list[SigningKey] = []
        self._private: dict[str, Any] = {}
        self._public: dict[str, Any] = {}
        self._trusted_until: dict[str, float] = {}
        self._loaded_at = float("-inf")
        self._lock = asyncio.Lock()

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC).replace(microsecond=0)

    @property
    def _rotation(self) -> timedelta:
        return timedelta(seconds=self.settings.key_rotation_s)

    @property
    def _trust(self) -> timedelta:
        """How long a key is trusted after it stopped signing: the last token it signed lives
        `access_ttl_s` at most (plus the verifier's clock leeway)."""
        return timedelta(seconds=self.settings.access_ttl_s + 60)

    async def _load(self) -> None:
        keys = [k for k in await self.store.signing_keys()
                if k.algorithm == self.settings.algorithm]
        # A key that has not changed keeps its object: the verifier's memo compares keys by `is`.
        before = {k.kid: k.public_jwk for k in self._keys}
        self._public = {k.kid: self._public[k.kid]
                        if before.get(k.kid) == k.public_jwk and k.kid in self._public
                        else jwt.PyJWK(k.public_jwk).key for k in keys}
        self._keys = keys
        self._trusted_until = {k.kid: self._retired(k) for k in keys}
        self._loaded_at = self.clock()

    async def signing_key(self) -> tuple[SigningKey, Any]:
        """The key to sign with now, and its private key; rotates when the newest is due."""
        now = self._now()
        if self.clock() - self._loaded_at >= self.refresh_s or not self._keys:
            async with self._lock:
                await self._load()
        if not self._keys or self._keys[0].created_at + self._rotation <= now:
            async with self._lock:
                await self._load()
                if not self._keys or self._keys[0].created_at + self._rotation <= now:
                    await self.store.add_signing_key(new_key(self.settings.algorithm, now))
                    await self.store.delete_signing_keys(now - self._rotation - self._trust)
                    await self._load()
        key = self._keys[0]
        if key.kid not in self._private:
            self._private[key.kid] = serialization.load_pem_private_key(
                key.private_pem.encode(), password=None)
        return key, self._private[key.kid]

    def _retired(self, key: SigningKey) -> float:
        """When `key` stops being trusted (epoch s): it is trusted while it signs, and for
        `_trust` after its successor took over."""
        newer = [k.created_at for k in self._keys if k.created_at > key.created_at]
        return (min(newer) + self._trust).timestamp() if newer else float("inf")

    def _published(self, kid: str) -> bool:
        # Whole seconds, as `_now()` counts them for signing.
        return self._trusted_until.get(kid, float("-inf")) > int(self.clock())

    def _stale(self, kid: str) -> bool:
        """An unknown `kid` re-reads the store, at most every `miss_s`: made-up key ids cannot
        turn every request into a store read."""
        age = self.clock() - self._loaded_at
        return age >= self.refresh_s or (kid not in self._public and age >= self.miss_s)

    async def public_key(self, kid: str) -> Any | None:
        if self._stale(kid):
            async with self._lock:
                if self._stale(kid):
                    await self._load()
        return self._public[kid] if self._published(kid) else None

    async def jwks(self) -> dict[str, list[dict[str, Any]]]:
        await self.signing_key()
        return {"keys": [k.public_jwk for k in self._keys if self._published(k.kid)]}

    async def mint(self, principal: Principal) -> str:
        """Signs an access token carrying `principal` (its `expires_at` included)."""
        key, private = await self.signing_key()
        now = int(self.clock())
        claims = {"iss": self.settings.issuer, "aud": self.settings.audience,
                  "sub": principal.user_id, "tid": principal.tenant,
                  "roles": sorted(principal.roles), "scope": " ".join(sorted(principal.scopes)),
                  "jti": principal.token_id, "sid": principal.session_id, "iat": now,
                  "exp": principal.expires_at}
        return jwt.encode(claims, private, algorithm=key.algorithm,
                          headers={"kid": key.kid, "typ": TOKEN_TYPE})
