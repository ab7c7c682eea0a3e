"""One settings class per concern, all read from `BLOOP_*` environment variables.

The defaults run every store embedded, so `bloop serve` needs no configuration at all.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Iterable, Mapping
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal, TypeVar, get_args
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bloop.platform.kit.urls import HttpUrlText, http_url_problem, loopback, masked_url

StoreMode = Literal["embedded", "real"]
StoreName = Literal["kafka", "mongo", "neo4j", "redis", "influx"]


def _named(value: object) -> object:
    if isinstance(value, str) and not value.strip():
        raise ValueError("must name a directory (an empty value would mean the working directory)")
    return value


def _not_a_file(path: Path) -> Path:
    try:
        if path.exists() and not path.is_dir():
            raise ValueError("names a file, not a directory")
    except OSError as exc:
        raise ValueError(f"cannot be looked at ({exc.strerror})") from None
    return path


NamedPath = Annotated[Path, BeforeValidator(_named), AfterValidator(_not_a_file)]
"""A directory setting: a name that is not empty, of a directory that exists or is yet to be."""


def _server_url(*schemes: str) -> AfterValidator:
    """A store server's address, checked where the setting is read: its client, built once the
    process starts, would refuse it with a traceback."""
    shown = ", ".join(f"{s}://" for s in schemes)

    def check(value: str) -> str:
        parts = urlsplit(value) if "://" in value else None
        if parts is None or parts.scheme.lower() not in schemes:
            raise ValueError(f"must start with {shown}")
        if parts.scheme.lower() != "unix" and not parts.netloc.rpartition("@")[2]:
            raise ValueError("names no host")
        if parts.scheme.lower() == "unix" and not parts.path:
            raise ValueError("names no socket file")
        hosts = parts.netloc.rpartition("@")[2].split(",")  # MongoDB may name several
        for host in hosts:
            try:
                urlsplit(f"//{host}").port  # noqa: B018  (reading it checks it)
            except ValueError:
                raise ValueError(f"names no valid port in {host!r} (a number up to 65535)"
                                 ) from None
        return value

    return AfterValidator(check)


def _bootstrap(value: str) -> str:
    """Kafka's bootstrap servers: host:port, comma-separated."""
    for server in value.split(","):
        host, colon, port = server.strip().rpartition(":")
        if not colon or not host.strip("[]") or not port.isdigit() or not 0 < int(port) < 65_536:
            raise ValueError(f"{server.strip()!r} is not host:port (servers are "
                             "comma-separated host:port, like 127.0.0.1:9092)")
    return value


def _config(prefix: str) -> SettingsConfigDict:
    return SettingsConfigDict(env_prefix=prefix, extra="ignore", frozen=True)


class RuntimeSettings(BaseSettings):
    model_config = _config("BLOOP_")

    store: StoreMode = "embedded"
    data_dir: NamedPath = Path(".bloop")
    seed_demo: bool = True
    store_watch_s: float = Field(default=5.0, gt=0, le=3600, description="how often every "
                                 "store is checked: for `bloop_store_up`, so that the services' "
                                 "setup (indexes, constraints) runs again when MongoDB or Neo4j "
                                 "comes back, and to log the return of a store that failed "
                                 "requests")
    cache_memory_max_bytes: int = Field(
        default=64 * 1024 * 1024, ge=1024 * 1024, le=1 << 40, description=(
            "the bytes (keys and values) each in-process cache may hold, when Redis is not "
            "configured; past it the least recently used entries go, and a value over a "
            "sixteenth of it is not kept"))


def _comma_separated(value: object) -> object:
    return [o.strip() for o in value.split(",") if o.strip()] if isinstance(value, str) else value


def _origin(value: str) -> str:
    """As a browser sends it in `Origin`: scheme://host[:port], lower case, nothing after."""
    if value == "*":
        return value
    problem = http_url_problem(value)
    parts = urlsplit(value)
    if problem is None and (parts.path not in ("", "/") or parts.query or parts.fragment
                            or "@" in parts.netloc):
        problem = "an origin is a scheme, a host and maybe a port, with no path"
    if problem is not None:
        raise ValueError(f"{value!r} is not an origin such as https://app.example: {problem}")
    return f"{parts.scheme}://{parts.netloc}".lower()


