"""The demo app behind ``session-core demo``: what sessions are for, in four small pages.

A visit counter, sign-in (which cycles the session key) and sign-out (which flushes the session),
flash messages that survive one redirect, a "remember me" switch between a browser-session cookie
and the configured lifetime, and a page that shows the session as the server sees it and says
what the store keeps where, what the cookie holds, and why the key changes at sign-in.

It is a plain ASGI app on :class:`session_core.asgi.SessionMiddleware`, served by uvicorn (``pip
install 'session-core[demo]'``). Any store works: ``cookie`` by default, or any installed store
by its name with its options.

The forms carry no CSRF token: this demo listens on the loopback address and guards nothing. A
real app must protect its state-changing POSTs against cross-site requests.
"""

from __future__ import annotations

import asyncio
import errno
import html
import json
import os
import secrets
import signal
import socket
import sys
import threading
from collections.abc import Mapping
from typing import Any, TextIO
from urllib.parse import parse_qs

from . import demo_sessions
from ._command_config import store_target
from ._http import parse_cookie_value
from .asgi import Receive, Scope, Send, SessionMiddleware
from .config import SessionConfig, layered_settings
from .cookie import MAX_COOKIE_BYTES
from .errors import SessionCoreError, StoreUnreachableError
from .hints import pip_install
from .session import Session
from .store import SessionStore, generate_key

__all__ = ["DemoApp", "DemoError", "demo_config", "serve"]

REQUEST_TIMEOUT = 10.0
"""Seconds a request may wait on the store before the demo answers 503 instead of hanging."""

_MAX_FORM_BYTES = 16 * 1024
_MAX_NAME = 40
_PAGES = ("/", "/session")
_FLASH = "_flash"


class DemoError(SessionCoreError):
    """The demo cannot start: a missing dependency, a busy port, or a store that is down."""


# ---------------------------------------------------------------------- configuration


def demo_config(
    config_path: str | os.PathLike[str] | None = None,
    store: str | None = None,
    store_options: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[SessionConfig, bool]:
    """The configuration the demo runs with, and whether its secret key was generated.

    Settings come from the TOML file (``config_path`` or ``SESSION_CORE_CONFIG``), then
    ``SESSION_CORE_*`` variables, then ``store`` and ``store_options``. Choosing a store other
    than the configured one drops the configured store's options, which belong to that store.
    With no secret key anywhere, a random one is made for this run.
    """
    settings = layered_settings(config_path, environ)
    if store is not None:
        if store != settings.get("store", "cookie"):
            settings.pop("store_options", None)
        settings["store"] = store
    if store_options is not None:
        settings["store_options"] = dict(store_options)
    generated = settings.get("secret_key") is None
    if generated:
        settings["secret_key"] = secrets.token_urlsafe(48)
    return SessionConfig.from_mapping(settings), generated


# ---------------------------------------------------------------------- HTML


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


_STYLE = """
body { font: 16px/1.5 system-ui, sans-serif; max-width: 42rem; margin: 2rem auto; padding: 0 1rem;
       color: #222; }
nav a { margin-right: 1rem; }
.flash { background: #e8f4e8; border-left: 4px solid #2a2; padding: .5rem 1rem; }
.box { border: 1px solid #ccc; border-radius: 6px; padding: 1rem; margin: 1rem 0; }
dt { font-weight: 600; } dd { margin: 0 0 .5rem 0; font-family: monospace; }
pre { background: #f6f6f6; padding: .5rem; white-space: pre-wrap; overflow-wrap: anywhere; }
.about p { margin: .5rem 0; }
"""


def _layout(title: str, body: str, flashes: list[str]) -> str:
    notes = "".join(f'<p class="flash" role="status">{_e(m)}</p>' for m in flashes)
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)} - session-core demo</title><style>{_STYLE}</style></head>"
        '<body><nav><a href="/">Home</a><a href="/session">Session details</a>'
        '<a href="/sessions">Your sessions</a></nav>'
        f"<h1>{_e(title)}</h1>{notes}{body}</body></html>\n"
    )


_UNITS = ((604800, "week"), (86400, "day"), (3600, "hour"), (60, "minute"), (1, "second"))


def _duration(seconds: int) -> str:
    """``seconds`` in the largest unit that divides it: "2 weeks", "1 hour", "90 seconds"."""
    for size, unit in _UNITS:
        if seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"  # pragma: no cover - the last unit divides every whole number


