"""Any OpenAI-compatible server as the generator (vLLM, llama.cpp's server, Ollama, TGI): its
`/chat/completions` streamed over HTTP with httpx, greedy, with bounded retries."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from typing import Any

from qa.config import Backend, public_url
from qa.errors import GeneratorUnavailable
from qa.generate.base import ReplyStream
from qa.types import Message

RETRIES = 3  # tries of a request before any of its reply was read
BACKOFF_S = 0.5  # the wait before the second try; doubled for each further one
MAX_RETRY_AFTER_S = 10.0  # a 429's Retry-After is honoured up to this
CHARS_PER_TOKEN = 4  # the estimate where the server has no tokenize endpoint
FIRST_MODEL = "(the server's first model)"  # the name until the server has said which


class OpenAIGenerator:
    """A chat model behind an OpenAI-compatible HTTP API.

    Connection refused, timeouts, 429 and 5xx are retried (RETRIES tries, with backoff) until
    the first piece of a reply arrives; then, or after the last try, GeneratorUnavailable
    (HTTP 503). Timeouts bound the connection and each wait between two streamed pieces.
    `keep_prefix` does nothing: servers cache shared prompt prefixes themselves.
    """

    backend: Backend = "openai"
    # The server gives no log-probability of a reply it did not generate.
    scores_alternatives = False

    def __init__(self, base_url: str, model: str = "", api_key: str | None = None,
                 timeout: float = 60.0, retries: int = RETRIES,
                 backoff: float = BACKOFF_S) -> None:
        import httpx

        self.base_url = base_url.rstrip("/")
        self.where = public_url(self.base_url)  # never holds the key
        self.retries, self.backoff = max(1, retries), backoff
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(base_url=self.base_url, headers=headers,
                                   timeout=httpx.Timeout(timeout))
        # Whether the server returned token log-probabilities (None: no reply yet).
        self.logprobs: bool | None = None
        self._ask_logprobs = True  # dropped when the server refuses requests that ask
        self._tokenize: str | None = None  # the tokenize endpoint found ("": none)
        # The model; when not given, the first request asks the server for its first one (so
        # that a server down at start-up only fails the questions asked while it is down).
        self._model = model
        self.name = model or FIRST_MODEL

    def _first_model(self) -> str:
        """The first model the server lists (GET /models)."""
        response = self._send("GET", "/models")
        try:
            response.read()
            models = [m["id"] for m in response.json()["data"]]
        except (ValueError, KeyError, TypeError):
            raise GeneratorUnavailable(f"the generator at {self.where} gave no model list; "
                                       "set QA_OPENAI_MODEL") from None
        finally:
            response.close()
        if not models:
            raise GeneratorUnavailable(f"the generator at {self.where} serves no model")
        return str(models[0])

    def _send(self, method: str, path: str, body: dict[str, Any] | None = None,
              passed: tuple[int, ...] = ()) -> Any:
        """The streamed response of the first try that is not refused, timed out, 429 or
        5xx; GeneratorUnavailable after the last, or on another error status (but those in
        `passed`, which are returned)."""
        import httpx

        problem = ""
        for attempt in range(self.retries):
            if attempt:
                time.sleep(self._wait(attempt, problem))
            request = self.client.build_request(method, path, json=body)
            try:
                response = self.client.send(request, stream=True)
            except httpx.TransportError as exc:
                problem = _reason(exc)
                continue
            if response.status_code == 429 or response.status_code >= 500:
                problem = f"HTTP {response.status_code}"
                retry = response.headers.get("retry-after", "")
                problem += f" (retry after {retry} s)" if retry.isdigit() else ""
                response.close()
                continue
            if response.status_code >= 400 and response.status_code not in passed:
                detail = _error_text(response)
                raise GeneratorUnavailable(f"the generator at {self.where} refused the request: "
                                           f"HTTP {response.status_code} {detail}".rstrip())
            return response
        raise GeneratorUnavailable(f"the generator at {self.where} is unreachable: {problem} "
                                   f"(after {self.retries} tries); check that it runs and "
                                   "QA_OPENAI_BASE_URL")

    def _wait(self, attempt: int, problem: str) -> float:
        wait = float(self.backoff * 2 ** (attempt - 1))
        if "retry after " in problem:
            wait = max(wait, min(float(problem.split("retry after ")[1].split()[0]),
                                 MAX_RETRY_AFTER_S))
        return wait

    def stream(self, messages: list[Message], max_new_tokens: int,
               alternative: str | None = None) -> ReplyStream:
        """The reply streamed from /chat/completions (temperature 0); closing the stream
        closes the HTTP response. `alternative` is ignored (scores_alternatives is False);
        `reply_logprob` comes from the server's token log-probabilities when it gives them."""
        stream = ReplyStream()
        stream.pieces = self._pieces(messages, max_new_tokens, stream)
        return stream

    def _pieces(self, messages: list[Message], max_new_tokens: int,
                stream: ReplyStream) -> Iterator[str]:
        import httpx

        if not self._model:
            self._model = self.name = self._first_model()
        body: dict[str, Any] = {"model": self._model, "messages": messages, "stream": True,
                                "temperature": 0, "max_tokens": max_new_tokens}
        attempt = 0
        while True:
            if self._ask_logprobs:  # the chosen token's (llama-cpp-python needs top_logprobs)
                body |= {"logprobs": True, "top_logprobs": 1}
            response = self._send("POST", "/chat/completions", body,
                                  passed=(400, 422) if self._ask_logprobs else ())
            if response.status_code in (400, 422):
                response.close()  # some servers refuse logprobs: ask without (once)
                self._ask_logprobs = False
                body.pop("logprobs", None)
                body.pop("top_logprobs", None)
                continue
            attempt += 1
            logprobs: list[float] = []
            shown = False
            try:
                for piece in _deltas(response, logprobs, self.where):
                    shown = True
                    yield piece
            except httpx.TransportError as exc:
                if shown:
                    raise GeneratorUnavailable(
                        f"the generator at {self.where} stopped answering: {_reason(exc)}"
                    ) from None
                if attempt >= self.retries:
                    raise GeneratorUnavailable(
                        f"the generator at {self.where} is unreachable: {_reason(exc)} (after "
                        f"{attempt} tries); check that it runs and QA_OPENAI_BASE_URL") from None
                time.sleep(self.backoff * 2 ** (attempt - 1))
                continue
            finally:
                response.close()
            self.logprobs = bool(logprobs)
            stream.reply_logprob = sum(logprobs) / len(logprobs) if logprobs else None
            return

    def keep_prefix(self, messages: list[Message], persist: bool = False) -> None:
        """Nothing to do: OpenAI-compatible servers cache shared prompt prefixes themselves
        (vLLM's prefix caching, llama.cpp's slot cache)."""

    def prompt_tokens(self, messages: list[Message], generation_prompt: bool = True) -> list[int]:
        """The messages' text as the server tokenizes it, without the chat template's own
        tokens (the template runs on the server); zeros of the estimated count where the
        server has no tokenize endpoint."""
        text = "\n".join(f"{m['role']}: {m['content']}" for m in messages)
        ids = self._token_ids(text)
        return ids if ids is not None else [0] * self._estimate(text)

    def count_tokens(self, text: str) -> int:
        """Tokens of text by the server's tokenizer (llama.cpp's servers have one), else an
        estimate: a token per CHARS_PER_TOKEN bytes of UTF-8."""
        ids = self._token_ids(text)
        return len(ids) if ids is not None else self._estimate(text)

    @staticmethod
    def _estimate(text: str) -> int:
        return math.ceil(len(text.encode("utf-8")) / CHARS_PER_TOKEN)

    def _token_ids(self, text: str) -> list[int] | None:
        """Token ids from llama-cpp-python's /extras/tokenize or llama.cpp's /tokenize at the
        server's root (the first that answers is remembered); None where neither does."""
        import httpx

        root = self.base_url.removesuffix("/v1")
        endpoints = {"/extras/tokenize": "input", "/tokenize": "content"}
        for path in [self._tokenize] if self._tokenize is not None else endpoints:
            if not path:
                return None
            try:
                reply = self.client.post(root + path, json={endpoints[path]: text,
                                                            "model": self._model or None})
                tokens = reply.json()["tokens"] if reply.status_code == 200 else None
            except (httpx.TransportError, ValueError, KeyError, TypeError):
                tokens = None
            if isinstance(tokens, list) and all(isinstance(t, int) for t in tokens):
                self._tokenize = path
                return tokens
        self._tokenize = "" if self._tokenize is None else self._tokenize
        return None

    def close(self) -> None:
        """Close the HTTP connections."""
        self.client.close()


