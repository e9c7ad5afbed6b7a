"""`serve(host, port)`: the whole app with uvicorn, a start-up page up at once; `main()` runs it
as `python app.py` (and a Space) does."""

from __future__ import annotations

import logging
import os
import sys

from fastapi import FastAPI

from qa.answer.pipeline import QA
from qa.config import Settings
from qa.errors import QAError, SettingsError
from qa.generate.base import Generator
from qa.generate.registry import check_model
from qa.index.embedding import Embedder
from qa.serve.api import create_api
from qa.serve.keys import ApiKeys
from qa.serve.replica import IndexWatcher
from qa.serve.starting import StartingApp
from qa.serve.state import LoadProgress, Models, open_index

log = logging.getLogger("qa.serve")


def serve(host: str, port: int, settings: Settings | None = None,
          generator: Generator | None = None) -> None:
    """Serve everything with uvicorn: a start-up page at once, then the app, once the index is
    opened (or rebuilt) and the app built; the model loads in the background after that.

    An exception of start-up (a corpus with nothing to index, say) stops the server and is
    raised here. settings: default Settings.from_env(); generator: default, the settings'
    model. New builds written to the index folder by another process are swapped in (every
    settings.index_poll_seconds; qa.serve.replica)."""
    import uvicorn

    logging.basicConfig(level=logging.INFO)
    settings = settings or Settings.from_env()  # invalid values stop here, before the port opens
    if generator is None:
        check_model(settings)  # and own model files that cannot run
    ApiKeys.from_env()  # and API keys too short to be keys
    progress = LoadProgress()

    def build() -> FastAPI:
        progress.text = "opening the index"
        embedder = Embedder.from_settings(settings)
        index, note = open_index(settings, embedder, progress)
        if note:
            log.warning(note)
        progress.text = "building the app"
        qa = QA(settings, index, embedder, generator, report=progress)
        models = Models(qa, progress)
        app = create_api(qa, models, settings, note=note)
        progress.text = ""
        models.load_in_background()
        if settings.index_poll_seconds > 0:
            IndexWatcher(qa, index.path, settings.index_poll_seconds).start()
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


def main(prog: str = "app.py") -> int:
    """Serve on GRADIO_SERVER_NAME:GRADIO_SERVER_PORT (default 0.0.0.0:7860), as a Space runs
    the app; an error meant for the user is one line on stderr and a non-zero exit status."""
    try:
        raw_port = os.environ.get("GRADIO_SERVER_PORT") or "7860"
        if not raw_port.isdigit() or not 0 < int(raw_port) < 65536:
            raise SettingsError(f"GRADIO_SERVER_PORT={raw_port!r} is not a port number")
        # All interfaces by default, as a Space's container needs.
        host = os.environ.get("GRADIO_SERVER_NAME") or "0.0.0.0"  # nosec B104
        serve(host, int(raw_port))
    except QAError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return exc.exit_status
    return 0
