"""The pure parts of qa.serve.limits: token buckets, generation slots, origins, client addresses."""

from __future__ import annotations

import pytest

from qa.config import DEFAULT_ORIGINS, Settings, parse_origins
from qa.errors import SettingsError
from qa.serve.limits import GenerationSlots, OriginPolicy, RateLimiter
from qa.serve.middleware import client_address


def test_token_bucket_refills_at_its_rate() -> None:
    now = [100.0]
    limiter = RateLimiter(per_minute=30, burst=2, clock=lambda: now[0])  # one token per 2 s
    assert [limiter.acquire("a"), limiter.acquire("a")] == [0.0, 0.0]
    assert limiter.acquire("a") == pytest.approx(2.0)
    assert limiter.acquire("b") == 0.0  # another client has its own bucket
    now[0] += 1.0
    assert limiter.acquire("a") == pytest.approx(1.0)
    now[0] += 1.0
    assert limiter.acquire("a") == 0.0
    now[0] += 1000.0  # refills up to the burst only
    assert [limiter.acquire("a") for _ in range(3)][2] == pytest.approx(2.0)


def test_token_bucket_forgets_idle_clients_when_full() -> None:
    now = [0.0]
    limiter = RateLimiter(per_minute=60, burst=1, clock=lambda: now[0], max_clients=3)
    for key in "abc":
        limiter.acquire(key)
    now[0] += 10.0  # all refilled
    limiter.acquire("d")
    assert len(limiter) == 1
    for key in "efg":
        limiter.acquire(key)  # none refilled: the oldest half goes
    assert len(limiter) <= 3


def test_generation_slots() -> None:
    slots = GenerationSlots(2)
    assert [slots.try_acquire() for _ in range(3)] == [True, True, False]
    slots.release()
    assert slots.busy == 1 and slots.try_acquire()
    with pytest.raises(ValueError):
        GenerationSlots(0)
    fresh = GenerationSlots(1)
    with pytest.raises(RuntimeError):
        fresh.release()


def test_origins_parse_and_match() -> None:
    assert parse_origins(" https://A.example/ , http://localhost:*,") == (
        "https://a.example", "http://localhost:*")
    for bad in ("example.org", "ftp://x.example", "https://x.example/path", "https://*.x.org"):
        with pytest.raises(ValueError, match="is not an origin"):
            parse_origins(bad)
    policy = OriginPolicy(DEFAULT_ORIGINS)
    assert policy.allows("http://localhost:8000") and policy.allows("http://127.0.0.1:1234")
    assert policy.allows("http://[::1]:8080") and policy.allows("http://localhost")
    assert not policy.allows("https://localhost:8000")  # another scheme
    assert not policy.allows("http://localhost.evil.example:80")
    assert not policy.allows("null") and not policy.allows("")
    assert policy.allows("https://app.example", own="app.example")
    assert not policy.allows("https://app.example", own="other.example")


def _api_config(env: dict[str, str]) -> Settings:
    return Settings.from_env(env)


def _limits(settings: Settings, env: dict[str, str]) -> tuple[object, ...]:
    return (settings.origins(env), settings.rate_limit_per_minute, settings.rate_limit_burst,
            settings.max_concurrent_generations, settings.max_answer_seconds,
            settings.proxy_hops)


def test_api_config_from_environment() -> None:
    assert _limits(_api_config({}), {}) == (DEFAULT_ORIGINS, 12.0, 6, 1, 120.0, 0)
    env = {"QA_ALLOWED_ORIGINS": "https://a.example,https://b.example",
           "QA_RATE_LIMIT_PER_MINUTE": "2.5", "QA_RATE_LIMIT_BURST": "3",
           "QA_MAX_CONCURRENT_GENERATIONS": "2", "QA_MAX_ANSWER_SECONDS": "30",
           "QA_PROXY_HOPS": "1"}
    config = _api_config(env)
    assert _limits(config, env) == (("https://a.example", "https://b.example"), 2.5, 3, 2, 30.0, 1)
    space = {"SPACE_HOST": "user-demo.hf.space"}
    assert _api_config(space).origins(space) == (*DEFAULT_ORIGINS, "https://user-demo.hf.space")
    for env, message in (({"QA_RATE_LIMIT_BURST": "0"}, "rate_limit_burst must be positive"),
                         ({"QA_MAX_ANSWER_SECONDS": "soon"}, "is not a valid float"),
                         ({"QA_ALLOWED_ORIGINS": "example.org"}, "allowed_origins"),
                         ({"QA_MAX_CONCURRENT_GENERATIONS": "-1"}, "max_concurrent"),
                         ({"QA_PROXY_HOPS": "-1"}, "proxy_hops must be 0 or more")):
        with pytest.raises(SettingsError, match=message):
            _api_config(env)


def test_client_address_behind_trusted_proxies() -> None:
    scope = {"client": ("10.0.0.9", 5000),
             "headers": [(b"x-forwarded-for", b"6.6.6.6, 1.2.3.4, 10.0.0.5")]}
    assert client_address(scope, 0) == "10.0.0.9"  # proxies not trusted: the peer
    assert client_address(scope, 1) == "10.0.0.5"
    assert client_address(scope, 2) == "1.2.3.4"  # a spoofed left-most entry is ignored
    assert client_address({"client": None, "headers": []}, 1) == "unknown"
