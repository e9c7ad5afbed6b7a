"""`python -m tests.replica_server PORT`: the real app (qa.serve.server.serve, its index
watcher included) on 127.0.0.1:PORT with a scripted generator instead of a model; settings
from QA_* variables. For the tests that run several app processes over one index folder."""

from __future__ import annotations

import sys

from qa.config import Settings
from qa.serve.server import serve
from tests.fakes import ScriptedGenerator

REPLY = "The passages say so [1]."

if __name__ == "__main__":
    serve("127.0.0.1", int(sys.argv[1]), Settings.from_env(), ScriptedGenerator(REPLY))
