"""``python -m session_core_db``: print the SQL that creates the sessions table."""

from .schema import main

raise SystemExit(main())
