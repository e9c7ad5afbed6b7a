"""Issue 6's steps one at a time on the dev set: prefix cache, weights, windows, top-k.

Each step adds one change to the one before and reports accuracy and latency, so the effect of
every step on time to first token and on accuracy shows.

Run: python bench/speed_steps.py [--questions ../shared/eval/seed_dev.jsonl] [--json]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from common import ROOT, print_facts

from qa.answer.pipeline import QA
from qa.answer.prompting import answer_prefix
from qa.config import Settings
from qa.eval.qa_eval import evaluate, read_questions
from qa.generate.base import Generator, ReplyStream
from qa.generate.registry import load_generator
from qa.index.embedding import Embedder
from qa.index.store import load_index
from qa.types import Message

# (label, backend, cache the fixed prefix, sentences per passage (0: whole chunk), top_k)
STEPS = (
    ("transformers bf16, whole prompt", "transformers", False, 0, 4),
    ("+ prefix cache", "transformers", True, 0, 4),
    ("+ int8 weights", "transformers-int8", True, 0, 4),
    ("+ 2-sentence windows", "transformers-int8", True, 2, 4),
    ("+ top 3 passages", "transformers-int8", True, 2, 3),
    ("llama.cpp Q4_K_M, whole prompt", "llama.cpp", False, 0, 4),
    ("+ prefix cache", "llama.cpp", True, 0, 4),
    ("+ 2-sentence windows, top 3", "llama.cpp", True, 2, 3),
)


class Counted:
    """A generator that records prompt sizes and can forget its cache before every prompt."""

    def __init__(self, generator: Generator, cold: bool) -> None:
        self.generator = generator
        self.name, self.backend = generator.name, generator.backend
        self.scores_alternatives = generator.scores_alternatives
        self.cold = cold
        self.prompt_sizes: list[int] = []

    def keep_prefix(self, messages: list[Message]) -> None:
        self.generator.keep_prefix([] if self.cold else messages)

    def stream(self, messages: list[Message], max_new_tokens: int,
               alternative: str | None = None) -> ReplyStream:
        if self.cold:
            self.generator.keep_prefix([])
        self.prompt_sizes.append(len(self.generator.prompt_tokens(messages)))
        return self.generator.stream(messages, max_new_tokens, alternative)

    def prompt_tokens(self, messages: list[Message], generation_prompt: bool = True) -> list[int]:
        return self.generator.prompt_tokens(messages, generation_prompt)

    def count_tokens(self, text: str) -> int:
        return self.generator.count_tokens(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--questions", type=Path,
                        default=ROOT.parent / "shared" / "eval" / "seed_dev.jsonl")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    print_facts("speed steps on the dev set")
    base = Settings.from_env()
    rows = read_questions(args.questions)
    index, embedder = load_index(base.index_dir), Embedder.from_settings(base)
    loaded: dict[str, Generator] = {}
    results = []
    print(f"{'step':<34} {'answer':>6} {'refuse':>6} {'cite':>5} {'prompt':>6} "
          f"{'TTFT p50':>8} {'p95':>6} {'total p50':>9} {'p95':>6}")
    for label, backend, cached, window, top_k in STEPS:
        if backend not in loaded:
            loaded.clear()  # one model in memory at a time
            loaded[backend] = load_generator(base.model, base.cache_dir, base.threads,
                                             backend=backend)
        generator = Counted(loaded[backend], cold=not cached)
        generator.keep_prefix(answer_prefix())
        settings = replace(base, backend=backend, window_sentences=window, top_k=top_k)
        report = evaluate(QA(settings, index, embedder, generator), rows)
        prompt = sum(generator.prompt_sizes) / max(1, len(generator.prompt_sizes))
        results.append({"step": label, "backend": backend, "prefix_cache": cached,
                        "window_sentences": window, "top_k": top_k,
                        "mean_prompt_tokens": round(prompt),
                        **{k: v for k, v in report.items() if k != "rows"}})
        r = results[-1]
        print(f"{label:<34} {r['answer_accuracy']:>6.0%} {r['refusal_accuracy']:>6.0%} "
              f"{r['citation_accuracy']:>5.0%} {prompt:>6.0f} {r['p50_first_token_ms']:>8.0f} "
              f"{r['p95_first_token_ms']:>6.0f} {r['p50_total_ms']:>9.0f} "
              f"{r['p95_total_ms']:>6.0f}", flush=True)
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
