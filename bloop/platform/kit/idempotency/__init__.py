from bloop.platform.kit.idempotency.port import Entry, IdempotencyStore
from bloop.platform.kit.idempotency.redis import RedisIdempotency
from bloop.platform.kit.idempotency.sqlite import SqliteIdempotency

__all__ = ["Entry", "IdempotencyStore", "RedisIdempotency", "SqliteIdempotency"]