def _proxy(value: str) -> str:
    """An address or a network, as uvicorn's proxy headers middleware takes it: it would take
    anything else for a name no peer has, and trust nobody without a word."""
    if value == "*":
        return value
    try:
        if "/" in value:
            ipaddress.ip_network(value)
        else:
            ipaddress.ip_address(value)
    except ValueError as exc:
        why = f" ({exc})" if "/" in value else ""
        raise ValueError(f"{value!r} is neither an IP address nor a network such as "
                         f"10.0.0.0/8{why}") from None
    return value


def _any_alone(value: list[str]) -> list[str]:
    if "*" in value and len(value) > 1:
        raise ValueError("`*` (any peer) stands alone")
    return value


class HttpSettings(BaseSettings):
    model_config = _config("BLOOP_HTTP_")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    body_idle_timeout_s: float = Field(default=30.0, gt=0, le=3600)
    header_timeout_s: float = Field(default=10.0, gt=0, le=3600)
    """How long a request's line and headers may take to arrive, from the connection's opening
    or the end of the previous response on it; past it the connection is closed."""
    send_idle_timeout_s: float = Field(default=60.0, gt=0, le=3600)
    """How long an answer waiting to be sent may make no progress (its client does not read)
    before its connection is aborted and the request counted 499."""
    max_header_bytes: int = Field(default=65_536, ge=8192, le=16_777_216)
    """A request whose line and headers are larger gets 431 and its connection closed."""
    max_connections_per_client: int = Field(default=512, ge=1)
    """Connections one peer address may hold open (a trusted proxy's are not counted); its
    next ones are answered 503 and closed."""
    graphql_max_concurrent_per_caller: int = Field(default=4, ge=1)
    """GraphQL requests one caller (a person, an API key) may have running at once in a
    process; its next ones are answered 429 with `Retry-After` until one ends."""
    body_min_rate_bytes_s: float = Field(default=500.0, ge=0)
    """Bytes a second a request body must average once it has been waited for
    `body_idle_timeout_s` (each this many bytes buy a further second); 0 turns it off."""
    shutdown_timeout_s: int = Field(default=20, ge=1, le=3600)
    """How long a stopping server waits for the requests in flight before it cancels them."""
    idempotency_keep_s: int = Field(default=86_400, ge=60, le=30 * 86_400)
    """How long a POST's answer is kept under its `Idempotency-Key`, for the same request sent
    again."""
    idempotency_lock_s: int = Field(default=300, ge=1, le=86_400)
    """How long a POST's `Idempotency-Key` stays taken while its request runs; one neither
    answered nor failed by then (its process died) is 409 `idempotency_outcome_unknown` for
    `idempotency_keep_s` more, never run again."""
    cors_origins: Annotated[list[Annotated[str, AfterValidator(_origin)]], NoDecode,
                            BeforeValidator(_comma_separated)] = Field(default_factory=list)
    """Web apps on these origins (comma-separated; `*` for any) may call the API from a
    browser; none when empty."""
    forwarded_allow_ips: Annotated[list[Annotated[str, AfterValidator(_proxy)]], NoDecode,
                                   BeforeValidator(_comma_separated), AfterValidator(_any_alone)
                                   ] = Field(default_factory=lambda: ["127.0.0.1", "::1"])
    """The proxies (addresses and networks, comma-separated; none when empty) whose
    `X-Forwarded-For` and `X-Forwarded-Proto` are believed: a request from one of them comes
    from the rightmost address of `X-Forwarded-For` that is not one of them, which the sign-in
    throttles count. `*` believes every peer, and the leftmost address, which the client
    writes: only for a proxy that replaces the header."""


class LogSettings(BaseSettings):
    model_config = _config("BLOOP_LOG_")

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    json_format: bool = Field(default=True, alias="BLOOP_LOG_JSON")


