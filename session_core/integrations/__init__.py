"""Framework integrations: Flask (:mod:`session_core.integrations.flask`) and Django
(:mod:`session_core.integrations.django`).

Starlette and FastAPI need none: :class:`session_core.asgi.SessionMiddleware` puts the session in
``scope["session"]``, where their ``request.session`` looks. Each integration imports its
framework itself, so ``import session_core`` never imports a web framework.
"""

from __future__ import annotations

from collections.abc import Mapping
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
) -> SessionConfig:
    """A :class:`~session_core.SessionConfig` for an app of ``framework``.

    Settings are read, lowest first, from the TOML file named by ``SESSION_CORE_CONFIG``, the
    ``SESSION_CORE_*`` environment variables, then ``settings`` (the framework's own setting
    ``setting_name``, such as ``SESSION_CORE``). With no ``secret_key`` in any of them, the
    framework's secret is used if it is long enough.

    ``owned`` maps setting names the framework decides to ``(its setting name, value)``: those
    values are used, and a different value for them anywhere else is an error, so the two can
    never disagree.

    Raises:
        ConfigurationError: a setting is invalid or disagrees with the framework's, or there is
            no usable secret key.
    """
    merged = {**layered_settings(None, environ), **settings}
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
    return SessionConfig.from_mapping(merged)
