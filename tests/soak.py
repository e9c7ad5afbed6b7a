"""A soak of the real app (issue 20, point 5), shared by tests/test_soak.py and
bench/soak_real.py: `python app.py` with the default model in a child process, clients mixing
questions, streamed questions, searches and small uploads, and the server's memory, open files
and threads sampled every minute.

The run: the server starts and reports ready on /api/health; the clients run for `warmup`
seconds; they stop, close their connections, and the server's open files and threads are
counted (the start); they run until `seconds` have passed in all, sampling the server's memory
every `sample_s`; they stop again and the count is taken again (the end). RSS drift is the end's
RSS against the start's (both at rest), and under load the last minute's sample against the
first after the warm-up."""

from __future__ import annotations

import html
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.loadgen import Outcome, latency_ms, loopback_client, send, statuses

ROOT = Path(__file__).resolve().parent.parent
QUESTION_FILES = sorted((ROOT / "bench" / "questions").glob("*.jsonl"))
UPLOAD_FILES = sorted((ROOT / "bench" / "followup_docs").glob("*.txt"))
CYCLE = ("/api/ask", "/api/search", "/api/ask/stream", "/api/search", "upload")
UPLOAD = "upload"  # the chat app's upload (Gradio's /upload endpoint), not an /api/ route
ANSWER_TIMEOUT_S = 600.0  # a reply not in by then counts as no reply (status 0)
SETTLE_S = 30.0  # how long the end count waits for connections and workers to wind down
THINK_S = 5.0  # a visitor's pause after each reply: the default rate limit is 12 a minute
# anyio keeps an idle worker thread until a later call finds it idle this long (its
# WorkerThread.MAX_IDLE_TIME, 10 s, plus a margin): the pool holds its peak until then.
POOL_IDLE_S = 12.0


def questions() -> list[str]:
    """Every question of bench/questions/*.jsonl (field `q`, or `text`), in file order."""
    found = []
    for path in QUESTION_FILES:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                found.append(str(row.get("q") or row["text"]))
    return found


@dataclass(frozen=True)
class Probe:
    """The server process at one moment: memory (MiB), open files, threads."""

    at_s: float  # seconds since the clients first started
    rss_mib: float
    hwm_mib: float  # peak RSS so far (VmHWM)
    fds: int
    threads: int


