"""What telling a question's language costs an English question (issue 22): the time of
`other_language` per question, over 2,000 SQuAD v1.1 dev questions (seed 5).

    python bench/language_cost.py
"""

from __future__ import annotations

import random
import time
from pathlib import Path

from qa.answer.languages import other_language
from qa.eval.squad import load_squad

SQUAD = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "squad" / "dev-v1.1.json"


def main() -> None:
    questions = [q.question for q in load_squad(SQUAD).questions]
    sample = random.Random(5).sample(questions, 2000)
    other_language(sample[0], "en")  # the model loaded once, as at the first question
    times, flagged = [], 0
    for question in sample:
        started = time.perf_counter()
        flagged += other_language(question, "en") is not None
        times.append(time.perf_counter() - started)
    times.sort()
    print(f"{len(sample)} English questions: {flagged} taken for another language; "
          f"detection p50 {1000 * times[len(times) // 2]:.3f} ms, "
          f"p95 {1000 * times[int(len(times) * 0.95)]:.3f} ms")


if __name__ == "__main__":
    main()