def _remember_form(session: Session, back: str, config: SessionConfig) -> str:
    if session.expire_at_browser_close:
        state, switch, label = "off: the session ends when the browser closes", "1", "Remember me"
    else:
        lifetime = _duration(config.cookie_max_age)
        state, switch, label = (
            f"on: the session lasts {lifetime}",
            "0",
            "Forget me at browser close",
        )
    return (
        f'<form method="post" action="/remember"><p>Remember me is <span id="remember">'
        f"{_e(state)}</span>. "
        f'<input type="hidden" name="remember" value="{switch}">'
        f'<input type="hidden" name="next" value="{_e(back)}">'
        f'<button type="submit">{_e(label)}</button></p></form>'
    )


def _home(session: Session, flashes: list[str], config: SessionConfig) -> str:
    visits = session.get("visits", 0)
    visits = visits + 1 if isinstance(visits, int) else 1
    session["visits"] = visits
    user = session.get("user")
    counter = (
        f'<p>You have seen this page <strong id="visits">{visits}</strong> '
        f"time{'s' if visits != 1 else ''} in this session.</p>"
    )
    if isinstance(user, str):
        account = (
            f'<div class="box"><p>Signed in as <strong id="user">{_e(user)}</strong>.</p>'
            f"{_remember_form(session, '/', config)}"
            '<form method="post" action="/sign-out"><button type="submit">Sign out</button>'
            "</form></div>"
        )
    else:
        account = (
            '<div class="box"><p id="user-state">You are not signed in.</p>'
            '<form method="post" action="/sign-in">'
            '<label>Name <input name="name" required maxlength="40" autocomplete="off">'
            "</label> "
            '<label><input type="checkbox" name="remember" value="1"> Remember me for '
            f"{_duration(config.cookie_max_age)}</label> "
            '<button type="submit">Sign in</button></form>'
            "<p><small>Any name works: this demo has no passwords. Signing in gives the "
            'session a new key; <a href="/session">Session details</a> shows it and says '
            "why.</small></p></div>"
        )
    return _layout("Sessions at work", counter + account, flashes)


def _describe_expiry(session: Session) -> str:
    if session.key is None:
        return (
            "nothing: no session is saved yet, so none can expire (the first write starts "
            "one; the home page's visit counter writes)"
        )
    if session.expire_at_browser_close:
        return "when the browser closes (the cookie has no Max-Age)"
    at = session.expires_at
    days, rest = divmod(session.expiry_age, 86400)
    return f"{at:%Y-%m-%d %H:%M:%S} UTC (in {days} d {rest // 3600} h), unless used again"


def _shorten(value: str) -> str:
    return f"{value[:10]}… ({len(value)} chars)"


def _cookie_rows(
    session: Session, config: SessionConfig, store: SessionStore, raw: str, flashed: bool
) -> list[tuple[str, str, str]]:
    """The rows that describe the session's key and cookie, which differ by kind of store."""
    size = len(raw.encode()) if raw else 0
    sent = (
        f"{size} bytes as your browser sent it (a whole Set-Cookie line may have "
        f"{MAX_COOKIE_BYTES})"
    )
    if store.local:
        encrypted = config.store_options.get("encrypt") is True
        if session.key is None:
            held = "nothing yet"
        else:
            kind = "encrypted and signed" if encrypted else "signed, not encrypted (base64 JSON)"
            held = f"the session data itself, {kind}: {_shorten(session.key)}"
        if flashed and raw:
            # The message shown above was still in it; this response writes it out.
            sent += ", with the message shown above in it, which this response removes"
        return [("cookie-holds", "Cookie holds", held), ("cookie", "Cookie size", sent)]
    shown_key = "none: nothing is saved yet" if session.key is None else _shorten(session.key)
    held = (
        "nothing yet"
        if session.key is None
        else "only the session key; the data stays in the store"
    )
    return [
        ("key", "Key", shown_key),
        ("cookie-holds", "Cookie holds", held),
        ("cookie", "Cookie size", sent),
    ]


