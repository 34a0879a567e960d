"""The exceptions session-core raises.

Every error derives from :class:`SessionCoreError` and carries what it reports as attributes,
so callers can act on it without parsing the message.

A malformed, tampered, expired or wrong-key cookie is *not* an error: the visitor gets a fresh,
empty session and the bad cookie is replaced or removed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .hints import did_you_mean, pip_install, unreachable_advice

__all__ = [
    "ConfigurationError",
    "CookieTooLargeError",
    "DuplicateStoreError",
    "EncryptionUnavailableError",
    "IncompatiblePluginError",
    "InvalidExpiryError",
    "ListingUnsupportedError",
    "PluginLoadError",
    "SessionCoreError",
    "SessionNotLoadedError",
    "SessionTooLargeError",
    "StoreContractError",
    "StoreDisabledError",
    "StoreNotFoundError",
    "StoreUnreachableError",
    "UserIndexUnsupportedError",
]


_OUR_DISTRIBUTIONS = {"db": "session-core-db", "redis": "session-core-redis"}
"""The stores this project publishes, by name: the only install hints that name a distribution
(a name guessed from the store's would invite squatting)."""


class SessionCoreError(Exception):
    """The root of every exception raised by session-core and its stores.

    Subclasses build their message from typed attributes in ``__init__``; a copy made by
    :mod:`pickle` (a process pool, a log handler in another process) keeps both.
    """

    def __reduce__(self) -> tuple[Any, ...]:
        # The default rebuilds an exception by calling its class with ``args`` (the message),
        # which is not what these classes' __init__ take.
        return (_restore, (type(self), self.args, self.__dict__))


def _restore(cls: type[SessionCoreError], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    error = cls.__new__(cls)
    # The base's __init__ only keeps args (the class's own would rebuild the message).
    BaseException.__init__(error, *args)
    error.__dict__.update(state)
    return error


class ConfigurationError(SessionCoreError, ValueError):
    """The configuration is invalid.

    Raised at start-up (building a :class:`~session_core.SessionConfig` or a middleware), never at
    the first request.

    Attributes:
        key: the configuration key at fault, or ``None`` when the problem is not one key's.
        problem: what is wrong and what to write instead.
    """

    def __init__(self, key: str | None, problem: str) -> None:
        self.key = key
        self.problem = problem
        where = f"session configuration key {key!r}" if key else "session configuration"
        super().__init__(f"{where}: {problem}")


class EncryptionUnavailableError(ConfigurationError):
    """Cookie encryption was asked for but the ``cryptography`` package is not installed."""

    def __init__(self) -> None:
        super().__init__(
            "store_options",
            "encrypt=true needs the 'cryptography' package; install it with: "
            + pip_install("session-core", "encryption"),
        )


class StoreNotFoundError(SessionCoreError, LookupError):
    """No installed store has the configured name.

    Attributes:
        name: the name that was asked for.
        available: the names of the stores that are available.
        suggestion: the available name ``name`` is most likely a misspelling of, if any.
    """

    def __init__(self, name: str, available: Sequence[str]) -> None:
        self.name = name
        self.available = tuple(available)
        self.suggestion = did_you_mean(name, self.available)
        super().__init__(self._describe())

    def _describe(self) -> str:
        names = ", ".join(repr(n) for n in self.available) or "none"
        if self.suggestion is not None:
            hint = f"did you mean {self.suggestion!r}?"
        elif self.name in _OUR_DISTRIBUTIONS:
            hint = f"install it with: {pip_install(_OUR_DISTRIBUTIONS[self.name])}"
        else:
            hint = (
                "install the distribution that provides it (its documentation names it); "
                "`session-core stores` lists what is installed"
            )
        return f"no session store named {self.name!r} is installed (available: {names}); {hint}"


class StoreDisabledError(StoreNotFoundError):
    """The configured store is a plugin blocked by ``SESSION_CORE_DISABLE_PLUGINS``.

    Attributes:
        name: the disabled store's name.
        available: the names of the stores that are available.
    """

    def _describe(self) -> str:
        return (
            f"the session store {self.name!r} is disabled by the environment variable "
            f"SESSION_CORE_DISABLE_PLUGINS; remove it from that list to use it"
        )


class DuplicateStoreError(SessionCoreError):
    """Two installed distributions claim the same store name.

    Attributes:
        name: the store name both claim.
        distributions: the ``name version`` of each distribution that claims it.
    """

    def __init__(self, name: str, distributions: Sequence[str]) -> None:
        self.name = name
        self.distributions = tuple(distributions)
        claimants = " and ".join(self.distributions)
        super().__init__(
            f"the session store name {name!r} is claimed by more than one installed "
            f"distribution: {claimants}; uninstall all but one of them"
        )


class PluginLoadError(SessionCoreError):
    """A store plugin failed to load (its import raised, or its hooks are invalid).

    The original exception is chained as ``__cause__``.

    Attributes:
        name: the entry point (store) name.
        distribution: the distribution that provides it.
        version: that distribution's version.
        reason: a one-line description of what failed.
    """

    def __init__(self, name: str, distribution: str, version: str, reason: str) -> None:
        self.name = name
        self.distribution = distribution
        self.version = version
        self.reason = reason
        super().__init__(
            f"the session store plugin {name!r} (distribution {distribution} {version}) "
            f"failed to load: {reason}"
        )


class IncompatiblePluginError(PluginLoadError):
    """A store plugin was written for a store API this version of session-core does not support.

    Attributes:
        plugin_api: the store API version the plugin declares.
        supported: the range of store API versions this session-core supports.
    """

    def __init__(
        self, name: str, distribution: str, version: str, plugin_api: int, supported: range
    ) -> None:
        self.plugin_api = plugin_api
        self.supported = supported
        low, high = supported.start, supported.stop - 1
        window = f"{low}" if low == high else f"{low} to {high}"
        hint = f"upgrade {distribution}" if plugin_api < low else "upgrade session-core"
        super().__init__(
            name,
            distribution,
            version,
            f"it implements store API {plugin_api}, but this session-core supports "
            f"store API {window}; {hint}",
        )


class CookieTooLargeError(SessionCoreError):
    """The session's ``Set-Cookie`` line is larger than browsers accept.

    Browsers silently drop such a cookie, which would lose the session, so it is refused here.

    Attributes:
        size: the size of the whole ``Set-Cookie`` line in bytes.
        limit: the largest size allowed.
        store: the name of the store that produced the cookie.
    """

    def __init__(self, size: int, limit: int, store: str) -> None:
        self.size = size
        self.limit = limit
        self.store = store
        super().__init__(
            f"the session cookie would be {size} bytes, over the {limit}-byte limit browsers "
            f"accept (store {store!r}); keep less in the session, or use a server-side store "
            f"such as 'db' ({pip_install('session-core-db')}) or 'redis' "
            f"({pip_install('session-core-redis')})"
        )


class ListingUnsupportedError(SessionCoreError, TypeError):
    """A store was asked to list, insert or delete records by key hash, and cannot (its
    :attr:`SessionStore.lists_records` is false).

    Attributes:
        store: the store's name.
    """

    def __init__(self, store: str) -> None:
        self.store = store
        super().__init__(
            f"session store {store!r} cannot list its records or write them by key hash "
            f"(lists_records is False); the db and redis stores can: use one of them here"
        )


class SessionTooLargeError(SessionCoreError, ValueError):
    """A session is larger than its store can keep. The store refuses it before sending
    anything, so nothing is written and its connections stay usable for other requests.

    Each server-side store raises a subclass of its own (``session_core_db``'s,
    ``session_core_redis``'s) with the same attributes; catch this one for any store.

    Attributes:
        store: the store's name.
        size: the session's size in bytes, as the store would send it.
        limit: the largest size the store takes, in bytes.
        target: where it would have gone, with no password in it.
        reason: where the limit comes from (``"max_allowed_packet"``, ...).
    """

    def __init__(self, store: str, size: int, limit: int, target: str, reason: str) -> None:
        self.store = store
        self.size = size
        self.limit = limit
        self.target = target
        self.reason = reason
        super().__init__(
            f"session store {store!r} cannot save a session of {size} bytes at {target}: the "
            f"limit is {limit} bytes ({reason}); keep large data out of the session (store it "
            f"elsewhere and keep its id in the session)"
        )


class SessionNotLoadedError(SessionCoreError, RuntimeError):
    """A session was read in async code before it was loaded, and loading it there would block
    the event loop (the ASGI middleware with ``asgi_preload = false`` and a server-side store).

    Attributes:
        store: the store's name.
    """

    def __init__(self, store: str) -> None:
        self.store = store
        super().__init__(
            f"the session is not loaded yet, and loading it from store {store!r} here would "
            f"block the event loop: call 'await request.session.aload()' (or "
            f"'await scope[\"session\"].aload()') before reading it, cycling its key or "
            f"flushing it, or set asgi_preload = true to have every request with a session "
            f"cookie load it ahead"
        )


class StoreUnreachableError(SessionCoreError, ConnectionError):
    """A store could not reach its server, or an operation on it failed or timed out.

    The underlying exception is chained as ``__cause__``.

    Attributes:
        store: the store's name.
        target: what it tried to reach, with no password in it (a URL or an address).
        operation: what it was doing (``"load"``, ``"save"``, ...).
        hint: what to do about it; by default worked out from ``reason`` when that shows the
            cause (a refused connection, a missing database, bad credentials, ...), else None.
    """

    def __init__(
        self, store: str, target: str, operation: str, reason: str = "", hint: str | None = None
    ) -> None:
        self.store = store
        self.target = target
        self.operation = operation
        self.hint = hint if hint is not None else unreachable_advice(reason)
        detail = f": {reason.rstrip('.') if self.hint else reason}" if reason else ""
        advice = f"; {self.hint}" if self.hint else ""
        super().__init__(
            f"session store {store!r} could not {operation} at {target}{detail}{advice}"
        )


class InvalidExpiryError(SessionCoreError, ValueError):
    """:meth:`Session.set_expiry <session_core.Session.set_expiry>` was given an expiry of the
    right type that no session can have (negative, a naive datetime, or longer than browsers
    keep a cookie).

    Attributes:
        value: the expiry given.
        problem: what is wrong with it and what to pass instead.
    """

    def __init__(self, value: object, problem: str) -> None:
        self.value = value
        self.problem = problem
        super().__init__(f"set_expiry({value!r}): {problem}")


class StoreContractError(SessionCoreError, RuntimeError):
    """A store broke the store contract: a bug in the store, to report to its authors.

    Attributes:
        store: the store's name.
        method: the store method that misbehaved.
        problem: what it did.
    """

    def __init__(self, store: str, method: str, problem: str) -> None:
        self.store = store
        self.method = method
        self.problem = problem
        super().__init__(
            f"session store {store!r} broke the store contract in {method}(): {problem}; "
            f"report it to the store's authors"
        )


class UserIndexUnsupportedError(SessionCoreError, NotImplementedError):
    """A store was asked to list or revoke a user's sessions and cannot: it keeps no index of
    sessions by user (the cookie store holds each session in its visitor's browser, where no
    server can find or delete it).

    Attributes:
        store: the store's name.
        operation: what was asked (``"list the sessions of a user"``, ...).
        reason: why the store cannot.
    """

    def __init__(
        self, store: str, operation: str, reason: str = "it keeps no index of sessions by user"
    ) -> None:
        self.store = store
        self.operation = operation
        self.reason = reason
        super().__init__(
            f"session store {store!r} cannot {operation}: {reason}; the stores that can have "
            f"indexes_users = True ('db' from session-core-db, 'redis' from session-core-redis, "
            f"'tiered' and 'migrate' when both of their stores do, and "
            f"session_core.testing.MemoryStore in tests): switch the 'store' setting to one "
            f"of them and set session.user_id at login"
        )
