"""Fit the calibrated refusal decision on `qa eval squad --json` runs of SQuAD v2.0.

    python bench/fit_refusal.py FIT.json [--report REPORT.json] [--exclude OTHER.json]
        [--min-precision 0.8] [--features a,b,...] [--write qa/answer/refusal_model.json]

A logistic model over the signals the pipeline records for every answer it could show (the
refusal's and the reply's log-probabilities, the best passage similarity, whether it was the
second try): the probability that the question is answerable. Rows the model itself refused,
or that had no passage, no citation or no supported citation, stay refused whatever the
threshold. Prints AUROC (5-fold on FIT, and on REPORT when given) and the refusal precision /
recall / answerable-refused curve over thresholds; the threshold chosen is the highest at which
the refusals the decision itself makes (on FIT's held-out folds) are right at least
--min-precision of the time.
Questions of --exclude runs (the reporting sample) are left out of the fit.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from qa.eval.metrics import contains_answer

FEATURES = ("refusal_logprob", "reply_logprob", "top_similarity", "retried")
DECIDABLE = ("", "unsure")  # refusal reasons the decision may overturn


def load(path: Path, exclude: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    """The rows of one run, less the excluded question ids."""
    rows = json.loads(path.read_text(encoding="utf-8"))["rows"]
    return [r for r in rows if r["id"] not in exclude]


def matrix(rows: list[dict[str, Any]], means: np.ndarray | None = None,
           features: tuple[str, ...] = FEATURES) -> np.ndarray:
    """Feature rows; a missing signal takes the fit's mean (NaN before the means are known)."""
    x = np.array([[r["signals"].get(f, np.nan) for f in features] for r in rows], dtype=float)
    if means is not None:
        x = np.where(np.isnan(x), means, x)
    return x


def decidable(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows whose refusal the decision may overturn (an answer was there to show)."""
    return [r for r in rows if r.get("signals") and r["refusal"] in DECIDABLE]


def holds_gold(row: dict[str, Any]) -> bool:
    """Whether the answer the pipeline had (shown or withheld) holds a gold span."""
    text = row["prediction"] or row.get("withheld", "")
    return not row["is_impossible"] and any(contains_answer(text, g) for g in row["answers"])


def curve(rows: list[dict[str, Any]], p: dict[str, float], t: float) -> dict[str, float]:
    """Refusal precision / recall and the share of answerable questions refused at threshold t."""
    refused = {r["id"]: (r["id"] in p and p[r["id"]] < t) or
               (r["id"] not in p and r["refused"]) for r in rows}
    impossible = [r for r in rows if r["is_impossible"]]
    answerable = [r for r in rows if not r["is_impossible"]]
    n_refused = sum(refused.values())
    right = sum(refused[r["id"]] for r in impossible)
    own = [r for r in rows if r["id"] in p and p[r["id"]] < t]  # refused by the decision
    answered = [r for r in rows if not refused[r["id"]]]
    return {"threshold": t, "decided": len(own),
            "coverage": len(answered) / len(rows),
            "accuracy": sum(holds_gold(r) for r in answered) / len(answered) if answered else 0.0,
            "own_precision": sum(r["is_impossible"] for r in own) / len(own) if own else 1.0,
            "precision": right / n_refused if n_refused else 0.0,
            "recall": right / len(impossible) if impossible else 0.0,
            "answerable_refused": sum(refused[r["id"]] for r in answerable) / len(answerable)}


def show(c: dict[str, float]) -> None:
    """One line of the curve."""
    print(f"  {c['threshold']:.2f}      {c['precision']:.3f}    {c['recall']:.3f}   "
          f"{c['answerable_refused']:.3f}              {c['decided']:3.0f}     "
          f"{c['own_precision']:.3f}        {c['coverage']:.3f}     {c['accuracy']:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("fit", type=Path)
    ap.add_argument("--report", type=Path)
    ap.add_argument("--exclude", type=Path, action="append", default=[])
    ap.add_argument("--min-precision", type=float, default=0.8)
    ap.add_argument("--write", type=Path)
    ap.add_argument("--features", default=",".join(FEATURES),
                    help="signals of Answer.signals to fit on (qa.answer.pipeline.SIGNALS)")
    args = ap.parse_args()
    features = tuple(args.features.split(","))

    excluded = frozenset(r["id"] for path in args.exclude for r in load(path))
    every = load(args.fit)
    rows = [r for r in every if r["id"] not in excluded]
    train = decidable(rows)
    raw = matrix(train, features=features)
    means = np.nanmean(raw, axis=0)
    x = np.where(np.isnan(raw), means, raw)
    scale = x.std(axis=0) + 1e-9
    y = np.array([not r["is_impossible"] for r in train])
    z = (x - means) / scale
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    held = np.zeros(len(y))
    for a, b in folds.split(z, y):
        held[b] = LogisticRegression().fit(z[a], y[a]).predict_proba(z[b])[:, 1]
    model = LogisticRegression().fit(z, y)
    print(f"fit: {len(rows)} questions ({len(every) - len(rows)} excluded), "
          f"{len(train)} decidable ({int((~y).sum())} unanswerable)")
    print(f"AUROC, 5-fold on the fit rows: {roc_auc_score(y, held):.3f}")
    print("  each signal alone:", {f: round(float(roc_auc_score(y, x[:, i])), 3)
                                    for i, f in enumerate(features)})
    print("weights (standardised):",
          {f: round(float(w), 3) for f, w in zip(features, model.coef_[0], strict=True)},
          "bias", round(float(model.intercept_[0]), 3))

    fitted = {r["id"]: float(q) for r, q in zip(train, held, strict=True)}
    grid = [round(t, 2) for t in np.arange(0.05, 0.96, 0.05)]
    print("threshold  precision  recall  answerable refused  refused by it  their precision"
          "  coverage  accuracy   (fit rows, held-out folds)")
    chosen = grid[0]
    for t in grid:
        c = curve(rows, fitted, t)
        show(c)
        if c["own_precision"] >= args.min_precision:
            chosen = t
    print(f"threshold chosen: {chosen} (precision of its own refusals >= {args.min_precision})")

    if args.report:
        report = load(args.report)
        test = decidable(report)
        xt = matrix(test, means, features)
        zt = (xt - means) / scale
        pt = model.predict_proba(zt)[:, 1]
        yt = np.array([not r["is_impossible"] for r in test])
        auroc = (f"AUROC {roc_auc_score(yt, pt):.3f} "
                 f"({features[0]} alone {roc_auc_score(yt, xt[:, 0]):.3f})"
                 if len(set(yt)) == 2 else "no AUROC (one class: SQuAD v1.1)")
        print(f"report: {len(report)} questions, {len(test)} decidable; {auroc}")
        scored = {r["id"]: float(q) for r, q in zip(test, pt, strict=True)}
        for t in grid:
            show(curve(report, scored, t))

    if args.write:
        args.write.write_text(json.dumps({
            "features": list(features), "mean": means.round(6).tolist(),
            "scale": scale.round(6).tolist(),
            "weights": model.coef_[0].round(6).tolist(),
            "bias": round(float(model.intercept_[0]), 6),
            "fit": f"{args.fit.name}: {len(train)} SQuAD v2.0 answers; threshold {chosen} "
                   f"for refusal precision >= {args.min_precision}",
        }, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {args.write}; set Settings.min_confidence to {chosen}")


if __name__ == "__main__":
    main()
