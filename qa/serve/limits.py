"""Abuse bounds of the HTTP API: a per-client token bucket, a concurrent-generation limit, the
CORS origin allow-list, their settings (ApiConfig) and the ASGI middleware applying them."""

from __future__ import annotations

import json
import math
import os
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from qa.config import Settings, SettingsError

MAX_BODY_BYTES = 256 * 1024  # a question, a bounded history and JSON escaping fit easily
ASK_PATHS = ("/api/ask", "/api/ask/stream", "/api/search")  # rate-limited
Clock = Callable[[], float]


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token bucket per client key: `burst` requests at once, refilled at `per_minute`."""

    def __init__(self, per_minute: float, burst: int, clock: Clock = time.monotonic,
                 max_clients: int = 10_000) -> None:
        if per_minute <= 0 or burst < 1:
            raise ValueError("per_minute must be positive and burst at least 1")
        self.rate = per_minute / 60.0  # tokens per second
        self.burst = burst
        self.clock = clock
        self.max_clients = max_clients
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def _refill(self, bucket: _Bucket, now: float) -> None:
        # Tokens grow linearly with elapsed time, capped at the burst size.
        elapsed = max(0.0, now - bucket.updated)
        bucket.tokens = min(float(self.burst), bucket.tokens + elapsed * self.rate)
        bucket.updated = now

    def acquire(self, key: str) -> float:
        """Take one token for key: 0.0 when allowed, else the seconds until one is available."""
        with self._lock:
            now = self.clock()
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= self.max_clients:
                    self._prune(now)
                bucket = self._buckets[key] = _Bucket(float(self.burst), now)
            self._refill(bucket, now)
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / self.rate

    def _prune(self, now: float) -> None:
        """Forget clients whose bucket is full again (they are as good as new)."""
        for key, bucket in list(self._buckets.items()):
            self._refill(bucket, now)
            if bucket.tokens >= self.burst:
                del self._buckets[key]
        if len(self._buckets) >= self.max_clients:  # still full: drop the oldest
            oldest = sorted(self._buckets, key=lambda k: self._buckets[k].updated)
            for key in oldest[: len(oldest) // 2 + 1]:
                del self._buckets[key]

    def __len__(self) -> int:
        return len(self._buckets)


def retry_after(seconds: float) -> str:
    """A Retry-After header value: whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))