class KafkaSettings(BaseSettings):
    model_config = _config("BLOOP_KAFKA_")

    adapter: StoreMode | None = None
    bootstrap: Annotated[str, AfterValidator(_bootstrap)] = "127.0.0.1:9092"
    client_id: str = "bloop"
    partitions: int = Field(default=3, ge=1)
    replication_factor: int = Field(default=-1, ge=-1, le=32_767, description=(
        "copies of each topic's partitions that Bloop creates (a topic that exists is left as "
        "it is); -1 takes the brokers' `default.replication.factor` (Kafka 2.4 or later)"))
    max_attempts: int = Field(default=3, ge=1, le=100)
    retry_backoff_s: float = Field(default=0.2, ge=0)
    request_timeout_ms: int = Field(default=10_000, ge=1000)
    # Also how long Kafka holds a rebalance for the members to rejoin, which a consumer's
    # JoinGroup request waits out: its request timeout, at least 40 s, must outlast it.
    session_timeout_ms: int = Field(default=10_000, ge=6_000, le=30_000, description=(
        "how long a consumer may go without a heartbeat before Kafka takes its partitions "
        "back and gives them to the group's other members: a killed worker's partitions wait "
        "this long (a stopped one hands them over at once); from the brokers' default "
        "group.min.session.timeout.ms (6 s) up"))
    heartbeat_interval_ms: int = Field(default=3_000, ge=100, description=(
        "how often a consumer tells Kafka it is alive; below a third of "
        "`session_timeout_ms`, so that one or two lost heartbeats do not cost it its "
        "partitions"))

    @field_validator("replication_factor")
    @classmethod
    def _some_copies(cls, value: int) -> int:
        if value == 0:
            raise ValueError("must be 1 or more, or -1 for the brokers' default")
        return value

    @field_validator("heartbeat_interval_ms")
    @classmethod
    def _a_few_heartbeats_a_session(cls, value: int, info: ValidationInfo) -> int:
        session = info.data.get("session_timeout_ms")
        if session is not None and value * 3 >= session:
            raise ValueError(f"must be below a third of BLOOP_KAFKA_SESSION_TIMEOUT_MS "
                             f"({session}): under {-(-session // 3)}")
        return value


class MongoSettings(BaseSettings):
    model_config = _config("BLOOP_MONGO_")

    adapter: StoreMode | None = None
    url: Annotated[str, _server_url("mongodb", "mongodb+srv")] = "mongodb://127.0.0.1:27017"
    timeout_ms: int = Field(default=2000, ge=100)
    socket_timeout_ms: int = Field(default=10_000, ge=100, description="longest wait for one "
                                   "answer on an open connection: a server that stalls fails "
                                   "the operation (503) instead of holding the request")
    guard: Literal["auto", "on", "off"] = Field(
        default="auto", description="per-document claims around writes (kit mongo_guard): auto "
        "takes them on FerretDB only, whose updates are not atomic; on/off forces it")
    guard_stale_s: float = Field(default=20.0, gt=0, description="a claim older than this was "
                                 "left by a writer that died, and is taken over")
    guard_wait_s: float = Field(default=5.0, gt=0, description="how long a write waits for "
                                "another writer's claim on its document before giving up (503)")


class Neo4jSettings(BaseSettings):
    model_config = _config("BLOOP_NEO4J_")

    adapter: StoreMode | None = None
    url: Annotated[str, _server_url("bolt", "bolt+s", "bolt+ssc", "neo4j", "neo4j+s",
                                    "neo4j+ssc")] = "bolt://127.0.0.1:7687"
    user: str = "neo4j"
    password: str = "bloop-neo4j-pass"  # noqa: S105  (the local infra/ server's)
    timeout_s: float = Field(default=2.0, gt=0)
    query_timeout_s: float = Field(default=15.0, gt=0, description="longest wait for one query "
                                   "or transaction: a server that stalls fails it (503)")
    retry_s: float = Field(default=2.0, ge=0, description="how long the driver goes on retrying "
                           "a transaction after a transient failure (a refused connection, a "
                           "leader switch, a deadlock between two writes); its retries come 1 s, "
                           "2 s, 4 s … apart, so 2 retries twice and a server that is down "
                           "answers 503 in about 3 s")


class RedisSettings(BaseSettings):
    model_config = _config("BLOOP_REDIS_")

    adapter: StoreMode | None = None
    url: Annotated[str, _server_url("redis", "rediss", "unix")] = "redis://127.0.0.1:6379/0"
    timeout_s: float = Field(default=1.0, gt=0)


class InfluxSettings(BaseSettings):
    model_config = _config("BLOOP_INFLUX_")

    adapter: StoreMode | None = None
    url: HttpUrlText = "http://127.0.0.1:8086"
    token: str = "bloop:bloop"  # noqa: S105  (InfluxDB 1.8 reads user:password)
    org: str = "-"
    bucket: str = "bloop/autogen"
    timeout_ms: int = Field(default=2000, ge=100)


