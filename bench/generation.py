"""Generator speed on a fixed ~600-token RAG prompt, next to the memory-bandwidth bound,
and peak RSS of the whole app (index + embedder + generator + Gradio app) after one answer.

Run: python bench/generation.py [--backend llama.cpp] [--model qwen2.5-coder-1.5b] [--runs 3]
"""

from __future__ import annotations

import argparse
import sys
import time

from common import ROOT, pct, peak_rss_mib, print_facts

from qa import compute
from qa.answer.pipeline import QA
from qa.answer.prompting import answer_messages, answer_prefix
from qa.config import LOCAL_BACKENDS, MODEL_NAMES, Settings

QUESTION = "What was agreed at the special event on countering terrorism?"


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
    parser.add_argument("--backend", choices=LOCAL_BACKENDS, default=Settings().backend)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=64)
    args = parser.parse_args()
    print_facts(f"generation ({args.backend}, {args.model})")
    settings = Settings.from_env(model=args.model, backend=args.backend)
    bandwidth, copy = compute.run(bandwidth_gbs, settings.threads)  # torch: compute thread
    qa = QA.from_settings(settings)
    started = time.perf_counter()
    gen = qa.generator  # loads the model and evaluates the fixed prompt prefix
    print(f"{'load':>12}: {time.perf_counter() - started:.1f} s including the prefix "
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
        gen.keep_prefix(answer_prefix())  # only the fixed prefix cached, not the last prompt
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
    print(f"{'answer':>12}: first token {answer.timings.get('first_token_ms', 0):.0f} ms, "
          f"total {answer.timings.get('total_ms', 0):.0f} ms, refused {answer.refused}")
    print(f"{'peak RSS':>12}: {peak_rss_mib():.0f} MiB (index, embedder, generator, Gradio app)")


if __name__ == "__main__":
    main()
