"""Paired comparison of two `qa eval squad --json` runs on the same questions (same file, limit
and seed): per-question differences in F1, "answer contains gold" and refusals, with a 95%
bootstrap interval, so a change can be told from noise.

Run: python bench/compare_runs.py BEFORE.json AFTER.json
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

METRICS = (("f1", "F1"), ("contains", "answer contains gold"), ("refused", "refused"))


def paired(before: list[float], after: list[float], resamples: int = 10_000,
           seed: int = 0) -> tuple[float, float, float]:
    """Mean of after - before and its 95% bootstrap interval."""
    diffs = [b - a for a, b in zip(before, after, strict=True)]
    rng = random.Random(seed)
    means = sorted(sum(rng.choices(diffs, k=len(diffs))) / len(diffs) for _ in range(resamples))
    return sum(diffs) / len(diffs), means[int(0.025 * resamples)], means[int(0.975 * resamples)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    args = parser.parse_args()
    runs = []
    for path in (args.before, args.after):
        try:
            runs.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            sys.exit(f"{path}: not a finished `qa eval squad --json` output ({exc})")
        if not isinstance(runs[-1], dict) or not isinstance(runs[-1].get("rows"), list):
            sys.exit(f"{path}: no per-question rows (was it written by `qa eval squad --json`?)")
    rows = [{r["id"]: r for r in run["rows"]} for run in runs]
    if rows[0].keys() != rows[1].keys():
        sys.exit("the two runs answered different questions: use the same file, limit and seed")
    ids = sorted(rows[0])
    print(f"{len(ids)} questions; before {args.before.name}, after {args.after.name}")
    groups = [("all", ids)]
    if any(r["is_impossible"] for r in rows[0].values()):
        groups = [("answerable", [i for i in ids if not rows[0][i]["is_impossible"]]),
                  ("unanswerable", [i for i in ids if rows[0][i]["is_impossible"]])]
    for label, group in groups:
        for key, name in METRICS:
            before = [float(rows[0][i][key]) for i in group]
            after = [float(rows[1][i][key]) for i in group]
            mean, low, high = paired(before, after)
            print(f"{label:>12} {name:<22} before {sum(before) / len(before):.3f}  after "
                  f"{sum(after) / len(after):.3f}  diff {mean:+.3f} [{low:+.3f}, {high:+.3f}]")


if __name__ == "__main__":
    main()
