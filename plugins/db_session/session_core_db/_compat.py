"""Every private name of SQLAlchemy or a driver the db store uses, and only here.

Each entry has a test in ``tests/test_compat.py`` that fails when the dependency changes it.
"""

from __future__ import annotations

import contextlib
from typing import Any

from sqlalchemy.pool import Pool, PoolProxiedConnection

__all__ = ["invalidate_pool"]


def invalidate_pool(pool: Pool, proxy: PoolProxiedConnection, exc: BaseException) -> None:
    """After a disconnect on ``proxy``: mark every connection of ``pool`` opened before now as
    stale, so each is replaced when next checked out instead of failing a call of its own.

    SQLAlchemy's own ``Connection`` does exactly this on a disconnect (through the private
    ``Pool._invalidate``); its public API has no equivalent short of disposing of the pool,
    which would also close the connections other threads are using. Without the method (a
    SQLAlchemy that renamed it) only ``proxy`` itself is invalidated.
    """
    invalidate: Any = getattr(pool, "_invalidate", None)
    if invalidate is None:
        proxy.invalidate(exc)
        return
    with contextlib.suppress(Exception):
        invalidate(proxy, exc)
