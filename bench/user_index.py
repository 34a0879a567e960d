"""Sessions per user on the redis store: what the per-user index costs.

Pairs of store calls, interleaved, on the Redis at ``BENCH_REDIS_URL``: a save (update) of a
session bound to a user against the same save of an unbound one (the index must cost ordinary
requests nothing but a few calls inside the one script), a login (create) bound to a user against
an unbound create (the key is chosen in the user's hash tag, and the index written), and listing
a user's five sessions against a plain load (one script call against one ``HGETALL``).
"""

from __future__ import annotations

from .harness import AreaResult, Batch, Settings, Table, measure
from .redis_store import URL, cleanup, prefix, reachable

PAIRS = (
    ("update, bound to a user", "update, no user"),
    ("login (create), bound to a user", "create, no user"),
    ("sessions_of (5 sessions)", "load"),
)


def build(space: str) -> dict[str, Batch]:
    """The contenders: each runs ``n`` store calls."""
    import time

    from session_core import Changes, SessionRecord
    from session_core_redis import RedisStore

    store = RedisStore({"url": URL, "key_prefix": space})

    def record(user: str | None, ttl: float = 3600.0) -> object:
        data = {"visits": 1, "cart": [1, 2]}
        return SessionRecord(data=data, expires_at=time.time() + ttl, user_id=user)

    def created(user: str | None) -> str:
        made = record(user)
        key = store.save(None, made, Changes.everything(made))  # type: ignore[arg-type]
        assert key is not None
        return key

    bound, plain = created("bench-user"), created(None)
    for _ in range(4):
        created("bench-user")
    changes = Changes(frozenset({"visits"}))

    def update(key: str) -> Batch:
        def batch(n: int) -> None:
            made = record(None)
            for _ in range(n):
                store.save(key, made, changes)  # type: ignore[arg-type]

        return batch

    def create(user: str | None) -> Batch:
        def batch(n: int) -> None:
            for _ in range(n):
                made = record(user, ttl=30.0)  # short-lived: the run leaves little behind
                store.save(None, made, Changes.everything(made))  # type: ignore[arg-type]

        return batch

    def listing(n: int) -> None:
        for _ in range(n):
            store.sessions_of("bench-user")

    def load(n: int) -> None:
        for _ in range(n):
            store.load(plain)

    return {
        PAIRS[0][0]: update(bound),
        PAIRS[0][1]: update(plain),
        PAIRS[1][0]: create("bench-login"),
        PAIRS[1][1]: create(None),
        PAIRS[2][0]: listing,
        PAIRS[2][1]: load,
    }


def run(settings: Settings) -> AreaResult:
    """Measure each pair, interleaved, and report the ratios."""
    why = reachable()
    if why:
        return AreaResult("users", skipped=why)
    space = prefix() + "users:"
    try:
        stats = measure(build(space), settings)
    finally:
        cleanup(space)
    table = Table(
        "Redis store, sessions per user: µs per store call",
        ["call", "µs", "against", "µs", "ratio"],
        note="Median ±half-IQR; ratio: the median of the per-round ratios [their quartiles]. "
        "The index adds no round trip to any of these calls.",
    )
    result = AreaResult("users", tables=[table])
    for ours, base in PAIRS:
        factor = stats[ours].over(stats[base])
        table.rows.append([ours, stats[ours].show(), base, stats[base].show(), factor.show_ratio()])
        result.data[ours] = {"us": stats[ours].as_json(), "against": base, "ratio": factor.median}
    return result
