"""Cookie store: session-core's WSGI and ASGI middleware against Starlette's SessionMiddleware and
Flask's cookie session, each beside the same app without sessions.

Four cases: ``none`` (no cookie, session untouched), ``untouched`` (a session cookie, session
untouched), ``read`` (read one key), ``write`` (set one key; the cookie is re-sent). Every app
of one framework runs the same views; the bare twin of each app gets a plain dict where the
session would be, so its views run the same code.

``session-core + observer`` is session-core's middleware with an extension observing session
events installed (a hook that counts them): what an event costs a request that saves, and that
the others pay nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from .harness import (
    SECRET,
    AreaResult,
    Batch,
    Settings,
    Stat,
    Table,
    Target,
    asgi_batch,
    asgi_call,
    check,
    environ_for,
    measure,
    ratio,
    scope_for,
    set_cookie_of,
    wsgi_batch,
    wsgi_call,
)

CASES = ("none", "untouched", "read", "write")
SEED: dict[str, Any] = {"user": "alice", "visits": 1}
"""What a returning visitor's session holds."""

ENVIRON_KEY = "session_core.session"
PATHS = ("/none", "/untouched", "/read", "/write", "/update", "/seed")


# ---------------------------------------------------------------------- the apps


def session_view(session: Any, path: str) -> bytes:
    """The one view logic every app runs: ``/none`` and ``/untouched`` leave the session alone,
    ``/read`` reads a key, ``/write`` sets one, ``/update`` reads one and sets it."""
    if path == "/read":
        return str(session["user"]).encode()
    if path == "/write":
        session["visits"] = 2
        return b"ok"
    if path == "/update":
        session["visits"] = session["visits"] + 1
        return b"ok"
    if path == "/seed":
        session.update(SEED)
        return b"ok"
    return b"ok"


def wsgi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """A plain WSGI app; its session is ``environ["session_core.session"]``."""
    body = session_view(environ[ENVIRON_KEY], environ["PATH_INFO"])
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A plain ASGI app; its session is ``scope["session"]``."""
    body = session_view(scope["session"], scope["path"])
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))],
        }
    )
    await send({"type": "http.response.body", "body": body})


def starlette_app(middleware: list[Any], load_first: bool = False) -> Any:
    """A Starlette app whose views use ``request.session``; with ``load_first`` the views that
    read it load it first (``await request.session.aload()``, for ``asgi_preload = false``)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def view(request: Request) -> PlainTextResponse:
        path = request.url.path
        if load_first and (path == "/read" or path == "/update"):
            await request.session.aload()
        return PlainTextResponse(session_view(request.session, path))

    return Starlette(routes=[Route(p, view) for p in PATHS], middleware=middleware)


def flask_app(setup: Callable[[Any], None] | None = None) -> Any:
    """A Flask app whose views use ``flask.session``; ``setup`` picks the session interface."""
    import flask

    app = flask.Flask("bench")
    app.secret_key = SECRET

    def view() -> bytes:
        return session_view(flask.session, flask.request.path)

    for path in PATHS:
        app.add_url_rule(path, path, view)
    if setup is not None:
        setup(app)
    return app


def flask_bare(app: Any) -> None:
    """Flask without session handling: a plain dict-like session, never read nor saved."""
    from flask.sessions import SecureCookieSession, SessionInterface

    class PlainSessions(SessionInterface):
        def open_session(self, app: Any, request: Any) -> Any:
            return SecureCookieSession(SEED)

        def save_session(self, app: Any, session: Any, response: Any) -> None:
            return None

    app.session_interface = PlainSessions()


def flask_session_core(**settings: Any) -> Callable[[Any], None]:
    """Flask with session-core's integration (``init_app``) and ``settings``."""

    def setup(app: Any) -> None:
        from session_core.integrations.flask import init_app

        init_app(app, secret_key=SECRET, **settings)

    return setup


