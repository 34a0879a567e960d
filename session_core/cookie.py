"""The built-in ``cookie`` store: the whole session travels in a signed (optionally encrypted)
cookie, so there is no server to run and nothing to clean up.

Format: itsdangerous' ``TimestampSigner`` format, ``payload.timestamp.signature``, with
HMAC-SHA256, a salt of this store's own, and the signing key derived from the secret by
itsdangerous (its ``hmac`` key derivation). The payload is the JSON ``[data, expiry, ttl]``,
zlib-compressed when that is smaller (marked by a leading ``.``); the session expires ``ttl``
seconds after the signed timestamp (whole seconds, rounded down: a session never outlives its
``expires_at``, and ends up to a second before it; a fractional ``ttl``, which earlier versions
wrote, is read as well). With ``encrypt=True`` the payload is sealed
with AES-GCM (key derived from the secret with HKDF, separate from the signing key) before it is
signed, so the visitor cannot read it (marked by a leading ``~``, and signed with a different salt).

Signing and verifying run on every request, so they compute HMAC-SHA256 here instead of going
through itsdangerous' signer objects (several times slower per call); the bytes are the same, and
the tests check that itsdangerous verifies our cookies and we verify its.

Keys rotate: ``secret_key`` signs, and it and every ``fallback_secret_keys`` entry verify, newest
first. A cookie that fails verification is never decoded: it gives an empty session.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import os
import time
import zlib
from collections.abc import Callable, Sequence

from itsdangerous import Signer

from .config import SessionConfig
from .errors import ConfigurationError, EncryptionUnavailableError, UserIndexUnsupportedError
from .hints import unknown_option
from .hookspecs import hookimpl
from .store import (
    Changes,
    JSONValue,
    SessionInfo,
    SessionRecord,
    SessionStore,
    UserId,
    decode_json,
    encode_json,
)

__all__ = ["MAX_COOKIE_BYTES", "VERIFIED_COOKIES", "CookieStore"]

MAX_COOKIE_BYTES = 4096
"""Browsers keep a cookie only if its whole ``Set-Cookie`` line fits in this many bytes."""

VERIFIED_COOKIES = 256
"""How many cookie values a cookie store remembers having signed or verified, with the JSON they
hold, so that reading one again costs no HMAC, base64 or decryption: a browser sends the same
cookie with every request until the session changes, and the value a save signs is the one the
visitor's next request sends. Each store object (one per app and process) keeps its own. Only
values signed by the store's own keys are remembered, by their exact text, so a forged, altered
or foreign cookie is never among them; the lifetime in the JSON is checked against the clock at
every read. Values longer than :data:`MAX_COOKIE_BYTES`, or holding more than that many bytes of
JSON (a compressed payload can inflate past it), are not kept, so a store keeps at most about 2
MiB, usually a few dozen KiB; when full, it forgets them all and starts again. With
``encrypt=True`` the decrypted JSON of the sessions remembered stays in the process's memory."""

_NO_INDEX = (
    "each session lives in its visitor's cookie, where no server can list or delete it (a "
    "copy of a cookie stays valid until it expires: keep cookie_max_age short if that matters)"
)
_SALT = b"session_core.cookie"
_ENCRYPTED_SALT = b"session_core.cookie.encrypted"
_HKDF_INFO = b"session_core.cookie.aes-gcm"
_AAD = b"session_core.cookie.v1"
_NONCE_BYTES = 12
_CLOCK_SKEW = 300  # seconds a timestamp may be ahead of this clock (servers behind a balancer)
_MAX_TTL = 10**12  # seconds: beyond the last datetime (year 9999); refuses NaN and infinity
_MAX_INFLATED = 1 << 20  # a compressed payload may not inflate past 1 MiB
_COMPRESS_FROM = 96  # shorter JSON never gets smaller with zlib
# zlib's fastest level: on cookie-sized JSON it compresses within about 1% of the default level
# (6), in two thirds of the time. Any level inflates the same way.
_COMPRESS_LEVEL = 1
# A 4 KiB window and a small match table (memLevel 4), about 20 KiB of state: a cookie holds no
# more, and the output is the same size as with zlib.compress's defaults. Those set up about
# 256 KiB of state for every call, which, depending on the state of the process's heap, costs
# from as much as the compression itself to ten times that (4 against 45 µs for a 185-byte
# payload, measured); this costs 4 µs whatever the heap. Any zlib inflater reads it.
_WINDOW_BITS = 12
_MEM_LEVEL = 4
_SIGNATURE_LENGTH = 43  # base64 of 32 bytes, unpadded

_SHA256_BLOCK = 64
_INNER_PAD = bytes(x ^ 0x36 for x in range(256))
_OUTER_PAD = bytes(x ^ 0x5C for x in range(256))

_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")

_last_stamp: tuple[int, bytes] = (-1, b"")

