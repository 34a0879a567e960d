"""The built-in ``cookie`` store: the whole session travels in a signed (optionally encrypted)
cookie, so there is no server to run and nothing to clean up.

Format: ``base64(payload).timestamp.signature``, signed by :class:`itsdangerous.TimestampSigner`
with HMAC-SHA256 and a salt of this store's own. The payload is the JSON ``[data, expiry, ttl]``,
zlib-compressed when that is smaller; the session expires ``ttl`` seconds after the signed
timestamp. With ``encrypt=True`` the payload is sealed with AES-GCM (key derived from the secret
with HKDF, separate from the signing key) before it is signed, so the visitor cannot read it.

Keys rotate: ``secret_key`` signs, and it and every ``fallback_secret_keys`` entry verify, newest
first. A cookie that fails verification is never decoded: it gives an empty session.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import time
import zlib
from collections.abc import Callable, Sequence
from typing import Any

from itsdangerous import BadSignature, Signer, TimestampSigner

from .config import SessionConfig
from .errors import ConfigurationError, EncryptionUnavailableError
from .hookspecs import hookimpl
from .store import Changes, SessionRecord, SessionStore

__all__ = ["MAX_COOKIE_BYTES", "CookieStore"]

MAX_COOKIE_BYTES = 4096
"""Browsers keep a cookie only if its whole ``Set-Cookie`` line fits in this many bytes."""

_SALT = b"session_core.cookie"
_ENCRYPTED_SALT = b"session_core.cookie.encrypted"
_HKDF_INFO = b"session_core.cookie.aes-gcm"
_AAD = b"session_core.cookie.v1"
_NONCE_BYTES = 12
_CLOCK_SKEW = 300  # seconds a timestamp may be ahead of this clock (servers behind a balancer)
_MAX_INFLATED = 1 << 20  # a compressed payload may not inflate past 1 MiB

_Seal = Callable[[bytes], bytes]
_Open = Callable[[bytes], bytes]


def _b64encode(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _b64decode(data: bytes) -> bytes:
    return base64.urlsafe_b64decode(data + b"=" * (-len(data) % 4))


def _inflate(data: bytes) -> bytes:
    inflater = zlib.decompressobj()
    out = inflater.decompress(data, _MAX_INFLATED)
    if inflater.unconsumed_tail or not inflater.eof:
        raise ValueError("compressed payload too large or truncated")
    return out


def _signer(secret: bytes, salt: bytes) -> TimestampSigner:
    # Derive the signing key once (itsdangerous' own HMAC derivation) instead of on every call.
    derived = Signer(secret, salt=salt, key_derivation="hmac", digest_method=hashlib.sha256)
    return TimestampSigner(
        derived.derive_key(), salt=salt, key_derivation="none", digest_method=hashlib.sha256
    )


def _aead(secret: bytes) -> tuple[_Seal, _Open]:
    try:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    except ImportError:
        raise EncryptionUnavailableError() from None
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(secret)
    cipher = AESGCM(key)

    def seal(plain: bytes) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + cipher.encrypt(nonce, plain, _AAD)

    def open_(sealed: bytes) -> bytes:
        return cipher.decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], _AAD)

    return seal, open_


class CookieStore(SessionStore):
    """Keeps the whole session in the cookie, signed with HMAC-SHA256 and optionally encrypted.

    Its "key" is the cookie value itself, so every save returns a new one and :meth:`delete` has
    nothing to do. Sessions cannot be revoked from the server before they expire: use a
    server-side store when that matters.

    Args:
        secret_keys: the signing key first, then older keys that still verify.
        encrypt: also encrypt the payload (AES-GCM); needs ``session-core[encryption]``.
    """

    name = "cookie"
    local = True

    def __init__(self, secret_keys: Sequence[str | bytes], *, encrypt: bool = False) -> None:
        if not secret_keys:
            raise ConfigurationError("secret_key", "the cookie store needs at least one key")
        keys = [k.encode() if isinstance(k, str) else bytes(k) for k in secret_keys]
        self.encrypt = encrypt
        salt = _ENCRYPTED_SALT if encrypt else _SALT
        self._signers = [_signer(k, salt) for k in keys]
        self._aeads = [_aead(k) for k in keys] if encrypt else []

    @classmethod
    def from_config(cls, config: SessionConfig) -> CookieStore:
        """Build from a configuration; ``store_options`` may hold ``encrypt`` (a bool)."""
        options = dict(config.store_options)
        encrypt = options.pop("encrypt", False)
        if not isinstance(encrypt, bool):
            raise ConfigurationError(
                "store_options", f"encrypt must be true or false, not {encrypt!r}"
            )
        if options:
            raise ConfigurationError(
                "store_options",
                f"the cookie store has no option {sorted(options)[0]!r}; its only option is "
                f"'encrypt'",
            )
        return cls(config.secret_keys, encrypt=encrypt)

    # ------------------------------------------------------------------ encoding

    def _encode(self, record: SessionRecord, now: float) -> bytes:
        ttl = max(0, math.ceil(record.expires_at - now))
        plain = json.dumps(
            [record.data, record.expiry, ttl], separators=(",", ":"), ensure_ascii=False
        ).encode()
        compressed = zlib.compress(plain, 6)
        if self._aeads:
            flagged = b"z" + compressed if len(compressed) < len(plain) else b"j" + plain
            return b"~" + _b64encode(self._aeads[0][0](flagged))
        if len(compressed) < len(plain) - 1:
            return b"." + _b64encode(compressed)
        return _b64encode(plain)

    def _decode(self, body: bytes, index: int) -> Any:
        if self._aeads:
            if not body.startswith(b"~"):
                return None
            flagged = self._aeads[index][1](_b64decode(body[1:]))
            plain = _inflate(flagged[1:]) if flagged[:1] == b"z" else flagged[1:]
        elif body.startswith(b"."):
            plain = _inflate(_b64decode(body[1:]))
        else:
            plain = _b64decode(body)
        return json.loads(plain)

    # ------------------------------------------------------------------ store API

    def load(self, key: str) -> SessionRecord | None:
        """Verify and decode a cookie value; ``None`` for anything not signed by our keys,
        expired, or malformed."""
        if len(key) > MAX_COOKIE_BYTES or not key.isascii():
            return None
        raw = key.encode()
        for index, signer in enumerate(self._signers):
            try:
                body, signed_at = signer.unsign(raw, return_timestamp=True)
            except BadSignature:
                continue
            try:
                return self._record(self._decode(body, index), signed_at.timestamp())
            except Exception:
                return None
        return None

    @staticmethod
    def _record(payload: Any, signed_at: float) -> SessionRecord | None:
        if (
            not isinstance(payload, list)
            or len(payload) != 3
            or not isinstance(payload[0], dict)
            or not isinstance(payload[2], int)
        ):
            return None
        now = time.time()
        if signed_at > now + _CLOCK_SKEW:
            return None
        expires_at = signed_at + payload[2]
        if expires_at <= now:
            return None
        return SessionRecord(data=payload[0], expires_at=expires_at, expiry=payload[1])

    def save(self, key: str | None, record: SessionRecord, changes: Changes) -> str | None:
        """Return the signed cookie value holding the whole ``record``."""
        now = time.time()
        return self._signers[0].sign(self._encode(record, now)).decode()

    def delete(self, key: str) -> None:
        """Nothing to delete: the data lives in the cookie, which the middleware removes."""

    # The work is CPU only, and small: running it in a worker thread would cost more than it.

    async def aload(self, key: str) -> SessionRecord | None:
        """Same as :meth:`load` (no I/O to wait for)."""
        return self.load(key)

    async def asave(self, key: str | None, record: SessionRecord, changes: Changes) -> str | None:
        """Same as :meth:`save` (no I/O to wait for)."""
        return self.save(key, record, changes)

    async def adelete(self, key: str) -> None:
        """Same as :meth:`delete`."""

    async def acycle_key(self, key: str, record: SessionRecord) -> str:
        """Same as :meth:`cycle_key`."""
        return self.cycle_key(key, record)

    async def aclear_expired(self, progress: Callable[[int], None] | None = None) -> int | None:
        """Nothing to clear: expired cookies are refused on load."""
        return None

    async def aclose(self) -> None:
        """Nothing to close."""


# ---------------------------------------------------------------------- registration


@hookimpl
def session_core_store_api_version() -> int:
    """The cookie store is written against store API 1."""
    return 1


@hookimpl
def session_core_create_store(config: SessionConfig) -> SessionStore:
    """Build the cookie store from ``config``."""
    return CookieStore.from_config(config)
