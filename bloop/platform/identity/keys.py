"""The token-signing key ring: a new key every `key_rotation_s`; an older key stays published
(and trusted) until every token it signed has expired, then it is deleted.

Several processes share the ring through the `SigningKeyStore`; each re-reads it every
`refresh_s`, and at once when a token names a key it has not seen. The due re-read runs behind
the requests: the keys held go on verifying and signing meanwhile, and, when the store cannot be
read, until it can (tried again every `retry_s`). One read runs at a time, and none is cancelled
by a request that gives up (a pymongo call cancelled mid-way can wedge its client). Those
intervals run on the monotonic clock: a wall clock set back (NTP correcting it) must not hold
off the next read for as long as the step. The wall clock dates keys, rotation and trust."""

from __future__ import annotations

import asyncio
import logging
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
from bloop.platform.kit.auth.tokens import taken_after_expiry_s
from bloop.platform.kit.settings import AuthSettings
from bloop.platform.kit.waiting import forget

log = logging.getLogger("bloop.identity.keys")


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
                 refresh_s: float = 60.0, miss_s: float = 2.0, retry_s: float = 5.0,
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.settings = settings
        self.refresh_s = refresh_s
        self.miss_s = miss_s
        self.retry_s = retry_s
        self.clock = clock
        self.monotonic = monotonic
        self._keys: list[SigningKey] = []
        self._private: dict[str, Any] = {}
        self._public: dict[str, Any] = {}
        self._trusted_until: dict[str, float] = {}
        self._loaded_at = float("-inf")
        self._failed_at = float("-inf")
        self._reading: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC).replace(microsecond=0)

    @property
    def _rotation(self) -> timedelta:
        return timedelta(seconds=self.settings.key_rotation_s)

    @property
    def _trust(self) -> timedelta:
        """How long a key is trusted after it stopped signing: the last token it signed lives
        `access_ttl_s` at most, and is taken a while past its expiry."""
        return timedelta(seconds=self.settings.access_ttl_s
                         + max(60, taken_after_expiry_s(self.settings)))

    async def _load(self) -> None:
        try:
            keys = [k for k in await self.store.signing_keys()
                    if k.algorithm == self.settings.algorithm]
        except Exception as exc:
            self._failed_at = self.monotonic()
            log.warning("cannot read the signing keys; the keys held go on being used",
                        extra={"held": len(self._keys), "error": repr(exc)})
            raise
        # A key that has not changed keeps its object: the verifier's memo compares keys by `is`.
        before = {k.kid: k.public_jwk for k in self._keys}
        self._public = {k.kid: self._public[k.kid]
                        if before.get(k.kid) == k.public_jwk and k.kid in self._public
                        else jwt.PyJWK(k.public_jwk).key for k in keys}
        self._keys = keys
        self._trusted_until = {k.kid: self._retired(k) for k in keys}
        self._loaded_at = self.monotonic()

    def _read(self) -> asyncio.Task[None]:
        """The read of the store in flight, started if none is."""
        if self._reading is None or self._reading.done():
            self._reading = asyncio.ensure_future(self._load())
            forget(self._reading)
        return self._reading

    async def _read_now(self) -> None:
        """Reads the store and waits for it; raises what the read raised."""
        await asyncio.shield(self._read())

    async def _read_afresh(self) -> None:
        """Reads the store from now on: a read in flight may have begun before a write."""
        while self._reading is not None and not self._reading.done():
            await asyncio.wait({self._reading})
        await self._read_now()

    def _refresh(self) -> None:
        """Starts the due re-read, unless the last one failed within `retry_s`."""
        now = self.monotonic()
        if now - self._loaded_at >= self.refresh_s and now - self._failed_at >= self.retry_s:
            self._read()

    async def signing_key(self) -> tuple[SigningKey, Any]:
        """The key to sign with now, and its private key; rotates when the newest is due."""
        now = self._now()
        if self._keys:
            self._refresh()
        else:
            await self._read_now()
        if not self._keys or self._keys[0].created_at + self._rotation <= now:
            async with self._lock:
                await self._read_afresh()
                if not self._keys or self._keys[0].created_at + self._rotation <= now:
                    await self.store.add_signing_key(new_key(self.settings.algorithm, now))
                    await self.store.delete_signing_keys(now - self._rotation - self._trust)
                    await self._read_afresh()
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

    async def public_key(self, kid: str) -> Any | None:
        """The public key `kid`, if it is trusted now. An unknown `kid` re-reads the store
        (503 when it cannot be read), at most every `miss_s`: made-up key ids cannot turn every
        request into a store read."""
        if kid in self._public:
            self._refresh()
        elif self.monotonic() - self._loaded_at >= self.miss_s:
            await self._read_now()
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
