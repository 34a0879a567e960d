"""Redis URLs: what one carries, checked at start-up, and how to show it without its secrets.

redis-py reads a URL only when the first connection is made, and then forgives much: a database
``abc`` becomes database 0, and a database or port out of range fails the first request with a
raw error. :func:`parse_url` refuses all of these when the store is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from session_core import ConfigurationError

__all__ = ["DATABASES", "SCHEMES", "UrlSettings", "parse_url", "redact_url"]

SCHEMES = ("redis", "rediss", "unix")
"""The URL schemes redis-py speaks: plain TCP, TLS and a Unix socket."""

DATABASES = 16
"""How many databases a Redis server has (``databases`` in redis.conf; Cluster has only 0).
Servers configured with more are rare; use them by handing the store a client made in code."""

_QUERY_OPTIONS = {
    "socket_timeout": "socket_timeout",
    "socket_connect_timeout": "socket_connect_timeout",
    "timeout": "socket_timeout",
    "max_connections": "max_connections",
    "health_check_interval": "health_check_interval",
}
"""URL query arguments that would silently override a store option, and that option."""


@dataclass(frozen=True, slots=True)
class UrlSettings:
    """What a valid Redis URL says, as far as the store's other options are concerned.

    Attributes:
        tls: the scheme is ``rediss``.
        db: the database it selects, or ``None`` for redis-py's default (0).
        username: whether it carries a user name.
        password: whether it carries a password.
    """

    tls: bool
    db: int | None
    username: bool
    password: bool


def _url_problem(url: str, problem: str) -> ConfigurationError:
    return ConfigurationError(
        "store_options", f"redis store option 'url' ({redact_url(url)}): {problem}"
    )


def _database(url: str, text: str) -> int:
    if not text.isascii() or not text.isdigit() or int(text) >= DATABASES:
        raise _url_problem(
            url,
            f"database {text!r} is not a number from 0 to {DATABASES - 1} "
            f"(write redis://host:6379/0; Redis has {DATABASES} databases unless its "
            f"'databases' setting says otherwise)",
        )
    return int(text)


def parse_url(url: str) -> UrlSettings:
    """Check ``url`` as redis-py will read it and return what it carries.

    Raises:
        ConfigurationError: naming the option and the URL without its password, for a scheme
            Redis does not speak, a port outside 1 to 65535, a database that is not a number
            from 0 to 15 (or is given twice), a Unix URL without a path, or a query argument
            that duplicates a store option (``socket_timeout``, ...).
    """
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise _url_problem(url, "not a redis://, rediss:// or unix:// URL")
    query = parse_qs(parts.query, keep_blank_values=True)
    for name in query:
        if name in _QUERY_OPTIONS:
            raise _url_problem(
                url,
                f"the query argument {name!r} would override the store option "
                f"{_QUERY_OPTIONS[name]!r}; set that option instead",
            )
    dbs = [_database(url, value) for value in query.get("db", [])]
    if parts.scheme == "unix":
        if not parts.path:
            raise _url_problem(url, "a unix:// URL needs the socket's path: unix:///run/redis.sock")
    else:
        try:
            port = parts.port
        except ValueError:
            port = -1
        if port is not None and not 0 < port < 65536:
            raise _url_problem(url, "the port must be a number from 1 to 65535")
        path = unquote(parts.path).strip("/")
        if path:
            dbs.append(_database(url, path))
    if len(dbs) > 1:
        raise _url_problem(url, "give the database once, in the path (redis://host:6379/2)")
    return UrlSettings(
        tls=parts.scheme == "rediss",
        db=dbs[0] if dbs else None,
        username=bool(parts.username),
        password=bool(parts.password),
    )


def redact_url(url: str) -> str:
    """``url`` without its user name, password or query string (a bad port is shown as
    written, so that a message about it makes sense)."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"unix://{parts.path}"
    hostport = parts.netloc.rpartition("@")[2]
    host = parts.hostname or "localhost"
    if ":" in host:
        host = f"[{host}]"
    port = hostport.rpartition("]")[2].partition(":")[2] if hostport else ""
    return f"{parts.scheme}://{host}:{port or 6379}{parts.path}"