def _about(config: SessionConfig, store: SessionStore, where: str) -> str:
    """What this page shows, in words: where the data is, what the cookie holds, and why the key
    changes at sign-in."""
    name = _e(config.store_name)
    if store.local:
        encrypted = config.store_options.get("encrypt") is True
        readable = (
            "encrypted (AES-GCM), so only the server can read it"
            if encrypted
            else "readable by anyone who has the cookie (base64 JSON; encrypt = true hides it)"
        )
        kept = (
            f"<p>The <strong>{name}</strong> store keeps the whole session in the cookie: the "
            f"data below travels to the browser and back with every request, signed with the "
            f"secret key (HMAC-SHA256) so that nobody can change it without the key, and "
            f"{readable}. The server keeps nothing, which is why a session must fit in about "
            f"4 KB, and why sessions last across restarts only with the same secret key.</p>"
        )
        cycled = "the cookie is written anew with the signed-in data"
        revoke = (
            " A copy of a cookie-store cookie stays valid until it expires, though: this store "
            "cannot revoke one (the server-side stores can)."
        )
    else:
        kept = (
            f"<p>The <strong>{name}</strong> store keeps the data below at "
            f"<code>{_e(where)}</code>, under a SHA-256 hash of the session key, so a leaked "
            f"table or dump holds no key that works. The cookie holds only the key: 256 random "
            f"bits, signed by nothing and useless without the store. The secret key is not "
            f"used, so sessions last across restarts of the demo.</p>"
        )
        cycled = "the data moves to a new key and the old record is deleted"
        revoke = ""
    why = (
        f"<p>At sign-in the session gets a new key (<code>cycle_key()</code>): {cycled}, so a "
        f"key someone planted in your browser or saw before you signed in is worthless "
        f"afterwards (session fixation).{revoke} The data stays, so the visit counter goes on. "
        f"Sign-out (<code>flush()</code>) deletes the data and the cookie, and on a server-side "
        f"store the stored record.</p>"
    )
    return f'<div class="box about" id="about"><h2>What this shows</h2>{kept}{why}</div>'


def _details(
    session: Session, flashes: list[str], config: SessionConfig, store: SessionStore, raw: str
) -> str:
    session.load()
    data = {k: v for k, v in session.items() if k != _FLASH}
    where = store_target(store, config)
    rows = [
        (
            "store",
            "Store",
            f"{config.store_name} ({type(store).__module__}.{type(store).__qualname__})",
        ),
        ("where", "Where the data is", where),
        *_cookie_rows(session, config, store, raw, bool(flashes)),
        ("expires", "Expires", _describe_expiry(session)),
    ]
    listing = "".join(
        f'<dt>{_e(name)}</dt><dd id="{ident}">{_e(value)}</dd>' for ident, name, value in rows
    )
    body = (
        f'<dl>{listing}</dl><h2>Data</h2><pre id="data">'
        f"{_e(json.dumps(data, indent=2, sort_keys=True))}</pre>"
    )
    if isinstance(session.get("user"), str):
        body += _remember_form(session, "/session", config)
    body += _about(config, store, where)
    return _layout("Session details", body, flashes)


def _flash(session: Session, message: str) -> None:
    earlier = session.get(_FLASH)
    session[_FLASH] = [*(earlier if isinstance(earlier, list) else []), message]


def _take_flashes(session: Session) -> list[str]:
    # pop() of a missing key changes nothing, so a page with no message costs no save.
    messages = session.pop(_FLASH, [])
    return [str(m) for m in messages] if isinstance(messages, list) else []


# ---------------------------------------------------------------------- ASGI plumbing


async def _read_form(receive: Receive) -> dict[str, str]:
    body = b""
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        body += message.get("body", b"")
        more = message.get("more_body", False)
        if len(body) > _MAX_FORM_BYTES:
            break
    fields = parse_qs(body[:_MAX_FORM_BYTES].decode("utf-8", "replace"))
    return {name: values[-1] for name, values in fields.items()}


