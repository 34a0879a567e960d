"""Session configuration: one validated, immutable :class:`SessionConfig`.

Built from keyword arguments, a mapping, ``SESSION_CORE_<KEY>`` environment variables or a TOML
file. Every problem (an unknown key, a wrong type, a missing or short secret, a bad SameSite
value) is a :class:`~session_core.ConfigurationError` at start-up, with a message that says what
to write instead.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from .errors import ConfigurationError
from .hints import did_you_mean

if TYPE_CHECKING:
    from .store import SessionStore

__all__ = ["ENV_PREFIX", "MAX_COOKIE_AGE", "MIN_SECRET_BYTES", "SessionConfig"]

ENV_PREFIX = "SESSION_CORE_"
"""Prefix of the environment variables read by :meth:`SessionConfig.from_env`."""

MIN_SECRET_BYTES = 32
"""The shortest secret key accepted, in bytes (UTF-8)."""

MAX_COOKIE_AGE = 400 * 24 * 3600
"""The longest session lifetime, in seconds: 400 days (34560000 seconds).

Browsers keep a cookie at most 400 days whatever its Max-Age or Expires (RFC 6265bis, section
5.6.1; Chrome since version 104, and Firefox and Safari alike), so a longer lifetime would only
keep server records no browser can use. Also the most ``cookie_max_age`` and
:meth:`Session.set_expiry <session_core.Session.set_expiry>` accept.
"""

_MAX_ATTRIBUTE_BYTES = 1024  # browsers ignore a longer Path or Domain (RFC 6265bis, 5.6)

_NOT_CONFIG_ENV = frozenset({"SESSION_CORE_DISABLE_PLUGINS", "SESSION_CORE_CONFIG"})
_TEST_ENV_PREFIX = "SESSION_CORE_TEST_"  # reserved for test suites (server URLs and the like)
_SAME_SITE = {"strict": "Strict", "lax": "Lax", "none": "None"}
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")  # RFC 6265 cookie-name token
_ATTRIBUTE_VALUE = re.compile(r"^[\x21-\x3a\x3c-\x7e]*$")  # printable, no ';' (RFC 6265)
_HOW_TO_GET_A_KEY = (
    'generate one with: python -c "import secrets; print(secrets.token_urlsafe(48))" '
    "and set it as secret_key (or SESSION_CORE_SECRET_KEY)"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionConfig:
    """Every session setting, validated when built.

    Attributes:
        secret_key: signs (and, with encryption, encrypts) cookies; required, at least 32 bytes.
        fallback_secret_keys: older keys still accepted when verifying, never used to sign; list
            the previous ``secret_key`` here when you rotate it.
        store: the store's entry-point name (``"cookie"``, ``"db"``, ``"redis"``, ...), or, in
            code, a ready :class:`~session_core.SessionStore` instance.
        cookie_name: the session cookie's name.
        cookie_domain: the cookie's Domain attribute; ``None`` for the request's host only.
        cookie_path: the cookie's Path attribute.
        cookie_max_age: seconds a session lives after it was last saved, in the browser and on
            the server; 1209600 (two weeks) by default.
        cookie_secure: send the cookie over HTTPS only.
        cookie_http_only: hide the cookie from JavaScript.
        cookie_same_site: ``"Strict"``, ``"Lax"`` or ``"None"`` (which needs ``cookie_secure``).
        cookie_partitioned: add the ``Partitioned`` attribute (CHIPS), so that a browser keeps
            the cookie in a jar of its own per top-level site when the app is embedded in another
            site; needs ``cookie_secure``.
        save_every_request: save every non-empty session on every response, refreshing its
            expiry, instead of only modified ones.
        asgi_preload: with a server-side store, have the ASGI middleware load the session of a
            visitor who sent a cookie before the app runs, so ``request.session`` can be read
            synchronously without blocking the event loop (one round trip, even when the app
            never uses the session). ``False`` loads nothing ahead: writes need no load with a
            store that takes partial writes, and reading first needs
            ``await request.session.aload()`` (a read before it raises
            :class:`~session_core.SessionNotLoadedError`).
        store_options: settings handed to the store, such as ``{"url": ...}``.
    """

    secret_key: str | bytes
    fallback_secret_keys: tuple[str | bytes, ...] = ()
    store: str | SessionStore = "cookie"
    cookie_name: str = "sessionid"
    cookie_domain: str | None = None
    cookie_path: str = "/"
    cookie_max_age: int = 1209600
    cookie_secure: bool = False
    cookie_http_only: bool = True
    cookie_same_site: str = "Lax"
    cookie_partitioned: bool = False
    save_every_request: bool = False
    asgi_preload: bool = True
    store_options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _validate(self)

    # ----------------------------------------------------------------- constructors

    @classmethod
    def from_mapping(cls, settings: Mapping[str, Any]) -> SessionConfig:
        """Build from a mapping of setting names to values; unknown names are an error."""
        _reject_unknown(settings.keys(), source="")
        missing = "secret_key" not in settings or settings["secret_key"] is None
        if missing:
            raise ConfigurationError("secret_key", f"a secret key is required; {_HOW_TO_GET_A_KEY}")
        return cls(**settings)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> SessionConfig:
        """Build from ``SESSION_CORE_<KEY>`` environment variables, then ``overrides``.

        Booleans are written ``true``/``false`` (or 1/0, yes/no, on/off), numbers as digits,
        ``SESSION_CORE_FALLBACK_SECRET_KEYS`` as a comma-separated list or a JSON array and
        ``SESSION_CORE_STORE_OPTIONS`` as a JSON object. An empty ``SESSION_CORE_COOKIE_DOMAIN``
        means no Domain attribute.
        """
        return cls.from_mapping({**env_settings(environ), **overrides})

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str], **overrides: Any) -> SessionConfig:
        """Build from a TOML file, then ``overrides``.

        The settings are read from a ``[session_core]`` table, a ``[tool.session_core]`` table
        (so ``pyproject.toml`` works), or the top level of the file, in that order.
        """
        return cls.from_mapping({**toml_settings(path), **overrides})

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str] | None = None,
        environ: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> SessionConfig:
        """Build from every source: the TOML file at ``path`` (or ``SESSION_CORE_CONFIG``),
        overridden by ``SESSION_CORE_*`` environment variables, overridden by ``overrides``.
        """
        return cls.from_mapping({**layered_settings(path, environ), **overrides})

    def replace(self, **changes: Any) -> SessionConfig:
        """A copy with ``changes`` applied and validated."""
        _reject_unknown(changes.keys(), source="")
        return dataclasses.replace(self, **changes)

    # ----------------------------------------------------------------- derived values

    @property
    def secret_keys(self) -> tuple[bytes, ...]:
        """Every key as bytes, the signing key first, then the fallbacks in the order given."""
        return tuple(
            k.encode() if isinstance(k, str) else k
            for k in (self.secret_key, *self.fallback_secret_keys)
        )

    @property
    def store_name(self) -> str:
        """The configured store's name, also when ``store`` is an instance."""
        if isinstance(self.store, str):
            return self.store
        return self.store.name or type(self.store).__name__

    def __repr__(self) -> str:
        # Never print secrets.
        shown = ", ".join(
            f"{f.name}={getattr(self, f.name)!r}"
            for f in dataclasses.fields(self)
            if f.name not in ("secret_key", "fallback_secret_keys")
        )
        return f"SessionConfig(secret_key=<hidden>, {shown})"