class OutboxSettings(BaseSettings):
    model_config = _config("BLOOP_OUTBOX_")

    poll_interval_s: float = Field(default=0.5, gt=0)
    batch_size: int = Field(default=500, ge=1)
    keep_sent_s: float = Field(default=86_400, ge=0)
    # How long a relay leads its outbox (or a process reads a group's topic on the embedded bus)
    # without renewing: another process takes over this long after the leader stops unannounced
    # (a crash); at once after a clean stop.
    lease_s: float = Field(default=10, ge=1)


class AuthSettings(BaseSettings):
    model_config = _config("BLOOP_AUTH_")

    issuer: str = "bloop"
    audience: str = "bloop"
    algorithm: Literal["EdDSA", "ES256"] = "EdDSA"
    access_ttl_s: int = Field(default=900, ge=30, le=86_400)
    refresh_ttl_s: int = Field(default=30 * 86_400, ge=60)
    refresh_reuse_grace_s: float = Field(default=10.0, ge=0, le=300, description=(
        "how long after its first use a refresh token presented again still gets a new pair "
        "(two tabs refreshing at once, a retry whose answer was lost) instead of signing the "
        "session out as a stolen token's reuse; 0 signs out on any reuse"))
    key_rotation_s: int = Field(default=24 * 3600, ge=60)
    clock_leeway_s: int = Field(default=30, ge=0, le=300, description=(
        "how far apart the clocks of the processes that sign and check access tokens may be: "
        "a token is taken this long before it was issued and after it expired (its revocation "
        "is kept as long)"))
    invitation_ttl_s: int = Field(default=7 * 86_400, ge=60)
    jwks_url: HttpUrlText | None = Field(default=None, description=(
        "identity's /.well-known/jwks.json, for a process that serves routes without identity"))
    api_keys_url: HttpUrlText | None = Field(default=None, description=(
        "identity's /v1/auth/principal, where a process that serves routes without identity "
        "checks API keys; without it such a process accepts no API keys"))
    identity_url: HttpUrlText | None = Field(default=None, description=(
        "identity's base URL, where content looks up a tenant's users (a new co-author) when "
        "identity runs in another process"))
    account_max_failures: int = Field(default=5, ge=1, description=(
        "failed sign-ins to one account from one address before that address is refused it"))
    account_max_failures_anywhere: int = Field(default=50, ge=1, description=(
        "failed sign-ins to one account from every address together before it is refused to "
        "all (so that one address cannot lock anyone out, while guesses spread over many "
        "addresses are still bounded)"))
    ip_max_failures: int = Field(default=50, ge=1)
    known_address_s: int = Field(default=30 * 86_400, ge=0, description=(
        "how long an address an account signed in from stays known to it: a known address "
        "is not refused by the lock of `account_max_failures_anywhere` (its own lock of "
        "`account_max_failures` still holds), so guessing from elsewhere cannot lock the owner "
        "out; 0 knows no address"))
    token_rate_limit: int = Field(default=300, ge=1, description=(
        "token requests (sign-ins and refreshes) and sign-ups one client address may make "
        "per `token_rate_window_s`, right or wrong: each costs a password hash"))
    token_rate_window_s: int = Field(default=60, ge=1)
    lockout_s: int = Field(default=900, ge=1)
    rate_limit: int = Field(default=600, ge=1, description="requests per caller per window")
    rate_window_s: int = Field(default=60, ge=1)
    api_key_rate_limit: int = Field(default=1200, ge=1,
                                    description="requests per API key per window")
    api_key_rate_window_s: int = Field(default=60, ge=1)
    anonymous_rate_limit: int = Field(default=300, ge=1, description=(
        "requests without a credential (the landing page, the API docs, a 401) one client "
        "address may make per `anonymous_rate_window_s`: a class behind one NAT address "
        "browsing the public pages stays well under it"))
    anonymous_rate_window_s: int = Field(default=60, ge=1)
    rate_local_share: float = Field(default=0.05, ge=0, le=0.5, description=(
        "the share of a caller's limit one process may count on its own between exchanges "
        "with Redis (every `rate_sync_s`), while the caller is well under the limit: also what "
        "each extra process may let through beyond it; 0 counts every call in Redis"))
    rate_sync_s: float = Field(default=0.1, gt=0, le=10, description=(
        "how often a process adds the calls it counted on its own to Redis"))
    api_key_cache_s: float = Field(default=30.0, ge=0, le=3600, description=(
        "how long a process keeps an API key's record before reading it again; a revoked key "
        "is refused at once all the same"))
    max_api_keys: int = Field(default=100, ge=1, description="live API keys per tenant")


