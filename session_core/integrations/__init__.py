"""Framework integrations: Flask (:mod:`session_core.integrations.flask`) and Django
(:mod:`session_core.integrations.django`).

Starlette and FastAPI need none: :class:`session_core.asgi.SessionMiddleware` puts the session in
``scope["session"]``, where their ``request.session`` looks. Each integration imports its
framework itself, so ``import session_core`` never imports a web framework.
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
    the framework ships it): they apply only where none of the layers above sets the key.
    ``framework_fallbacks`` are the framework's older secrets (``SECRET_KEY_FALLBACKS``): they
    become ``fallback_secret_keys`` when the framework's secret is the one used and no
    ``fallback_secret_keys`` is configured; each must be long enough, as the secret must.

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
    configured: Any, fallbacks: Sequence[str | bytes], framework: str, setting_name: str
) -> list[str | bytes]:
    """The fallback keys to use beside the framework's secret: its ``SECRET_KEY_FALLBACKS``,
    which must be long enough and must not disagree with ``fallback_secret_keys``."""
    keys = list(fallbacks)
    if configured is not None and list(configured) != keys:
        raise ConfigurationError(
            "fallback_secret_keys",
            f"{framework}'s SECRET_KEY signs sessions, so its SECRET_KEY_FALLBACKS are the keys "
            f"that still verify, but a different fallback_secret_keys was also given; keep one: "
            f"remove fallback_secret_keys from {setting_name} and "
            f"SESSION_CORE_FALLBACK_SECRET_KEYS",
        )
    for index, key in enumerate(keys):
        size = len(key.encode() if isinstance(key, str) else key)
        if size < MIN_SECRET_BYTES:
            raise ConfigurationError(
                "fallback_secret_keys",
                f"{framework}'s SECRET_KEY_FALLBACKS[{index}] is only {size} bytes, under the "
                f"{MIN_SECRET_BYTES} needed; sessions it signed could not be verified. Remove it "
                f"(its sessions are then signed out) or give session-core its own keys in "
                f"{setting_name} (secret_key and fallback_secret_keys)",
            )
    return keys
