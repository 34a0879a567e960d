"""Coverage-guided fuzzing (atheris, libFuzzer) of the cookie decoding path.

Run by test_fuzz.py as ``python fuzz_cookie.py CORPUS_DIR -runs=N``; also usable by hand with any
libFuzzer option. Each input is used as a session cookie value against the plain and the
encrypted cookie store (with a fallback key, so the rotation path runs too) and through the WSGI
middleware. It must never raise, and must never load a session unless it is one of the real
cookies the corpus was seeded with.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["session_core", "itsdangerous"]):
    from session_core import Changes, SessionConfig
    from session_core._http import parse_cookie_value
    from session_core.cookie import CookieStore
    from session_core.testing import make_record
    from session_core.wsgi import SessionMiddleware

SECRET = "fuzz-signing-key-" + "k" * 40
OLD_SECRET = "fuzz-retired-key-" + "o" * 40

STORES = [
    CookieStore([SECRET, OLD_SECRET]),
    CookieStore([SECRET, OLD_SECRET], encrypt=True),
]
SEED_DATA = [{}, {"a": 1}, {"user": "x" * 300}, {"cart": [{"id": n} for n in range(40)]}]


def _seeds() -> list[str]:
    seeds = []
    for store in [*STORES, CookieStore([OLD_SECRET]), CookieStore([OLD_SECRET], encrypt=True)]:
        for data in SEED_DATA:
            record = make_record(data)
            seeds.append(store.save(None, record, Changes.everything(record)))
    return seeds


SEEDS = _seeds()
GENUINE = frozenset(SEEDS)


def _app(environ: dict[str, object], start_response: object) -> list[bytes]:
    session = environ["session_core.session"]
    body = repr(dict(session)).encode()  # type: ignore[call-overload]
    start_response("200 OK", [])  # type: ignore[operator]
    return [body]


MIDDLEWARE = SessionMiddleware(
    _app, SessionConfig(secret_key=SECRET, fallback_secret_keys=[OLD_SECRET])
)


def _start_response(status: str, headers: list[tuple[str, str]], exc_info: object = None) -> object:
    assert status.startswith("200"), status
    return None


def test_one_input(data: bytes) -> None:
    value = data.decode("latin-1")
    for store in STORES:
        record = store.load(value)
        if record is not None:
            assert value in GENUINE, f"a cookie that is not ours loaded: {value!r}"
    header = f"sessionid={value}"
    body = b"".join(MIDDLEWARE({"HTTP_COOKIE": header, "PATH_INFO": "/"}, _start_response))
    if parse_cookie_value(header, "sessionid") not in GENUINE:
        assert body == b"{}", f"{value!r} gave {body!r}"


def main() -> None:
    corpus = Path(sys.argv[1])
    for index, seed in enumerate(SEEDS):
        (corpus / f"seed-{index}").write_bytes(seed.encode())
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
