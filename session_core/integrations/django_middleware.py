"""Django's ``SessionMiddleware``, answering ``503 Service Unavailable`` while the store is down.

In ``settings.MIDDLEWARE``, ``"session_core.integrations.django.SessionMiddleware"`` replaces
``"django.contrib.sessions.middleware.SessionMiddleware"``; everything else it does is Django's.
"""

from __future__ import annotations

from typing import Any

from django.contrib.sessions.middleware import SessionMiddleware as DjangoSessionMiddleware
from django.http import HttpResponse

from .._compat import mark_logged
from .._http import store_unavailable
from ..errors import StoreUnreachableError

__all__ = ["SessionMiddleware"]


class SessionMiddleware(DjangoSessionMiddleware):  # type: ignore[misc]
    """Django's session middleware, plus the answer to a store outage.

    When the store cannot be reached, in the view (the first use of ``request.session``) or when
    this middleware saves the session, the visitor gets ``503 Service Unavailable`` with
    ``Retry-After`` instead of Django's 500 page, and one warning is logged with the store's
    message (no traceback: the cause is the store's server, not the code).

    To answer otherwise, either catch :class:`~session_core.StoreUnreachableError` yourself (in
    the view, or in the ``process_exception`` of a middleware listed *after* this one, which
    Django asks first), or subclass this middleware and override :meth:`store_unavailable`.
    """

    def process_exception(self, request: Any, exception: Exception) -> HttpResponse | None:
        """The 503 response for a store outage the view let through; ``None`` (Django's
        handling) for any other exception."""
        if isinstance(exception, StoreUnreachableError):
            return self.store_unavailable(request, exception)
        return None

    def process_response(self, request: Any, response: HttpResponse) -> HttpResponse:
        """Django's: save the session if needed and set or delete the cookie; the 503 response
        instead if the store cannot be reached to save."""
        try:
            result: HttpResponse = super().process_response(request, response)
        except StoreUnreachableError as error:
            return self.store_unavailable(request, error)
        return result

    def store_unavailable(self, request: Any, error: StoreUnreachableError) -> HttpResponse:
        """The response while the store is down: ``503`` with ``Retry-After``, ``Cache-Control:
        no-store`` and a short plain-text body; logs one warning. Override it for your own
        page."""
        status, headers, body = store_unavailable(error)
        response = HttpResponse(body, status=status)
        for name, value in headers:
            response[name] = value
        mark_logged(response)
        return response
