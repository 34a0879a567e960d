"""Diagnosing a plugin's hook implementations before pluggy registers it, so that an author's
mistake is reported as the mistake (a missing decorator, a misspelt hook name) rather than as
its consequence (a hook that seems not to exist, a raw pluggy error)."""

from __future__ import annotations

import pluggy

from .hints import did_you_mean
from .hookspecs import PROJECT_NAME

__all__ = ["HOOK_PREFIX", "closest", "hook_names", "hook_problems"]

HOOK_PREFIX = f"{PROJECT_NAME}_"
"""Every hook's name starts with it."""


def hook_names(pm: pluggy.PluginManager) -> list[str]:
    """The names of the hooks ``pm`` has specifications for."""
    return sorted(
        name
        for name in dir(pm.hook)
        if name.startswith(HOOK_PREFIX) and getattr(pm.hook, name).spec is not None
    )


def closest(name: str, choices: list[str]) -> str | None:
    """The choice ``name`` is most likely a misspelling of, if any is close."""
    found = did_you_mean(name, choices, cutoff=0.75)
    if found is None and not name.startswith(HOOK_PREFIX):
        found = did_you_mean(HOOK_PREFIX + name, choices, cutoff=0.75)
    return found


def hook_problems(pm: pluggy.PluginManager, plugin: object) -> list[str]:
    """What is wrong with ``plugin``'s hook implementations, one sentence each that says what
    to change; empty when nothing is."""
    known = hook_names(pm)
    problems: list[str] = []
    for attribute in sorted(dir(plugin)):
        opts = pm.parse_hookimpl_opts(plugin, attribute)
        if opts is None:
            problem = _unmarked(plugin, attribute, known)
        else:
            problem = _unknown(attribute, opts.get("specname") or attribute, opts, known)
        if problem:
            problems.append(problem)
    return problems


def _unmarked(plugin: object, attribute: str, known: list[str]) -> str | None:
    if not attribute.startswith(HOOK_PREFIX) or not callable(getattr(plugin, attribute, None)):
        return None
    if attribute in known:
        return (
            f"{attribute} is not marked as a hook implementation, so session-core never calls "
            f"it: decorate it with @session_core.hookimpl"
        )
    guess = closest(attribute, known)
    if guess is None:
        return None  # a helper that happens to share the prefix
    return (
        f"{attribute} is not a session-core hook (did you mean {guess!r}?) and is not marked "
        f"with @session_core.hookimpl: rename it and decorate it"
    )


def _unknown(attribute: str, hook: str, opts: pluggy.HookimplOpts, known: list[str]) -> str | None:
    if hook in known or opts.get("optionalhook"):
        return None
    guess = closest(hook, known)
    hint = f"did you mean {guess!r}?" if guess else f"the hooks are {', '.join(known)}"
    return (
        f"{attribute} is marked @session_core.hookimpl but session-core has no hook named "
        f"{hook!r} ({hint}); mark it optionalhook=True if it is a hook of a newer session-core"
    )
