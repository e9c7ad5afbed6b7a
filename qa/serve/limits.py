"""Abuse bounds of the HTTP API: a per-client token bucket, a concurrent-generation limit and
the CORS origin policy. Their values come from Settings; qa.serve.middleware applies them."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from qa.config import ORIGIN

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
        if not origin or origin == "null" or not ORIGIN.match(origin):
            return False
        netloc = urlsplit(origin).netloc
        if self.any or origin in self._exact or (own and netloc == own.lower()):
            return True
        host = netloc.rsplit(":", 1)[0] if not netloc.endswith("]") and ":" in netloc else netloc
        return f"{origin.split('://', 1)[0]}://{host}" in self._any_port
