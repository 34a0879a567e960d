"""Django's private names used by the Django integration, each in this one place and each with
a test (tests/test_django.py, ``test_compat_*``) that fails when Django changes it."""

from __future__ import annotations

from typing import Any

__all__ = ["mark_logged"]


def mark_logged(response: Any) -> None:
    """Tell Django's request logging that ``response`` was logged already.

    The 503 of a store outage is logged once, by :func:`session_core._http.store_unavailable`,
    with the store's message; without this, Django's handler logs it a second time as an error
    ("Service Unavailable: /path"). Django marks the responses it logged with this attribute
    (``django.utils.log.log_response``); there is no public way to do it.
    """
    response._has_been_logged = True
