"""What ``session-core check`` reports about the Redis servers behind the store: whether a crash
would lose sessions (the persistence mode), and whether the server's size limit matches the
store's ``max_value_size``.

Read with redis-py's public commands (``CONFIG GET``, and ``INFO persistence``, which still
answers where ``CONFIG`` is disabled or renamed, as on most managed services). Nothing here runs
per request.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import redis.exceptions

from .wire import CLUSTER_TYPES

__all__ = [
    "CONFIG_NAMES",
    "CheckNote",
    "NodeState",
    "bulk_limit_note",
    "persistence_note",
    "read_node",
    "server_report",
]

CONFIG_NAMES = ("appendonly", "appendfsync", "save", "proto-max-bulk-len")
"""The server settings the report reads (each with its own ``CONFIG GET``: Redis 6 takes one)."""

_ADVICE = (
    "turn on the append-only file (appendonly yes, appendfsync everysec) to keep sessions "
    "through a crash; see the redis store's README, 'Persistence'"
)


class CheckNote(NamedTuple):
    """One line of ``session-core check``.

    Attributes:
        text: what was found, and what to do about it when it is a warning.
        warning: whether it needs attention.
    """

    text: str
    warning: bool = False


class NodeState(NamedTuple):
    """What one server said: its settings (empty when ``CONFIG`` is refused) and its
    ``INFO persistence`` fields."""

    config: Mapping[str, str]
    info: Mapping[str, Any]


def read_node(client: Any, **route: Any) -> NodeState:
    """Ask one server (``route``: redis-py's ``target_nodes=`` for a Cluster client) for the
    settings in :data:`CONFIG_NAMES` and its ``INFO persistence``.

    Raises:
        redis.exceptions.RedisError: when even ``INFO`` is refused (or the server is down).
    """
    config: dict[str, str] = {}
    try:
        for name in CONFIG_NAMES:
            config.update(_text(client.config_get(name, **route)))
    except redis.exceptions.ResponseError:  # CONFIG renamed away, or no permission for it
        config = {}
    return NodeState(config, client.info("persistence", **route))


def _text(reply: Mapping[Any, Any]) -> dict[str, str]:
    return {
        (k.decode() if isinstance(k, bytes) else str(k)): (
            v.decode() if isinstance(v, bytes) else str(v)
        )
        for k, v in reply.items()
    }


def persistence_note(where: str, state: NodeState) -> CheckNote:
    """Whether a crash of the server at ``where`` would lose sessions, and how many."""
    config, info = state.config, state.info
    aof = config.get("appendonly") == "yes" if config else bool(int(info.get("aof_enabled", 0)))
    if aof:
        fsync = config.get("appendfsync")
        if fsync == "always":
            loses = "a crash loses no acknowledged session write"
        elif fsync == "everysec":
            loses = (
                "a crash loses at most about the last second of session writes (usually none "
                "when only Redis dies)"
            )
        elif fsync == "no":
            loses = (
                "a crash of Redis loses no session write, a crash of the machine those the "
                "operating system had not yet written (typically up to 30 seconds)"
            )
        else:
            loses = "its fsync policy is unknown (CONFIG is not available)"
        policy = f"appendfsync {fsync}" if fsync else "appendfsync unknown"
        return CheckNote(f"redis persistence at {where}: append-only file ({policy}): {loses}")
    if not config:
        return CheckNote(
            f"redis persistence at {where}: no append-only file (INFO persistence; CONFIG is "
            f"not available): a crash loses every session written since the last snapshot, "
            f"if snapshots are taken at all; {_ADVICE}",
            warning=True,
        )
    save = config.get("save", "")
    if save:
        what = (
            f"snapshots only (save {save!r}): a crash or kill -9 of Redis loses every session "
            f"written since the last snapshot, and their visitors silently get new, empty "
            f"sessions"
        )
    else:
        what = "none (no append-only file, no snapshots): a restart loses every session"
    return CheckNote(f"redis persistence at {where}: {what}; {_ADVICE}", warning=True)


def bulk_limit_note(where: str, state: NodeState, max_value_size: int) -> CheckNote | None:
    """A warning when the server at ``where`` accepts smaller values than the store's
    ``max_value_size`` (it would close the connection of a request that sends one); ``None``
    when the limits agree or ``CONFIG`` is not available."""
    text = state.config.get("proto-max-bulk-len")
    if text is None or not text.isdigit() or int(text) >= max_value_size:
        return None
    return CheckNote(
        f"redis proto-max-bulk-len at {where} is {text} bytes, below the store's "
        f"max_value_size of {max_value_size}: set max_value_size = {text} in store_options, so "
        f"that a larger session is refused with a clear error before it is sent",
        warning=True,
    )


def server_report(client: Any, target: str, max_value_size: int) -> list[CheckNote]:
    """The notes on every server ``client`` writes sessions to: the one server (or Sentinel's
    master) at ``target``, or each master of a Cluster.

    Raises:
        redis.exceptions.ConnectionError, redis.exceptions.TimeoutError: when a server is down.
    """
    if isinstance(client, CLUSTER_TYPES):
        nodes = [(f"{n.host}:{n.port}", {"target_nodes": n}) for n in client.get_primaries()]
    else:
        nodes = [(target, {})]
    notes = []
    for where, route in nodes:
        try:
            state = read_node(client, **route)
        except redis.exceptions.ResponseError as exc:  # INFO refused too (an ACL without it)
            notes.append(
                CheckNote(f"could not read redis persistence at {where}: {exc}", warning=True)
            )
            continue
        notes.append(persistence_note(where, state))
        limit = bulk_limit_note(where, state, max_value_size)
        if limit is not None:
            notes.append(limit)
    return notes
