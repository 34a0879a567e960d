"""session-core: sessions for WSGI and ASGI apps, with stores as plugins.

The signed-cookie store is built in; every other store is a separate distribution found through
the ``session_core.stores`` entry-point group and chosen by name (``store = "redis"``). Plugins
that are not stores (extensions, in the ``session_core.extensions`` group) add commands and
observe events.
"""

from .config import SessionConfig
from .errors import (
    ConfigurationError,
    CookieTooLargeError,
    DuplicateStoreError,
    EncryptionUnavailableError,
    IncompatiblePluginError,
    InvalidExpiryError,
    ListingUnsupportedError,
    PluginLoadError,
    SessionCoreError,
    SessionNotLoadedError,
    SessionTooLargeError,
    StoreContractError,
    StoreDisabledError,
    StoreNotFoundError,
    StoreUnreachableError,
)
from .events import EventKind, SessionEvent
from .hookspecs import hookimpl
from .registry import (
    ENTRY_POINT_GROUP,
    EXTENSION_GROUP,
    ExtensionInfo,
    StoreInfo,
    available_stores,
    create_store,
)
from .session import Session
from .store import (
    STORE_API_VERSION,
    Changes,
    JSONValue,
    Progress,
    SessionData,
    SessionRecord,
    SessionStore,
    generate_key,
    hash_key,
    is_plausible_key,
)

__version__ = "0.1.0"

__all__ = [
    "ENTRY_POINT_GROUP",
    "EXTENSION_GROUP",
    "STORE_API_VERSION",
    "Changes",
    "ConfigurationError",
    "CookieTooLargeError",
    "DuplicateStoreError",
    "EncryptionUnavailableError",
    "EventKind",
    "ExtensionInfo",
    "IncompatiblePluginError",
    "InvalidExpiryError",
    "JSONValue",
    "ListingUnsupportedError",
    "PluginLoadError",
    "Progress",
    "Session",
    "SessionConfig",
    "SessionCoreError",
    "SessionData",
    "SessionEvent",
    "SessionNotLoadedError",
    "SessionRecord",
    "SessionStore",
    "SessionTooLargeError",
    "StoreContractError",
    "StoreDisabledError",
    "StoreInfo",
    "StoreNotFoundError",
    "StoreUnreachableError",
    "__version__",
    "available_stores",
    "create_store",
    "generate_key",
    "hash_key",
    "hookimpl",
    "is_plausible_key",
]
