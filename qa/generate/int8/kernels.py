"""The one-token int8 kernels of int8_decode.c (beside this file), compiled on first use.

At one token per call PyTorch's fbgemm int8 layers read their weights at about three quarters
of the memory bandwidth here; a plain AVX-512 VNNI pass over row-major int8 weights reads them
at the bandwidth. The C code reproduces fbgemm's results bit for bit (tests/test_native_kernels.py),
so answers do not change. It needs a C compiler (`cc`, or $CC) and a CPU with AVX-512 VNNI;
without either, `load` returns None and the layers keep PyTorch's kernels.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import subprocess  # nosec B404: runs the C compiler on our own source, no shell
import sys
import tempfile
from pathlib import Path
from typing import Any

SOURCE = Path(__file__).parent / "int8_decode.c"
CPU_FLAGS = ("avx512f", "avx512bw", "avx512vl", "avx512_vnni", "fma")
COMPILE_FLAGS = ("-O3", "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512vnni", "-mfma",
                 "-ffp-contract=off", "-fno-strict-aliasing", "-fopenmp", "-shared", "-fPIC")
_P, _N = ctypes.c_void_p, ctypes.c_int64


def cpu_supported() -> bool:
    """Whether this CPU has the instructions the kernels use (Linux: /proc/cpuinfo)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines()
                  if line.startswith("flags")), [])
    return all(flag in flags for flag in CPU_FLAGS)


def _build(target: Path) -> None:
    compiler = os.environ.get("CC", "cc")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as folder:
        partial = Path(folder) / target.name
        # An argument list, no shell; the compiler is cc or the operator's $CC.
        subprocess.run([compiler, *COMPILE_FLAGS, str(SOURCE), "-o", str(partial), "-lm"],  # nosec B603
                       check=True, capture_output=True, text=True, timeout=120)
        partial.replace(target)  # atomic: a concurrent load sees no half-written library


@functools.cache
def load(cache_dir: Path | None = None) -> ctypes.CDLL | None:
    """The compiled kernels (built once into cache_dir/kernels), or None where they cannot run."""
    if not cpu_supported():
        return None
    folder = (cache_dir or Path.home() / ".cache" / "qa") / "kernels"
    digest = hashlib.sha256(SOURCE.read_bytes() + " ".join(COMPILE_FLAGS).encode()).hexdigest()
    target = folder / f"int8_decode-{digest[:16]}.so"
    try:
        if not target.exists():
            _build(target)
        library = ctypes.CDLL(str(target))
    except (OSError, subprocess.SubprocessError) as error:
        detail = getattr(error, "stderr", "") or error
        print(f"qa: int8 decode kernels unavailable, using PyTorch's ({detail})", file=sys.stderr)
        return None
    linear: list[Any] = [_P, _N, _P, _P, _P, _P, _N, _P, _P, ctypes.c_int]
    library.qa_int8_linear_1.argtypes = linear
    library.qa_int8_linear_1.restype = None
    library.qa_outlier_linear_1.argtypes = [*linear, ctypes.c_float, _P, _P, _P, _P]
    library.qa_outlier_linear_1.restype = _N
    return library
