"""A store that forwards every call to a real store, counting the calls and running hooks
before or after them: for counting a composed store's calls to its real stores, and for making
an interleaving certain (a hook that waits on an event). It fakes no server: every call reaches
the real store."""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable
from typing import Any

from session_core.store import SessionStore

Hook = Callable[[], None]

_FORWARDED = (
    "load",
    "save",
    "delete",
    "cycle_key",
    "clear_expired",
    "sessions_of",
    "revoke_user",
    "scan_records",
    "load_record",
    "insert_record",
    "delete_record",
    "close",
)
_FLAGS = ("local", "partial_writes", "needs_cleanup", "indexes_users", "lists_records")


class Forwarding(SessionStore):
    """Forwards to ``inner``; ``calls`` counts each method (an async twin counts under the
    sync method's name); ``before[name]`` / ``after[name]`` run around each
    call of ``name`` (remove them to stop)."""

    def __init__(self, inner: SessionStore) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()
        self.before: dict[str, Hook] = {}
        self.after: dict[str, Hook] = {}

    def _around(self, name: str, call: Callable[[], Any]) -> Any:
        self.calls[name] += 1
        hook = self.before.get(name)
        if hook is not None:
            hook()
        result = call()
        hook = self.after.get(name)
        if hook is not None:
            hook()
        return result

    def load(self, key: str) -> Any:
        return self._around("load", lambda: self.inner.load(key))

    def save(self, *args: Any) -> Any:
        return self._around("save", lambda: self.inner.save(*args))

    def delete(self, key: str) -> None:
        self._around("delete", lambda: self.inner.delete(key))

    async def _aaround(self, name: str, call: Callable[[], Any]) -> Any:
        name = name[1:]  # counted, and hooked, under the sync method's name
        self.calls[name] += 1
        hook = self.before.get(name)
        if hook is not None:
            hook()
        result = await call()
        hook = self.after.get(name)
        if hook is not None:
            hook()
        return result


def _forward(name: str) -> Callable[..., Any]:
    def method(self: Forwarding, *args: Any) -> Any:
        return self._around(name, lambda: getattr(self.inner, name)(*args))

    return method


def _aforward(name: str) -> Callable[..., Any]:
    async def method(self: Forwarding, *args: Any) -> Any:
        return await self._aaround(name, lambda: getattr(self.inner, name)(*args))

    return method


for _name in _FORWARDED[3:]:
    setattr(Forwarding, _name, _forward(_name))
for _name in _FORWARDED:
    setattr(Forwarding, "a" + _name, _aforward("a" + _name))


@functools.cache
def _with_flags(name: str, flags: tuple[bool, ...]) -> type[Forwarding]:
    attributes: dict[str, Any] = dict(zip(_FLAGS, flags, strict=True))
    return type("Forwarding", (Forwarding,), {**attributes, "name": name})


def forwarding(inner: SessionStore) -> Forwarding:
    """A :class:`Forwarding` around ``inner``, with ``inner``'s class flags and name."""
    flags = tuple(bool(getattr(type(inner), flag)) for flag in _FLAGS)
    return _with_flags(inner.name, flags)(inner)