OBSERVER = """
import session_core

seen = [0]

@session_core.hookimpl
def session_core_session_event(event):
    seen[0] += 1
"""


@contextlib.contextmanager
def observing() -> Iterator[None]:
    """Middleware built inside the block find an extension observing session events (a
    throwaway distribution on sys.path); those built after it do not."""
    from session_core.registry import refresh

    with tempfile.TemporaryDirectory() as folder:
        lib = Path(folder)
        (lib / "bench_observer.py").write_text(OBSERVER)
        info = lib / "bench_observer-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            "Metadata-Version: 2.1\nName: bench-observer\nVersion: 1.0\n"
        )
        (info / "entry_points.txt").write_text(
            "[session_core.extensions]\nbench_observer = bench_observer\n"
        )
        sys.path.insert(0, folder)
        refresh()
        try:
            yield
        finally:
            sys.path.remove(folder)
            refresh()


# ---------------------------------------------------------------------- contenders


class Contenders:
    """Builds the batches of a set of (group, contender) apps for each case."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.batches: dict[str, Batch] = {}
        self.groups: dict[str, list[str]] = {}

    def add_wsgi(self, group: str, name: str, app: Any, cases: Iterable[str], **env: Any) -> None:
        """Add a WSGI contender (``env`` goes into every request's environ)."""
        cookie = None if name == "bare" else self._wsgi_cookie(app, env)
        for case in cases:
            environ = environ_for("/" + case, self._cookie(case, cookie), **env)
            self._check(case, wsgi_call(app, environ), f"{group} {name} {case}")
            self._add(group, name, case, wsgi_batch(app, environ))

    def add_asgi(self, group: str, name: str, app: Any, cases: Iterable[str], **extra: Any) -> None:
        """Add an ASGI contender (``extra`` goes into every request's scope)."""
        cookie = None if name == "bare" else self._asgi_cookie(app, extra)
        for case in cases:
            scope = scope_for("/" + case, self._cookie(case, cookie), **extra)
            status, headers, body = asgi_call(self.loop, app, scope)
            self._check(case, (str(status), headers, body), f"{group} {name} {case}")
            self._add(group, name, case, asgi_batch(self.loop, app, scope))

    @staticmethod
    def _cookie(case: str, cookie: str | None) -> str | None:
        if case == "none":
            return None
        # The bare apps get a cookie of the usual size, so header parsing costs the same.
        return cookie if cookie is not None else "sessionid=" + "x" * 80

    def _wsgi_cookie(self, app: Any, env: dict[str, Any]) -> str:
        _, headers, _ = wsgi_call(app, environ_for("/seed", **env))
        return set_cookie_of(headers)

    def _asgi_cookie(self, app: Any, extra: dict[str, Any]) -> str:
        _, headers, _ = asgi_call(self.loop, app, scope_for("/seed", **extra))
        return set_cookie_of(headers)

    @staticmethod
    def _check(case: str, response: tuple[str, list[tuple[str, str]], bytes], what: str) -> None:
        status, _, body = response
        check(status.startswith("200"), f"{what}: status {status}")
        if case == "read":
            check(body == b"alice", f"{what}: read {body!r}, not the seeded session")

    def _add(self, group: str, name: str, case: str, batch: Batch) -> None:
        self.batches[f"{group}|{name}|{case}"] = batch
        names = self.groups.setdefault(group, [])
        if name not in names:
            names.append(name)


def build(loop: asyncio.AbstractEventLoop, cases: Iterable[str] = CASES) -> Contenders:
    """Every cookie-store contender, ready to measure."""
    from starlette.middleware import Middleware
    from starlette.middleware.sessions import SessionMiddleware as StarletteSessions

    from session_core.asgi import SessionMiddleware as AsgiSessions
    from session_core.wsgi import SessionMiddleware as WsgiSessions

    cases = tuple(cases)
    c = Contenders(loop)
    c.add_wsgi("plain WSGI", "bare", wsgi_app, cases, **{ENVIRON_KEY: dict(SEED)})
    c.add_wsgi("plain WSGI", "session-core", WsgiSessions(wsgi_app, secret_key=SECRET), cases)
    with observing():
        observed_wsgi = WsgiSessions(wsgi_app, secret_key=SECRET)
        observed_asgi = AsgiSessions(asgi_app, secret_key=SECRET)
    check(observed_wsgi.cookie.events is not None, "the observer extension was not found")
    c.add_wsgi("plain WSGI", "session-core + observer", observed_wsgi, cases)
    c.add_asgi("plain ASGI", "bare", asgi_app, cases, session=dict(SEED))
    c.add_asgi("plain ASGI", "Starlette", StarletteSessions(asgi_app, secret_key=SECRET), cases)
    c.add_asgi("plain ASGI", "session-core", AsgiSessions(asgi_app, secret_key=SECRET), cases)
    c.add_asgi("plain ASGI", "session-core + observer", observed_asgi, cases)
    c.add_asgi("Starlette app", "bare", starlette_app([]), cases, session=dict(SEED))
    c.add_asgi(
        "Starlette app",
        "Starlette",
        starlette_app([Middleware(StarletteSessions, secret_key=SECRET)]),
        cases,
    )
    c.add_asgi(
        "Starlette app",
        "session-core",
        starlette_app([Middleware(AsgiSessions, secret_key=SECRET)]),
        cases,
    )
    c.add_wsgi("Flask app", "bare", flask_app(flask_bare), cases)
    c.add_wsgi("Flask app", "Flask", flask_app(), cases)
    c.add_wsgi("Flask app", "session-core", flask_app(flask_session_core()), cases)
    return c


# ---------------------------------------------------------------------- the area


def run(settings: Settings) -> AreaResult:
    """Measure every contender in every case, interleaved.

    Twice the rounds, each half as long: these differences are a few microseconds, and more
    rounds keep a burst of load from another process out of the median.
    """
    settings = dataclasses.replace(
        settings, rounds=2 * settings.rounds + 1, batch_seconds=settings.batch_seconds / 2
    )
    loop = asyncio.new_event_loop()
    try:
        contenders = build(loop)
        stats = measure(contenders.batches, settings)
    finally:
        loop.close()
    result = AreaResult("cookie")
    result.tables, result.data = report("Cookie store", contenders, stats, CASES)
    result.targets += _targets(stats)
    return result


def report(
    title: str, contenders: Contenders, stats: dict[str, Stat], cases: tuple[str, ...]
) -> tuple[list[Table], dict[str, Any]]:
    """Two tables (whole request; the session's own cost) and their data, per app and case."""
    totals = Table(
        f"{title}: whole request, µs",
        ["app", "contender", *cases],
        note="Median ±half the interquartile range over the rounds, in-process.",
    )
    costs = Table(
        f"{title}: the session's own cost (request - bare app), µs",
        ["app", "contender", *cases],
        note="Paired round-by-round difference with the bare twin of the same app.",
    )
    data: dict[str, Any] = {}
    for group, names in contenders.groups.items():
        for name in names:
            row = [stats[f"{group}|{name}|{case}"] for case in cases]
            totals.rows.append([group, name, *(s.show() for s in row)])
            entry: dict[str, Any] = {
                "total_us": {c: s.as_json() for c, s in zip(cases, row, strict=True)}
            }
            if name != "bare":
                cost = [
                    s.minus(stats[f"{group}|bare|{case}"])
                    for case, s in zip(cases, row, strict=True)
                ]
                costs.rows.append([group, name, *(s.show() for s in cost)])
                entry["cost_us"] = {c: s.as_json() for c, s in zip(cases, cost, strict=True)}
            data.setdefault(group, {})[name] = entry
    return [totals, costs], data


def cost(stats: dict[str, Stat], group: str, name: str, case: str) -> Stat:
    """The session's own cost of one contender in one case (paired with its bare twin)."""
    return stats[f"{group}|{name}|{case}"].minus(stats[f"{group}|bare|{case}"])


def floor_table(title: str, stats: dict[str, Stat], data: dict[str, Any]) -> Table:
    """The floor measurements (keys ``floor|<operation>|``) as a table; also into ``data``."""
    table = Table(title, ["operation", "µs"])
    data["floor_us"] = {}
    for key, stat in stats.items():
        if key.startswith("floor|"):
            name = key.split("|")[1]
            table.rows.append([name, stat.show()])
            data["floor_us"][name] = stat.as_json()
    return table


def side_by_side(names: Iterable[str], floors: Iterable[tuple[str, str, str]]) -> dict[str, str]:
    """The sets to :func:`~bench.harness.measure` a server store's contenders in: those of one
    app and one case (keys ``<app>|<contender>|<case>``) together, each with the floor it is
    compared to (``(app, case, floor operation)`` of ``floors``; keys ``floor|<operation>|``), so
    that both sides of every target run close together in each round. The floors that
    ``floors`` does not name are one more set, together."""
    sets = {}
    for name in names:
        group, _, case = name.split("|")
        sets[name] = f"{group}|{case}"
    for group, case, floor in floors:
        sets[f"floor|{floor}|"] = f"{group}|{case}"
    return sets


def ratio_target(
    name: str, goal: str, top: Stat, bottom: Stat, met: Callable[[float], bool]
) -> Target:
    """A target on ``top / bottom``, paired: the median of the per-round ratios (both measured
    in one set; see :func:`side_by_side`), shown with their quartiles and both measurements."""
    r = top.over(bottom)
    measured = f"{r.show_ratio()} ({top.show()} vs {bottom.show()} µs)"
    return Target(name, goal, measured, met(r.median), r)


def store_targets(
    area: str,
    stats: dict[str, Stat],
    floors: Iterable[tuple[str, str, str]],
    peers: Iterable[tuple[str, str, str]],
    limit: float,
    factor: float,
) -> list[Target]:
    """A server-side store's targets: for each ``(app, case, floor operation)`` of ``floors``,
    a session cost of at most ``limit`` times the floor; for each ``(app, peer, case)`` of
    ``peers``, a peer's session cost of at least ``factor`` times ours."""
    found = []
    for group, case, floor in floors:
        ours, base = cost(stats, group, "session-core", case), stats[f"floor|{floor}|"]
        name = f"{area} {case}, {group}: session cost vs {floor}"
        found.append(ratio_target(name, f"≤ {limit:g}x", ours, base, lambda r: r <= limit))
    for group, peer, case in peers:
        ours, theirs = cost(stats, group, "session-core", case), cost(stats, group, peer, case)
        name = f"{area} {case}, {group}: {peer} cost / ours"
        found.append(ratio_target(name, f"≥ {factor:g}x", theirs, ours, lambda r: r >= factor))
    return found


def _targets(stats: dict[str, Stat]) -> list[Target]:
    targets = []
    for group in ("plain ASGI", "Starlette app"):
        for case in ("read", "write"):
            ours = cost(stats, group, "session-core", case)
            theirs = cost(stats, group, "Starlette", case)
            r = ratio(ours.median, theirs.median)
            targets.append(
                Target(
                    f"cookie {case}, {group}: session cost vs Starlette",
                    "≤ 0.5x",
                    f"{r:.2f}x ({ours.show()} vs {theirs.show()} µs)",
                    r <= 0.5,
                )
            )
    for group in ("plain WSGI", "plain ASGI", "Starlette app", "Flask app"):
        above = cost(stats, group, "session-core", "untouched")
        targets.append(
            Target(
                f"cookie untouched, {group}: above the bare app",
                "< 1 µs",
                f"{above.show(2)} µs",
                above.q3 < 1.0,  # met only if three rounds in four are under 1 µs
            )
        )
    return targets
