"""Load on the HTTP API (issue 7, point 8): a server process with a fixed-latency generator
over the default index, driven over loopback by clients in this process.

Phases (--seconds each): retrieval only at 10 requests/s (POST /api/search); 20 clients below
capacity (a slot each); 20 clients against 2 slots and a per-client rate limit (overload:
429/503 within 1 s). --soak N adds N seconds below capacity, sampling the server's memory.

Run: python bench/load.py [--seconds 60] [--soak 600]   (or: make load)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import httpx
from common import ROOT, print_facts

sys.path.insert(0, str(ROOT))
from tests.loadgen import (  # after the path to the tests folder
    REJECTED,
    Outcome,
    clients,
    latency_ms,
    load_app,
    paced,
    rss_mib,
    statuses,
)

CLIENTS = 20


def serve(port: int, latency: float, slots: int, rate: float, burst: int) -> None:
    """The server process: the default index, the fixed-latency generator, the real API."""
    import uvicorn

    from qa.config import Settings
    from qa.index.embedding import Embedder
    from qa.serve.state import open_index

    settings = Settings.from_env()
    embedder = Embedder.from_settings(settings)
    index, _ = open_index(settings, embedder)
    config = Settings.from_env(rate_limit_per_minute=rate, rate_limit_burst=burst,
                               max_concurrent_generations=slots)
    uvicorn.run(load_app(index, embedder, latency, config), host="127.0.0.1", port=port,
                log_level="warning")


class Server:
    """A server process for one phase; `url` once it answers /api/health."""

    def __init__(self, latency: float, slots: int, rate: float, burst: int) -> None:
        from tests.test_app import free_port

        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen([sys.executable, __file__, "--serve", str(port),
                                         str(latency), str(slots), str(rate), str(burst)],
                                        cwd=ROOT)
        deadline = time.monotonic() + 300
        while True:
            assert self.process.poll() is None and time.monotonic() < deadline, "no server"
            try:
                if httpx.get(f"{self.url}/api/health", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        # Warm up: the embedder loads on the first query (a few seconds).
        httpx.post(f"{self.url}/api/search", json={"query": "warm up"}, timeout=120)

    def rss(self) -> float:
        return rss_mib(self.process.pid)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.wait(30)


def _row(name: str, outcomes: list[Outcome], wanted: tuple[int, ...] = (200,)) -> None:
    ok = [o for o in outcomes if o.status in wanted]
    figures = (f"p50 {latency_ms(ok, 50, wanted):6.0f} ms  "
               f"p95 {latency_ms(ok, 95, wanted):6.0f} ms  "
               f"max {max(o.seconds for o in ok) * 1000:6.0f} ms") if ok else "none"
    print(f"{name:>22}: {len(ok):5d} x {'/'.join(map(str, wanted))}  {figures}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each phase")
    parser.add_argument("--soak", type=float, default=0.0, help="memory soak length (s)")
    args = parser.parse_args()
    print_facts("API load (fixed-latency generator, loopback)")

    with Server(latency=0.0, slots=1, rate=6000, burst=1000) as server:
        outcomes = paced(server.url, 10.0, args.seconds, "/api/search")
        print(f"retrieval only, 10 requests/s for {args.seconds:g} s: {statuses(outcomes)}")
        _row("POST /api/search", outcomes)
        p95 = latency_ms(outcomes, 95)
        print(f"{'target':>22}: p95 under 300 ms: {'met' if p95 < 300 else 'MISSED'}")

    with Server(latency=0.5, slots=CLIENTS, rate=600, burst=50) as server:
        paths = ("/api/ask", "/api/ask/stream", "/api/search")
        outcomes = clients(server.url, CLIENTS, args.seconds, paths, think=0.5)
        print(f"below capacity: {CLIENTS} clients, {CLIENTS} slots, 0.5 s answers, 0.5 s "
              f"think time, {args.seconds:g} s: {statuses(outcomes)}")
        for path in paths:
            _row(path, [o for o in outcomes if o.path == path])
        print(f"{'server RSS':>22}: {server.rss():.0f} MiB")

    with Server(latency=1.0, slots=2, rate=30, burst=3) as server:
        outcomes = clients(server.url, CLIENTS, args.seconds, ("/api/ask", "/api/ask/stream"),
                           think=0.1)
        print(f"overload: {CLIENTS} clients, 2 slots, 1 s answers, 30/min burst 3 per client, "
              f"0.1 s think time, {args.seconds:g} s: {statuses(outcomes)}")
        _row("answered", outcomes)
        _row("refused", outcomes, REJECTED)
        hung = sum(o.status == 0 for o in outcomes)
        print(f"{'no answer (hang)':>22}: {hung}")

    if args.soak:
        with Server(latency=0.5, slots=CLIENTS, rate=600, burst=50) as server:
            clients(server.url, CLIENTS, 60, ("/api/ask", "/api/search"), think=0.5)  # warm-up
            samples, errors = [server.rss()], 0
            for _ in range(max(1, int(args.soak // 60))):
                outcomes = clients(server.url, CLIENTS, 60, ("/api/ask", "/api/search"),
                                   think=0.5)
                errors += sum(o.status != 200 for o in outcomes)
                samples.append(server.rss())
            drift = (samples[-1] - samples[0]) / samples[0]
            print(f"soak {args.soak:g} s after 60 s warm-up: server RSS per minute (MiB) "
                  f"{[round(s) for s in samples]}; drift {drift:+.1%} (target under 10%); "
                  f"errors {errors}")


if __name__ == "__main__":
    if len(sys.argv) == 7 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]),
              int(sys.argv[6]))
    else:
        main()
