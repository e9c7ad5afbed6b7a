"""API keys on a real server: secret keys for /api/ and /v1/, the widget's publishable key
bound to the allowed origins, and the chat app's password (Gradio's own login)."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from fastapi import FastAPI
from gradio_client import Client

from qa.answer.pipeline import QA
from qa.config import Settings
from qa.errors import SettingsError
from qa.serve.api import create_api
from qa.serve.keys import ApiKeys, ui_password
from qa.serve.middleware import UNAUTHORIZED
from qa.serve.starting import StartingApp
from tests.fakes import ScriptedGenerator
from tests.test_api import REPLY, Serve, running, serve, sse  # noqa: F401 - the fixture
from tests.test_app import MEMBERS

SECRET = "s3cret-key-0123456789abcdef"
OTHER = "another-secret-key-9876543210"
WIDGET = "pk-widget-0123456789abcdef"
SITE = "https://docs.example.org"
ALLOWED = Settings.from_env(allowed_origins=SITE, rate_limit_per_minute=6000,
                            rate_limit_burst=1000)
DENIED = {"error": UNAUTHORIZED}


@pytest.fixture
def keyed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QA_API_KEYS", f"{SECRET}, {OTHER}")
    monkeypatch.setenv("QA_WIDGET_KEY", WIDGET)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_every_api_route_needs_a_secret_key(serve: Serve, keyed: None) -> None:  # noqa: F811
    url, generator, _ = serve(config=ALLOWED)
    calls = [("GET", "/api/health", None), ("GET", "/api/documents", None),
             ("POST", "/api/ask", {"question": MEMBERS}),
             ("POST", "/api/ask/stream", {"question": MEMBERS}),
             ("POST", "/api/search", {"query": MEMBERS}), ("GET", "/api/openapi.json", None),
             ("GET", "/api/nothing", None), ("GET", "/v1/models", None),
             ("POST", "/v1/chat/completions",
              {"messages": [{"role": "user", "content": MEMBERS}]})]
    wrong = [{}, bearer(SECRET[:-1]), bearer(SECRET + "x"), {"Authorization": SECRET},
             {"Authorization": f"Basic {SECRET}"}, {"Authorization": "Bearer"}, bearer(WIDGET)]
    for method, path, body in calls:
        for headers in wrong:
            reply = httpx.request(method, url + path, json=body, headers=headers, timeout=30)
            assert reply.status_code == 401, (path, headers)
            assert reply.headers["www-authenticate"] == "Bearer"
            expected = DENIED if path.startswith("/api/") else {
                "error": {"message": UNAUTHORIZED, "type": "invalid_request_error",
                          "code": 401}}
            assert reply.json() == expected, (path, headers)
    assert generator.calls == []  # nothing was answered
    for key in (SECRET, OTHER):
        for method, path, body in calls:
            reply = httpx.request(method, url + path, json=body, headers=bearer(key),
                                  timeout=60)
            assert reply.status_code == (404 if path == "/api/nothing" else 200), path
    answered = httpx.post(f"{url}/api/ask", json={"question": MEMBERS}, headers=bearer(SECRET),
                          timeout=60)
    assert answered.json()["text"] == REPLY
    # The pages around the API stay public.
    assert httpx.get(f"{url}/widget.js", timeout=30).status_code == 200
    assert httpx.get(f"{url}/widget/demo", timeout=30).status_code == 200


def test_the_widget_key_works_from_allowed_origins_on_its_route_only(
        serve: Serve, keyed: None) -> None:  # noqa: F811 - the fixture
    url, _, _ = serve(config=ALLOWED)
    ask = {"question": MEMBERS}
    # A browser asks first whether it may send the Authorization header.
    preflight = httpx.options(f"{url}/api/ask/stream", timeout=30, headers={
        "Origin": SITE, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type, authorization"})
    assert preflight.status_code == 204
    assert "Authorization" in preflight.headers["access-control-allow-headers"]
    assert preflight.headers["access-control-allow-origin"] == SITE
    with httpx.stream("POST", f"{url}/api/ask/stream", json=ask, timeout=60,
                      headers={**bearer(WIDGET), "Origin": SITE}) as reply:
        assert reply.status_code == 200
        assert reply.headers["access-control-allow-origin"] == SITE
        events = list(sse(reply.iter_lines()))
    assert events[-1][0] == "done" and events[-1][1]["text"] == REPLY
    # Elsewhere it is no key: another origin, no origin (a script), or another route.
    for origin in ("https://evil.example.com", "null", ""):
        reply = httpx.post(f"{url}/api/ask/stream", json=ask, timeout=30,
                           headers={**bearer(WIDGET), **({"Origin": origin} if origin else {})})
        assert (reply.status_code, reply.json()) == (401, DENIED), origin
    for path, body in (("/api/ask", ask), ("/api/search", {"query": MEMBERS}),
                       ("/v1/chat/completions",
                        {"messages": [{"role": "user", "content": MEMBERS}]})):
        reply = httpx.post(url + path, json=body, timeout=30,
                           headers={**bearer(WIDGET), "Origin": SITE})
        assert reply.status_code == 401, path
    # The demo page carries the publishable key, never a secret one.
    demo = httpx.get(f"{url}/widget/demo", timeout=30).text
    assert f'data-key="{WIDGET}"' in demo
    assert SECRET not in demo and OTHER not in demo


def test_no_keys_keeps_the_api_open(serve: Serve) -> None:  # noqa: F811 - the fixture
    url, _, _ = serve()
    assert httpx.get(f"{url}/api/health", timeout=30).status_code == 200
    assert httpx.post(f"{url}/api/ask", json={"question": MEMBERS},
                      timeout=60).json()["text"] == REPLY
    assert 'data-key="' not in httpx.get(f"{url}/widget/demo", timeout=30).text


@pytest.mark.parametrize(("environ", "message"), [
    ({"QA_API_KEYS": "short"}, "QA_API_KEYS: each key must be at least 16"),
    ({"QA_API_KEYS": "a valid-looking key with spaces"}, "without spaces"),
    ({"QA_API_KEYS": SECRET, "QA_WIDGET_KEY": SECRET}, "QA_WIDGET_KEY must differ"),
    ({"QA_WIDGET_KEY": f"{WIDGET},{OTHER}"}, "QA_WIDGET_KEY holds one key"),
])
def test_bad_keys_are_refused_with_one_line(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        ApiKeys.from_env(environ)


def test_keys_are_matched_exactly() -> None:
    keys = ApiKeys([SECRET], WIDGET)
    assert keys.required
    assert keys.allows(f"Bearer {SECRET}", "/api/ask", False)
    assert keys.allows(f"bearer  {SECRET} ", "/api/ask", False)
    assert not keys.allows(f"Bearer {SECRET.upper()}", "/api/ask", False)
    assert keys.allows(f"Bearer {WIDGET}", "/api/ask/stream", True)
    assert not keys.allows(f"Bearer {WIDGET}", "/api/ask/stream", False)
    assert not ApiKeys().required and ApiKeys().allows("", "/api/ask", False)


def test_the_ui_password_is_gradio_login(
        serve: Serve, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811 - the fixture
    monkeypatch.setenv("QA_UI_PASSWORD", "open sesame, please")
    url, _, _ = serve(mount_ui=True)
    for path in ("/config", "/gradio_api/info"):  # what the page and clients read first
        reply = httpx.get(f"{url}{path}", timeout=30)
        assert (reply.status_code, reply.json()["detail"]["error"]) == (401, "Not authenticated")
    wrong = httpx.post(f"{url}/login", data={"username": "me", "password": "wrong"},
                       timeout=30)
    assert wrong.status_code == 400
    with pytest.raises(ValueError, match="Could not login"):
        Client(url, auth=("me", "wrong"), verbose=False)
    client = Client(url, auth=("anyone", "open sesame, please"), verbose=False)
    assert client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    # The API itself is not behind the UI's password.
    assert httpx.get(f"{url}/api/health", timeout=30).status_code == 200


def test_ui_password_check() -> None:
    check = ui_password({"QA_UI_PASSWORD": "pw-1"})
    assert check is not None and check("x", "pw-1") and not check("x", "pw-2")
    assert ui_password({}) is None


def test_health_answers_without_a_key_during_start_up(corpus_index, embedder,
                                                      keyed: None) -> None:
    """A start-up probe needs no key: /api/health says "starting" (nothing secret); every
    other route is a 503 until the app is built, and then the keys apply to all of /api/."""
    gate = threading.Event()

    def build() -> FastAPI:
        assert gate.wait(60)
        qa = QA(Settings.from_env(), corpus_index, embedder, ScriptedGenerator(REPLY))
        return create_api(qa, None, settings=ALLOWED, mount_ui=False)

    starting = StartingApp(build, lambda: "opening the index", lambda exc: None,
                           model="qwen2.5-coder-1.5b")
    with running(starting) as url, httpx.Client(base_url=url, timeout=30) as client:
        health = client.get("/api/health")
        assert health.status_code == 200 and health.json() == {
            "status": "starting", "state": "opening the index",
            "model": {"name": "qwen2.5-coder-1.5b", "state": "waiting for start-up",
                      "ready": False}}
        for headers in ({}, bearer(SECRET)):
            asked = client.post("/api/ask", json={"question": MEMBERS}, headers=headers)
            assert (asked.status_code, asked.headers["retry-after"]) == (503, "5")
            assert asked.json() == {"error": "the app is starting (opening the index); "
                                             "retry shortly"}
        gate.set()
        deadline = time.monotonic() + 60
        while client.get("/api/health", headers=bearer(SECRET)).json()["status"] == "starting":
            assert starting.error is None and time.monotonic() < deadline, "not built"
            time.sleep(0.05)
        assert client.get("/api/health").status_code == 401
        assert client.get("/api/health", headers=bearer(SECRET)).json()["status"] == "ok"
        assert client.post("/api/ask", json={"question": MEMBERS}).status_code == 401
