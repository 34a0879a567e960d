"""The statements the store runs, for whoever wants to see them: the ``session_core_db.sql``
logger, at ``DEBUG``.

By default the store hands compiled SQL straight to the driver's cursor (see :mod:`.statements`),
so the engine's ``echo`` and its ``before_cursor_execute``/``after_cursor_execute`` listeners
see these statements only on the slower path of :mod:`.core_path` (the ``sql_events`` option,
or while ``echo`` is on), and never on a native async driver. This logger covers every path and
costs one level check per statement while it is off. It logs the statement's name and SQL,
never its parameters (they hold session data and key hashes)."""

from __future__ import annotations

import logging

from .plans import Step
from .statements import CompiledStatement

__all__ = ["LOGGER", "log_step"]

LOGGER = logging.getLogger("session_core_db.sql")
"""The logger of the store's statements."""

_DEBUG = logging.DEBUG


def log_step(target: str, step: Step, statement: CompiledStatement) -> None:
    """Log ``step`` (compiled as ``statement``) for the database ``target``, if wanted."""
    if LOGGER.isEnabledFor(_DEBUG):
        LOGGER.debug("%s: %s: %s", target, step.statement, statement.sql)
