"""API keys: secret keys (QA_API_KEYS) for every route of /api/ and /v1/, the widget's
publishable key (QA_WIDGET_KEY) for its one route from allowed origins only, and the chat
app's password (QA_UI_PASSWORD). Secrets come from the environment only, never Settings."""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable, Iterable

from qa.errors import SettingsError

MIN_KEY_CHARS = 16
WIDGET_PATHS = ("/api/ask/stream",)  # what qa/serve/web/widget.js calls


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def _matches(given: bytes, keys: Iterable[bytes]) -> bool:
    """Whether the digest given equals one of keys, comparing with every key in constant time
    (no early exit: the time says nothing about which key, or how much, matched)."""
    found = False
    for key in keys:
        found |= hmac.compare_digest(given, key)
    return found


def _split(raw: str, name: str) -> tuple[str, ...]:
    keys = tuple(k.strip() for k in raw.split(",") if k.strip())
    for key in keys:
        if len(key) < MIN_KEY_CHARS or any(c.isspace() or not c.isprintable() for c in key):
            raise SettingsError(f"{name}: each key must be at least {MIN_KEY_CHARS} printable "
                                "characters without spaces (e.g. `openssl rand -hex 24`)")
    return keys


class ApiKeys:
    """Who may call the API: anyone when there are no secret keys; else a request with
    `Authorization: Bearer KEY` for a secret key, or for the publishable key on the widget's
    route from an allowed origin."""

    def __init__(self, secret: Iterable[str] = (), publishable: str = "") -> None:
        self._secret = [_digest(k) for k in secret]
        self.publishable = publishable  # public by design: pages carry it
        self._publishable = [_digest(publishable)] if publishable else []
        if set(self._secret) & set(self._publishable):
            raise SettingsError("QA_WIDGET_KEY must differ from every key of QA_API_KEYS: it "
                                "is put in web pages")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> ApiKeys:
        """QA_API_KEYS (comma separated; empty: the API is open) and QA_WIDGET_KEY."""
        env = os.environ if environ is None else environ
        widget = _split(env.get("QA_WIDGET_KEY", ""), "QA_WIDGET_KEY")
        if len(widget) > 1:
            raise SettingsError("QA_WIDGET_KEY holds one key")
        return cls(_split(env.get("QA_API_KEYS", ""), "QA_API_KEYS"), *widget)

    @property
    def required(self) -> bool:
        return bool(self._secret)

    def allows(self, authorization: str, path: str, allowed_origin: bool) -> bool:
        """Whether a request with this Authorization header may use path (allowed_origin: its
        Origin header is on the CORS allow-list)."""
        if not self._secret:
            return True
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return False
        given = _digest(token.strip())
        if _matches(given, self._secret):
            return True
        return allowed_origin and path in WIDGET_PATHS and _matches(given, self._publishable)


def ui_password(environ: dict[str, str] | None = None) -> Callable[[str, str], bool] | None:
    """Gradio's auth check for QA_UI_PASSWORD (any user name), or None when it is not set."""
    env = os.environ if environ is None else environ
    password = env.get("QA_UI_PASSWORD", "")
    if not password:
        return None
    expected = _digest(password)

    def check(user: str, given: str) -> bool:
        return hmac.compare_digest(_digest(given or ""), expected)

    return check