class OidcSettings(BaseSettings):
    """Sign-in through external OpenID Connect (and GitHub OAuth2) providers."""

    model_config = _config("BLOOP_OIDC_")

    public_url: HttpUrlText | None = Field(
        default=None, description="the API's public base URL, for the callback address given to "
        "providers (it wins over the one each provider's configuration pinned); each provider's "
        "pinned one when unset")
    state_ttl_s: int = Field(default=600, ge=30, le=3600,
                             description="how long a started sign-in may take to come back")
    http_timeout_s: float = Field(default=10.0, gt=0, le=60)
    metadata_ttl_s: int = Field(default=3600, ge=0,
                                description="how long discovery documents and JWKS are kept")
    clock_leeway_s: int = Field(default=60, ge=0, le=300)
    login_rate_limit: int = Field(default=60, ge=1,
                                  description="sign-ins one client address may start per minute")
    allow_http_loopback: bool = Field(
        default=False, description="accept provider URLs on 127.0.0.1 and localhost, http:// "
        "too (a provider running on this machine); every other URL must be https")
    private_addresses: bool = Field(
        default=False, description="accept providers on this machine or a private network "
        "(an identity server inside yours); else their addresses, and those their discovery "
        "documents name, must be public")


class AiSettings(BaseSettings):
    """The AI service: its LLM provider (platform defaults; a tenant may override them), quotas,
    and its job worker. With no API key and no base URL, text comes from the offline generator."""

    model_config = _config("BLOOP_AI_")

    database: str = Field(default="ai", min_length=1)
    provider: Literal["auto", "openai", "offline"] = Field(
        default="auto", description="auto: the OpenAI-compatible API when a key or base URL is "
        "set, else the offline generator")
    openai_base_url: HttpUrlText | None = Field(default=None, description="any OpenAI-compatible server "
                                        "(vLLM, Ollama: http://127.0.0.1:11434/v1)")
    openai_api_key: SecretStr | None = None
    tenant_private_addresses: bool = Field(default=False, description=(
        "let a tenant admin's own base_url name this machine or a private network (one "
        "organisation with its own model server); off, such an address is refused, so that no "
        "tenant admin can make the worker send requests inside the network"))
    model: str = Field(default="gpt-4o-mini", min_length=1)
    price_input_per_mtok: float = Field(default=0.15, ge=0, description="USD per million tokens")
    price_output_per_mtok: float = Field(default=0.60, ge=0)
    llm_timeout_s: float = Field(default=60.0, gt=0, le=600)
    invalid_output_retries: int = Field(default=2, ge=0, le=10)
    max_lesson_chars: int = Field(default=60_000, ge=100)
    max_attempts: int = Field(default=3, ge=1, le=20)
    retry_backoff_s: float = Field(default=2.0, ge=0)
    lease_s: float = Field(default=30.0, ge=0.5)
    sweep_interval_s: float = Field(default=10.0, gt=0)
    jobs_at_once: int = Field(default=4, ge=1, le=64, description="jobs a worker process runs "
                              "at once")
    tenant_jobs_at_once: int = Field(default=2, ge=1, le=64, description=(
        "of those, one tenant's at most: its further jobs wait until one of its jobs ends, so "
        "that one tenant's slow provider does not hold up the others'"))
    monthly_budget_usd: float | None = Field(default=None, ge=0)
    max_jobs_per_hour: int = Field(default=120, ge=1)
    content_url: HttpUrlText | None = Field(default=None, description="content's base URL, when this "
                                    "process does not run content")
    url: HttpUrlText | None = Field(default=None, description=(
        "the AI service's base URL, for a process that runs content but not AI: content "
        "follows the output links of video.events there"))
    link_secret: SecretStr | None = Field(default=None, min_length=16, description=(
        "signs the output links in video.events (16 characters at least); every AI process "
        "of a deployment must share it (a random one per process when unset, which suits one "
        "process)"))
    link_ttl_s: int = Field(default=7 * 86_400, ge=60, description="how long an output link "
                            "works: a consumer that is down longer finds it expired")
    outputs_keep_s: int | None = Field(default=None, ge=60, description=(
        "how long a finished job's output files are kept after it ends (unset: `link_ttl_s`, "
        "so that no link of video.events outlives its file); content's attached copies stay"))
    run_jobs: bool = Field(default=True, description="run jobs in this process (a `bloop serve "
                           "ai` beside `bloop worker ai` processes may turn it off)")
    worker_group: str = Field(default="ai-worker", min_length=1)

    @property
    def keep_outputs_s(self) -> int:
        """How long a finished job's output files are kept after it ends."""
        return self.outputs_keep_s if self.outputs_keep_s is not None else self.link_ttl_s


