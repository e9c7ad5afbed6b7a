"""The engines side by side (issue 16): for each local backend, load time, start to ready,
time to first token (whole prompt, fixed prefix cached), decode speed next to the
memory-bandwidth bound, peak RSS, and the dev-set accuracy.

Run: python bench/generation.py [--engines llama.cpp transformers-int8 transformers]
     python bench/generation.py --backend llama.cpp [--model M] [--runs 3]   # one engine

Per engine, three child processes: this script with --backend (speed on a fixed ~600-token
RAG prompt), `python app.py` (start until /api/health says ready, the dev questions over
/api/ask, then its VmHWM: the whole app's peak) and `qa eval qa` on the dev set (accuracy).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess  # nosec B404: runs this script, app.py and qa, no shell
import sys
import time
from pathlib import Path
from typing import Any

from common import ROOT, pct, peak_rss_mib, print_facts

from qa import compute
from qa.answer.pipeline import QA
from qa.answer.prompting import answer_messages, answer_prefix
from qa.config import LOCAL_BACKENDS, MODEL_NAMES, Settings

QUESTION = "What was agreed at the special event on countering terrorism?"
DEV = ROOT.parent / "shared" / "eval" / "seed_dev.jsonl"


def bandwidth_gbs(threads: int, gib: float = 1.0, repeats: int = 5) -> tuple[float, float]:
    """Best observed (read, copy) memory bandwidth in GB/s; copy counts read + write bytes."""
    import torch

    torch.set_num_threads(threads)
    src = torch.ones(int(gib * 2**30) // 4, dtype=torch.float32)
    dst = torch.empty_like(src)
    read = copy = 0.0
    nbytes = src.numel() * 4
    for _ in range(repeats):
        started = time.perf_counter()
        src.sum()  # reads every byte once, like decoding reads every weight once
        read = max(read, nbytes / (time.perf_counter() - started) / 1e9)
        started = time.perf_counter()
        dst.copy_(src)
        copy = max(copy, 2 * nbytes / (time.perf_counter() - started) / 1e9)
    return read, copy


def _run(gen, messages: list, new_tokens: int) -> tuple[float, float, int]:
    """(time to first token in ms, decode tokens/s, tokens) of one greedy generation.

    From the first piece on, the generator runs one model step per generated token (the last
    one finds the end of the reply), so decode speed is tokens / (end - first piece). Counting
    tokens - 1 there understated it by a tenth on this prompt's 11-token answer."""
    started = time.perf_counter()
    first = None
    text = ""
    for piece in gen.stream(messages, new_tokens):
        first = first or time.perf_counter()
        text += piece
    end = time.perf_counter()
    new = gen.count_tokens(text)
    return (first - started) * 1000, new / (end - first) if new and end > first else 0.0, new


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", choices=MODEL_NAMES, default=Settings().model)
    parser.add_argument("--backend", choices=LOCAL_BACKENDS, help="one engine, in this process")
    parser.add_argument("--engines", nargs="+", choices=LOCAL_BACKENDS,
                        help="the table's engines (default: every installed one)")
    parser.add_argument("--questions", type=Path, default=DEV)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.backend:
        one_engine(args)
    else:
        table(args)


def table(args: argparse.Namespace) -> None:
    """Every engine in child processes, one table."""
    import importlib.util

    if not args.questions.is_file():
        sys.exit(f"{args.questions}: no such questions file (the dev set: {DEV})")
    engines = args.engines or [e for e in LOCAL_BACKENDS if e != "llama.cpp"
                               or importlib.util.find_spec("llama_cpp") is not None]
    print_facts(f"generation engines ({args.model}): {', '.join(engines)}")
    rows = []
    for engine in engines:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "QA_BACKEND": engine, "QA_MODEL": args.model}
        speed = _child([sys.executable, __file__, "--backend", engine, "--model", args.model,
                        "--runs", str(args.runs), "--new-tokens", str(args.new_tokens),
                        "--json"], env)
        app = app_run(env, args.questions)
        evaluated = _child([sys.executable, "-m", "qa", "eval", "qa", "--questions",
                            str(args.questions), "--json"], env)
        rows.append((engine, speed, app, evaluated))
        print(f"{engine:>12}: done", flush=True)
    print("\n| engine | load | start to ready | TTFT whole prompt / prefix cached | decode "
          "(% of bound, paired) | whole-app peak RSS (dev set) | dev answer / refusal / "
          "citation | dev first token / whole answer p50 |")
    print("|---|---|---|---|---|---|---|---|")
    for engine, speed, app, ev in rows:
        print(f"| {engine} | {speed['load_s']:.1f} s | {app['ready_s']:.1f} s | "
              f"{speed['ttft_cold_ms'] / 1000:.2f} / {speed['ttft_cached_ms'] / 1000:.2f} s | "
              f"{speed['decode']:.1f} tokens/s ({speed['of_bound']:.0%}, "
              f"{speed['paired']:.0%}) | {app['peak_mib']:,.0f} MiB | "
              f"{ev['answer_accuracy']:.1%} / {ev['refusal_accuracy']:.0%} / "
              f"{ev['citation_accuracy']:.0%} | {ev['p50_first_token_ms'] / 1000:.2f} / "
              f"{ev['p50_total_ms'] / 1000:.2f} s |")


def _child(command: list[str], env: dict[str, str]) -> dict[str, Any]:
    """The JSON that a child process prints last (exit on its failure, with its log's end)."""
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,  # nosec B603
                          check=False)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command[:4])}: failed\n{done.stderr[-3000:]}")
    out = done.stdout.strip()
    start = out.rfind("\n{") + 1 if not out.startswith("{") else 0
    return dict(json.loads(out[start:]))


