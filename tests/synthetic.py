"""A small synthetic folder of text files on distinct topics, the same for every seed."""

from __future__ import annotations

import random
from pathlib import Path

TOPICS = ("harbour cranes", "glacier ice", "bee colonies", "railway signals", "tidal power",
          "violin making", "coral reefs", "paper mills", "desert rain", "bridge cables",
          "salt marshes", "clock towers")
WORDS = ("measured", "northern", "steady", "early", "records", "season", "workers", "levels",
         "samples", "costs", "older", "river", "winter", "survey", "repairs", "growth",
         "stations", "valley", "yearly", "narrow", "design", "tests", "load", "storms")


def write_synthetic(folder: Path, documents: int = 12, sentences: int = 40,
                    seed: int = 0) -> list[Path]:
    """documents files of sentences about one topic each (a few with a # title)."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in range(documents):
        topic = TOPICS[n % len(TOPICS)]
        lines = []
        for s in range(sentences):
            words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 14)))
            lines.append(f"Note {s + 1} on {topic}: the {words} of {topic} in year "
                         f"{1900 + rng.randint(0, 120)}.")
        suffix = ".md" if n % 3 == 0 else ".txt"
        head = f"# {topic.title()} {n}\n\n" if suffix == ".md" else ""
        path = folder / f"doc{n:03d}{suffix}"
        path.write_text(head + " ".join(lines) + "\n", encoding="utf-8")
        paths.append(path)
    return paths
