"""What the composed stores (``tiered``, ``migrate``) share: building their nested stores from
``store_options`` through the registry, with errors that name the nested store at fault."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from .config import SessionConfig
from .errors import ConfigurationError, SessionCoreError
from .store import SessionRecord, SessionStore

__all__ = ["COMPOSED_STORES", "check_options", "nested_store", "plain_copy"]

COMPOSED_STORES = frozenset({"tiered", "migrate"})
"""The built-in stores made of other stores; one cannot be nested in another."""


def check_options(config: SessionConfig, allowed: Collection[str]) -> None:
    """Refuse any ``store_options`` key of a composed store but ``allowed``."""
    for option in config.store_options:
        if option not in allowed:
            raise ConfigurationError(
                f"store_options.{option}",
                f"the {config.store_name} store has no option {option!r}; its options are "
                f"{', '.join(sorted(allowed))}",
            )


def nested_store(config: SessionConfig, role: str, example: str) -> SessionStore:
    """Build the store ``store_options[role]`` describes (``{store = "name", ...options}``)
    through the registry, with the outer configuration's secret and cookie settings.

    Every error names ``store_options.<role>``: a missing or malformed table, an unknown store,
    a plugin that fails to load, options its store refuses, or a composed store nested in
    another.
    """
    where = f"store_options.{role}"
    outer = config.store_name
    spec = config.store_options.get(role)
    if spec is None:
        raise ConfigurationError(
            where, f"the {outer} store needs a {role} store, for example {role} = {example}"
        )
    if not isinstance(spec, Mapping):
        raise ConfigurationError(
            where, f"must be a table naming a store and its options, such as {example}"
        )
    options: dict[str, Any] = dict(spec)
    name = options.pop("store", None)
    if not isinstance(name, str | SessionStore):
        raise ConfigurationError(
            where, f'needs store = "<name>" (the store\'s name), as in {example}; got {name!r}'
        )
    if (name if isinstance(name, str) else name.name) in COMPOSED_STORES:
        raise ConfigurationError(
            where,
            f"a {name if isinstance(name, str) else name.name} store cannot be nested in the "
            f"{outer} store; give {role} a plain store (cookie, db, redis, ...)",
        )
    from .registry import create_store  # the registry imports this module's users

    try:
        return create_store(config.replace(store=name, store_options=options))
    except ConfigurationError as exc:
        inner = f"{exc.key}: " if exc.key else ""
        raise ConfigurationError(where, f"{inner}{exc.problem}") from exc
    except SessionCoreError as exc:
        raise ConfigurationError(where, str(exc)) from exc


def plain_copy(record: SessionRecord) -> SessionRecord:
    """``record`` without its store-private version, for handing to another store: one store's
    version means nothing to another (and could match a different row by accident). Its user and
    client details go with it, so the copy stays bound to its user (listed and revoked with the
    user's other sessions, where the other store indexes users)."""
    return SessionRecord(
        record.data, record.expires_at, record.expiry, user_id=record.user_id, client=record.client
    )
