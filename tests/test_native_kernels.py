"""The one-token int8 kernels (qa/generate/int8/int8_decode.c) against PyTorch's layers: bit for
bit."""

from __future__ import annotations

import ctypes
from pathlib import Path

import pytest
import torch

from qa.config import Settings
from qa.errors import SettingsError
from qa.generate.int8 import kernels as native_kernels
from qa.generate.int8.layers import OutlierInt8Linear, int8_linear


@pytest.fixture(scope="module")
def kernels(settings: Settings) -> ctypes.CDLL:
    if not native_kernels.cpu_supported():
        pytest.skip("this CPU lacks AVX-512 VNNI: the layers keep PyTorch's kernels")
    library = native_kernels.load(settings.cache_dir)
    assert library is not None, "a C compiler (cc) is needed to build the kernels"
    return library


def inputs(k: int) -> list[torch.Tensor]:
    """One-token inputs of many shapes: plain, with a few huge channels, all positive, all
    negative, tiny (the smallest-scale rule), constant and zero."""
    generator = torch.Generator().manual_seed(k)
    rows = []
    for trial in range(40):
        x = torch.randn(1, k, generator=generator) * 10 ** (trial % 7 - 4)
        if trial % 3 == 0:
            x[0, torch.randint(0, k, (3,), generator=generator)] *= 60
        rows.append(x.abs() if trial % 5 == 1 else -x.abs() if trial % 5 == 2 else x)
    return [*rows, torch.full((1, k), 0.37), torch.zeros(1, k), torch.full((1, k), 1e-9)]


@pytest.mark.parametrize(("n", "k", "bias"), [(2048, 1536, True), (1536, 8960, False),
                                               (37, 100, True), (5, 64, False)])
def test_int8_linear_kernel_equals_fbgemm(kernels: ctypes.CDLL, n: int, k: int,
                                          bias: bool) -> None:
    generator = torch.Generator().manual_seed(n)
    weight = torch.randn(n, k, generator=generator) * torch.rand(n, 1, generator=generator)
    b = torch.randn(n, generator=generator) if bias else None
    native, packed = int8_linear(weight, b, kernels), int8_linear(weight, b)
    assert native.one_token(torch.zeros(1, k)) and not packed.one_token(torch.zeros(1, k))
    for x in inputs(k):
        assert torch.equal(native(x), packed(x))
    several = torch.randn(3, k, generator=generator)  # more than one token: fbgemm for both
    assert torch.equal(native(several), packed(several))


@pytest.mark.parametrize(("n", "k"), [(1536, 8960), (100, 1000), (37, 640)])
def test_outlier_kernel_equals_the_torch_path(kernels: ctypes.CDLL, n: int, k: int) -> None:
    linear = torch.nn.Linear(k, n, bias=False)
    with torch.no_grad():
        linear.weight.mul_(torch.rand(n, 1) * 4)
    native, plain = OutlierInt8Linear(linear, kernels=kernels), OutlierInt8Linear(linear)
    for x in inputs(k):
        assert torch.equal(native(x), plain(x))
    assert native.calls == plain.calls == len(inputs(k))
    assert native.picked == plain.picked > 0


def test_a_magnitude_on_the_threshold_is_left_to_torch(kernels: ctypes.CDLL) -> None:
    linear = torch.nn.Linear(64, 8, bias=False)
    native, plain = OutlierInt8Linear(linear, kernels=kernels), OutlierInt8Linear(linear)
    x = torch.ones(1, 64)
    x[0, 0] = 4.2  # the mean magnitude is 1.05: channel 0 sits on 4 times it
    out = torch.empty(1, 8)
    assert kernels.qa_outlier_linear_1(
        x.data_ptr(), *native.int8.fixed_args, out.data_ptr(), native.int8.work.data_ptr(), 1,
        *native.outlier_args) == -1
    assert torch.equal(native(x), plain(x))
    assert native.calls == 1


def test_no_channel_above_the_ratio_is_plain_int8() -> None:
    linear = torch.nn.Linear(64, 8)
    layer = OutlierInt8Linear(linear)
    x = torch.ones(1, 64)  # every channel at the mean: none is taken out
    assert torch.equal(layer(x), layer.int8(x))
    assert layer.calls == 1 and layer.picked == 0


def test_without_a_compiler_the_layers_keep_pytorch(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    if not native_kernels.cpu_supported():
        pytest.skip("this CPU lacks AVX-512 VNNI")
    monkeypatch.setenv("CC", "/nonexistent/cc")
    assert native_kernels.load(tmp_path) is None
    assert "int8 decode kernels unavailable" in capsys.readouterr().err
    assert not list((tmp_path / "kernels").glob("*.so"))


def test_the_setting_turns_them_off() -> None:
    assert Settings.from_env({}).native_kernels is True
    assert Settings.from_env({"QA_NATIVE_KERNELS": "0"}).native_kernels is False
    assert Settings.from_env({"QA_NATIVE_KERNELS": "off"}).native_kernels is False
    with pytest.raises(SettingsError, match="QA_NATIVE_KERNELS='maybe'"):
        Settings.from_env({"QA_NATIVE_KERNELS": "maybe"})