def probe(pid: int, since: float) -> Probe:
    """The process's VmRSS, VmHWM, entries of /proc/PID/fd and Threads, from /proc."""
    fields = dict(line.split(":", 1) for line in
                  Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    kib = {key: int(fields[key].split()[0]) for key in ("VmRSS", "VmHWM")}
    return Probe(round(time.monotonic() - since, 1), round(kib["VmRSS"] / 1024, 1),
                 round(kib["VmHWM"] / 1024, 1), len(os.listdir(f"/proc/{pid}/fd")),
                 int(fields["Threads"]))


class AppServer:
    """`python app.py` on a free loopback port, with the environment's settings (plus `env`);
    `url` once /api/health says the model is ready. Its log goes to `log`."""

    def __init__(self, env: dict[str, str] | None = None, ready_timeout: float = 1200.0) -> None:
        from tests.test_app import free_port

        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.log = Path(tempfile.mkstemp(prefix="qa-soak-", suffix=".log")[1])
        environ = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_SERVER_NAME": "127.0.0.1",
                   "GRADIO_SERVER_PORT": str(port), "PYTHONPATH": str(ROOT), **(env or {})}
        with self.log.open("wb") as out:
            self.process = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=environ,
                                            stdout=out, stderr=subprocess.STDOUT)
        self.health = self._wait(ready_timeout)

    def _wait(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the app did not get ready; its log:\n{self.tail()}")
            try:
                health = httpx.get(f"{self.url}/api/health", timeout=10).json()
                if health.get("status") == "ok":
                    return dict(health)
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(1.0)

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def stop(self) -> int:
        """Stop the server (SIGTERM, as a Space's container gets) and return its exit status."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait(30)


@dataclass
class Visitor:
    """One client: its own loopback address (own rate-limit bucket), its own chat session for
    uploads, and its own seeded order of questions."""

    n: int
    url: str
    questions: list[str]
    outcomes: list[Outcome] = field(default_factory=list)

    def __post_init__(self) -> None:
        from gradio_client import Client

        self.rng = random.Random(self.n)
        self.http = loopback_client(self.url, self.n)
        self.chat = Client(f"{self.url}/", verbose=False)
        self.step = self.n  # clients start at different points of the cycle

    def one(self, think: float) -> None:
        """The next request of the cycle, then a pause of `think` seconds (twice after a
        429)."""
        path = CYCLE[self.step % len(CYCLE)]
        self.step += 1
        if path == UPLOAD:
            outcome = self.upload()
        else:
            question = self.rng.choice(self.questions)
            body = {"query": question} if path == "/api/search" else {"question": question}
            outcome = send(self.http, path, body, ANSWER_TIMEOUT_S)
        self.outcomes.append(outcome)
        time.sleep(think * (2 if outcome.status == 429 else 1))

    def upload(self) -> Outcome:
        """One small file through the chat app's upload, as a browser sends it; 200 when the
        handler answered (its note is the text), 500 when it raised."""
        from gradio_client import handle_file

        path = UPLOAD_FILES[self.step % len(UPLOAD_FILES)]
        started = time.perf_counter()
        try:
            note, *_ = self.chat.predict([handle_file(path)], api_name="/upload")
            status, text = 200, html.unescape(str(note))
        except Exception as exc:  # noqa: BLE001 - gradio_client's errors are recorded as such
            status, text = 500, f"{type(exc).__name__}: {exc}"
        return Outcome(UPLOAD, status, time.perf_counter() - started, text)

    def idle(self) -> None:
        """Close this client's connections to the API (a fresh client is made for more)."""
        self.http.close()
        self.http = loopback_client(self.url, self.n)

    def close(self) -> None:
        self.http.close()
        self.chat.close()


def _run(visitors: list[Visitor], seconds: float, think: float, on_minute: Any,
         sample_s: float) -> None:
    """Every visitor sends requests until `seconds` pass (and finishes the one under way);
    on_minute() is called every sample_s meanwhile."""
    deadline = time.monotonic() + seconds
    errors: list[BaseException] = []

    def loop(visitor: Visitor) -> None:
        try:
            while time.monotonic() < deadline:
                visitor.one(think)
        except BaseException as exc:  # noqa: BLE001 - a bug of the driver: raised after the join
            errors.append(exc)
        finally:
            visitor.idle()

    threads = [threading.Thread(target=loop, args=(v,), daemon=True) for v in visitors]
    for thread in threads:
        thread.start()
    next_sample = time.monotonic() + sample_s
    while any(thread.is_alive() for thread in threads):
        if time.monotonic() >= next_sample and time.monotonic() < deadline:
            on_minute()
            next_sample += sample_s
        for thread in threads:
            thread.join(0.2)
    if errors:
        raise errors[0]


def _at_rest(url: str, pid: int, since: float, n: int) -> Probe:
    """The count at rest: after POOL_IDLE_S without requests, one search from client n (its
    worker thread is taken from anyio's pool, which lets go of the workers idle since the
    load), and a second for connections and pruned workers to close."""
    time.sleep(POOL_IDLE_S)
    with loopback_client(url, n) as client:
        outcome = send(client, "/api/search", {"query": "at rest"})
    if outcome.status != 200:
        raise RuntimeError(f"the search at rest failed: {outcome}")
    time.sleep(2.0)
    return probe(pid, since)


def _settled(url: str, pid: int, since: float, start: Probe, n: int) -> Probe:
    """The count at rest once open files and threads are back to start's, or after
    SETTLE_S."""
    deadline = time.monotonic() + SETTLE_S
    now = _at_rest(url, pid, since, n)
    while (now.fds > start.fds or now.threads > start.threads) and time.monotonic() < deadline:
        time.sleep(1.0)
        now = probe(pid, since)
    return now


def soak(clients: int, seconds: float, warmup: float, sample_s: float = 60.0,
         think: float = THINK_S, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Start the app, run `clients` visitors for `seconds` (the first `warmup` of them warm
    up; each pausing `think` seconds after a reply), stop it; the figures as a JSON-ready dict
    (see report())."""
    # One generation slot per client: every question is taken and waits its turn for the one
    # compute thread, rather than being turned away with 503 "busy".
    server = AppServer({"QA_MAX_CONCURRENT_GENERATIONS": str(clients), **(env or {})})
    pid, visitors = server.process.pid, list[Visitor]()
    try:
        asked = questions()
        since = time.monotonic()
        ready = probe(pid, since)
        visitors += [Visitor(n, server.url, asked) for n in range(clients)]
        samples: list[dict[str, Any]] = [{"phase": "ready", **asdict(ready)}]

        def sample(phase: str) -> None:
            samples.append({"phase": phase, **asdict(probe(pid, since))})

        _run(visitors, warmup, think, lambda: sample("warm-up"), sample_s)
        start = _at_rest(server.url, pid, since, clients)
        samples.append({"phase": "start", **asdict(start)})
        _run(visitors, seconds - warmup, think, lambda: sample("soak"), sample_s)
        end = _settled(server.url, pid, since, start, clients)
        samples.append({"phase": "end", **asdict(end)})
    finally:
        for visitor in visitors:
            visitor.close()  # its chat session's heartbeat stream would hold the shutdown
        status = server.stop()
    outcomes = [o for visitor in visitors for o in visitor.outcomes]
    clean = status in (0, -signal.SIGTERM) and "Application shutdown complete" in server.tail()
    return report(outcomes, samples, start, end, server.health, clean,
                  {"clients": clients, "seconds": seconds, "warmup_s": warmup, "think_s": think})


def report(outcomes: list[Outcome], samples: list[dict[str, Any]], start: Probe, end: Probe,
           health: dict[str, Any], clean_stop: bool, run: dict[str, Any]) -> dict[str, Any]:
    """requests, statuses and p50/p95 per route, the memory samples, the drift after the
    warm-up, open files and threads at the start and the end, and which checks failed."""
    routes = {}
    for path in dict.fromkeys(CYCLE):
        mine = [o for o in outcomes if o.path == path]
        routes[path] = {"requests": len(mine), "statuses": statuses(mine),
                        "p50_ms": round(latency_ms(mine, 50), 1) if mine else None,
                        "p95_ms": round(latency_ms(mine, 95), 1) if mine else None}
    # Drift: at rest (no request under way) at the end against at rest after the warm-up;
    # busy: the last minute's sample against the first after the warm-up (both under load).
    drift = (end.rss_mib - start.rss_mib) / start.rss_mib
    busy = [s["rss_mib"] for s in samples if s["phase"] == "soak"]
    busy_drift = (busy[-1] - busy[0]) / busy[0] if len(busy) > 1 else 0.0
    failed = sorted({o.status for o in outcomes if o.status >= 500 or o.status == 0})
    problems = ([f"statuses {failed}"] if failed else []) + (
        [f"RSS drift {drift:+.1%}"] if abs(drift) >= 0.05 else []) + (
        [f"RSS drift under load {busy_drift:+.1%}"] if abs(busy_drift) >= 0.05 else []) + (
        [f"open files {start.fds} -> {end.fds}"] if end.fds > start.fds else []) + (
        [f"threads {start.threads} -> {end.threads}"] if end.threads > start.threads else []) + (
        [] if clean_stop else ["the server did not shut down cleanly"])
    return {"run": run, "model": health.get("model"), "generator": health.get("generator"),
            "build_id": health.get("index", {}).get("build_id"),
            "requests": len(outcomes), "statuses": statuses(outcomes), "routes": routes,
            "samples": samples, "rss_drift_after_warmup": round(drift, 4),
            "rss_drift_under_load": round(busy_drift, 4),
            "peak_rss_mib": max(s["hwm_mib"] for s in samples),
            "fds": [start.fds, end.fds], "threads": [start.threads, end.threads],
            "clean_stop": clean_stop, "problems": problems,
            "outcomes": [asdict(o) for o in outcomes]}
