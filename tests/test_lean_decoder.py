"""The lean forward (qa.generate.int8.decoder) against transformers' own forward, on the real
0.5B model."""

from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from qa.config import Settings
from qa.generate.int8.decoder import LeanDecoder, check_supported
from qa.generate.int8.layers import fused_int8_linear, int8_linear
from qa.generate.models import GENERATORS, converted_dir

TEXT = ("The Shanghai Cooperation Organisation held a high-level event at the United Nations "
        "in New York on 27 November 2018. Speakers discussed counter-terrorism, drugs and "
        "regional security, and the Secretary-General welcomed the cooperation. ") * 3


@pytest.fixture(scope="module")
def model(settings: Settings) -> Any:
    """The 0.5B model in float32, so that both forwards round the same way."""
    from transformers import AutoModelForCausalLM

    folder = converted_dir(GENERATORS["qwen2.5-coder-0.5b"], settings.cache_dir)
    return AutoModelForCausalLM.from_pretrained(  # nosec B615 - a local folder
        folder, dtype=torch.float32, local_files_only=True).eval()


@pytest.fixture(scope="module")
def ids(settings: Settings) -> list[int]:
    from transformers import AutoTokenizer

    folder = converted_dir(GENERATORS["qwen2.5-coder-0.5b"], settings.cache_dir)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)  # nosec B615
    return list(tokenizer(TEXT)["input_ids"])


def lean_logits(lean: LeanDecoder, ids: list[int], chunk: int,
                capacity: int = 1024) -> torch.Tensor:
    """Every position's logits, the prompt fed in chunks and then one token at a time."""
    cache = lean.new_cache(capacity)
    head, tail = ids[:-4], ids[-4:]
    rows = [lean(head[i:i + chunk], cache, all_logits=True) for i in range(0, len(head), chunk)]
    rows += [lean([token], cache)[None] for token in tail]
    assert cache.length == len(ids)
    return torch.cat(rows)


def test_lean_forward_equals_transformers_forward(model: Any, ids: list[int]) -> None:
    with torch.inference_mode():
        expected = model(input_ids=torch.tensor([ids])).logits[0]
    lean = LeanDecoder(model)
    # Chunks of 37 tokens: each chunk attends to the cache and causally within itself.
    got = lean_logits(lean, ids, chunk=37)
    assert got.shape == expected.shape
    assert float((got - expected).abs().max()) < 1e-3
    assert torch.equal(got.argmax(-1), expected.argmax(-1))


def test_cache_growth_copies_and_crops_keep_the_logits(model: Any, ids: list[int]) -> None:
    lean = LeanDecoder(model)
    roomy = lean_logits(lean, ids, chunk=64)
    assert torch.allclose(lean_logits(lean, ids, chunk=64, capacity=4), roomy, atol=1e-5)

    cache = lean.new_cache()
    lean(ids[:50], cache)
    saved = copy.deepcopy(cache)
    lean(ids[50:60], cache)
    assert saved.length == 50 and cache.length == 60  # the copy is independent
    again = lean(ids[50:60], saved)
    cache.crop(-5)
    assert cache.length == 55
    cache.crop(50)  # back to the first 50 tokens: the same continuation, the same logits
    assert torch.allclose(lean(ids[50:60], cache), again, atol=1e-5)
    assert torch.allclose(again, roomy[59], atol=1e-4)


def test_int8_decoder_tracks_the_float_model(model: Any, ids: list[int]) -> None:
    expected = lean_logits(LeanDecoder(model), ids, chunk=64)
    got = lean_logits(LeanDecoder(model, int8=True), ids, chunk=64)
    agree = float((got.argmax(-1) == expected.argmax(-1)).float().mean())
    assert agree > 0.85, agree  # int8 weights and per-call activation scales: close, not equal
    int8 = LeanDecoder(model, int8=True).weight_bytes()
    assert 0.25 < int8 / LeanDecoder(model).weight_bytes() < 0.35  # vs float32 weights


def test_fused_int8_layers_equal_the_separate_layers() -> None:
    torch.manual_seed(0)
    layers = [torch.nn.Linear(96, n, bias=True) for n in (96, 32, 32)]
    x = torch.randn(5, 96)
    with torch.inference_mode():
        fused = fused_int8_linear(*layers)(x)
        separate = torch.cat([int8_linear(lin.weight, lin.bias)(x) for lin in layers], dim=-1)
    assert torch.equal(fused, separate)


def test_other_architectures_are_refused() -> None:
    config = SimpleNamespace(model_type="llama", hidden_act="gelu", use_sliding_window=True,
                             rope_parameters={"rope_type": "yarn"})
    with pytest.raises(ValueError, match="model type 'llama', activation 'gelu', "
                                         "sliding-window attention, rope type 'yarn'"):
        check_supported(config)
