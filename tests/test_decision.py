"""The calibrated refusal decision: its arithmetic, missing signals, and the shipped model."""

from __future__ import annotations

import math

import pytest

from qa.answer.decision import RefusalModel, refusal_model

TOY = RefusalModel(features=("a", "b"), mean=(1.0, 0.0), scale=(2.0, 1.0),
                   weights=(0.5, -1.0), bias=0.25)


def test_confidence_is_the_logistic_of_the_standardised_weighted_signals() -> None:
    z = 0.25 + 0.5 * (5.0 - 1.0) / 2.0 - 1.0 * (0.5 - 0.0) / 1.0
    assert TOY.confidence({"a": 5.0, "b": 0.5}) == pytest.approx(1 / (1 + math.exp(-z)))
    assert TOY.confidence({"a": 5.0, "b": 0.5}) == pytest.approx(0.679178699)


def test_a_missing_signal_counts_for_nothing() -> None:
    assert TOY.confidence({"a": 1.0}) == pytest.approx(1 / (1 + math.exp(-0.25)))
    assert TOY.confidence({}) == TOY.confidence({"b": 0.0})


def test_extreme_signals_give_zero_or_one_without_overflow() -> None:
    assert TOY.confidence({"b": 1e6}) == 0.0
    assert TOY.confidence({"b": -1e6}) == 1.0


def test_the_shipped_model_reads_the_signals_the_pipeline_records() -> None:
    from qa.answer.pipeline import SIGNALS

    model = refusal_model()
    assert set(model.features) <= set(SIGNALS)
    assert len(model.mean) == len(model.scale) == len(model.weights) == len(model.features)
    assert all(s > 0 for s in model.scale)
    # A surer model (refusal less likely, reply tokens likelier) never lowers the confidence.
    base = dict(zip(model.features, model.mean, strict=True))
    surer = {**base, "refusal_logprob": base["refusal_logprob"] - 3.0}
    assert model.confidence(surer) > model.confidence(base)
