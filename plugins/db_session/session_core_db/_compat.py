"""Every private name of SQLAlchemy or a driver the db store uses, and only here.

Each entry has a test in ``tests/test_compat.py`` that fails when the dependency changes it.
There is none today: after a disconnect the pool's older connections are replaced through its
public ``connect`` and ``checkout`` events (:mod:`.stale`), where ``Pool._invalidate`` used to
be called, and PyMySQL's timeouts are its ``read_timeout``/``write_timeout``.
``tests/test_compat.py`` checks that no module of the package uses one anywhere else.
"""

from __future__ import annotations

__all__: list[str] = []
