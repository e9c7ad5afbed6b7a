"""Gold-paragraph retrieval on SQuAD without generation: R@1, R@5, MRR@10 per mode.

Run: python bench/squad_retrieval.py [--file ../shared/data/squad/dev-v1.1.json] [--limit 1000]
Compare with BM25 over the 2,067 v1.1 dev paragraphs: R@1 0.773, R@5 0.928, MRR@10 0.840.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import SHARED_DATA, print_facts

from qa.config import Settings
from qa.eval.beir import MODES, cached_index, collapse
from qa.eval.metrics import mean, mrr_at_k, recall_at_k
from qa.eval.squad import load_squad, sample_questions
from qa.index.embedding import Embedder
from qa.progress import print_reporter
from qa.retrieve.hybrid import Retriever


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--file", type=Path, default=SHARED_DATA / "squad" / "dev-v1.1.json")
    parser.add_argument("--limit", type=int, default=1000, help="questions (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print_facts(f"SQuAD paragraph retrieval ({args.file.name})")
    settings = Settings.from_env()
    embedder = Embedder.from_settings(settings)
    data = load_squad(args.file)
    index, _ = cached_index(f"squad-{args.file.stem}", data.documents, settings, embedder,
                            print_reporter)
    answerable = [q for q in data.questions if not q.is_impossible]
    questions = sample_questions(answerable, args.limit or None, args.seed)
    print(f"{len(index.documents)} paragraphs, {len(index.chunks)} chunks; "
          f"{len(questions)} answerable questions (seed {args.seed}); fusion {settings.fusion}")
    retriever = Retriever(index, embedder, settings)
    for mode in MODES:
        r1, r5, mrr = [], [], []
        for q in questions:
            ranked = collapse(retriever.search(q.question, 40, mode=mode))
            gold = {q.doc_id: 1}
            r1.append(recall_at_k(ranked, gold, 1))
            r5.append(recall_at_k(ranked, gold, 5))
            mrr.append(mrr_at_k(ranked, gold, 10))
        print(f"{mode:>8}: R@1 {mean(r1):.4f}  R@5 {mean(r5):.4f}  MRR@10 {mean(mrr):.4f}",
              flush=True)


if __name__ == "__main__":
    main()
