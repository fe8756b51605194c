"""Our own requests to the server (health, metrics, the page, a chat): over TLS where it serves TLS,
checking its certificate against what the plan trusts."""

from __future__ import annotations

import ssl
import urllib.request
from http.client import HTTPResponse
from typing import cast

from orchestrator.core.plan import Trust


def tls_context(trust: Trust | None) -> ssl.SSLContext | None:
    """The local authority's certificate checked with the name the server was reached by; the owner's
    own certificate checked as itself (reached through loopback, a name it need not carry)."""
    if trust is None:
        return None
    context = ssl.create_default_context(cafile=str(trust.file))
    if not trust.check_name:
        context.check_hostname = False
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    return context


def open_url(request: urllib.request.Request | str, timeout: float, trust: Trust | None) -> HTTPResponse:
    return cast(HTTPResponse, urllib.request.urlopen(request, timeout=timeout, context=tls_context(trust)))
