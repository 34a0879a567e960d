"""Building redis-py clients (sync and :mod:`redis.asyncio`) from :class:`RedisOptions`.

Each client owns one connection pool, made once per store (and per event loop for the async
client) and shared by every request. Nothing here connects: redis-py connects on first use.

On a standalone server the pool is a plain ``ConnectionPool`` used by the store's
:class:`~.wire.Lane` (:class:`~.wire.AsyncLane`) alone, which keeps the connections it has used,
runs at most :func:`pool_limit` commands at once and makes a request that finds every connection
busy wait for one (up to ``socket_timeout``), as a ``BlockingConnectionPool`` would.
"""

from __future__ import annotations

import types
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.retry
import redis.asyncio.sentinel
import redis.cluster
import redis.retry
import redis.sentinel
from redis.backoff import ExponentialBackoff

from .options import DEFAULT_URL, RedisOptions

__all__ = [
    "DEFAULT_MAX_CONNECTIONS",
    "aclose_client",
    "build_async_client",
    "build_client",
    "close_client",
    "pool_limit",
]

DEFAULT_MAX_CONNECTIONS = 100
"""Connections one standalone pool opens when ``max_connections`` is not set. A request that
finds them all busy waits (up to ``socket_timeout``) for one to be returned instead of failing."""

_SYNC = types.SimpleNamespace(
    Redis=redis.Redis,
    ConnectionPool=redis.ConnectionPool,  # the lane waits for a free connection
    BlockingConnectionPool=redis.BlockingConnectionPool,  # with direct_commands = false
    Sentinel=redis.sentinel.Sentinel,
    RedisCluster=redis.cluster.RedisCluster,
    ClusterNode=redis.cluster.ClusterNode,
    Retry=redis.retry.Retry,
)
_ASYNC = types.SimpleNamespace(
    Redis=redis.asyncio.Redis,
    ConnectionPool=redis.asyncio.ConnectionPool,  # the lane waits for a free connection
    BlockingConnectionPool=redis.asyncio.BlockingConnectionPool,  # with direct_commands = false
    Sentinel=redis.asyncio.sentinel.Sentinel,
    RedisCluster=redis.asyncio.cluster.RedisCluster,
    ClusterNode=redis.asyncio.cluster.ClusterNode,
    Retry=redis.asyncio.retry.Retry,
)


def _connection_kwargs(options: RedisOptions, flavour: types.SimpleNamespace) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "socket_timeout": options.socket_timeout,
        "socket_connect_timeout": options.socket_connect_timeout,
        "health_check_interval": options.health_check_interval,
        # A short, bounded retry on a fresh connection: enough to ride over a restarted server
        # or a failover, never long enough to hang a request.
        "retry": flavour.Retry(ExponentialBackoff(cap=0.25, base=0.02), options.retries),
    }
    for name in ("username", "password", "db", "ssl_ca_certs"):
        if getattr(options, name) is not None:
            kwargs[name] = getattr(options, name)
    if options.ssl:
        kwargs["ssl"] = True
    if options.max_connections is not None:
        kwargs["max_connections"] = options.max_connections
    return kwargs


def _build(options: RedisOptions, flavour: types.SimpleNamespace) -> tuple[Any, list[Any]]:
    kwargs = _connection_kwargs(options, flavour)
    if options.cluster is not None:
        kwargs.pop("db", None)
        nodes = [flavour.ClusterNode(host, port) for host, port in options.cluster]
        return flavour.RedisCluster(startup_nodes=nodes, **kwargs), []
    if options.sentinel is not None:
        sentinel_kwargs: dict[str, Any] = {
            "socket_timeout": options.socket_timeout,
            "socket_connect_timeout": options.socket_connect_timeout,
        }
        if options.sentinel.username is not None:
            sentinel_kwargs["username"] = options.sentinel.username
        if options.sentinel.password is not None:
            sentinel_kwargs["password"] = options.sentinel.password
        sentinel = flavour.Sentinel(list(options.sentinel.nodes), sentinel_kwargs=sentinel_kwargs)
        client = sentinel.master_for(options.sentinel.master, redis_class=flavour.Redis, **kwargs)
        return client, list(sentinel.sentinels)
    kwargs.pop("ssl", None)  # the URL's scheme says it
    kwargs["max_connections"] = options.max_connections or DEFAULT_MAX_CONNECTIONS
    url = options.url or DEFAULT_URL
    if not options.direct_commands:  # execute_command, with redis-py's defaults
        pool = flavour.BlockingConnectionPool.from_url(
            url, timeout=options.socket_timeout, **kwargs
        )
        return flavour.Redis(connection_pool=pool), []
    # RESP2: the server sends nothing unasked (no push messages, no maintenance notifications),
    # so the store's lane may read each reply itself (see wire.public_path_reason).
    pool = flavour.ConnectionPool.from_url(url, protocol=2, **kwargs)
    return flavour.Redis(connection_pool=pool), []


def build_client(options: RedisOptions) -> tuple[Any, list[Any]]:
    """A sync client for ``options``, and the helper clients (sentinels) to close with it."""
    return _build(options, _SYNC)


def build_async_client(options: RedisOptions) -> tuple[Any, list[Any]]:
    """Like :func:`build_client`, with :mod:`redis.asyncio` (bound to the running event loop)."""
    return _build(options, _ASYNC)


def pool_limit(options: RedisOptions) -> int | None:
    """The size of a standalone client's pool: how many commands the store's lane runs on it at
    once, the others waiting (up to ``socket_timeout``) for a free connection. ``None`` on
    Sentinel and Cluster, whose clients keep redis-py's own pools (which fail instead of
    waiting), and with ``direct_commands = false`` (a blocking pool waits instead)."""
    if options.sentinel is not None or options.cluster is not None:
        return None
    if not options.direct_commands:
        return None
    return options.max_connections or DEFAULT_MAX_CONNECTIONS


def close_client(client: Any, helpers: list[Any]) -> None:
    """Close a client built by :func:`build_client` and drop its pooled connections."""
    client.close()
    pool = getattr(client, "connection_pool", None)
    if pool is not None:
        pool.disconnect()
    for helper in helpers:
        close_client(helper, [])


async def aclose_client(client: Any, helpers: list[Any]) -> None:
    """Close a client built by :func:`build_async_client` and its pooled connections."""
    await client.aclose()
    pool = getattr(client, "connection_pool", None)
    if pool is not None:
        await pool.disconnect()
    for helper in helpers:
        await aclose_client(helper, [])
