"""The `qa eval retrieval`, `qa eval squad` and `qa eval generate` subcommands (wired into
qa.cli)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from qa.config import BACKENDS, FUSION_METHODS, MODEL_NAMES, Settings
from qa.errors import UsageError
from qa.progress import Reporter

MODE_CHOICES = ("dense", "bm25", "hybrid", "all")


def add_eval_commands(eval_subparsers: Any) -> None:
    """Add `retrieval` and `squad` to the `qa eval` subcommand group."""
    retrieval = eval_subparsers.add_parser(
        "retrieval", help="score retrieval on a BEIR-format corpus (nDCG@10, R@10/100, MRR@10)")
    retrieval.add_argument("--beir", type=Path, required=True,
                           help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/)")
    retrieval.add_argument("--split", default="test", help="qrels split (default: test)")
    retrieval.add_argument("--mode", choices=MODE_CHOICES, default="all",
                           help="retrieval mode to score (default: all)")
    retrieval.add_argument("--fusion", choices=FUSION_METHODS,
                           help="hybrid fusion method (default: from settings)")
    retrieval.add_argument("--json", action="store_true", help="print JSON")

    squad = eval_subparsers.add_parser(
        "squad", help="answer a sample of SQuAD questions end-to-end and score them")
    squad.add_argument("--file", type=Path, required=True, help="SQuAD v1.1 or v2.0 JSON file")
    squad.add_argument("--limit", type=int, default=300, help="questions to sample (default 300)")
    squad.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    squad.add_argument("--model", choices=MODEL_NAMES)
    squad.add_argument("--backend", choices=BACKENDS)
    squad.add_argument("--json", action="store_true", help="print JSON")

    generate = eval_subparsers.add_parser(
        "generate", help="write a question file from an index's own documents")
    generate.add_argument("--index", type=Path, help="index folder (default: index/)")
    generate.add_argument("--out", type=Path, required=True, help="question file to write")
    generate.add_argument("--n", type=int, default=50, help="questions to write (default 50)")
    generate.add_argument("--unanswerable", type=float, default=0.2,
                          help="share of unanswerable questions (default 0.2)")
    generate.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    generate.add_argument("--model", choices=MODEL_NAMES)
    generate.add_argument("--backend", choices=BACKENDS)


def run_eval_command(args: argparse.Namespace, settings: Settings) -> int:
    """Run `qa eval retrieval` or `qa eval squad`; print text or JSON; return the exit status."""
    if getattr(args, "model", None):
        settings = replace(settings, model=args.model)
    if getattr(args, "fusion", None):
        settings = replace(settings, fusion=args.fusion)
    settings.validate()
    if args.eval_command == "retrieval":
        return _retrieval(args, settings)
    if args.eval_command == "squad":
        return _squad(args, settings)
    if args.eval_command == "generate":
        return _generate(args, settings)
    raise ValueError(f"unknown eval command {args.eval_command!r}")


def _reporter(quiet: bool) -> Reporter:
    from qa.progress import print_reporter, silent_reporter

    return silent_reporter if quiet or not sys.stderr.isatty() else print_reporter


def _retrieval(args: argparse.Namespace, settings: Settings) -> int:
    from qa.eval.beir import MODES, beir_documents, cached_index, evaluate_beir, load_beir
    from qa.index.embedding import Embedder

    report = _reporter(False)
    data = load_beir(args.beir, args.split)
    documents, _ = beir_documents(data.corpus)
    embedder = Embedder.from_settings(settings)
    started = time.perf_counter()
    index, built = cached_index(args.beir.resolve().name, documents, settings, embedder, report)
    build_s = time.perf_counter() - started
    modes = MODES if args.mode == "all" else (args.mode,)
    started = time.perf_counter()
    results = evaluate_beir(data, index, embedder, settings, modes, report=report)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    judged = sum(1 for q in data.qrels if q in data.queries and data.qrels[q])
    print(f"{args.beir} ({args.split}): {len(documents)} documents, "
          f"{len(index.chunks)} chunks, {judged} judged queries")
    print(f"index {'built' if built else 'loaded from cache'} in {build_s:.1f} s: {index.path}")
    print(f"fusion {settings.fusion} (rrf_k {settings.rrf_k}, dense_weight "
          f"{settings.dense_weight}); scored in {time.perf_counter() - started:.1f} s")
    print(f"\n{'mode':<8}" + "".join(f"{m:>12}" for m in next(iter(results.values()))))
    for mode, scores in results.items():
        print(f"{mode:<8}" + "".join(f"{v:>12.4f}" for v in scores.values()))
    return 0


def _squad(args: argparse.Namespace, settings: Settings) -> int:
    from qa.answer.pipeline import QA
    from qa.eval.beir import cached_index
    from qa.eval.squad import evaluate_squad, load_squad, sample_questions
    from qa.index.embedding import Embedder

    if args.limit is not None and args.limit <= 0:
        raise UsageError("--limit must be positive")
    report = _reporter(False)
    data = load_squad(args.file)
    embedder = Embedder.from_settings(settings)
    index, _ = cached_index(f"squad-{args.file.stem}", data.documents, settings, embedder, report)
    qa = QA(settings, index, embedder, report=report)
    questions = sample_questions(data.questions, args.limit, args.seed)
    result = evaluate_squad(qa, data, questions, report)
    result.update({"file": str(args.file), "seed": args.seed, "cores": os.cpu_count()})
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
        return 0
    for row in result["rows"]:
        mark = "REF" if row["refused"] else ("ok " if row["em"] else f"{row['f1']:.2f}")
        print(f"{mark:>4} {row['latency_ms']:7.0f} ms  {row['question'][:50]:<50}  "
              f"{row['prediction'][:60]}")
    print(f"\n{args.file}: {result['questions']} of {len(data.questions)} questions "
          f"(seed {args.seed}), {result['paragraphs']} paragraphs, model {result['model']}, "
          f"{result['cores']} cores")
    for key, value in result.items():
        if key not in ("rows", "file", "seed", "cores", "model", "questions", "paragraphs"):
            print(f"{key:>22}: {value}")
    return 0


def _generate(args: argparse.Namespace, settings: Settings) -> int:
    from qa.eval.generate import generate_questions
    from qa.generate.registry import load_generator
    from qa.index.embedding import Embedder
    from qa.index.store import load_index
    from qa.progress import print_reporter

    if args.n <= 0:
        raise UsageError("--n must be positive")
    if not 0 <= args.unanswerable <= 1:
        raise UsageError("--unanswerable must be between 0 and 1")
    folder = args.index or settings.index_dir
    index = load_index(folder)
    embedder = Embedder.from_settings(settings)
    generator = load_generator(settings.model, settings.cache_dir, settings.threads,
                               print_reporter, settings.backend)
    made = generate_questions(index, generator, embedder, settings, args.n, args.unanswerable,
                              args.seed, print_reporter)
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with open(args.out, "w", encoding="utf-8") as fh:
            for row in made.rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    except OSError as exc:
        raise UsageError(f"cannot write {args.out}: {exc.strerror or exc}") from None
    dropped = ", ".join(f"{count} {why}" for why, count in made.dropped.most_common())
    print(f"wrote {made.answerable} answerable and {len(made.rows) - made.answerable} "
          f"unanswerable questions to {args.out} (model {generator.name}"
          f"{'; dropped: ' + dropped if dropped else ''})")
    print(f"run: qa eval qa --questions {args.out} --index {folder}")
    return 0
