"""The optional token (MONITOR_API_TOKEN): a Bearer header, or HTTP Basic with the token as password, so that
browsers and feed readers, which cannot send a Bearer header, can use the pages and the Atom feeds too."""

from __future__ import annotations

import base64
import binascii
import secrets

from starlette.types import ASGIApp, Receive, Scope, Send

OPEN_PATHS = frozenset({"/healthz"})


class TokenGuard:
    """ASGI middleware: every request but OPEN_PATHS must carry the token; 401 otherwise."""

    def __init__(self, app: ASGIApp, *, token: str) -> None:
        self.app = app
        self.token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS or self._allowed(scope):
            await self.app(scope, receive, send)
            return
        api = scope["path"].startswith("/api/")
        challenge = b'Bearer realm="monitor"' if api else b'Basic realm="monitor", charset="UTF-8"'
        body = b'{"detail":"missing or wrong token: send Authorization: Bearer <MONITOR_API_TOKEN>"}'
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [(b"content-type", b"application/json"), (b"www-authenticate", challenge)],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def _allowed(self, scope: Scope) -> bool:
        header = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, value = header.partition(b" ")
        if scheme.lower() == b"bearer":
            return secrets.compare_digest(value.strip(), self.token)
        if scheme.lower() == b"basic":
            try:
                _, _, password = base64.b64decode(value.strip(), validate=True).partition(b":")
            except (binascii.Error, ValueError):
                return False
            return secrets.compare_digest(password, self.token)
        return False
