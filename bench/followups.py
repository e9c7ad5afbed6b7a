"""Follow-up questions against the same questions asked standalone (issue 24, point 4).

bench/followups.jsonl holds 32 two- and three-turn conversations (written for this project)
over five SQuAD v1.1 dev articles and the notes in bench/followup_docs/; each line's `q` is a
follow-up to its `history`, and `standalone` is the same question written out. All
paragraphs of the five articles are indexed, so retrieval has distractors. The script answers
every follow-up with its history and every standalone question without, and prints both
accuracies, their gap, and what happened to each follow-up: kept as it was (no generation),
rewritten by the model, or searched with the previous exchange (no usable rewrite).

Run: python bench/followups.py [--json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from common import SHARED_DATA, print_facts

from qa.answer.pipeline import QA
from qa.config import Settings
from qa.eval.beir import cached_index
from qa.eval.qa_eval import evaluate, read_questions
from qa.eval.squad import load_squad
from qa.index.embedding import Embedder
from qa.ingest.corpus import load_paths
from qa.progress import print_reporter

ARTICLES = ("Kenya", "Apollo program", "Black Death", "Ctenophora", "Immune system")
HERE = Path(__file__).resolve().parent


def _fate(row: dict[str, Any]) -> str:
    if row["query"] == row["question"]:
        return "kept"
    return "earlier turn" if "(Earlier: " in row["query"] else "rewritten"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--questions", type=Path, default=HERE / "followups.jsonl")
    parser.add_argument("--squad", type=Path, default=SHARED_DATA / "squad" / "dev-v1.1.json")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    print_facts("follow-ups vs standalone questions")
    settings = Settings.from_env()
    embedder = Embedder.from_settings(settings)
    squad = [d for d in load_squad(args.squad).documents if d.title in ARTICLES]
    notes, skipped = load_paths([HERE / "followup_docs"])
    assert not skipped and len({d.title for d in squad}) == len(ARTICLES), skipped
    index, _ = cached_index("followups", squad + notes, settings, embedder, print_reporter)
    rows = read_questions(args.questions)
    alone = [{**r, "q": r["standalone"], "history": []} for r in rows]
    qa = QA(settings, index, embedder, report=print_reporter)
    follow = evaluate(qa, rows)
    single = evaluate(qa, alone)
    fates = [_fate(r) for r in follow["rows"]]
    result = {
        "conversations": len(rows), "documents": len(index.documents),
        "follow_up_answer_accuracy": follow["answer_accuracy"],
        "standalone_answer_accuracy": single["answer_accuracy"],
        "gap_points": round(100 * (single["answer_accuracy"] - follow["answer_accuracy"]), 1),
        "follow_up_citation_accuracy": follow["citation_accuracy"],
        "standalone_citation_accuracy": single["citation_accuracy"],
        "kept": fates.count("kept"), "rewritten": fates.count("rewritten"),
        "earlier_turn": fates.count("earlier turn"),
        "rows": [{"id": f["id"], "question": f["question"], "query": f["query"],
                  "fate": fate, "follow_up": f["correct"], "standalone": s["correct"],
                  "answer": f["answer"]}
                 for f, s, fate in zip(follow["rows"], single["rows"], fates, strict=True)],
    }
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
        return
    for row in result["rows"]:
        print(f"{row['id']:>10} {row['follow_up']:.0f}/{row['standalone']:.0f} "
              f"{row['fate']:<12} {row['query'][:80]}")
    for key, value in result.items():
        if key != "rows":
            print(f"{key:>28}: {value}")


if __name__ == "__main__":
    main()