def app_run(env: dict[str, str], path: Path) -> dict[str, float]:
    """`python app.py`: seconds until /api/health says ready, then every question of path
    asked over /api/ask, then the process's peak RSS (VmHWM, MiB)."""
    import httpx

    sys.path.insert(0, str(ROOT))
    from tests.soak import AppServer, probe  # after the path to the tests folder

    started = time.monotonic()
    # One client asking one question after another: not the abuse the rate limit is for.
    server = AppServer(env={**env, "QA_RATE_LIMIT_PER_MINUTE": "600", "QA_RATE_LIMIT_BURST": "100"})
    ready = time.monotonic() - started
    try:
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line) if line.strip() else {}
            if row and not row.get("history"):
                httpx.post(f"{server.url}/api/ask", json={"question": row["q"]},
                           timeout=600).raise_for_status()
        peak = probe(server.process.pid, started).hwm_mib
    finally:
        server.stop()
    return {"ready_s": ready, "peak_mib": peak}


def one_engine(args: argparse.Namespace) -> None:
    """The speed figures of one engine, in this process."""
    print_facts(f"generation ({args.backend}, {args.model})")
    settings = Settings.from_env(model=args.model, backend=args.backend)
    bandwidth, copy = compute.run(bandwidth_gbs, settings.threads)  # torch: compute thread
    qa = QA.from_settings(settings)
    started = time.perf_counter()
    gen = qa.generator  # loads the model and evaluates the fixed prompt prefix
    load_s = time.perf_counter() - started
    print(f"{'load':>12}: {load_s:.1f} s including the prefix "
          f"({len(gen.prompt_tokens(answer_prefix(), False))} tokens)")
    # A fixed prompt: the question and enough top passages of the default index for ~600 tokens.
    hits = qa.retriever.search(QUESTION, 8)
    for k in range(1, len(hits) + 1):
        messages = answer_messages(QUESTION, hits[:k])
        prompt_tokens = len(gen.prompt_tokens(messages))
        if prompt_tokens >= 600:
            break
    cold = []
    for _ in range(args.runs):
        gen.keep_prefix([])  # cold: nothing cached, not even the previous run's prompt
        cold.append(_run(gen, messages, args.new_tokens))
    warm = []
    for _ in range(args.runs):
        gen.keep_prefix([])  # only the fixed prefix cached, not the last prompt (llama.cpp's
        gen.keep_prefix(answer_prefix())  # context would still hold it)
        warm.append(_run(gen, messages, args.new_tokens))
    speed = [s for _, s, _ in cold + warm]
    weight_bytes = gen.weight_bytes()
    bound = bandwidth / (weight_bytes / 1e9)
    # This VM's bandwidth drifts with its neighbours (42-74 GB/s within an hour), so each
    # decode is also paired with a bandwidth reading taken right after it.
    ratios = []
    for _ in range(args.runs):
        _, tokens_per_s, _ = _run(gen, messages, args.new_tokens)
        read = compute.run(bandwidth_gbs, settings.threads)[0]
        ratios.append(tokens_per_s / (read / (weight_bytes / 1e9)))
    print(f"{'prompt':>12}: {prompt_tokens} tokens ({k} passages), up to {args.new_tokens} "
          f"new ({warm[-1][2]} in the answer), greedy, {settings.threads} threads, "
          f"{args.runs} runs each")
    print(f"{'TTFT cold':>12}: p50 {pct([t for t, _, _ in cold], 50):.0f} ms (whole prompt)")
    print(f"{'TTFT cached':>12}: p50 {pct([t for t, _, _ in warm], 50):.0f} ms (fixed prefix "
          "cached, as the app runs)")
    print(f"{'decode':>12}: p50 {pct(speed, 50):.2f} tokens/s")
    print(f"{'weights':>12}: {weight_bytes / 1e9:.2f} GB read per token ({args.backend})")
    print(f"{'bandwidth':>12}: read {bandwidth:.1f} GB/s, copy {copy:.1f} GB/s "
          f"({settings.threads} threads) -> bound {bound:.1f} tokens/s; measured is "
          f"{pct(speed, 50) / bound:.0%} of it")
    print(f"{'paired':>12}: each decode / the bound measured right after it: p50 "
          f"{pct(ratios, 50):.0%}, range {min(ratios):.0%}-{max(ratios):.0%} ({args.runs} runs)")
    answer = qa.answer(QUESTION)
    sys.path.insert(0, str(ROOT))
    from qa.serve.gradio_app import build_app

    build_app(qa)
    print(f"{'1st answer':>12}: first token {answer.timings.get('first_token_ms', 0):.0f} ms, "
          f"total {answer.timings.get('total_ms', 0):.0f} ms, refused {answer.refused}")
    print(f"{'peak RSS':>12}: {peak_rss_mib():.0f} MiB (index, embedder, generator, Gradio app; "
          "and torch, for the bandwidth reading)")
    if args.json:
        print(json.dumps({"load_s": load_s, "ttft_cold_ms": pct([t for t, _, _ in cold], 50),
                          "ttft_cached_ms": pct([t for t, _, _ in warm], 50),
                          "decode": pct(speed, 50), "of_bound": pct(speed, 50) / bound,
                          "paired": pct(ratios, 50), "peak_mib": peak_rss_mib()}))


if __name__ == "__main__":
    main()
