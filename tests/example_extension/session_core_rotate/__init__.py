"""A session-core extension that adds ``session-core rotate-secret``: it prints the settings that
rotate the secret key (a new ``secret_key``, and the current one first in
``fallback_secret_keys`` so that sessions signed with it stay valid)."""

from __future__ import annotations

import argparse
import json
import secrets
from typing import TextIO

import session_core
from session_core.hookspecs import Subparsers

__all__ = ["rotate_secret"]


def _text(key: str | bytes) -> str:
    return key.decode() if isinstance(key, bytes) else key


def rotate_secret(args: argparse.Namespace, out: TextIO) -> int:
    """Write the TOML lines that rotate the configured secret key; returns the exit code."""
    config = session_core.SessionConfig.load(args.config)
    current = [_text(key) for key in (config.secret_key, *config.fallback_secret_keys)]
    out.write(f"secret_key = {json.dumps(secrets.token_urlsafe(48))}\n")
    out.write(f"fallback_secret_keys = {json.dumps(current[: args.keep])}\n")
    return 0


@session_core.hookimpl
def session_core_add_commands(subparsers: Subparsers) -> None:
    """Add ``session-core rotate-secret``."""
    parser = subparsers.add_parser(
        "rotate-secret",
        help="print the settings that rotate the secret key",
        description="Print a new secret_key, and fallback_secret_keys that keep the current "
        "key valid: paste both lines into your configuration.",
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="TOML file with the settings (default: $SESSION_CORE_CONFIG)",
    )
    parser.add_argument(
        "--keep", type=int, default=2, help="how many old keys stay valid (default: 2)"
    )
    parser.set_defaults(run=rotate_secret)
