"""The redis store's settings: validated once, at start-up, from ``store_options``.

Every problem (an unknown option, a wrong type, a URL scheme Redis does not speak, two
connection modes at once) is a :class:`session_core.ConfigurationError` naming the option.
Nothing here connects to Redis.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from session_core import ConfigurationError
from session_core.hints import unknown_option

from .urls import DATABASES, UrlSettings, parse_url, redact_url

__all__ = [
    "DEFAULT_KEY_PREFIX",
    "DEFAULT_MAX_VALUE_SIZE",
    "DEFAULT_URL",
    "Address",
    "RedisOptions",
    "SentinelOptions",
    "parse_address",
    "redact_url",
]

DEFAULT_URL = "redis://localhost:6379/0"
"""The server used when none of ``url``, ``sentinel`` or ``cluster`` is given."""

DEFAULT_KEY_PREFIX = "session:"
"""The namespace every session's Redis key starts with."""

DEFAULT_MAX_VALUE_SIZE = 512 * 1024 * 1024
"""The largest value (one session key's JSON) Redis accepts by default: ``proto-max-bulk-len``."""

Address = tuple[str, int]
"""A ``(host, port)`` pair."""


def _problem(option: str, problem: str) -> ConfigurationError:
    return ConfigurationError("store_options", f"redis store option {option!r}: {problem}")


def parse_address(value: object, option: str) -> Address:
    """``"host:port"``, ``"[v6]:port"`` or ``[host, port]`` as a ``(host, port)`` pair.

    Raises:
        ConfigurationError: naming ``option``, for anything else.
    """
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2:
        host, port = value
    elif isinstance(value, str) and ":" in value:
        host, _, port = value.rpartition(":")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        try:
            port = int(port)
        except ValueError:
            port = None
    else:
        host = port = None
    if not isinstance(host, str) or not host or type(port) is not int or not 0 < port < 65536:
        raise _problem(option, f'{value!r} is not an address; write "host:port"')
    return (host, port)


def _format_address(address: Address) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True, slots=True)
class SentinelOptions:
    """Where Redis Sentinel finds the master.

    Attributes:
        master: the name the sentinels monitor the master under (``sentinel monitor <name>``).
        nodes: the sentinels' addresses.
        username: the user to authenticate to the sentinels as, if they need one.
        password: the sentinels' password, if they need one (the data nodes' own password is
            the store's ``password`` option).
    """

    master: str
    nodes: tuple[Address, ...]
    username: str | None = None
    password: str | None = None

    @classmethod
    def from_mapping(cls, value: object) -> SentinelOptions:
        """Parse ``{"master": ..., "nodes": [...], "username": ..., "password": ...}``."""
        if not isinstance(value, Mapping):
            raise _problem(
                "sentinel", 'expected a table such as {master = "mymaster", nodes = ["host:26379"]}'
            )
        unknown = set(value) - {"master", "nodes", "username", "password"}
        if unknown:
            raise _problem(
                "sentinel",
                f"unknown key {sorted(unknown)[0]!r}; "
                f"the keys are master, nodes, username and password",
            )
        master = value.get("master")
        if not isinstance(master, str) or not master:
            raise _problem("sentinel", "'master' must be the monitored master's name")
        nodes = value.get("nodes")
        if isinstance(nodes, str) or not isinstance(nodes, Sequence) or not nodes:
            raise _problem("sentinel", "'nodes' must be a non-empty list of sentinel addresses")
        for secret in ("username", "password"):
            if not isinstance(value.get(secret), str | None):
                raise _problem("sentinel", f"{secret!r} must be a string")
        return cls(
            master=master,
            nodes=tuple(parse_address(node, "sentinel") for node in nodes),
            username=value.get("username"),
            password=value.get("password"),
        )


def _number(option: str, value: object, *, integer: bool, minimum: float, optional: bool) -> None:
    if value is None and optional:
        return
    kinds: tuple[type, ...] = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or value < minimum:  # type: ignore[operator]
        what = "an integer" if integer else "a number"
        raise _problem(option, f"{value!r} is not {what} of at least {minimum}")


