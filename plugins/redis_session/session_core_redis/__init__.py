"""session-core-redis: the ``redis`` session store for session-core.

Select it with ``store = "redis"`` and configure it with ``store_options`` (``url``,
``sentinel`` or ``cluster``, ``key_prefix``, timeouts and pool size); see :class:`RedisOptions`.
In code, :class:`RedisStore` also takes a ready redis-py client.
"""

from .errors import AsyncClientOnlyError, SessionTooLargeError
from .options import DEFAULT_KEY_PREFIX, RedisOptions, SentinelOptions
from .store import UNREACHABLE_ERRORS, RedisStore, redis_key

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_KEY_PREFIX",
    "UNREACHABLE_ERRORS",
    "AsyncClientOnlyError",
    "RedisOptions",
    "RedisStore",
    "SentinelOptions",
    "SessionTooLargeError",
    "__version__",
    "redis_key",
]
