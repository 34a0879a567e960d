"""``python -m session_core``: the same as the ``session-core`` command."""

import sys

from .cli import main

sys.exit(main())
