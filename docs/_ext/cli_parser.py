"""The ``session-core`` command's parser, for the CLI reference (sphinx-argparse).

Built by the command's own code, so the reference shows exactly what the command accepts: the
built-in subcommands, then those that the plugins installed where the docs are built add.
"""

from __future__ import annotations

import argparse

from session_core import cli


def builtin_parser() -> argparse.ArgumentParser:
    """The parser with the built-in subcommands only."""
    parser, _ = cli._parser()
    return parser


def plugin_parser() -> argparse.ArgumentParser:
    """A parser holding only the subcommands that installed plugins add."""
    parser, commands = cli._parser()
    builtin = set(commands.choices)
    cli._add_plugin_commands(commands)
    for name in builtin:
        del commands.choices[name]
    # argparse keeps the help lines of the subcommands here, apart from the choices.
    commands._choices_actions = [
        action for action in commands._choices_actions if action.dest not in builtin
    ]
    parser.prog = "session-core"
    return parser