class Settings:
    """Every concern's settings, read once. Invalid values raise `SettingsError`."""

    def __init__(self, **overrides: BaseSettings) -> None:
        self._overrides = overrides
        for name in ("runtime", "http", "log", "kafka", "mongo", "neo4j", "redis", "influx",
                     "outbox", "auth", "oidc", "ai"):
            getattr(self, name)

    def _get(self, name: str, cls: type[BaseSettings]) -> BaseSettings:
        if name in self._overrides:
            return self._overrides[name]
        return read(cls)

    @cached_property
    def runtime(self) -> RuntimeSettings:
        return self._get("runtime", RuntimeSettings)  # type: ignore[return-value]

    @cached_property
    def http(self) -> HttpSettings:
        return self._get("http", HttpSettings)  # type: ignore[return-value]

    @cached_property
    def log(self) -> LogSettings:
        return self._get("log", LogSettings)  # type: ignore[return-value]

    @cached_property
    def kafka(self) -> KafkaSettings:
        return self._get("kafka", KafkaSettings)  # type: ignore[return-value]

    @cached_property
    def mongo(self) -> MongoSettings:
        return self._get("mongo", MongoSettings)  # type: ignore[return-value]

    @cached_property
    def neo4j(self) -> Neo4jSettings:
        return self._get("neo4j", Neo4jSettings)  # type: ignore[return-value]

    @cached_property
    def redis(self) -> RedisSettings:
        return self._get("redis", RedisSettings)  # type: ignore[return-value]

    @cached_property
    def influx(self) -> InfluxSettings:
        return self._get("influx", InfluxSettings)  # type: ignore[return-value]

    @cached_property
    def outbox(self) -> OutboxSettings:
        return self._get("outbox", OutboxSettings)  # type: ignore[return-value]

    @cached_property
    def auth(self) -> AuthSettings:
        return self._get("auth", AuthSettings)  # type: ignore[return-value]

    @cached_property
    def oidc(self) -> OidcSettings:
        return self._get("oidc", OidcSettings)  # type: ignore[return-value]

    @cached_property
    def ai(self) -> AiSettings:
        return self._get("ai", AiSettings)  # type: ignore[return-value]

    def mode(self, store: StoreName) -> StoreMode:
        """The adapter for one store: its own `BLOOP_<STORE>_ADAPTER`, else `BLOOP_STORE`."""
        chosen: StoreMode | None = getattr(self, store).adapter
        return chosen or self.runtime.store

    def modes(self) -> dict[str, StoreMode]:
        """The adapter of each store, by name."""
        return {store: self.mode(store) for store in get_args(StoreName)}


GROUPS: tuple[type[BaseSettings], ...] = (
    RuntimeSettings, HttpSettings, LogSettings, KafkaSettings, MongoSettings, Neo4jSettings,
    RedisSettings, InfluxSettings, OutboxSettings, AuthSettings, OidcSettings, AiSettings)
"""The platform's settings groups; each service has its own too (`Service.settings`)."""

