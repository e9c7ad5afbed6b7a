"""HTTP API (JSON and server-sent events), the embeddable widget and the Gradio UI as one ASGI
app: `create_api(qa)` builds it, `serve(host, port)` runs it with uvicorn."""

from __future__ import annotations

import asyncio
import html
import importlib.util
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from qa.config import PROJECT_ROOT, Settings
from qa.limits import ApiConfig, GenerationSlots, Guard, RateLimiter
from qa.limits import retry_after as retry_header
from qa.pipeline import QA, Event, QuestionError, clean_text
from qa.session import Models

log = logging.getLogger("qa.api")
WEB = Path(__file__).resolve().parent / "web"
MAX_HISTORY = 20  # messages of earlier turns sent with a follow-up question
MAX_TURN_CHARS = 4000
MAX_TOP_K = 20
BUSY_RETRY_S = 5
LOADING_RETRY_S = 10
POLL_S = 0.5  # how often a waiting request checks for a disconnected client
KEEPALIVE_S = 15.0  # SSE comment while nothing else is sent (proxies close idle streams)
START_TIMEOUT_S = 30.0  # a generation whose response never starts gives its slot back


class Turn(BaseModel):
    """One earlier message of the conversation."""

    model_config = ConfigDict(extra="forbid", strict=True)
    role: Literal["user", "assistant"]
    content: str = Field(max_length=MAX_TURN_CHARS)


class AskRequest(BaseModel):
    """A question, the conversation so far (for follow-ups) and how many passages to use."""

    model_config = ConfigDict(extra="forbid", strict=True)
    question: str = Field(description="The question (at most max_question_chars characters)")
    history: list[Turn] = Field(default_factory=list, max_length=MAX_HISTORY)
    top_k: int | None = Field(default=None, ge=1, le=MAX_TOP_K)