async def _respond(
    send: Send, status: int, text: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    payload = text.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/html; charset=utf-8"),
                (b"content-length", str(len(payload)).encode()),
                (b"cache-control", b"no-store"),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


async def _redirect(send: Send, location: str) -> None:
    await _respond(send, 303, "", [(b"location", location.encode())])


def _header(scope: Scope, name: bytes) -> str | None:
    values = [v.decode("latin-1") for k, v in scope.get("headers", ()) if k == name]
    return values[-1] if values else None


def _request_cookie(scope: Scope) -> str | None:
    values = [v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"cookie"]
    return "; ".join(values) if values else None


def _unavailable_page(config: SessionConfig, exc: OSError) -> tuple[str, list[tuple[bytes, bytes]]]:
    """The demo's 503 page (and its line on stderr) for a store that failed or did not answer."""
    reason = str(exc) or f"no answer within {REQUEST_TIMEOUT:.0f} s"
    print(f"session-core demo: 503, the store failed: {reason}", file=sys.stderr)
    body = (
        f"<p>The session store <strong>{_e(config.store_name)}</strong> is not "
        f"available right now, so this page cannot be shown.</p><pre>{_e(reason)}</pre>"
        "<p>Start the store's server (or fix its URL) and reload.</p>"
    )
    return _layout("Store unavailable", body, []), [(b"retry-after", b"5")]


class _DemoMiddleware(SessionMiddleware):
    """The session middleware with the demo's own page for a store that is down (the load
    before the pages run and the save at the response are the middleware's to answer)."""

    def unavailable(self, error: StoreUnreachableError) -> tuple[int, list[tuple[str, str]], bytes]:
        """The demo's 503 page."""
        page, headers = _unavailable_page(self.config, error)
        extra = [(name.decode(), value.decode()) for name, value in headers]
        return 503, [("Content-Type", "text/html; charset=utf-8"), *extra], page.encode()


class DemoApp:
    """The demo as an ASGI app: the pages, wrapped in the session middleware.

    A request whose store fails or does not answer within :data:`REQUEST_TIMEOUT` seconds gets a
    503 page (and a line on stderr) instead of an error trace or a hang.

    Args:
        config: the session configuration.
    """

    def __init__(self, config: SessionConfig) -> None:
        self.config = config
        self.middleware = _DemoMiddleware(self._pages, config)
        self.store: SessionStore = self.middleware.store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one connection."""
        if scope["type"] != "http":  # no websockets here; lifespan is off
            return
        started = False

        async def tracking_send(message: Any) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await asyncio.wait_for(self.middleware(scope, receive, tracking_send), REQUEST_TIMEOUT)
        except OSError as exc:  # StoreUnreachableError is a ConnectionError; TimeoutError too
            if started:
                raise
            await _respond(send, 503, *_unavailable_page(self.config, exc))

    async def _pages(self, scope: Scope, receive: Receive, send: Send) -> None:
        session: Session = scope["session"]
        method, path = scope["method"], scope["path"]
        if path in _PAGES:
            if method not in ("GET", "HEAD"):
                await _not_allowed(send, path, "GET, HEAD", "is a page to open, not a form")
                return
            flashes = _take_flashes(session)
            if path == "/":
                page = _home(session, flashes, self.config)
            else:
                raw = parse_cookie_value(_request_cookie(scope), self.config.cookie_name) or ""
                page = _details(session, flashes, self.config, self.store, raw)
            await _respond(send, 200, page)
            return
        if path in demo_sessions.ROUTES:
            await self._sessions_route(scope, receive, send, session)
            return
        action = _ACTIONS.get(path)
        if action is None:
            await _respond(send, 404, _layout("Not found", '<p><a href="/">Home</a></p>', []))
            return
        if method != "POST":
            await _not_allowed(send, path, "POST", "takes the form on the home page")
            return
        location = action(session, await _read_form(receive), self.config)
        if path == "/sign-in":
            demo_sessions.record_device(session, _header(scope, b"user-agent"))
        await _redirect(send, location)

    async def _sessions_route(
        self, scope: Scope, receive: Receive, send: Send, session: Session
    ) -> None:
        """The "Your sessions" page and its actions (see :mod:`.demo_sessions`)."""
        method, path, store = scope["method"], scope["path"], self.store
        if path == "/sessions":
            if method not in ("GET", "HEAD"):
                await _respond(send, 405, "Method not allowed", [(b"allow", b"GET, HEAD")])
                return
            await session.aload()
            flashes = _take_flashes(session)
            user_id = session.user_id if store.indexes_users else None
            infos = await store.asessions_of(user_id) if user_id is not None else None
            body = demo_sessions.sessions_body(session, store, infos)
            await _respond(send, 200, _layout("Your sessions", body, flashes))
            return
        if method != "POST":
            await _respond(send, 405, "Method not allowed", [(b"allow", b"POST")])
            return
        await session.aload()
        if path == "/sessions/sign-out-others":
            message = await demo_sessions.sign_out_others(session, store)
        else:
            message = await demo_sessions.sign_out_everywhere(session, store)
        _flash(session, message)
        await _redirect(send, "/sessions")


async def _not_allowed(send: Send, path: str, allowed: str, what: str) -> None:
    body = (
        f"<p><code>{_e(path)}</code> {_e(what)}, so it answers {_e(allowed)} requests only. "
        f'Go to the <a href="/">home page</a>.</p>'
    )
    page = _layout("Method not allowed", body, [])
    await _respond(send, 405, page, [(b"allow", allowed.encode())])


def _sign_in(session: Session, form: dict[str, str], config: SessionConfig) -> str:
    name = " ".join(form.get("name", "").split())[:_MAX_NAME]
    if not name:
        _flash(session, "Type a name to sign in.")
        return "/"
    session.cycle_key()  # a new key at sign-in: a key planted or seen before is now useless
    session.user_id = name  # listed under this name on the "Your sessions" page
    session["user"] = name
    session.set_expiry(None if form.get("remember") == "1" else 0)
    _flash(session, f"Welcome, {name}! You are signed in, under a new session key.")
    return "/"


def _sign_out(session: Session, form: dict[str, str], config: SessionConfig) -> str:
    session.flush()  # data, stored record and cookie gone; the flash below starts a new session
    _flash(session, "You are signed out. Your session data is gone.")
    return "/"


def _remember(session: Session, form: dict[str, str], config: SessionConfig) -> str:
    back = form.get("next", "/")
    back = back if back in _PAGES else "/"
    if not isinstance(session.get("user"), str):
        _flash(session, "Sign in first.")
        return back
    if form.get("remember") == "1":
        session.set_expiry(None)
        _flash(session, f"You will stay signed in for {_duration(config.cookie_max_age)}.")
    else:
        session.set_expiry(0)
        _flash(session, "You will be signed out when the browser closes.")
    return back


_ACTIONS = {"/sign-in": _sign_in, "/sign-out": _sign_out, "/remember": _remember}


# ---------------------------------------------------------------------- serving


def _probe(store: SessionStore, name: str) -> None:
    """One real store round trip, so a store that is down stops the demo at start."""
    failure: list[BaseException] = []

    def attempt() -> None:
        try:
            store.load(generate_key())
        except BaseException as exc:  # reported below, in the main thread
            failure.append(exc)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(REQUEST_TIMEOUT)
    hint = (
        "start its server or fix its options (--store-option url=...), or run the demo on "
        "the cookie store, which needs no server: session-core demo --store cookie"
    )
    if worker.is_alive():
        raise DemoError(
            f"the session store {name!r} did not answer within {REQUEST_TIMEOUT:.0f} s; {hint}"
        )
    if failure:
        exc = failure[0]
        if isinstance(exc, SessionCoreError | OSError):
            raise DemoError(f"{str(exc).rstrip('.')}; {hint}") from exc
        raise exc


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise DemoError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; {_bind_advice(exc, port)}"
        ) from None
    sock.listen(2048)  # accept (queue) connections from now on, before the server loop starts
    return sock


def _bind_advice(exc: OSError, port: int) -> str:
    if exc.errno == errno.EADDRINUSE:
        return "another program uses that port: choose another one with --port"
    if exc.errno == errno.EACCES and port < 1024:
        return "ports below 1024 need root: choose one above 1023 with --port"
    # EADDRNOTAVAIL, or a name that does not resolve (socket.gaierror)
    return (
        "the address is not one of this machine's: choose one with --host (127.0.0.1 for "
        "this machine only, 0.0.0.0 for every interface)"
    )


def _stop_on_sigterm(signum: int, frame: object) -> None:
    # uvicorn stops the server at SIGTERM, then raises the signal again once it has shut down;
    # by default that would end the process before the store is closed.
    raise KeyboardInterrupt


def serve(
    *,
    config_path: str | os.PathLike[str] | None = None,
    store: str | None = None,
    store_options: Mapping[str, Any] | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    out: TextIO | None = None,
) -> int:
    """Serve the demo until interrupted; returns the exit code.

    Raises:
        DemoError: uvicorn is not installed, the port is taken, or the store is down.
        ConfigurationError: the configuration is invalid.
        StoreNotFoundError: no installed store has the chosen name.
    """
    try:
        import uvicorn
    except ImportError:
        raise DemoError(
            "the demo needs the uvicorn web server; install it with: "
            + pip_install("session-core", "demo")
        ) from None
    stream = out if out is not None else sys.stdout
    config, generated = demo_config(config_path, store, store_options)
    app = DemoApp(config)
    try:
        _probe(app.store, config.store_name)
        sock = _listen(host, port)
        shown = f"[{host}]" if ":" in host else host
        stream.write(
            f"session-core demo on http://{shown}:{sock.getsockname()[1]}/ "
            f"(store {config.store_name!r})\n"
        )
        if generated and app.store.local:
            stream.write(
                "note: no secret_key is configured, so a random one is used for this run: "
                "sessions will not survive a restart. Set SESSION_CORE_SECRET_KEY (or "
                "secret_key in --config FILE) to keep them.\n"
            )
        stream.write("Press Ctrl+C to stop.\n")
        stream.flush()
        server = uvicorn.Server(
            uvicorn.Config(app, log_level="warning", lifespan="off", server_header=False)
        )
        main_thread = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, _stop_on_sigterm) if main_thread else None
        try:
            server.run(sockets=[sock])
        except KeyboardInterrupt:
            pass  # uvicorn has shut down cleanly; it re-raises the signal it caught
        finally:
            if main_thread:
                signal.signal(signal.SIGTERM, previous)
            sock.close()
    finally:
        app.store.close()
    stream.write("session-core demo stopped\n")
    stream.flush()
    return 0
