"""The dense (FAISS) index of a build: exact (flat) below `ann_min_vectors`, IVF above.

The type and its parameters are recorded in the manifest (`dense`), and `configure` applies
them to a loaded index. IVF is trained on a fixed-seed sample, so two builds of the same
vectors write the same index. The defaults come from bench/ann.py (BENCHMARKS.md, "Exact vs
approximate FAISS"): exact search of 384-dimension vectors stops meeting a 20 ms p95 near
300,000 vectors on 2 cores (20.3 ms; 15.9 ms at 250,000), and IVF with nlist ~ sqrt(n) and
nprobe = nlist / 8 keeps recall@10 above 0.95 (0.964 at 1,000,000, p95 8 ms).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from qa.config import Settings
from qa.errors import IndexLoadError

TRAIN_PER_LIST = 64  # training vectors per IVF list (FAISS wants at least 39)
MIN_PER_LIST = 39
NPROBE_FRACTION = 8  # nprobe = nlist / this
TRAIN_SEED = 0
NO_MAP = 0  # faiss.DirectMap.NoMap: an IVF index whose rows cannot be read back by id


def dense_kind(n: int, settings: Settings) -> str:
    """'flat' or 'ivf' for n vectors: settings.dense_index, or by size when it is 'auto'."""
    if settings.dense_index != "auto":
        return settings.dense_index
    return "ivf" if n >= settings.ann_min_vectors else "flat"


def ivf_params(n: int) -> dict[str, int]:
    """nlist (a power of two near sqrt(n), at most n / 39) and the default nprobe."""
    nlist = 2 ** max(0, round(math.log2(math.sqrt(max(n, 1)))))
    while nlist > 1 and nlist * MIN_PER_LIST > n:
        nlist //= 2
    return {"nlist": nlist, "nprobe": max(1, nlist // NPROBE_FRACTION)}


def build_dense(vectors: np.ndarray, settings: Settings) -> tuple[Any, dict[str, Any]]:
    """A FAISS inner-product index holding vectors (rows in order) and its manifest record."""
    import faiss

    n, d = vectors.shape
    kind = dense_kind(n, settings)
    if kind == "flat":
        flat = faiss.IndexFlatIP(d)
        flat.add(vectors)
        return flat, {"type": "flat"}
    params = ivf_params(n)
    nlist = params["nlist"]
    ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
    sample = min(n, TRAIN_PER_LIST * nlist)
    rows = np.sort(np.random.default_rng(TRAIN_SEED).choice(n, sample, replace=False))
    ivf.cp.seed = TRAIN_SEED
    ivf.train(np.ascontiguousarray(vectors[rows]))
    ivf.add(vectors)
    ivf.make_direct_map()  # rows can be read back (load_index reconstructs the vectors)
    ivf.nprobe = params["nprobe"]
    return ivf, {"type": "ivf", "metric": "inner_product", "nlist": nlist,
                 "nprobe": params["nprobe"], "train_vectors": sample, "train_seed": TRAIN_SEED}


def configure(dense: Any, record: dict[str, Any] | None, settings: Settings) -> Any:
    """Apply a loaded index's recorded search parameters (nprobe: settings.ann_nprobe when
    set); IndexLoadError when the file's type is not the recorded one."""
    import faiss

    record = record or {"type": "flat"}
    kind = record.get("type")
    is_ivf = isinstance(dense, faiss.IndexIVF)
    if kind not in ("flat", "ivf") or (kind == "ivf") != is_ivf:
        raise IndexLoadError(f"dense index is {type(dense).__name__}, the manifest says "
                             f"{kind!r}")
    if is_ivf:
        if dense.direct_map.type == NO_MAP:  # older files: rows readable again
            dense.make_direct_map()
        dense.nprobe = min(dense.nlist, settings.ann_nprobe or int(record.get("nprobe", 1)))
    return dense
