"""The errors only the redis store raises; each derives from :class:`session_core.SessionCoreError`.

Outages are :class:`session_core.StoreUnreachableError` and bad options
:class:`session_core.ConfigurationError`, as for every store; these are the cases no core error
describes.
"""

from __future__ import annotations

from session_core import SessionCoreError
from session_core import SessionTooLargeError as CoreSessionTooLargeError

__all__ = ["AsyncClientOnlyError", "SessionTooLargeError"]


class AsyncClientOnlyError(SessionCoreError, RuntimeError):
    """A sync method was called on a store that was handed only an async client.

    Attributes:
        operation: the method that was called (``"load"``, ``"save"``, ...).
    """

    def __init__(self, operation: str) -> None:
        self.operation = operation
        super().__init__(
            f"the redis store cannot {operation} here: it was given only an async_client; "
            f"use the async methods (aload, asave, ...), or hand over a sync client too "
            f"(RedisStore(..., client=redis.Redis(...), async_client=...))"
        )


class SessionTooLargeError(CoreSessionTooLargeError):
    """A session holds a value larger than the Redis server accepts in one piece.

    Redis refuses any single string over its ``proto-max-bulk-len`` (512 MB unless configured
    otherwise) by closing the connection; the store refuses such a session before sending
    anything, so nothing is written and the connection stays usable. A
    :class:`session_core.SessionTooLargeError` (catch that one for any store).

    Attributes:
        size: the size of the largest value in bytes.
        limit: the limit in bytes, as the store knows it (its ``max_value_size`` option).
        target: the server, with no password in it.
    """

    def __init__(self, size: int, limit: int, target: str) -> None:
        super().__init__(
            "redis",
            size,
            limit,
            target,
            "the server's limit for one value, proto-max-bulk-len, which the store's "
            "max_value_size option mirrors; raise both on the server and in the store to allow "
            "more",
        )
