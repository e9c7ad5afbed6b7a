"""The `qa` command: index, ask, eval."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from qa.answer.citations import strip_markers
from qa.config import BACKENDS, MODEL_NAMES, Settings
from qa.errors import QAError, QuestionError, UsageError
from qa.eval.commands import add_eval_commands, run_eval_command
from qa.types import Answer, Message

if TYPE_CHECKING:
    from qa.answer.pipeline import QA


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see: {self.prog} --help)")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="qa", description="Ask questions about documents; answers cite sources.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    index = sub.add_parser("index", help="build or check the index")
    index_sub = index.add_subparsers(dest="index_command", required=True, parser_class=_Parser)
    build = index_sub.add_parser("build", help="index files and folders (default: corpus/)")
    build.add_argument("paths", nargs="*", type=Path)
    build.add_argument("--out", type=Path, help="index folder (default: index/)")
    build.add_argument("--engine", choices=("local", "ray"), default="local",
                       help="where to load, chunk and embed: this process, or a Ray cluster")
    build.add_argument("--address", help="the Ray cluster: 'auto' or a head's host:port "
                       "(default: a local cluster on this machine's cores)")
    status = index_sub.add_parser("status", help="say whether the index is fresh")
    status.add_argument("paths", nargs="*", type=Path)
    status.add_argument("--index", type=Path)

    ask = sub.add_parser("ask", help="answer a question (no question: interactive session)")
    ask.add_argument("question", nargs="?")
    _add_answer_options(ask)
    ask.add_argument("--top-k", type=int)

    serve = sub.add_parser("serve", help="serve the chat UI, the HTTP API and the widget")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=7860)
    serve.add_argument("--corpus", type=Path, help="documents to serve (default: corpus/)")
    serve.add_argument("--index", type=Path, help="index folder (default: index/)")

    evaluate = sub.add_parser("eval", help="measure quality")
    eval_sub = evaluate.add_subparsers(dest="eval_command", required=True, parser_class=_Parser)
    eval_qa = eval_sub.add_parser("qa", help="answer a question file and score it")
    eval_qa.add_argument("--questions", type=Path, required=True)
    _add_answer_options(eval_qa)
    add_eval_commands(eval_sub)
    passages = eval_sub.add_parser(
        "passages", help="retrieval only: rank of the first passage holding a gold answer")
    passages.add_argument("--questions", type=Path, required=True)
    passages.add_argument("--json", action="store_true", help="print JSON")
    passages.add_argument("--index", type=Path, help="index folder (default: index/)")
    return parser


def _add_answer_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--model", metavar="MODEL",
                        help=f"{' or '.join(MODEL_NAMES)}, or the path of a .gguf file or "
                        "of a transformers model folder")
    parser.add_argument("--backend", choices=BACKENDS)
    parser.add_argument("--index", type=Path, help="index folder (default: index/)")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `qa` console script."""
    try:
        args = _parser().parse_args(argv)
        settings = Settings.from_env(model=getattr(args, "model", None),
                                     backend=getattr(args, "backend", None),
                                     top_k=getattr(args, "top_k", None),
                                     corpus_dir=getattr(args, "corpus", None))
        if args.command == "index":
            return _index(args, settings)
        from qa.generate.registry import check_model

        check_model(settings)  # own model files: a bad path stops here, before any loading
        if args.command == "ask":
            return _ask(args, settings)
        if args.command == "serve":
            from qa.serve.server import serve

            serve(args.host, args.port, replace(settings, index_dir=args.index or
                                                settings.index_dir))
            return 0
        return _eval(args, settings)
    except QAError as exc:  # meant for the user; anything else is a bug and shows as one
        print(f"qa: error: {exc}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        print("", file=sys.stderr)
        return 130


def _index(args: argparse.Namespace, settings: Settings) -> int:
    from qa.index.embedding import Embedder
    from qa.index.store import build_index, stale_reasons
    from qa.progress import print_reporter

    paths = args.paths or [settings.corpus_dir]
    embedder = Embedder.from_settings(settings)
    if args.index_command == "status":
        folder = args.index or settings.index_dir
        reasons = stale_reasons(folder, paths, settings, embedder)
        print(f"{folder}: " + ("up to date" if not reasons else "stale"))
        for reason in reasons:
            print(f"  {reason}")
        return 1 if reasons else 0
    out = args.out or settings.index_dir
    if args.address and args.engine != "ray":
        raise UsageError("--address needs --engine ray")
    engine = None
    if args.engine == "ray":
        from qa.index.ray_engine import RayEngine

        engine = RayEngine(settings, address=args.address)
    result = build_index(paths, out, settings, embedder, print_reporter, engine=engine)
    for skipped in result.skipped:
        print(f"qa: {skipped}", file=sys.stderr)
    counts = result.index.manifest["counts"]
    print(f"indexed {counts['documents']} documents, {counts['chunks']} chunks "
          f"({result.encoded} embedded, {result.reused} reused) -> {out}")
    return 0


def _load(args: argparse.Namespace, settings: Settings) -> QA:
    from qa.answer.pipeline import QA

    return QA.from_settings(settings, args.index)


def _ask(args: argparse.Namespace, settings: Settings) -> int:
    if args.question is not None and not args.question.strip():
        raise QuestionError("the question is empty")
    qa = _load(args, settings)
    if args.question is None:
        return _interactive(qa, args)
    if args.json:
        from qa.generate.registry import describe

        result = qa.answer(args.question, top_k=args.top_k).to_dict()
        result["generator"] = describe(settings, qa.generator)  # backend, model, where
        print(json.dumps(result, indent=2, ensure_ascii=False))
        return 0
    _stream_answer(qa, args.question, [], args.top_k)
    return 0


def _stream_answer(qa: QA, question: str, history: list[Message],
                   top_k: int | None) -> Answer:
    """Print tokens as they come, then the checked answer's sources."""
    shown = ""
    answer: Answer | None = None
    for event in qa.stream(question, history, top_k):
        if event.kind == "query" and event.text != question.strip():
            print(f"(searching for: {event.text})")
        elif event.kind == "token":
            shown += event.text
            print(event.text, end="", flush=True)
        elif event.answer is not None:
            answer = event.answer
    if answer is None:
        raise RuntimeError("the answer stream ended without a result")
    if answer.refused and shown.strip() != answer.text:
        print(f"\n-> not supported by the passages, so: {answer.text}")
    elif strip_markers(answer.text) != strip_markers(shown):
        print(f"\nChecked answer: {answer.text}")
    else:
        print()
    print(format_sources(answer))
    return answer


def format_sources(answer: Answer) -> str:
    """The Sources list (or, for a refusal, the closest passages) as plain text."""
    lines = []
    if answer.citations:
        lines.append("\nSources:")
        for c in answer.citations:
            check = "supported" if c.supported else "NOT supported by this passage"
            page = f", page {c.page}" if c.page is not None else ""
            lines.append(f"  [{c.n}] {c.source}{page}, characters {c.start}-{c.end} ({check})")
            lines.append(f'      "{c.snippet}"')
    elif answer.hits:
        lines.append("\nClosest passages (none answers the question):")
        for h in answer.hits[:3]:
            snippet = h.chunk.text if len(h.chunk.text) <= 160 else h.chunk.text[:157] + "..."
            lines.append(f"  - {h.source}, characters {h.chunk.start}-{h.chunk.end}, "
                         f"similarity {h.dense_score:.2f}")
            lines.append(f'      "{snippet}"')
    return "\n".join(lines)


def _interactive(qa: QA, args: argparse.Namespace) -> int:
    print(f"Ask about {len(qa.index.documents)} document(s); model {qa.model_name}. "
          "Empty line or Ctrl-D to quit.")
    history: list[Message] = []
    while True:
        try:
            question = input("\n> ")
        except EOFError:
            print()
            return 0
        if not question.strip() or question.strip().lower() in ("exit", "quit"):
            return 0
        try:
            answer = _stream_answer(qa, question, history, args.top_k)
        except QuestionError as exc:
            print(f"qa: {exc}")
            continue
        history += [{"role": "user", "content": question},
                    {"role": "assistant", "content": answer.text}]


def _eval(args: argparse.Namespace, settings: Settings) -> int:
    from qa.eval.qa_eval import evaluate, read_questions
    from qa.progress import print_reporter

    if args.eval_command in ("retrieval", "squad", "generate"):
        return run_eval_command(args, settings)
    rows = read_questions(args.questions)
    qa = _load(args, settings)
    if args.eval_command == "passages":
        return _eval_passages(qa, rows, args.json)
    report = evaluate(qa, rows, print_reporter)
    report["cores"] = os.cpu_count()
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return 0
    for row in report["rows"]:
        mark = "ok " if row["correct"] >= 1 else ("part" if row["correct"] > 0 else "BAD")
        print(f"{mark} {row['id']:>6} {row['latency']:8.0f} ms  {row['answer'][:90]}")
    print(f"\nmodel {report['model']} on {report['cores']} cores, {report['questions']} questions")
    for key in ("answer_accuracy", "refusal_accuracy", "citation_accuracy"):
        print(f"{key:>20}: {report[key]:.1%}")
    if report["follow_ups"]:
        print(f"{'follow-ups':>20}: {report['follow_up_answer_accuracy']:.1%} answer accuracy "
              f"on {report['follow_ups']} answerable follow-up questions")
    for lang, figures in report.get("by_language", {}).items():
        shown = ", ".join(f"{key.split('_')[0]} {figures[key]:.1%}" for key in
                          ("answer_accuracy", "refusal_accuracy") if figures[key] is not None)
        print(f"{lang:>20}: {shown} ({figures['questions']} questions, "
              f"p50 {figures['p50_total_ms']:.0f} ms)")
    for key in ("p50_first_token_ms", "p95_first_token_ms", "p50_total_ms", "p95_total_ms"):
        print(f"{key:>20}: {report[key]:.0f}")
    return 0


def _eval_passages(qa: QA, rows: list[dict[str, Any]], as_json: bool) -> int:
    from qa.eval.passages import evaluate_passages

    report = evaluate_passages(qa.retriever, rows)
    if as_json:
        print(json.dumps(report, indent=2))
        return 0
    for name, figures in report.items():
        print(f"{name:>16}: " + "  ".join(f"{k} {v:.3f}" for k, v in figures.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
