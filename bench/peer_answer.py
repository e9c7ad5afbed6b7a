"""Ours vs LlamaIndex answering the dev questions one at a time, on the same GGUF file.

Needs the bench extra (pip install -e '.[bench]'; it builds llama-cpp-python like `make
setup-llama`). Run: python bench/peer_answer.py [--questions ../shared/eval/seed_dev.jsonl]

Theirs: what a user would pick instead, LlamaIndex's query engine (`as_query_engine`,
similarity_top_k 3, streaming) over our index's chunks (the same corpus and passages) embedded
by `HuggingFaceEmbedding` on the packaged MiniLM folder, answering with `LlamaCPP` on the GGUF
file our default engine loads (greedy, 160 new tokens, 2 threads, the model's ChatML turn
around LlamaIndex's prompt). Ours: `QA.stream` with the default settings, and with the top-3
passages instead of the whole corpus (QA_WHOLE_CORPUS_TOKENS=0). Each side runs in a child
process of its own, so that each peak RSS (VmHWM) is that side's alone; model loading is not
timed on either side.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess  # nosec B404: runs this script again, no shell
import sys
import time
from pathlib import Path
from typing import Any

from common import ROOT, pct, peak_rss_mib, print_facts

SIDES = {"ours": {}, "ours-top3": {"QA_WHOLE_CORPUS_TOKENS": "0"}, "llamaindex": {}}
MAX_NEW_TOKENS = 160


def questions(path: Path) -> list[str]:
    """The question of every line of a qa-eval JSONL file (follow-ups left out)."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return [row["q"] for row in rows if not row.get("history")]


def ours(asked: list[str]) -> list[tuple[float, float, str]]:
    """(first token s, whole answer s, text) for each question, through QA.stream."""
    from qa.answer.pipeline import QA
    from qa.config import Settings

    qa = QA.from_settings(Settings.from_env())
    qa.answer("warm-up: which organisation held the event?")  # loads the model and its prefix
    timed = []
    for question in asked:
        started = time.perf_counter()
        first = None
        text = ""
        for event in qa.stream(question):
            if event.kind == "token" and event.text and first is None:
                first = time.perf_counter()
            if event.kind == "done":
                text = event.answer.text
        end = time.perf_counter()
        timed.append(((first or end) - started, end - started, text))
    return timed


def llamaindex(asked: list[str]) -> list[tuple[float, float, str]]:
    """The same through LlamaIndex's query engine with LlamaCPP."""
    from llama_index.core import Settings as LISettings
    from llama_index.core import VectorStoreIndex
    from llama_index.core.schema import TextNode
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from llama_index.llms.llama_cpp import LlamaCPP

    from qa.config import Settings
    from qa.generate.models import GENERATORS, assemble_gguf
    from qa.index.embedding import embedder_path
    from qa.index.store import load_index

    settings = Settings.from_env()
    gguf = assemble_gguf(GENERATORS[settings.model], settings.cache_dir)
    LISettings.embed_model = HuggingFaceEmbedding(model_name=str(embedder_path()), device="cpu")
    LISettings.llm = LlamaCPP(
        model_path=str(gguf), temperature=0.0, max_new_tokens=MAX_NEW_TOKENS,
        context_window=4096, verbose=False,
        model_kwargs={"n_threads": settings.threads, "n_threads_batch": settings.threads},
        completion_to_prompt=lambda prompt: (f"<|im_start|>user\n{prompt}<|im_end|>\n"
                                             "<|im_start|>assistant\n"))
    index = load_index(settings.index_dir)
    engine = VectorStoreIndex([TextNode(text=c.text, id_=c.id) for c in index.chunks]
                              ).as_query_engine(similarity_top_k=3, streaming=True)
    str(engine.query("warm-up: which organisation held the event?").get_response())
    timed = []
    for question in asked:
        started = time.perf_counter()
        first = None
        text = ""
        for piece in engine.query(question).response_gen:
            if piece and first is None:
                first = time.perf_counter()
            text += piece
        end = time.perf_counter()
        timed.append(((first or end) - started, end - started, text.strip()))
    return timed


def side(name: str, path: Path) -> None:
    """One side, in this process: its figures as one JSON line on stdout."""
    asked = questions(path)
    timed = (llamaindex if name == "llamaindex" else ours)(asked)
    print(json.dumps({"side": name, "first": [t[0] for t in timed],
                      "whole": [t[1] for t in timed], "texts": [t[2] for t in timed],
                      "peak_mib": peak_rss_mib()}))


def run_side(name: str, path: Path) -> dict[str, Any]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **SIDES[name]}
    done = subprocess.run([sys.executable, __file__, "--side", name, "--questions", str(path)],  # nosec B603
                          env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"{name}: failed\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--questions", type=Path,
                        default=ROOT.parent / "shared" / "eval" / "seed_dev.jsonl")
    parser.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.questions.is_file():
        sys.exit(f"{args.questions}: no such questions file")
    if args.side:
        side(args.side, args.questions)
        return
    print_facts("answering: ours vs LlamaIndex + llama-cpp-python, same GGUF file")
    print(f"{'questions':>12}: {len(questions(args.questions))} from {args.questions.name}, "
          "one at a time")
    runs = {name: run_side(name, args.questions) for name in SIDES}
    theirs = runs["llamaindex"]
    print("\n| side | first token p50 / p95 | whole answer p50 / p95 | peak RSS |")
    print("|---|---|---|---|")
    for name, run in runs.items():
        print(f"| {name} | {pct(run['first'], 50):.2f} / {pct(run['first'], 95):.2f} s | "
              f"{pct(run['whole'], 50):.2f} / {pct(run['whole'], 95):.2f} s | "
              f"{run['peak_mib']:,.0f} MiB |")
    for name in ("ours", "ours-top3"):
        run = runs[name]
        print(f"{name} / llamaindex: first token p50 "
              f"{pct(run['first'], 50) / pct(theirs['first'], 50):.2f}, p95 "
              f"{pct(run['first'], 95) / pct(theirs['first'], 95):.2f}; whole answer p50 "
              f"{pct(run['whole'], 50) / pct(theirs['whole'], 50):.2f}, p95 "
              f"{pct(run['whole'], 95) / pct(theirs['whole'], 95):.2f} (goal <= 0.5)")


if __name__ == "__main__":
    main()