# --------------------------------------------------------------------- sources


def env_settings(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The settings given by ``SESSION_CORE_<KEY>`` variables in ``environ``, parsed by type.

    ``SESSION_CORE_CONFIG``, ``SESSION_CORE_DISABLE_PLUGINS`` and ``SESSION_CORE_TEST_*`` (kept for
    test suites) are not settings; any other unknown ``SESSION_CORE_*`` variable is an error.
    """
    env = os.environ if environ is None else environ
    settings: dict[str, Any] = {}
    for var, raw in env.items():
        if (
            not var.startswith(ENV_PREFIX)
            or var in _NOT_CONFIG_ENV
            or var.startswith(_TEST_ENV_PREFIX)
        ):
            continue
        key = var[len(ENV_PREFIX) :].lower()
        if key not in _FIELDS:
            raise ConfigurationError(
                key,
                f"the environment variable {var} names no setting; "
                f"the settings are: {', '.join(ENV_PREFIX + k.upper() for k in _FIELDS)}",
            )
        settings[key] = _parse_env(key, var, raw)
    return settings


def layered_settings(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The settings of the TOML file at ``path`` (or ``SESSION_CORE_CONFIG``), overridden by the
    ``SESSION_CORE_*`` variables of ``environ`` (default ``os.environ``): what every entry point
    (middleware, command, integrations) starts from before its own overrides."""
    env = os.environ if environ is None else environ
    settings: dict[str, Any] = {}
    file = path if path is not None else env.get("SESSION_CORE_CONFIG") or None
    if file is not None:
        settings.update(toml_settings(file))
    settings.update(env_settings(env))
    return settings


def toml_settings(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The settings in a TOML file (see :meth:`SessionConfig.from_toml`)."""
    import tomllib  # here: most apps never read a TOML file

    try:
        with Path(path).open("rb") as fh:
            document = tomllib.load(fh)
    except OSError as exc:
        raise ConfigurationError(
            None, f"cannot read the configuration file {os.fspath(path)!r}: {exc.strerror}"
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(
            None, f"the configuration file {os.fspath(path)!r} is not valid TOML: {exc}"
        ) from exc
    table: Any = document
    if isinstance(document.get("session_core"), dict):
        table = document["session_core"]
    elif isinstance(document.get("tool", {}).get("session_core"), dict):
        table = document["tool"]["session_core"]
    _reject_unknown(table.keys(), source=f" in {os.fspath(path)!r}")
    return dict(table)


# --------------------------------------------------------------------- validation

_FIELDS: dict[str, Any] = {}  # filled below, once the dataclass exists


def _reject_unknown(keys: Any, source: str) -> None:
    for key in keys:
        if key not in _FIELDS:
            close = did_you_mean(str(key), _FIELDS, cutoff=0.75)
            hint = f"; did you mean {close!r}?" if close else ""
            raise ConfigurationError(
                str(key),
                f"unknown setting{source}{hint} (the settings are: {', '.join(_FIELDS)})",
            )


def _parse_env(key: str, var: str, raw: str) -> Any:
    kind = _FIELDS[key]
    if kind is bool:
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigurationError(key, f"{var}={raw!r} is not a boolean; write true or false")
    if kind is int:
        try:
            return int(raw.strip())
        except ValueError:
            raise ConfigurationError(
                key, f"{var}={raw!r} is not a whole number of seconds"
            ) from None
    if key == "fallback_secret_keys":
        text = raw.strip()
        if text.startswith("["):
            try:
                loaded = json.loads(text)
            except ValueError:
                raise ConfigurationError(key, f"{var} is not a valid JSON array") from None
            return tuple(loaded) if isinstance(loaded, list) else loaded
        return tuple(part.strip() for part in text.split(",") if part.strip())
    if key == "store_options":
        try:
            return json.loads(raw)
        except ValueError:
            raise ConfigurationError(
                key, f'{var} must be a JSON object, such as {{"url": "redis://localhost"}}'
            ) from None
    if key == "cookie_domain" and not raw.strip():
        return None
    return raw


def _check_secret(key: str, value: Any) -> None:
    if not isinstance(value, (str, bytes)):
        raise ConfigurationError(
            key, f"must be a string, not {type(value).__name__}; {_HOW_TO_GET_A_KEY}"
        )
    try:
        size = len(value.encode() if isinstance(value, str) else value)
    except UnicodeEncodeError:
        # A lone surrogate: what Python makes of bytes in the environment that are not UTF-8.
        raise ConfigurationError(
            key, f"is not valid UTF-8 text (from the environment?); {_HOW_TO_GET_A_KEY}"
        ) from None
    if size < MIN_SECRET_BYTES:
        raise ConfigurationError(
            key,
            f"is {size} bytes long; it must be at least {MIN_SECRET_BYTES} random bytes; "
            f"{_HOW_TO_GET_A_KEY}",
        )


def _type_error(key: str, value: Any, wanted: str) -> ConfigurationError:
    return ConfigurationError(key, f"must be {wanted}, not {type(value).__name__} {value!r}")


def _validate(cfg: SessionConfig) -> None:
    from .store import SessionStore

    _check_secret("secret_key", cfg.secret_key)
    if not isinstance(cfg.fallback_secret_keys, tuple):
        if isinstance(cfg.fallback_secret_keys, list):
            object.__setattr__(cfg, "fallback_secret_keys", tuple(cfg.fallback_secret_keys))
        else:
            raise _type_error("fallback_secret_keys", cfg.fallback_secret_keys, "a list of keys")
    for old in cfg.fallback_secret_keys:
        _check_secret("fallback_secret_keys", old)

    if isinstance(cfg.store, str):
        if not cfg.store.strip():
            raise ConfigurationError("store", 'must name a store, such as "cookie"')
    elif not isinstance(cfg.store, SessionStore):
        raise _type_error("store", cfg.store, "a store name or a SessionStore instance")

    for name in (
        "cookie_secure",
        "cookie_http_only",
        "cookie_partitioned",
        "save_every_request",
        "asgi_preload",
    ):
        if not isinstance(getattr(cfg, name), bool):
            raise _type_error(name, getattr(cfg, name), "true or false")

    if not isinstance(cfg.cookie_name, str) or not _TOKEN.match(cfg.cookie_name):
        raise ConfigurationError(
            "cookie_name",
            f"{cfg.cookie_name!r} is not a valid cookie name; use letters, digits and "
            f"'-_.' only, such as 'sessionid'",
        )
    if cfg.cookie_domain is not None and (
        not isinstance(cfg.cookie_domain, str)
        or not cfg.cookie_domain
        or not _ATTRIBUTE_VALUE.match(cfg.cookie_domain)
    ):
        raise ConfigurationError(
            "cookie_domain",
            f"{cfg.cookie_domain!r} is not a domain; write one such as 'example.com', "
            f"or leave it unset for the request's host",
        )
    if (
        not isinstance(cfg.cookie_path, str)
        or not cfg.cookie_path.startswith("/")
        or not _ATTRIBUTE_VALUE.match(cfg.cookie_path)
    ):
        raise ConfigurationError(
            "cookie_path", f"{cfg.cookie_path!r} is not a path; it must start with '/'"
        )
    # Browsers ignore a longer Path or Domain; a name that long would leave too little of the
    # 4096 bytes of a Set-Cookie line for the session, and every save would fail.
    for name in ("cookie_name", "cookie_path", "cookie_domain"):
        if len(getattr(cfg, name) or "") > _MAX_ATTRIBUTE_BYTES:
            raise ConfigurationError(
                name, f"is longer than {_MAX_ATTRIBUTE_BYTES} bytes; shorten it"
            )
    _check_name_prefix(cfg)
    if isinstance(cfg.cookie_max_age, bool) or not isinstance(cfg.cookie_max_age, int):
        raise _type_error("cookie_max_age", cfg.cookie_max_age, "a whole number of seconds")
    if cfg.cookie_max_age <= 0:
        raise ConfigurationError(
            "cookie_max_age",
            f"must be a positive number of seconds, not {cfg.cookie_max_age}; "
            f"for sessions that end when the browser closes, call session.set_expiry(0)",
        )
    if cfg.cookie_max_age > MAX_COOKIE_AGE:
        raise ConfigurationError(
            "cookie_max_age",
            f"{cfg.cookie_max_age} seconds is longer than browsers keep a cookie; the maximum "
            f"is {MAX_COOKIE_AGE} (400 days)",
        )

    same_site = cfg.cookie_same_site
    normal = _SAME_SITE.get(same_site.lower()) if isinstance(same_site, str) else None
    if normal is None:
        raise ConfigurationError(
            "cookie_same_site", f'{same_site!r} is not allowed; write "Strict", "Lax" or "None"'
        )
    object.__setattr__(cfg, "cookie_same_site", normal)
    if normal == "None" and not cfg.cookie_secure:
        raise ConfigurationError(
            "cookie_same_site",
            'browsers reject SameSite=None without Secure; set cookie_secure = true, or use "Lax"',
        )
    if cfg.cookie_partitioned and not cfg.cookie_secure:
        raise ConfigurationError(
            "cookie_partitioned",
            "browsers reject a Partitioned cookie without Secure; set cookie_secure = true, "
            "or cookie_partitioned = false",
        )

    if not isinstance(cfg.store_options, Mapping):
        raise _type_error("store_options", cfg.store_options, "a mapping (a TOML table)")
    for option in cfg.store_options:
        if not isinstance(option, str):
            raise _type_error("store_options", option, "a mapping with string keys")
    if cfg.store_options and not isinstance(cfg.store, str):
        raise ConfigurationError(
            "store_options",
            f"is ignored when store is a ready store instance "
            f"({type(cfg.store).__name__}); pass the options to the store when you build it, "
            f"or set store to the store's name",
        )
    object.__setattr__(cfg, "store_options", MappingProxyType(dict(cfg.store_options)))


def _check_name_prefix(cfg: SessionConfig) -> None:
    # Browsers drop, without a word, a cookie whose name prefix promises what its attributes
    # do not keep (RFC 6265bis, 4.1.3): every response would then lose the session.
    name = cfg.cookie_name
    prefix = name.lower()  # newer browsers match the prefixes in any case
    if prefix.startswith("__secure-") and not cfg.cookie_secure:
        raise ConfigurationError(
            "cookie_name", f"browsers reject a {name!r} cookie without Secure; set cookie_secure"
        )
    if prefix.startswith("__host-") and (
        not cfg.cookie_secure or cfg.cookie_path != "/" or cfg.cookie_domain is not None
    ):
        raise ConfigurationError(
            "cookie_name",
            f"browsers reject a {name!r} cookie unless it is Secure, has cookie_path '/' "
            f"and no cookie_domain; set cookie_secure = true, cookie_path = '/', and leave "
            f"cookie_domain unset",
        )


def _field_kinds() -> dict[str, Any]:
    kinds: dict[str, Any] = {}
    for f in dataclasses.fields(SessionConfig):
        default = f.default if f.default is not dataclasses.MISSING else None
        kinds[f.name] = type(default) if isinstance(default, (bool, int)) else str
    return kinds


_FIELDS.update(_field_kinds())
