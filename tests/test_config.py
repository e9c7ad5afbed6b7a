"""Settings: defaults, QA_* overrides with the right types, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from qa.config import Settings
from qa.errors import SettingsError


def test_path_settings_from_the_environment_are_paths(tmp_path: Path) -> None:
    settings = Settings.from_env({"QA_INDEX_DIR": str(tmp_path / "idx"), "QA_CACHE_DIR": "~/c"})
    assert settings.index_dir == tmp_path / "idx"
    assert settings.cache_dir == Path.home() / "c"


def test_numbers_and_choices_are_parsed_and_checked() -> None:
    settings = Settings.from_env({"QA_TOP_K": "3", "QA_DENSE_WEIGHT": "0.5", "QA_FUSION": "rrf"})
    assert (settings.top_k, settings.dense_weight, settings.fusion) == (3, 0.5, "rrf")
    for env, message in (({"QA_TOP_K": "three"}, "QA_TOP_K='three' is not a valid int"),
                         ({"QA_FUSION": "max"}, "fusion must be one of rrf, weighted"),
                         ({"QA_EMBED_BACKEND": "openvino"},
                          "embed_backend must be one of onnx-int8, onnx, torch"),
                         ({"QA_MODEL": "gpt"}, "model must be one of"),
                         ({"QA_CHUNK_TOKENS": "512"}, "at most 256"),
                         ({"QA_MIN_CONFIDENCE": "1.5"}, "min_confidence must be between 0 and 1")):
        with pytest.raises(SettingsError, match=message):
            Settings.from_env(env)


def test_explicit_overrides_win_over_the_environment() -> None:
    assert Settings.from_env({"QA_TOP_K": "3"}, top_k=5).top_k == 5