OTHER_NAMES = frozenset({
    # infra/'s scripts and its FerretDB build (`bloop infra up` passes the port)
    "BLOOP_INFRA_CACHE", "BLOOP_INFRA_RUN", "BLOOP_BUILD_JOBS", "BLOOP_REDIS_PORT",
    "BLOOP_KAFKA_PORT", "BLOOP_KAFKA_CONTROLLER_PORT", "BLOOP_NEO4J_BOLT_PORT",
    "BLOOP_NEO4J_HTTP_PORT", "BLOOP_MONGO_HOST", "BLOOP_MONGO_PORT", "BLOOP_MONGO_DATA",
    "BLOOP_MONGO_LOG_LEVEL", "BLOOP_INFLUX_PORT", "BLOOP_INFLUX_RPC_PORT",
    "BLOOP_INFLUX_VERSION", "BLOOP_INFLUX_LOG_LEVEL",
})
"""`BLOOP_*` variables that something other than these settings reads."""
SERVICE_LINK = re.compile(r"(_SERVICE_(HOST|PORT\w*)|_PORT_\d+_(TCP|UDP|SCTP)(_ADDR|_PORT|_PROTO)?)$")
"""The variables Kubernetes gives a pod for each service of its namespace (a release named
`bloop` has services `BLOOP_<NAME>`), besides `<SERVICE>_PORT=tcp://…` (`SERVICE_LINK_URL`)."""
SERVICE_LINK_URL = re.compile(r"(tcp|udp|sctp)://\S+")


def names(group: type[BaseSettings]) -> list[str]:
    """The variables `group` reads."""
    prefix = str(group.model_config.get("env_prefix", ""))
    return [(info.alias or f"{prefix}{field}").upper()
            for field, info in group.model_fields.items()]


def unknown_names(groups: Iterable[type[BaseSettings]], environ: Mapping[str, str]
                  ) -> dict[str, str | None]:
    """Each `BLOOP_*` variable of `environ` that no group reads (nor `OTHER_NAMES`), with the
    known name nearest to it: most likely a misspelling, which would leave its default in
    force. Kubernetes' service links (`SERVICE_LINK`) are left out."""
    known = {name for group in groups for name in names(group)} | OTHER_NAMES
    unknown = sorted(n for n, value in ((name.upper(), value) for name, value in environ.items())
                     if n.startswith("BLOOP_") and n not in known
                     and not _service_link(n, value))
    return {name: next(iter(difflib.get_close_matches(name, known, n=1, cutoff=0.6)), None)
            for name in unknown}


def _service_link(name: str, value: str) -> bool:
    if name.endswith("_PORT") and SERVICE_LINK_URL.fullmatch(value):
        return True
    return SERVICE_LINK.search(name) is not None


def development_credential(settings: Settings, store: Literal["neo4j", "influx"]) -> str | None:
    """The variable of `store`'s credential when it still holds the built-in one (the local
    infra/ server's) for a server on another machine, else None."""
    group = getattr(settings, store)
    field = "password" if store == "neo4j" else "token"
    if (getattr(group, field) != type(group).model_fields[field].default
            or loopback(urlsplit(group.url).hostname or "")):
        return None
    return f"BLOOP_{store.upper()}_{field.upper()}"


S = TypeVar("S", bound=BaseSettings)


def read(cls: type[S]) -> S:
    """`cls` read from the environment; an invalid value raises `SettingsError`."""
    try:
        return cls()
    except ValidationError as exc:
        raise SettingsError.from_validation(cls, exc) from None


class SettingsError(Exception):
    """A setting that cannot be used; its message is one line naming the variable."""

    @classmethod
    def from_validation(cls, settings_cls: type[BaseSettings], exc: ValidationError) -> SettingsError:
        prefix = str(settings_cls.model_config.get("env_prefix", ""))
        err = exc.errors()[0]
        where = str(err["loc"][0]) if err["loc"] else "?"
        # A field with an alias is located by its alias, which is already the variable's name.
        field = next((f for f, info in settings_cls.model_fields.items()
                      if where in (f, info.alias)), None)
        info = settings_cls.model_fields.get(field) if field else None
        name = (info.alias if info else None) or f"{prefix}{field or where}".upper()
        value = err.get("input")
        if _secret(name, info):
            return cls(f"invalid setting {name} (its value not shown): {err['msg']}")
        if isinstance(value, str) and name.endswith("_URL"):
            value = masked_url(value)
        return cls(f"invalid setting {name}={value!r}: {err['msg']}")


_SECRET_WORDS = ("SECRET", "KEY", "PASSWORD", "TOKEN")


def _secret(name: str, info: FieldInfo | None) -> bool:
    """Whether a setting's value must not be shown: a `SecretStr`, or a name that says it may
    hold one."""
    annotation = info.annotation if info is not None else None
    return (any(word in name for word in _SECRET_WORDS)
            or SecretStr in (annotation, *get_args(annotation)))
