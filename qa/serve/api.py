"""The ASGI app: the API's routes, the widget and the Gradio UI in one FastAPI app, with the
abuse bounds in front and errors answered in one JSON format."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from qa.answer.pipeline import QA
from qa.config import Settings
from qa.errors import QAError
from qa.serve.keys import ApiKeys, ui_password
from qa.serve.limits import GenerationSlots, RateLimiter
from qa.serve.middleware import API_PREFIXES, ApiGuard, error_body
from qa.serve.openai_api import router as openai_router
from qa.serve.routes import ApiState, router
from qa.serve.state import Models
from qa.serve.uploaded_pdfs import UploadedPdfs
from qa.serve.uploaded_pdfs import router as pdf_router
from qa.serve.uploads import UploadStore

log = logging.getLogger("qa.serve")


def create_api(qa: QA, models: Models | None = None, settings: Settings | None = None, *,
               ui: Any = None, mount_ui: bool = True, note: str = "",
               environ: dict[str, str] | None = None) -> FastAPI:
    """The ASGI app: /api/*, /widget.js, /widget/demo and (mount_ui) the Gradio UI at / (the
    packaged chat app when `ui` is not given, with its uploaded PDFs at /uploaded/). Limits
    come from settings (default: qa's), the API keys and the UI's password from environ
    (default: os.environ; qa.serve.keys)."""
    settings = settings or qa.settings
    keys = ApiKeys.from_env(environ)
    limiter = RateLimiter(settings.rate_limit_per_minute, settings.rate_limit_burst)
    store = UploadStore(settings, qa.embedder) if mount_ui and ui is None else None

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:  # visitors' uploads do not outlive the server
            if store is not None:
                store.close()

    app = FastAPI(title="Ask the documents API", docs_url="/api/docs", redoc_url=None,
                  lifespan=lifespan,
                  openapi_url="/api/openapi.json",
                  description="Questions answered from the indexed documents, with citations.")
    app.state.uploads = store  # the chat app's visitors' uploads (None without it)
    app.state.api = ApiState(qa, models, settings,
                             GenerationSlots(settings.max_concurrent_generations), limiter,
                             keys)
    app.add_middleware(ApiGuard, settings=settings, limiter=limiter, keys=keys)
    app.exception_handler(QAError)(_user_error)
    app.exception_handler(StarletteHTTPException)(_http_error)
    app.exception_handler(RequestValidationError)(_invalid)
    app.exception_handler(Exception)(_bug)
    app.include_router(router)
    app.include_router(openai_router)  # /v1/: our answers for OpenAI clients
    app.state.uploaded_pdfs = UploadedPdfs()
    app.include_router(pdf_router)
    if mount_ui:
        import gradio as gr

        from qa.serve.gradio_app import build_app

        blocks = ui if ui is not None else build_app(qa, models, note=note, store=store,
                                                     pdfs=app.state.uploaded_pdfs)
        gr.mount_gradio_app(app, blocks, path="/", ssr_mode=False,
                            auth=ui_password(environ))
    return app


async def _user_error(request: Request, exc: QAError) -> JSONResponse:
    return JSONResponse(error_body(request.url.path, str(exc), exc.http_status), exc.http_status,
                        headers=getattr(exc, "headers", None))


async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    # FastAPI's own errors (a body nested too deeply to parse) in the API's error format.
    if not request.url.path.startswith(API_PREFIXES):
        return await http_exception_handler(request, exc)
    return JSONResponse(error_body(request.url.path, str(exc.detail), exc.status_code),
                        exc.status_code, headers=exc.headers)


async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = jsonable_encoder(exc.errors(), exclude={"input", "ctx", "url"})
    if any(e.get("type") == "json_invalid" for e in errors):
        return JSONResponse(error_body(request.url.path, "the request body is not valid JSON",
                                       400), 400)
    parts = [f"{'.'.join(str(p) for p in e['loc'] if p != 'body') or 'body'}: {e['msg']}"
             for e in errors]
    return JSONResponse({**error_body(request.url.path, "; ".join(parts), 422), "detail": errors},
                        422)


async def _bug(request: Request, exc: Exception) -> JSONResponse:
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return JSONResponse(error_body(request.url.path,
                                   "internal error (the server log has the details)", 500), 500)
