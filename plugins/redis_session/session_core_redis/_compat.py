"""Every redis-py name the store uses that redis-py does not promise to keep.

The store's short path (:mod:`.wire`) checks a kept connection before reusing it, and redis-py
offers no public way to ask whether a connection is open: these two private attributes do it.
They exist from redis-py 5.0.8 to 8.1 (the supported range starts at 5.2.1). Each has a test in
``tests/test_compat.py`` that fails when redis-py renames or repurposes it; on a redis-py without
them the helpers answer "no check possible", and a dead connection is still caught by the
command's own retry.

Nothing else in this distribution may touch a redis-py name that starts with an underscore.
"""

from __future__ import annotations

from typing import Any

__all__ = ["async_stream_at_eof", "sync_socket_open"]


def sync_socket_open(conn: Any) -> bool:
    """Whether a sync ``redis.connection.Connection`` holds an open socket (``_sock``).

    ``False`` for one that is not connected (a failed command disconnected it, and its next send
    connects it again).
    """
    return getattr(conn, "_sock", None) is not None


def async_stream_at_eof(conn: Any) -> bool:
    """Whether the server closed a ``redis.asyncio`` connection: its stream reader
    (``_reader``) has seen the end of the stream. The event loop reads an idle socket all
    along, so a close shows there without waiting. ``False`` when not connected."""
    reader = getattr(conn, "_reader", None)
    return reader is not None and bool(reader.at_eof())