_Seal = Callable[[bytes], bytes]
_Open = Callable[[bytes], bytes]
_Sign = Callable[[bytes], bytes]


def _timestamp(seconds: int) -> bytes:
    """``seconds`` as itsdangerous encodes a timestamp; the last one is cached."""
    global _last_stamp
    cached = _last_stamp
    if cached[0] == seconds:
        return cached[1]
    stamp = _b64encode(seconds.to_bytes((seconds.bit_length() + 7) // 8, "big"))
    _last_stamp = (seconds, stamp)
    return stamp


def _b64encode(data: bytes) -> bytes:
    return binascii.b2a_base64(data, newline=False).translate(_TO_URLSAFE).rstrip(b"=")


def _b64decode(data: bytes) -> bytes:
    # Strict: only the URL-safe alphabet, padded exactly, is base64 here. Lenient decoding skips
    # characters outside the alphabet, so a value our key signed in another form (the encrypted
    # flavour's "~" marker) would decode as if it were this form.
    padded = data.translate(_FROM_URLSAFE) + b"=" * (-len(data) % 4)
    return binascii.a2b_base64(padded, strict_mode=True)


def _deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(_COMPRESS_LEVEL, zlib.DEFLATED, _WINDOW_BITS, _MEM_LEVEL)
    return compressor.compress(data) + compressor.flush()


def _inflate(data: bytes) -> bytes:
    inflater = zlib.decompressobj()
    out = inflater.decompress(data, _MAX_INFLATED)
    if inflater.unconsumed_tail or not inflater.eof:
        raise ValueError("compressed payload too large or truncated")
    return out


def _signing_key(secret: bytes, salt: bytes) -> bytes:
    """The HMAC key itsdangerous derives from ``secret`` and ``salt`` (``hmac`` derivation)."""
    signer = Signer(secret, salt=salt, key_derivation="hmac", digest_method=hashlib.sha256)
    return signer.derive_key()


def _signer(key: bytes) -> _Sign:
    """The itsdangerous signature under ``key``: HMAC-SHA256 (RFC 2104), in unpadded URL-safe
    base64, with the key's two padded blocks hashed once.

    :func:`hmac.digest` sets up the key on every call, which is most of its cost on a
    cookie-sized message; copying the two prepared hash states is about half as much.
    """
    if len(key) > _SHA256_BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_SHA256_BLOCK, b"\0")
    inner = hashlib.sha256(key.translate(_INNER_PAD))
    outer = hashlib.sha256(key.translate(_OUTER_PAD))

    def sign(message: bytes) -> bytes:
        digest = inner.copy()
        digest.update(message)
        result = outer.copy()
        result.update(digest.digest())
        return _b64encode(result.digest())

    return sign


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
        self._signers = [_signer(_signing_key(k, salt)) for k in keys]
        self._sign = self._signers[0]
        self._aeads = [_aead(k) for k in keys] if encrypt else []
        # Cookie values this store signed or verified, with what they hold: see VERIFIED_COOKIES.
        self._verified: dict[str, tuple[int, str]] = {}

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
                "store_options", unknown_option("cookie", sorted(options)[0], ("encrypt",))
            )
        return cls(config.secret_keys, encrypt=encrypt)

    # ------------------------------------------------------------------ encoding

    def _encode(self, record: SessionRecord, signed_at: int) -> tuple[bytes, str]:
        """The cookie's payload part for ``record``, and the JSON it holds."""
        # Whole seconds, as the timestamp counts them, rounded down: the cookie ends at its
        # expires_at or up to a second before, never later. (A fraction would cost a float's
        # repr, the most expensive part of encoding a small session.)
        ttl = int(record.expires_at - signed_at)  # rounds toward zero: down, when positive
        payload: list[JSONValue] = [record.data, record.expiry, ttl if ttl > 0 else 0]
        if record.user_id is not None:  # session.user_id travels in the cookie too
            payload.append(record.user_id)
        text = encode_json(payload)
        plain = text.encode()
        if self._aeads:
            if len(plain) >= _COMPRESS_FROM:
                compressed = _deflate(plain)
                flagged = b"z" + compressed if len(compressed) < len(plain) else b"j" + plain
            else:
                flagged = b"j" + plain
            return b"~" + _b64encode(self._aeads[0][0](flagged)), text
        if len(plain) >= _COMPRESS_FROM:
            compressed = _deflate(plain)
            if len(compressed) < len(plain) - 1:
                return b"." + _b64encode(compressed), text
        return _b64encode(plain), text

    def _decode(self, body: bytes, index: int) -> str:
        """The JSON that the cookie's payload part ``body`` holds (``index``: the key that
        signed it)."""
        if self._aeads:
            if body[:1] != b"~":
                raise ValueError("not an encrypted payload")
            flagged = self._aeads[index][1](_b64decode(body[1:]))
            plain = _inflate(flagged[1:]) if flagged[:1] == b"z" else flagged[1:]
        elif body[:1] == b".":
            plain = _inflate(_b64decode(body[1:]))
        else:
            plain = _b64decode(body)
        return plain.decode()

    def _verify_fallback(self, signed: bytes, signature: bytes) -> int:
        """The index of the fallback key that signed ``signed``, newest first; -1 for none."""
        for index, sign in enumerate(self._signers[1:], 1):
            if hmac.compare_digest(sign(signed), signature):
                return index
        return -1

    # ------------------------------------------------------------------ store API

    def load(self, key: str) -> SessionRecord | None:
        """Verify and decode a cookie value; ``None`` for anything not signed by our keys,
        expired, or malformed."""
        if len(key) > MAX_COOKIE_BYTES:
            return None
        verified = self._verified.get(key)
        if verified is None:
            verified = self._verify(key)
            if verified is None:
                return None
        signed_at, text = verified
        try:
            payload = decode_json(text)
        except Exception:  # ValueError, or RecursionError for absurdly nested data
            return None
        # The payload is [data, expiry, ttl] or [data, expiry, ttl, user id] (see _encode);
        # anything else is refused.
        if type(payload) is not list:
            return None
        if len(payload) == 3:
            data, expiry, ttl = payload
            user_id = None
        elif len(payload) == 4:
            data, expiry, ttl, user_id = payload
            if type(user_id) is not str and type(user_id) is not int:
                return None
        else:
            return None
        if (
            type(data) is not dict
            or (type(ttl) is not int and type(ttl) is not float)
            or not 0 <= ttl < _MAX_TTL  # refuses NaN and infinity too
        ):
            return None
        now = time.time()
        if signed_at > now + _CLOCK_SKEW:
            return None
        expires_at = signed_at + ttl
        if expires_at <= now:
            return None
        return SessionRecord(data, expires_at, expiry, None, user_id)

    def _verify(self, key: str) -> tuple[int, str] | None:
        """The signing time and the JSON of a cookie value signed by one of our keys, which is
        then remembered (see :data:`VERIFIED_COOKIES`); ``None`` for any other value."""
        if not key.isascii():
            return None
        raw = key.encode()
        cut = raw.rfind(b".")
        if len(raw) - cut - 1 != _SIGNATURE_LENGTH:
            return None
        signed, signature = raw[:cut], raw[cut + 1 :]
        if hmac.compare_digest(self._sign(signed), signature):
            index = 0  # the signing key: the usual case
        else:
            index = self._verify_fallback(signed, signature)
            if index < 0:
                return None
        body, _, stamp = signed.rpartition(b".")
        try:
            signed_at = int.from_bytes(_b64decode(stamp), "big")
            text = self._decode(body, index)
        except Exception:
            return None
        verified = (signed_at, text)
        self._remember(key, verified)
        return verified

    def _remember(self, key: str, verified: tuple[int, str]) -> None:
        """Keep what ``key`` was verified to hold, unless it is large; when
        :data:`VERIFIED_COOKIES` values are kept, forget them all first."""
        text = verified[1]
        if len(key) > MAX_COOKIE_BYTES or len(text) > MAX_COOKIE_BYTES:
            return  # a value too large to be a cookie, or a payload that inflated past that
        if not text.isascii() and len(text.encode()) > MAX_COOKIE_BYTES:
            return
        remembered = self._verified
        if len(remembered) >= VERIFIED_COOKIES:
            remembered.clear()
        remembered[key] = verified

    def save(self, key: str | None, record: SessionRecord, changes: Changes) -> str | None:
        """Return the signed cookie value holding the whole ``record``."""
        signed_at = int(time.time())
        body, text = self._encode(record, signed_at)
        signed = body + b"." + _timestamp(signed_at)
        value = (signed + b"." + self._sign(signed)).decode()
        self._remember(value, (signed_at, text))
        return value

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

    # ------------------------------------------------------------------ sessions per user

    def sessions_of(self, user_id: UserId) -> list[SessionInfo]:
        """Always refused: each session lives in its visitor's cookie, out of the server's reach.

        Raises:
            UserIndexUnsupportedError: always.
        """
        raise UserIndexUnsupportedError(self.name, "list the sessions of a user", _NO_INDEX)

    def revoke_user(self, user_id: UserId, keep: str | None = None) -> int:
        """Always refused: each session lives in its visitor's cookie, out of the server's reach.

        Raises:
            UserIndexUnsupportedError: always.
        """
        raise UserIndexUnsupportedError(self.name, "revoke the sessions of a user", _NO_INDEX)


# ---------------------------------------------------------------------- registration


@hookimpl
def session_core_store_api_version() -> int:
    """The cookie store is written against store API 1."""
    return 1


@hookimpl
def session_core_create_store(config: SessionConfig) -> SessionStore:
    """Build the cookie store from ``config``."""
    return CookieStore.from_config(config)
