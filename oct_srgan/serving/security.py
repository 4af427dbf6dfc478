"""What keeps the app to its own page: strict response headers, Host and Origin checks, and a
download file name reduced to safe characters (the client's name is used for that one header only).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..io import scan_suffixes
from .jobs import Upload

_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")
MAX_STEM = 100
_SECURITY_HEADERS = [
    (b"content-security-policy",
     b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
     b"form-action 'none'; frame-ancestors 'none'; base-uri 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


def json_error(status: int, message: str) -> JSONResponse:
    """An error as the client sees it: one line of JSON ``{"error": ...}``."""
    return JSONResponse({"error": message}, status_code=status)


def download_name(client_name: str | None, upload: Upload) -> str:
    """``scan.dcm`` -> ``scan_sr.dcm``: the source's name (any folder part and scan extension
    dropped, other characters than ``[A-Za-z0-9._-]`` made ``_``) + ``_sr`` + the suffix of the
    content; ``scan_<id>_sr<suffix>`` without a usable name. ``app.js`` (``downloadName``) mirrors it
    with the suffixes from ``/api/formats``."""
    name = re.split(r"[/\\]", client_name or "")[-1]
    extension = next((s for s in scan_suffixes() if name.lower().endswith(s)), "")
    name = name[: len(name) - len(extension)]
    stem = _UNSAFE_NAME.sub("_", name).lstrip(".")[:MAX_STEM]
    return f"{stem or 'scan_' + upload.id[:8]}_sr{upload.suffix}"


class SecurityHeaders:
    """Adds a strict Content-Security-Policy (only this server's own files) and no-store to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in message.get("headers", [])}
                extra = [(n, v) for n, v in _SECURITY_HEADERS if n not in names]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class OwnPageOnly:
    """Refuses requests not made through this server's own page.

    A ``Host`` that is neither an IP literal, ``localhost`` nor an allowed name is refused (DNS
    rebinding: a foreign site whose name resolves to this address); a POST whose ``Origin`` is not
    this server's own origin is refused (cross-site requests from another page).
    """

    def __init__(self, app: ASGIApp, allowed_hosts: Sequence[str] = ()) -> None:
        self.app = app
        self.allowed = {"localhost", *(h.lower().strip("[]") for h in allowed_hosts)}

    def host_ok(self, host: str) -> bool:
        name = _host_name(host)
        if name in self.allowed:
            return True
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return False
        return True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host = headers.get("host", "")
        problem = None
        if not self.host_ok(host):
            problem = "unknown Host header: open the page at the address the server printed"
        elif scope.get("method") == "POST" and "origin" in headers:
            origin = headers["origin"].lower()
            if origin not in (f"http://{host.lower()}", f"https://{host.lower()}"):
                problem = "cross-origin request refused"
        if problem is not None:
            await json_error(403, problem)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _host_name(host: str) -> str:
    """The name part of a ``Host`` header (``[::1]:8000`` -> ``::1``, ``a.b:80`` -> ``a.b``)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host