class SearchRequest(BaseModel):
    """A query for retrieval only (no answer is generated)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    query: str = Field(description="The query (at most max_question_chars characters)")
    top_k: int | None = Field(default=None, ge=1, le=MAX_TOP_K)


class ApiError(Exception):
    """An error answered as JSON `{"error": message}` with its status code."""

    def __init__(self, status: int, message: str, retry: float | None = None) -> None:
        super().__init__(message)
        self.status, self.message = status, message
        self.headers = {"Retry-After": retry_header(retry)} if retry is not None else {}


class Generation:
    """One answer generated in a worker thread; events reach the event loop through a queue."""

    def __init__(self, qa: QA, question: str, history: list[dict[str, str]], top_k: int | None,
                 slots: GenerationSlots, seconds: float) -> None:
        self.qa, self.question, self.history, self.top_k = qa, question, history, top_k
        self.slots, self.seconds = slots, seconds
        self.deadline = time.monotonic() + seconds
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.stop, self.attached = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._run, name="qa-api-generation", daemon=True)
        self.thread.start()

    def _put(self, kind: str, payload: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, (kind, payload))
        except RuntimeError:  # the event loop has closed (server shutting down)
            self.stop.set()

    def _timeout(self) -> tuple[int, str]:
        return 504, f"the answer took longer than {self.seconds:g} s and was stopped"

    def _run(self) -> None:
        try:
            if not self.attached.wait(START_TIMEOUT_S):
                return
            events = self.qa.stream(self.question, self.history, self.top_k)
            try:
                for event in events:
                    if self.stop.is_set():
                        break
                    if time.monotonic() > self.deadline:
                        self._put("error", self._timeout())
                        break
                    self._put("event", event)
            finally:
                events.close()  # stops the model (the generator's iterator is closed)
        except QuestionError as exc:
            self._put("error", (422, str(exc)))
        except Exception as exc:  # reported to the client, logged in full
            log.exception("answering %r failed", self.question)
            self._put("error", (500, f"answering failed: {type(exc).__name__}"))
        finally:
            self.slots.release()
            self._put("end", None)

    async def events(self, request: Request) -> AsyncIterator[tuple[str, Any]]:
        """('event', Event), ('error', (status, message)) or ('tick', None) while waiting;
        leaving the loop early (a disconnect, a cancelled task) stops the generation."""
        self.attached.set()
        try:
            while True:
                try:
                    kind, payload = await asyncio.wait_for(self.queue.get(), POLL_S)
                except TimeoutError:
                    if await request.is_disconnected():
                        return
                    if time.monotonic() > self.deadline + 1.0:  # the model itself is stuck
                        yield "error", self._timeout()
                        return
                    yield "tick", None
                    continue
                if kind == "end":
                    return
                yield kind, payload
        finally:
            self.stop.set()


def _sse(name: str, data: Any) -> str:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


async def _sse_stream(generation: Generation, request: Request) -> AsyncIterator[str]:
    """token, citation, done and error events, with keep-alive comments while waiting."""
    last = time.monotonic()
    async for kind, payload in generation.events(request):
        if kind == "tick":
            if time.monotonic() - last >= KEEPALIVE_S:
                last = time.monotonic()
                yield ": keep-alive\n\n"
            continue
        last = time.monotonic()
        if kind == "error":
            yield _sse("error", {"error": payload[1], "status": payload[0]})
            return
        event: Event = payload
        if event.kind == "token":
            yield _sse("token", {"text": event.text})
        elif event.answer is not None:
            for citation in event.answer.citations:
                yield _sse("citation", asdict(citation))
            yield _sse("done", event.answer.to_dict())


def _load_ui(qa: QA, models: Models | None, note: str) -> Any:
    """The Gradio Blocks of app.py (importable from the project root or by path)."""
    try:
        from app import build_app
    except ImportError:
        spec = importlib.util.spec_from_file_location("app", PROJECT_ROOT / "app.py")
        if spec is None or spec.loader is None:
            raise
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        build_app = module.build_app
    return build_app(qa, models, note=note)


def create_api(qa: QA, models: Models | None = None, settings: Settings | None = None, *,
               config: ApiConfig | None = None, ui: Any = None, mount_ui: bool = True,
               note: str = "") -> FastAPI:
    """The ASGI app: /api/*, /widget.js, /widget/demo and (mount_ui) the Gradio UI at /."""
    settings = settings or qa.settings
    config = config or ApiConfig.from_settings(settings)
    slots = GenerationSlots(config.max_generations)
    limiter = RateLimiter(config.rate_per_minute, config.rate_burst)
    app = FastAPI(title="Ask the documents API", docs_url="/api/docs", redoc_url=None,
                  openapi_url="/api/openapi.json",
                  description="Questions answered from the indexed documents, with citations.")
    app.state.config, app.state.slots, app.state.limiter = config, slots, limiter
    app.add_middleware(Guard, config=config, limiter=limiter)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"error": exc.message}, exc.status, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        # FastAPI's own errors (a body nested too deeply to parse) in the API's error format.
        if not request.url.path.startswith("/api/"):
            return await http_exception_handler(request, exc)
        return JSONResponse({"error": str(exc.detail)}, exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = jsonable_encoder(exc.errors(), exclude={"input", "ctx", "url"})
        if any(e.get("type") == "json_invalid" for e in errors):
            return JSONResponse({"error": "the request body is not valid JSON"}, 400)
        parts = [f"{'.'.join(str(p) for p in e['loc'] if p != 'body') or 'body'}: {e['msg']}"
                 for e in errors]
        return JSONResponse({"error": "; ".join(parts), "detail": errors}, 422)

    def start(body: AskRequest) -> Generation:
        question = clean_text(body.question).strip()  # as the pipeline will see it
        if not question:
            raise ApiError(422, "the question is empty")
        if len(question) > settings.max_question_chars:
            raise ApiError(413, f"the question is longer than {settings.max_question_chars} "
                           "characters")
        if models is not None and models.error:
            raise ApiError(503, f"the model failed to load: {models.error}")
        if models is not None and not models.ready:
            raise ApiError(503, "the model is still loading; retry shortly", LOADING_RETRY_S)
        if not slots.try_acquire():
            raise ApiError(503, "busy answering other questions; retry in a few seconds",
                           BUSY_RETRY_S)
        history = [{"role": t.role, "content": t.content} for t in body.history]
        return Generation(qa, question, history, body.top_k, slots, config.max_answer_seconds)

    @app.post("/api/ask", summary="Answer a question (the full Answer as JSON)")
    async def ask(body: AskRequest, request: Request) -> Response:
        answer = None
        async for kind, payload in start(body).events(request):
            if kind == "error":
                raise ApiError(*payload)
            if kind == "event" and payload.answer is not None:
                answer = payload.answer
        if answer is None:  # the client went away; nobody reads this
            return Response(status_code=499)
        return JSONResponse(answer.to_dict())

    @app.post("/api/ask/stream", summary="Answer a question as server-sent events",
              response_class=StreamingResponse,
              responses={200: {"content": {"text/event-stream": {}},
                               "description": "events: token, citation, done, error"}})
    async def ask_stream(body: AskRequest, request: Request) -> StreamingResponse:
        return StreamingResponse(_sse_stream(start(body), request),
                                 media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @app.post("/api/search", summary="The passages retrieved for a query, without an answer")
    async def search(body: SearchRequest) -> dict[str, Any]:
        query = clean_text(body.query).strip()
        if not query:
            raise ApiError(422, "the query is empty")
        if len(query) > settings.max_question_chars:
            raise ApiError(413, f"the query is longer than {settings.max_question_chars} "
                           "characters")
        retriever = qa.retriever  # one index version for the whole search
        hits = await run_in_threadpool(retriever.search, query, body.top_k)
        return {"query": query, "build_id": retriever.index.version,
                "hits": [asdict(hit) for hit in hits]}

    @app.get("/api/health", summary="Index and model status")
    async def health() -> dict[str, Any]:
        state = models.state if models is not None else "loads on first question"
        failed = models is not None and bool(models.error)
        ready = models is None or (models.ready and not failed)
        index = qa.index  # one version, even while swap_index replaces it
        manifest = index.manifest
        return {"status": "error" if failed else "ok" if ready else "loading",
                "model": {"name": qa.model_name, "state": state, "ready": ready},
                "index": {"build_id": index.version, "created_at": manifest.get("created_at"),
                          "documents": len(index.documents), "chunks": len(index.chunks),
                          "embedder": manifest.get("embedder", {}).get("name")},
                "limits": {"max_question_chars": settings.max_question_chars,
                           "max_new_tokens": settings.max_new_tokens,
                           "max_answer_seconds": config.max_answer_seconds,
                           "max_concurrent_generations": config.max_generations,
                           "busy_generations": slots.busy,
                           "rate_limit_per_minute": config.rate_per_minute,
                           "rate_limit_burst": config.rate_burst}}

    @app.get("/api/documents", summary="The indexed documents")
    async def documents() -> list[dict[str, Any]]:
        index, counts = qa.index, dict[str, int]()
        for chunk in index.chunks:
            counts[chunk.doc_id] = counts.get(chunk.doc_id, 0) + 1
        return [{"id": d.id, "source": d.source, "title": d.title, "chars": len(d.text),
                 "chunks": counts.get(d.id, 0)}
                for d in sorted(index.documents.values(), key=lambda d: d.source)]

    @app.api_route("/api/{rest:path}", include_in_schema=False,
                   methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
    async def unknown(rest: str) -> JSONResponse:
        known = {"ask", "ask/stream", "search", "health", "documents"}
        if rest in known:
            return JSONResponse({"error": "method not allowed"}, 405)
        return JSONResponse({"error": f"no such endpoint: /api/{rest}"}, 404)

    widget = (WEB / "widget.js").read_bytes()
    demo_page = (WEB / "demo.html").read_text(encoding="utf-8")

    @app.get("/widget.js", include_in_schema=False)
    async def widget_js() -> Response:
        return Response(widget, media_type="text/javascript; charset=utf-8",
                        headers={"Cache-Control": "public, max-age=300",
                                 "X-Content-Type-Options": "nosniff"})

    @app.get("/widget/demo", include_in_schema=False)
    async def widget_demo(request: Request) -> HTMLResponse:
        base = str(request.base_url).rstrip("/")
        return HTMLResponse(demo_page.replace("{{BASE}}", html.escape(base)))

    if mount_ui:
        import gradio as gr

        blocks = ui if ui is not None else _load_ui(qa, models, note)
        gr.mount_gradio_app(app, blocks, path="/", ssr_mode=False)
    return app


def serve(host: str, port: int, build_ui: Callable[..., Any] | None = None) -> None:
    """Serve everything with uvicorn: a start-up page at once, then the app, once the index is
    opened (or rebuilt) and the app built; the model loads in the background after that.

    An exception of start-up (a corpus with nothing to index, say) stops the server and is
    raised here."""
    import uvicorn

    from qa.embedding import Embedder
    from qa.session import LoadProgress, open_index
    from qa.starting import StartingApp

    logging.basicConfig(level=logging.INFO)
    settings = Settings.from_env()  # invalid values stop here, before the port opens
    config = ApiConfig.from_settings(settings)
    progress = LoadProgress()

    def build() -> FastAPI:
        progress.text = "opening the index"
        embedder = Embedder(threads=settings.threads)
        index, note = open_index(settings, embedder, progress)
        if note:
            log.warning(note)
        progress.text = "building the app"
        qa = QA(settings, index, embedder, report=progress)
        models = Models(qa, progress)
        ui = build_ui(qa, models, note=note) if build_ui is not None else None
        app = create_api(qa, models, settings, config=config, ui=ui, note=note)
        progress.text = ""
        models.load_in_background()
        log.info("serving on http://%s:%d/ (widget: /widget.js, demo: /widget/demo, API docs: "
                 "/api/docs)", host, port)
        return app

    def stop(_: BaseException) -> None:
        server.should_exit = True

    starting = StartingApp(build, lambda: progress.text, stop, model=settings.model)
    server = uvicorn.Server(uvicorn.Config(starting, host=host, port=port, log_level="info"))
    server.run()
    if starting.error is not None:
        raise starting.error