class GenerationSlots:
    """At most `limit` generations at once; `try_acquire` never waits."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self._busy = 0
        self._lock = threading.Lock()

    def try_acquire(self) -> bool:
        """Take a slot if one is free."""
        with self._lock:
            if self._busy >= self.limit:
                return False
            self._busy += 1
            return True

    def release(self) -> None:
        """Give a slot back."""
        with self._lock:
            if self._busy <= 0:
                raise RuntimeError("release() without a matching try_acquire()")
            self._busy -= 1

    @property
    def busy(self) -> int:
        return self._busy


_ORIGIN = re.compile(r"^(https?)://(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(?::(\d{1,5}|\*))?$")
DEFAULT_ORIGINS = ("http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*")


def parse_origins(text: str) -> tuple[str, ...]:
    """Comma-separated origins (`scheme://host[:port]`, port `*` = any, or just `*`).

    Raises ValueError naming the first entry that is not an origin.
    """
    origins = []
    for raw in text.split(","):
        entry = raw.strip().rstrip("/").lower()
        if not entry:
            continue
        if entry != "*" and not _ORIGIN.match(entry):
            raise ValueError(f"{raw.strip()!r} is not an origin like https://example.org or "
                             "http://localhost:*")
        origins.append(entry)
    return tuple(origins)


class OriginPolicy:
    """Which Origin header values may read API responses (exact, `host:*`, or `*`)."""

    def __init__(self, allowed: Iterable[str]) -> None:
        self.allowed = tuple(allowed)
        self.any = "*" in self.allowed
        self._exact = {o for o in self.allowed if not o.endswith(":*")}
        self._any_port = {o[:-2] for o in self.allowed if o.endswith(":*")}

    def allows(self, origin: str, own: str = "") -> bool:
        """Whether origin is allowed; `own` (the request's Host) is the app's own origin."""
        origin = origin.lower()
        if not origin or origin == "null" or not _ORIGIN.match(origin):
            return False
        netloc = urlsplit(origin).netloc
        if self.any or origin in self._exact or (own and netloc == own.lower()):
            return True
        host = netloc.rsplit(":", 1)[0] if not netloc.endswith("]") and ":" in netloc else netloc
        return f"{origin.split('://', 1)[0]}://{host}" in self._any_port


@dataclass(frozen=True)
class ApiConfig:
    """Limits of the HTTP API, taken from Settings by `from_settings`."""

    allowed_origins: tuple[str, ...] = DEFAULT_ORIGINS
    rate_per_minute: float = 12.0
    rate_burst: int = 6
    max_generations: int = 1
    max_answer_seconds: float = 120.0
    proxy_hops: int = 0

    @classmethod
    def from_settings(cls, settings: Settings, environ: dict[str, str] | None = None) -> ApiConfig:
        """The API limits of settings; on a Space (SPACE_HOST set) its own https origin is
        allowed too unless QA_ALLOWED_ORIGINS lists the origins explicitly."""
        env = os.environ if environ is None else environ
        raw = settings.allowed_origins.strip()
        try:
            origins = parse_origins(raw) if raw else DEFAULT_ORIGINS
        except ValueError as exc:
            raise SettingsError(f"allowed_origins: {exc}") from None
        space = env.get("SPACE_HOST", "").strip()  # set by Hugging Face Spaces
        if space and not raw:
            origins = (*origins, f"https://{space.lower()}")
        return cls(origins, settings.rate_limit_per_minute, settings.rate_limit_burst,
                   settings.max_concurrent_generations, settings.max_answer_seconds,
                   settings.proxy_hops)


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


class Guard:
    """ASGI middleware for /api/: CORS allow-list, rate limit, JSON content type, body size."""

    def __init__(self, app: ASGIApp, config: ApiConfig, limiter: RateLimiter) -> None:
        self.app, self.config, self.limiter = app, config, limiter
        self.policy = OriginPolicy(config.allowed_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path.startswith("/api/") or path == "/api"):
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

        if method == "POST" and path in ASK_PATHS:
            wait = self.limiter.acquire(client_address(scope, self.config.proxy_hops))
            if wait > 0:
                await _send_json(send_cors, 429, {"error": "too many questions from your address;"
                                                  f" retry in {retry_after(wait)} s"},
                                 {"Retry-After": retry_after(wait)})
                return
        if method == "POST":
            problem = _content_problem(headers)
            body = b"" if problem else await _read_body(receive)
            if body is None:
                problem = (413, f"the request body is larger than {MAX_BODY_BYTES} bytes")
            if problem:
                await _send_json(send_cors, problem[0], {"error": problem[1]}, {})
                return
            receive = _replay(body, receive)
        await self.app(scope, receive, send_cors)

    async def _preflight(self, send: Send, allowed: bool, cors: dict[str, str],
                         headers: dict[str, str]) -> None:
        asked = {h.strip().lower() for h in headers.get("access-control-request-headers", "")
                 .split(",") if h.strip()}
        ok = allowed and headers["access-control-request-method"] in ("GET", "POST") and asked \
            <= {"content-type", "accept", "last-event-id"}
        if not ok:  # no CORS headers at all: the browser refuses the request
            await _send_json(send, 403, {"error": "this origin may not use the API"},
                             {"Vary": "Origin"})
            return
        cors |= {"Access-Control-Allow-Methods": "GET, POST",
                 "Access-Control-Allow-Headers": "Content-Type, Accept, Last-Event-ID",
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
