"""The real-model soak (issue 20, point 5): `python app.py` with the default settings and
model, `--clients` visitors for `--minutes` mixing /api/ask, /api/ask/stream, /api/search and
small uploads through the chat app; requests, statuses, p50/p95 per route, the server's RSS
every minute, open files and threads at the start (after the warm-up) and the end.

Run: python bench/soak_real.py [--clients 8] [--minutes 30] [--warmup 5] [--json out.json]
(or: make soak-real). Exit status 1 when a request got a 5xx or no reply, RSS drifted by 5 %
or more after the warm-up (at rest, or under load), or open files or threads grew.
"""

from __future__ import annotations

import argparse
import json
import sys

from common import ROOT, machine_facts, print_facts

sys.path.insert(0, str(ROOT))
from tests.soak import THINK_S, soak  # after the path to the tests folder


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--minutes", type=float, default=30.0, help="all traffic, warm-up in")
    parser.add_argument("--warmup", type=float, default=5.0, help="minutes not in the drift")
    parser.add_argument("--think", type=float, default=THINK_S,
                        help="each client's pause after a reply (s)")
    parser.add_argument("--json", help="write the figures (and every request) here")
    args = parser.parse_args()
    if not 0 < args.warmup < args.minutes or args.clients < 1:
        parser.error("need 0 < --warmup < --minutes and --clients >= 1")
    print_facts(f"real-model soak: {args.clients} clients, {args.minutes:g} min "
                f"({args.warmup:g} min warm-up)")
    figures = soak(args.clients, args.minutes * 60, args.warmup * 60, think=args.think)
    figures["machine"] = machine_facts()
    print(f"model: {figures['model']}; generator: {figures['generator']}")
    print(f"requests: {figures['requests']}, statuses {figures['statuses']}")
    for path, row in figures["routes"].items():
        print(f"{path:>18}: {row['requests']:5d}  {row['statuses']}  p50 {row['p50_ms']} ms  "
              f"p95 {row['p95_ms']} ms")
    for sample in figures["samples"]:
        print(f"{sample['phase']:>8} {sample['at_s']:7.0f} s: RSS {sample['rss_mib']:7.0f} MiB "
              f"(peak {sample['hwm_mib']:.0f}), {sample['fds']} open files, "
              f"{sample['threads']} threads")
    print(f"RSS drift after the warm-up: at rest {figures['rss_drift_after_warmup']:+.1%}, "
          f"under load {figures['rss_drift_under_load']:+.1%} (bound 5 %); "
          f"open files {figures['fds'][0]} -> {figures['fds'][1]}, threads "
          f"{figures['threads'][0]} -> {figures['threads'][1]}; clean shutdown: "
          f"{figures['clean_stop']}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(figures, out, indent=1, ensure_ascii=False)
    print("MISSED: " + "; ".join(figures["problems"]) if figures["problems"] else "all met")
    return 1 if figures["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
