from bloop.platform.kit.cache.memory import MemoryCache
from bloop.platform.kit.cache.port import Cache
from bloop.platform.kit.cache.redis import RedisCache

__all__ = ["Cache", "MemoryCache", "RedisCache"]
