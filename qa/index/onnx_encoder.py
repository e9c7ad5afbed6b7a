"""The embedder as an ONNX Runtime model: exported once from the packaged folder, cached.

The export traces the sentence-transformers model itself (transformer, pooling,
normalisation), so the ONNX graph computes what `SentenceTransformer.encode` does. The int8
variant quantises the MatMul weights per channel (onnxruntime's dynamic quantisation); the
embedding tables and LayerNorms stay float. The cache folder is keyed by the weights' sha256
and the export recipe, so a changed model or recipe exports anew.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from qa.files import exclusive

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

INPUTS = ("input_ids", "attention_mask", "token_type_ids")
RECIPE = 1  # bump when the export or quantisation below changes
OPSET = 17


def cache_file(cache_dir: Path, weights_sha256: str, int8: bool) -> Path:
    """Where the exported model of these weights lives."""
    name = "model.int8.onnx" if int8 else "model.onnx"
    return Path(cache_dir) / "embedder" / f"{weights_sha256[:16]}-r{RECIPE}" / name


def _export(model: SentenceTransformer, out: Path) -> None:
    import torch

    class Encode(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            features = {"input_ids": input_ids, "attention_mask": attention_mask,
                        "token_type_ids": token_type_ids}
            return self.model(features)["sentence_embedding"]

    example = model.tokenizer(["an example", "two"], padding=True, return_tensors="pt")
    axes = {name: {0: "batch", 1: "tokens"} for name in INPUTS}
    # The tracer warns about branches fixed at trace time; they hold for every input here.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Encode().eval(), tuple(example[name] for name in INPUTS), str(out),
                          dynamo=False, input_names=list(INPUTS), output_names=["embedding"],
                          dynamic_axes={**axes, "embedding": {0: "batch"}},
                          opset_version=OPSET)


def _quantise(source: Path, out: Path) -> None:
    import onnx

    # onnxruntime.quantization configures the root logger when imported, and logs advice on
    # it: both undone, so that the process logs as before.
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    quiet = logging.Filter("no root records")
    root.addFilter(quiet)
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(str(source), str(out), weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=["MatMul"],
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    finally:
        root.removeFilter(quiet)
        root.handlers[:], root.level = handlers, level


def ensure_exported(model_loader: Callable[[], SentenceTransformer], cache_dir: Path,
                    weights_sha256: str, int8: bool) -> Path:
    """The cached ONNX file, exported (and quantised) first if missing; model_loader() gives
    the SentenceTransformer to export. Concurrent processes export once (a file lock)."""
    target = cache_file(cache_dir, weights_sha256, int8)
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(target.parent / ".lock"):
        if target.is_file():
            return target
        fp32 = cache_file(cache_dir, weights_sha256, int8=False)
        if not fp32.is_file():
            tmp = fp32.with_name(f".{fp32.name}.tmp-{uuid.uuid4().hex[:8]}")
            try:
                _export(model_loader(), tmp)
                os.replace(tmp, fp32)
            finally:
                tmp.unlink(missing_ok=True)
        if int8:
            tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
            try:
                _quantise(fp32, tmp)
                os.replace(tmp, target)
            finally:
                tmp.unlink(missing_ok=True)
    return target


class OnnxUnavailable(Exception):
    """The ONNX model cannot be exported or loaded here; the message says why."""


def load_encoder(model_loader: Callable[[], SentenceTransformer], folder: Path,
                 cache_dir: Path, weights_sha256: str, int8: bool,
                 threads: int) -> OnnxEncoder:
    """The encoder of the cached export (made first if missing), or OnnxUnavailable."""
    try:
        from onnxruntime.capi import onnxruntime_pybind11_state as state
    except ImportError as exc:
        raise OnnxUnavailable(str(exc)) from exc
    # onnxruntime's own errors (InvalidProtobuf, Fail, ...) derive from Exception directly.
    runtime = (v for v in vars(state).values() if isinstance(v, type) and issubclass(v, Exception))
    errors: tuple[type[Exception], ...] = (ImportError, OSError, RuntimeError, ValueError,
                                           *runtime)
    try:
        file = ensure_exported(model_loader, cache_dir, weights_sha256, int8)
        return OnnxEncoder(file, folder, threads, one_per_run=int8)
    except errors as exc:
        lines = str(exc).strip().splitlines()
        raise OnnxUnavailable(lines[0] if lines else type(exc).__name__) from exc


class OnnxEncoder:
    """Unit vectors from an exported model: texts tokenised once, sorted by length into
    batches (little padding), each batch one `InferenceSession.run`.

    one_per_run: one text per run, for the int8 model, whose activations are quantised with
    one scale per run: in a batch, a text's vector would depend on its neighbours (measured:
    cosine 0.991 between a chunk embedded alone and in a batch) and on their padding. With
    128-token chunks a run of one is as fast as a batch of 32 (BENCHMARKS.md section 3).
    """

    def __init__(self, file: Path, folder: Path, threads: int, one_per_run: bool) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Idle pool threads would otherwise spin on the cores the generator needs next.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(file), options,
                                            providers=["CPUExecutionProvider"])
        self.file = file
        self.one_per_run = one_per_run
        # The tokenizers library on the folder's tokenizer.json, as transformers' fast tokenizer
        # runs it, without importing transformers (and with it torch: ~0.5 GB).
        config = json.loads((folder / "sentence_bert_config.json").read_text(encoding="utf-8"))
        self.max_tokens = int(config["max_seq_length"])
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.pad_id = int((self.tokenizer.padding or {}).get("pad_id", 0))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.max_tokens)
        self.whole = Tokenizer.from_file(str(folder / "tokenizer.json"))  # for token_offsets
        self.whole.no_padding()
        self.whole.no_truncation()
        self.dimension = int(self.session.get_outputs()[0].shape[1])

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the tokens of text (no special tokens, no truncation)."""
        return [(a, b) for a, b in self.whole.encode(text, add_special_tokens=False).offsets
                if b > a]

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        """(len(texts), dimension) float32 unit vectors."""
        ids = [encoding.ids for encoding in self.tokenizer.encode_batch(texts)]
        order = np.argsort([len(row) for row in ids], kind="stable")
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        pad = self.pad_id
        batch_size = 1 if self.one_per_run else batch_size
        for start in range(0, len(texts), batch_size):
            rows = order[start:start + batch_size]
            width = max(len(ids[i]) for i in rows)
            input_ids = np.full((len(rows), width), pad, dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for r, i in enumerate(rows):
                input_ids[r, :len(ids[i])] = ids[i]
                mask[r, :len(ids[i])] = 1
            feed = {"input_ids": input_ids, "attention_mask": mask,
                    "token_type_ids": np.zeros_like(input_ids)}
            out[rows] = self.session.run(None, feed)[0]
        return out
