"""Framework integrations: Flask (:mod:`session_core.integrations.flask`), Django
(:mod:`session_core.integrations.django`), and Starlette and FastAPI
(:mod:`session_core.integrations.starlette`, Starlette's ``SessionMiddleware`` arguments on
:class:`session_core.asgi.SessionMiddleware`, which alone also serves them). Each integration
imports its framework itself, so ``import session_core`` never imports a web framework.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..config import MIN_SECRET_BYTES, SessionConfig, layered_settings
from ..errors import ConfigurationError

__all__ = ["framework_config"]


def framework_config(
    settings: Mapping[str, Any],
    *,
    framework: str,
    setting_name: str,
    framework_secret: str | bytes | None = None,
    owned: Mapping[str, tuple[str, Any]] | None = None,
    environ: Mapping[str, str] | None = None,
    framework_defaults: Mapping[str, Any] | None = None,
    framework_fallbacks: Sequence[str | bytes] = (),
) -> SessionConfig:
    """A :class:`~session_core.SessionConfig` for an app of ``framework``.

    Settings are read, lowest first, from the TOML file named by ``SESSION_CORE_CONFIG``, the
    ``SESSION_CORE_*`` environment variables, then ``settings`` (the framework's own setting
    ``setting_name``, such as ``SESSION_CORE``). With no ``secret_key`` in any of them, the
    framework's secret is used if it is long enough.

    ``owned`` maps setting names the framework decides to ``(its setting name, value)``: those
    values are used, and a different value for them anywhere else is an error, so the two can
    never disagree.

    ``framework_defaults`` holds settings the framework gives by default (its setting left as
    the framework ships it): each applies only where neither the TOML file, the environment nor
    ``settings`` sets that key.

    ``framework_fallbacks`` are the framework's older secrets (Django's and Flask's
    ``SECRET_KEY_FALLBACKS``). They belong to the framework's secret, so they are the
    ``fallback_secret_keys`` exactly when that secret is the ``secret_key``; rotating the key the
    framework's way then keeps every visitor signed in. Different ``fallback_secret_keys`` given
    elsewhere at the same time are an error.

    Raises:
        ConfigurationError: a setting is invalid or disagrees with the framework's, or there is
            no usable secret key.
    """
    merged = {**(framework_defaults or {}), **layered_settings(None, environ), **settings}
    for key, (their_name, value) in (owned or {}).items():
        if key in merged and merged[key] != value:
            raise ConfigurationError(
                key,
                f"under {framework} this comes from its {their_name} setting "
                f"({value!r}), but {merged[key]!r} was also given; set {their_name} instead "
                f"and remove {key} from {setting_name} and SESSION_CORE_{key.upper()}",
            )
        merged[key] = value
    if merged.get("secret_key") is None and framework_secret:
        size = len(
            framework_secret.encode() if isinstance(framework_secret, str) else framework_secret
        )
        if size < MIN_SECRET_BYTES:
            raise ConfigurationError(
                "secret_key",
                f"none is configured, and {framework}'s SECRET_KEY is only {size} bytes, "
                f"under the {MIN_SECRET_BYTES} needed; set a longer SECRET_KEY, or give "
                f"session-core its own in {setting_name}['secret_key'] (or "
                f"SESSION_CORE_SECRET_KEY)",
            )
        merged["secret_key"] = framework_secret
        if framework_fallbacks:
            merged["fallback_secret_keys"] = _framework_fallbacks(
                merged.get("fallback_secret_keys"), framework_fallbacks, framework, setting_name
            )
    return SessionConfig.from_mapping(merged)


def _framework_fallbacks(
    given: Any, theirs: Sequence[str | bytes], framework: str, setting_name: str
) -> tuple[str | bytes, ...]:
    fallbacks = tuple(theirs)
    if given is not None and tuple(given) != fallbacks:
        raise ConfigurationError(
            "fallback_secret_keys",
            f"the secret key is {framework}'s SECRET_KEY, so the older keys are its "
            f"SECRET_KEY_FALLBACKS, but different fallback_secret_keys were also given; list "
            f"the old keys in SECRET_KEY_FALLBACKS only and remove fallback_secret_keys from "
            f"{setting_name} and SESSION_CORE_FALLBACK_SECRET_KEYS",
        )
    for old in fallbacks:
        size = len(old.encode() if isinstance(old, str) else old)
        if size < MIN_SECRET_BYTES:
            raise ConfigurationError(
                "fallback_secret_keys",
                f"a key in {framework}'s SECRET_KEY_FALLBACKS is only {size} bytes, under the "
                f"{MIN_SECRET_BYTES} needed to verify session cookies; remove it (the sessions "
                f"it signed end), or give session-core its own secret_key in {setting_name}",
            )
    return fallbacks
