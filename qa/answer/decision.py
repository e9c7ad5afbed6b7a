"""The refusal decision: one logistic model over an answer's signals, instead of separate vetoes.

The model (`refusal_model.json`, written by `bench/fit_refusal.py` from SQuAD v2.0 runs) gives
the probability that the question is answerable from the passages; an answer below
`Settings.min_confidence` is refused as unsure. A signal the backend does not measure (the refusal's
log-probability on an OpenAI-compatible server) takes its mean from the fit, so it counts for
nothing.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cache
from importlib import resources


@dataclass(frozen=True)
class RefusalModel:
    """Standardised logistic weights over named signals."""

    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float

    def confidence(self, signals: dict[str, float]) -> float:
        """The probability, by the model, that the answer's question is answerable."""
        z = self.bias + sum(
            w * (signals.get(f, m) - m) / s
            for f, m, s, w in zip(self.features, self.mean, self.scale, self.weights,
                                  strict=True))
        return 1.0 / (1.0 + math.exp(-z)) if z > -700 else 0.0


@cache
def refusal_model() -> RefusalModel:
    """The fitted model shipped with the package."""
    raw = json.loads(resources.files("qa.answer").joinpath("refusal_model.json")
                     .read_text(encoding="utf-8"))
    return RefusalModel(features=tuple(raw["features"]), mean=tuple(raw["mean"]),
                        scale=tuple(raw["scale"]), weights=tuple(raw["weights"]),
                        bias=float(raw["bias"]))