def _deltas(response: Any, logprobs: list[float], where: str) -> Iterator[str]:
    """The content pieces of a chat completion's server-sent events, until [DONE]; the token
    log-probabilities it carries are appended to logprobs."""
    for line in response.iter_lines():
        if not line.startswith("data:"):
            continue  # blank lines, comments, event names
        data = line[5:].strip()
        if data == "[DONE]":
            return
        try:
            chunk = json.loads(data)
        except ValueError:
            raise GeneratorUnavailable(f"the generator at {where} sent a malformed event: "
                                       f"{data[:80]!r}") from None
        if not isinstance(chunk, dict):
            continue
        if chunk.get("error"):
            raise GeneratorUnavailable(f"the generator at {where} failed mid-reply: "
                                       f"{_message(chunk['error'])}")
        for choice in chunk.get("choices") or []:
            content = (choice.get("logprobs") or {}).get("content") or []
            logprobs.extend(float(t["logprob"]) for t in content
                            if isinstance(t, dict) and isinstance(t.get("logprob"), int | float))
            piece = (choice.get("delta") or {}).get("content")
            if piece:
                yield str(piece)


def _reason(exc: Exception) -> str:
    """A short, credential-free reason for a transport error."""
    import httpx

    kinds = ((httpx.ConnectTimeout, "connection timed out"),
             (httpx.ConnectError, "connection refused"),
             (httpx.ReadTimeout, "no reply within the timeout"),
             (httpx.RemoteProtocolError, "the server closed the connection"),
             (httpx.ReadError, "the connection broke"))
    for kind, text in kinds:
        if isinstance(exc, kind):
            return text
    return type(exc).__name__


def _error_text(response: Any) -> str:
    try:
        response.read()
        return _message(response.json().get("error") or response.json().get("detail"))
    except (ValueError, AttributeError):
        return ""


def _message(error: Any) -> str:
    text = error.get("message", error) if isinstance(error, dict) else error
    return " ".join(str(text).split())[:200]
