"""Pieces of error messages that say what to do, shared by the core and its stores.

``did_you_mean`` turns a misspelt name into a suggestion, ``unknown_option`` words the error for
a store option that does not exist, and ``pip_install`` names a distribution together with where
it comes from today: the distributions are installed from a clone of the repository until they
are published under these names.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["CLONE_PATHS", "did_you_mean", "pip_install", "unknown_option", "unreachable_advice"]

CLONE_PATHS = {
    "session-core": ".",
    "session-core-db": "./plugins/db_session",
    "session-core-redis": "./plugins/redis_session",
}
"""Where each distribution of this project lives in a clone of its repository."""

_CUTOFF = 0.6  # difflib's default: "encyrpt" finds "encrypt", "colour" finds nothing


def did_you_mean(word: str, choices: Iterable[str], cutoff: float = _CUTOFF) -> str | None:
    """The choice ``word`` is most likely a misspelling of, or ``None`` when none is close
    (``cutoff``: how alike, from 0 to 1, a choice must be)."""
    names = list(choices)
    found = difflib.get_close_matches(word, names, n=1, cutoff=cutoff)
    if not found and word.lower() != word:
        found = difflib.get_close_matches(word.lower(), names, n=1, cutoff=cutoff)
    return found[0] if found else None


def unknown_option(store: str, option: str, known: Iterable[str]) -> str:
    """The message for a store option that ``store`` does not have: the close one, if any, then
    every option it has, for example ``the cookie store has no option 'encrpyt'; did you mean
    'encrypt'? (its options are: encrypt)``."""
    names = sorted(known)
    guess = did_you_mean(option, names)
    hint = f"; did you mean {guess!r}?" if guess is not None else ""
    listed = ", ".join(names) if names else "none"
    return f"the {store} store has no option {option!r}{hint} (its options are: {listed})"


def pip_install(distribution: str, extras: str = "") -> str:
    """The install command for one of this project's distributions, with the command that
    installs it from a clone, for example ``pip install 'session-core-db[postgresql]' (or, from
    a clone of session-core, pip install './plugins/db_session[postgresql]')``.

    Args:
        distribution: ``session-core``, ``session-core-db`` or ``session-core-redis``.
        extras: the extras, comma-separated, without brackets (``"postgresql"``).
    """
    suffix = f"[{extras}]" if extras else ""
    published = _quoted(distribution + suffix)
    where = CLONE_PATHS.get(distribution)
    if where is None:
        return f"pip install {published}"
    return (
        f"pip install {published} (or, from a clone of session-core, "
        f"pip install {_quoted(where + suffix)})"
    )


def _quoted(argument: str) -> str:
    # The brackets of extras are a glob pattern to the shell: quote them so a copied command
    # works in bash and zsh alike.
    return f"'{argument}'" if "[" in argument else argument


_ADVICE = (
    # (words in the driver's message, lower case; what to do). The first match wins.
    (
        ("connection refused", "error 111", "errno 111", "can't connect to"),
        "nothing answers at that address: start the server, or fix the host and port in the "
        "store's url option",
    ),
    (
        ("name or service not known", "nodename nor servname", "getaddrinfo failed"),
        "the host name does not resolve: fix it in the store's url option",
    ),
    (
        (
            "password authentication failed",
            'role "',  # PostgreSQL: role "x" does not exist, before the missing database below
            "access denied for user",
            "wrongpass",
            "noauth",
        ),
        "the server refused the user or password: fix them in the store's url option",
    ),
    (
        ("does not exist", "unknown database"),
        "the database is missing: create it (createdb NAME, or CREATE DATABASE NAME), or name "
        "an existing one in the store's url option",
    ),
    (
        ("db index is out of range",),
        "the Redis server has fewer databases than the number at the end of the url "
        "(redis-cli CONFIG GET databases says how many): use a lower one",
    ),
    (
        ("timed out", "timeout"),
        "the server did not answer in time: check that it runs and that this machine can reach "
        "it, or raise the store's timeout option",
    ),
)


def unreachable_advice(reason: str) -> str | None:
    """What to do about a store failure whose driver message is ``reason``, when the message
    shows its cause (a refused connection, a missing database, bad credentials, ...)."""
    lowered = reason.lower()
    for words, advice in _ADVICE:
        if any(word in lowered for word in words):
            return advice
    return None
