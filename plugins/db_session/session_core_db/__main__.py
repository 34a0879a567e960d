"""``python -m session_core_db``: print the SQL that creates the sessions table (the same
command as ``session-core db schema``)."""

from .commands import main

raise SystemExit(main())
