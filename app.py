"""Launches the packaged app (chat UI, HTTP API and widget) as a Hugging Face Space runs it:
on GRADIO_SERVER_NAME:GRADIO_SERVER_PORT, default 0.0.0.0:7860."""

import sys

from qa.serve.server import main

if __name__ == "__main__":
    sys.exit(main())
