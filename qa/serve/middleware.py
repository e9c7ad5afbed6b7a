"""The ASGI middleware in front of /api/ and /v1/: CORS allow-list, API keys, rate limit, JSON
content type and body size, answered before any route runs."""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from qa.config import Settings
from qa.serve.keys import ApiKeys
from qa.serve.limits import OriginPolicy, RateLimiter, retry_after

MAX_BODY_BYTES = 256 * 1024  # a question, a bounded history and JSON escaping fit easily
ASK_PATHS = ("/api/ask", "/api/ask/stream", "/api/search", "/v1/chat/completions")  # limited
API_PREFIXES = ("/api/", "/v1/")  # the JSON APIs: ours, and ours for OpenAI clients
UNAUTHORIZED = "a valid API key is required (Authorization: Bearer KEY)"
PREFLIGHT_HEADERS = {"content-type", "accept", "last-event-id", "authorization"}


def error_body(path: str, message: str, status: int) -> dict[str, Any]:
    """The JSON of an error: `{"error": message}`, on /v1/ in OpenAI's format (whose clients
    show error.message)."""
    if not path.startswith("/v1/"):
        return {"error": message}
    kind = "server_error" if status >= 500 else "invalid_request_error"
    return {"error": {"message": message, "type": kind, "code": status}}


def _json_bytes(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False).encode()


async def _send_json(send: Send, status: int, data: Any, headers: dict[str, str]) -> None:
    body = _json_bytes(data)
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    raw += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def client_address(scope: Scope, proxy_hops: int) -> str:
    """The client's address; behind `proxy_hops` trusted proxies, from X-Forwarded-For."""
    client = scope.get("client")
    address = client[0] if client else "unknown"
    if proxy_hops > 0:
        headers = dict(scope.get("headers") or [])
        chain = [p.strip() for p in headers.get(b"x-forwarded-for", b"").decode("latin-1")
                 .split(",") if p.strip()]
        if len(chain) >= proxy_hops:
            address = chain[-proxy_hops]  # the address the outermost trusted proxy saw
    return address


class ApiGuard:
    """ASGI middleware for /api/ and /v1/: CORS allow-list, API keys, rate limit, JSON
    content type, body size."""

    def __init__(self, app: ASGIApp, settings: Settings, limiter: RateLimiter,
                 keys: ApiKeys | None = None) -> None:
        self.app, self.settings, self.limiter = app, settings, limiter
        self.keys = keys or ApiKeys()
        self.policy = OriginPolicy(settings.origins())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path.startswith(API_PREFIXES) or
                                           path in ("/api", "/v1")):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        origin, method = headers.get("origin", ""), scope["method"]
        allowed = bool(origin) and self.policy.allows(origin, own=headers.get("host", ""))
        cors = {"Vary": "Origin"}
        if allowed:
            cors["Access-Control-Allow-Origin"] = "*" if self.policy.any else origin
            cors["Access-Control-Expose-Headers"] = "Retry-After"
        if method == "OPTIONS" and "access-control-request-method" in headers:
            await self._preflight(send, allowed, cors, headers)
            return

        async def send_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []),
                                      *((k.lower().encode(), v.encode()) for k, v in cors.items())]
            await send(message)

        if not self.keys.allows(headers.get("authorization", ""), path, allowed):
            # The same reply for a missing, malformed or wrong key.
            await _send_json(send_cors, 401, error_body(path, UNAUTHORIZED, 401),
                             {"WWW-Authenticate": "Bearer"})
            return
        if method == "POST" and path in ASK_PATHS:
            wait = self.limiter.acquire(client_address(scope, self.settings.proxy_hops))
            if wait > 0:
                message = f"too many questions from your address; retry in {retry_after(wait)} s"
                await _send_json(send_cors, 429, error_body(path, message, 429),
                                 {"Retry-After": retry_after(wait)})
                return
        if method == "POST":
            problem = _content_problem(headers)
            body = None if problem else await _read_body(receive)
            if body is None:
                status, message = problem or (
                    413, f"the request body is larger than {MAX_BODY_BYTES} bytes")
                await _send_json(send_cors, status, error_body(path, message, status), {})
                return
            receive = _replay(body, receive)
        await self.app(scope, receive, send_cors)

    async def _preflight(self, send: Send, allowed: bool, cors: dict[str, str],
                         headers: dict[str, str]) -> None:
        asked = {h.strip().lower() for h in headers.get("access-control-request-headers", "")
                 .split(",") if h.strip()}
        ok = allowed and headers["access-control-request-method"] in ("GET", "POST") and asked \
            <= PREFLIGHT_HEADERS
        if not ok:  # no CORS headers at all: the browser refuses the request
            await _send_json(send, 403, {"error": "this origin may not use the API"},
                             {"Vary": "Origin"})
            return
        cors |= {"Access-Control-Allow-Methods": "GET, POST",
                 "Access-Control-Allow-Headers": "Content-Type, Accept, Last-Event-ID, "
                                                 "Authorization",
                 "Access-Control-Max-Age": "600"}
        raw = [(k.lower().encode(), v.encode()) for k, v in cors.items()]
        await send({"type": "http.response.start", "status": 204, "headers": raw})
        await send({"type": "http.response.body", "body": b""})


def _content_problem(headers: dict[str, str]) -> tuple[int, str] | None:
    """(status, message) when a POST is not JSON or announces too large a body."""
    if headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        return 415, "send the request as JSON (Content-Type: application/json)"
    length = headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BODY_BYTES:
        return 413, f"the request body is larger than {MAX_BODY_BYTES} bytes"
    return None


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body, or None when it exceeds MAX_BODY_BYTES."""
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if size > MAX_BODY_BYTES:
            return None
        more = message.get("more_body", False)
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that returns body once, then defers to the server (for disconnects)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