@dataclass(frozen=True, slots=True, kw_only=True)
class RedisOptions:
    """Every setting of the redis store; see the README for a table with examples.

    Give at most one of ``url``, ``sentinel`` and ``cluster``; with none, :data:`DEFAULT_URL`.

    Attributes:
        url: a ``redis://``, ``rediss://`` (TLS) or ``unix://`` URL, as redis-py reads it.
        sentinel: reach the master through Redis Sentinel, following failovers.
        cluster: the startup nodes of a Redis Cluster.
        key_prefix: the namespace of the store's Redis keys; no ``{`` or ``}`` (hash tags are
            the store's own).
        username: the ACL user of the data nodes (a URL carries its own).
        password: the data nodes' password (a URL carries its own).
        db: the database number, with ``sentinel`` (a URL carries its own; Cluster has only 0).
        ssl: use TLS, with ``sentinel`` or ``cluster`` (a URL says it with ``rediss://``).
        ssl_ca_certs: a CA bundle to verify the servers' certificates with.
        socket_timeout: seconds a command may take before it fails; ``None`` waits forever.
        socket_connect_timeout: seconds a connection may take before it fails.
        max_connections: the most connections one pool opens; ``None`` for the default: 100 on
            a standalone server (where a request waits for a free connection), redis-py's own
            limit on Sentinel and Cluster.
        retries: how often a command that failed on a broken connection is retried on a
            fresh one before the error is raised (covers a restarted server or a failover).
        health_check_interval: seconds a pooled connection may sit idle before it is checked
            with a PING on its next use; 0 checks never.
        max_value_size: the largest value (one session key's JSON) the server accepts, in bytes:
            its ``proto-max-bulk-len``. A session holding a larger one is refused with
            :class:`~.errors.SessionTooLargeError` before anything is sent.
        direct_commands: send the store's commands straight on the pool's connections, skipping
            redis-py's ``execute_command`` (see :mod:`.wire`); ``False`` sends every command
            through ``execute_command``, redis-py's public path.
    """

    url: str | None = None
    sentinel: SentinelOptions | None = None
    cluster: tuple[Address, ...] | None = None
    key_prefix: str = DEFAULT_KEY_PREFIX
    username: str | None = None
    password: str | None = None
    db: int | None = None
    ssl: bool = False
    ssl_ca_certs: str | None = None
    socket_timeout: float | None = 2.0
    socket_connect_timeout: float | None = 2.0
    max_connections: int | None = None
    retries: int = 1
    health_check_interval: float = 0
    max_value_size: int = DEFAULT_MAX_VALUE_SIZE
    direct_commands: bool = True

    def __post_init__(self) -> None:
        modes = [n for n in ("url", "sentinel", "cluster") if getattr(self, n) is not None]
        if len(modes) > 1:
            raise _problem(
                modes[1], f"give only one of 'url', 'sentinel' and 'cluster', not {modes}"
            )
        if self.url is not None:
            if not isinstance(self.url, str):
                raise _problem("url", "must be a redis://, rediss:// or unix:// URL")
            self._check_beside_url(parse_url(self.url))
        if self.cluster is not None and not self.cluster:
            raise _problem("cluster", "give at least one startup node")
        if not isinstance(self.key_prefix, str) or "{" in self.key_prefix or "}" in self.key_prefix:
            raise _problem("key_prefix", f"{self.key_prefix!r} must be a string without {{ or }}")
        for name in ("username", "password", "ssl_ca_certs"):
            if not isinstance(getattr(self, name), str | None):
                raise _problem(name, "must be a string")
        for name in ("ssl", "direct_commands"):
            if not isinstance(getattr(self, name), bool):
                raise _problem(name, "must be true or false")
        if self.url is None and self.sentinel is None and self.cluster is None:
            self._check_beside_url(parse_url(DEFAULT_URL))
        elif self.url is None and self.ssl_ca_certs is not None and not self.ssl:
            raise _problem("ssl_ca_certs", "verifies TLS certificates: set ssl = true as well")
        if self.db is not None:
            _number("db", self.db, integer=True, minimum=0, optional=False)
            if self.cluster is not None and self.db != 0:
                raise _problem("db", "Redis Cluster has only database 0")
            if self.db >= DATABASES:
                raise _problem(
                    "db", f"{self.db} is not a database number from 0 to {DATABASES - 1}"
                )
        for name in ("socket_timeout", "socket_connect_timeout"):
            _number(name, getattr(self, name), integer=False, minimum=0.001, optional=True)
        _number("max_connections", self.max_connections, integer=True, minimum=1, optional=True)
        _number("retries", self.retries, integer=True, minimum=0, optional=False)
        _number("max_value_size", self.max_value_size, integer=True, minimum=1, optional=False)
        _number(
            "health_check_interval",
            self.health_check_interval,
            integer=False,
            minimum=0,
            optional=False,
        )

    def _check_beside_url(self, url: UrlSettings) -> None:
        """Refuse an option that the URL would silently override or make meaningless."""
        # Without url, sentinel or cluster the store uses DEFAULT_URL, so the same rules hold.
        if self.db is not None:
            raise _problem("db", "for one server, give the database in the url (redis://host/2)")
        if self.ssl:
            raise _problem("ssl", "for one server, the url's scheme says it: write rediss://")
        if self.ssl_ca_certs is not None and not url.tls:
            raise _problem("ssl_ca_certs", "verifies TLS certificates: use a rediss:// URL")
        for name, in_url in (("username", url.username), ("password", url.password)):
            if in_url and getattr(self, name) is not None:
                raise _problem(name, "the URL carries one already; give it in one place")

    def given(self) -> list[str]:
        """The names of the options set to something other than their default."""
        return [
            field.name
            for field in dataclasses.fields(self)
            if getattr(self, field.name) != field.default
        ]

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> RedisOptions:
        """Validate ``store_options``; raise :class:`~session_core.ConfigurationError` if bad."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigurationError("store_options", unknown_option("redis", unknown[0], known))
        values = dict(options)
        if values.get("sentinel") is not None:
            values["sentinel"] = SentinelOptions.from_mapping(values["sentinel"])
        cluster = values.get("cluster")
        if cluster is not None:
            if isinstance(cluster, str):
                cluster = cluster.split(",")
            if not isinstance(cluster, Sequence):
                raise _problem("cluster", 'expected a list of "host:port" startup nodes')
            values["cluster"] = tuple(parse_address(node, "cluster") for node in cluster)
        return cls(**values)

    @property
    def target(self) -> str:
        """Where the store connects, with no password in it: for messages and errors."""
        if self.sentinel is not None:
            nodes = ",".join(_format_address(a) for a in self.sentinel.nodes)
            return f"sentinel master {self.sentinel.master!r} via {nodes}"
        if self.cluster is not None:
            return "cluster " + ",".join(_format_address(a) for a in self.cluster)
        return redact_url(self.url or DEFAULT_URL)
