"""Who may use `ptlab serve`: the API key, checked in constant time, and a warning when anyone may.

Why here and not in the handler: the check must run before a byte of the body is read
(a wrong key must not get the server to read or buffer anything), on every route but
``GET /health``, and compare bytes with `hmac.compare_digest` so the time taken does not
tell an attacker how much of a guessed key was right.
"""

from __future__ import annotations

import hmac
import ipaddress
from email.message import Message

from ptlab.synth.serve.errors import ApiError


def auth_header(api_key: str | None) -> bytes | None:
    """The exact Authorization header a client must send, as bytes (None: no key, everyone may)."""
    return None if api_key is None else f"Bearer {api_key}".encode()


def authorize(headers: Message, expected: bytes | None, declares_body: bool) -> None:
    """Raise a 401 unless the request carries the key; it closes the connection if a body was announced."""
    if expected is None:
        return
    given = (headers.get("Authorization") or "").encode("latin-1", "replace")  # http.client decodes as latin-1
    if not hmac.compare_digest(given, expected):
        raise ApiError(401, "Incorrect API key provided.", code="invalid_api_key", close=declares_body)


def exposure_warning(host: str, api_key: str | None) -> str | None:
    """One line for stderr when the server is reachable from other machines and anyone may use it."""
    if api_key is not None or _is_loopback(host):
        return None
    return (f"ptlab serve: warning: listening on {host or 'all addresses'} without an API key: anyone who can "
            "reach it can use the model (set --api-key-env)")


def _is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name (or all addresses): it may be reachable from anywhere

